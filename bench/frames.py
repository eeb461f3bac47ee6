"""Inputs and yardsticks shared by the benchmarks."""

from __future__ import annotations

import numpy as np

from streamer.engine import HOP_SAMPLES, StreamingStft


def magnitudes(frames: int, seed: int = 0) -> np.ndarray:
    """STFT magnitudes of low noise, the level of a quiet room: realistic input ranges."""
    rng = np.random.default_rng(seed)
    engine = StreamingStft()
    out = []
    while len(out) < frames:
        spectrum = engine.analyse(rng.standard_normal(HOP_SAMPLES) * 0.05)
        if spectrum is not None:
            out.append(np.abs(spectrum).astype(np.float32))
    return np.array(out)


def onnxruntime_session(params):
    """onnxruntime on `params` exported by `export_onnx`, one thread: the yardstick runtime."""
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    from streamer.model.onnx_export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(params, onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def time_onnxruntime(session, params, mags: np.ndarray) -> float:
    """Seconds per frame stepping `mags` one frame at a time, the states fed back."""
    import time

    feeds = {f"{name}_state_in": np.zeros((1, size), np.float32) for name, size in params.state_shapes()}
    outputs = ["output"] + [f"{name}_state_out" for name, _ in params.state_shapes()]
    start = time.perf_counter()
    for frame in mags:
        feeds["input"] = frame.reshape(1, -1, 1)
        result = session.run(outputs, feeds)
        for (name, _), value in zip(params.state_shapes(), result[1:], strict=True):
            feeds[f"{name}_state_in"] = value
    return (time.perf_counter() - start) / len(mags)
