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
