"""Small builders shared by tests (no fixtures, so any test module can import them)."""

from __future__ import annotations

import numpy as np

from streamer.model.params import TinyDenoiserParams, tensor_shapes


def random_params(cell: str = "lstm", hidden: int = 128, seed: int = 0, scale: float = 0.1
                  ) -> TinyDenoiserParams:
    """A TinyDenoiser with small random weights: outputs stay in the sigmoid's sensitive range."""
    rng = np.random.default_rng(seed)
    tensors = {name: (rng.standard_normal(shape) * scale).astype(np.float32)
               for name, shape in tensor_shapes(cell, hidden).items()}
    return TinyDenoiserParams(cell=cell, hidden=hidden, tensors=tensors, metadata={"seed": seed})


def require_tool(name: str) -> str:
    """Path of executable `name`; skip the test when it is missing, or fail under CI.

    `.ci/run` sets STREAMER_REQUIRE_TOOLS=1 after installing every tool, so there a missing
    tool is an install bug, not a reason to skip.
    """
    import os
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        message = f"missing tool: {name} (install it, see .ci/run)"
        if os.environ.get("STREAMER_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def deadline(seconds: int, what: str):
    """Context manager: raise TimeoutError in the main thread after `seconds`, naming `what`.

    A test blocked in a read or a wait then fails instead of hanging the whole run.
    """
    import contextlib
    import signal

    @contextlib.contextmanager
    def guard():
        def overrun(signum, frame):
            raise TimeoutError(f"test overran its {seconds} s deadline: {what}")

        previous = signal.signal(signal.SIGALRM, overrun)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return guard()


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    """n frames of random magnitudes (|N(0, 3)|), float32: device-test input."""
    rng = np.random.default_rng(seed)
    return (np.abs(rng.standard_normal((n, 257))) * 3).astype(np.float32)


def frame_bits(frame: np.ndarray) -> np.ndarray:
    """The binary16 bits a device link sends for one frame of magnitudes."""
    from streamer.backends.link import magnitude_bits

    return magnitude_bits(frame)


def find_key(data, key: str):
    """The first value of `key` anywhere in a nested report."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        values = data.values()
    elif isinstance(data, list):
        values = data
    else:
        return None
    for value in values:
        found = find_key(value, key)
        if found is not None:
            return found
    return None
