"""`streamer quantize`: calibrate an FP32 model on audio and write it in a numeric mode."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamer.model import load_model
from streamer.model.fileformat import save_model
from streamer.model.params import ModelError, TinyDenoiserParams
from streamer.quant.calibrate import DEFAULT_METHOD, DEFAULT_PERCENTILE, calibrate
from streamer.quant.network import quantize
from streamer.quant.storage import save_quantized

AUDIO_SUFFIXES = (".wav", ".flac")
# Less calibration audio than this hardly samples the activations' ranges: it is allowed, and
# said (the summary's `warnings`).
MIN_CALIBRATION_S = 5.0


def calibration_files(directory: str | Path) -> list[Path]:
    """The audio files of a calibration folder, sorted by name so results never depend on listing order."""
    directory = Path(directory)
    if directory.is_file():
        raise ModelError(f"--calib {directory} is a file: give a folder of .wav or .flac files")
    if not directory.is_dir():
        raise ModelError(f"calibration folder not found: {directory}")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ModelError(f"calibration folder {directory} holds no .wav or .flac files")
    return files


def quantize_model(model: str | Path | None, quant: str, calib_dir: str | Path, out: str | Path, *,
                   method: str = DEFAULT_METHOD, percentile: float = DEFAULT_PERCENTILE,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Calibrate FP32 `model` on `calib_dir` and write it to `out` in mode `quant`.

    `quant` fp32 keeps FP32 weights and embeds the calibration, so that one file runs in every
    mode (this is how the default model ships); fp16, int8 and mixed write the quantised weights.
    The file is a pure function of the model, the calibration audio and the options (no dates),
    so the same inputs give the same bytes. Returns a summary for printing or JSON.
    """
    from streamer.audio import read_audio
    from streamer.engine import SAMPLE_RATE
    from streamer.replay import ReplayError, check_output_paths

    out = Path(out)
    files = calibration_files(calib_dir)
    # Every path before any work: the output must be writable and must not be an input.
    inputs: dict[str, Path | None] = {"source model": None if model is None else Path(model)}
    inputs.update({f"calibration audio ({path.name})": path for path in files})
    try:
        check_output_paths({"model output": out}, inputs)
    except ReplayError as error:
        raise ModelError(str(error)) from None
    params = load_model(model)
    if not isinstance(params, TinyDenoiserParams):
        raise ModelError("the model is already quantised: quantise its FP32 source instead")
    seconds = 0.0

    def signals():
        for path in files:
            if progress:
                progress(f"calibrating on {path.name}")
            nonlocal seconds
            samples = read_audio(path, what="calibration").samples
            seconds += len(samples) / SAMPLE_RATE
            yield path.name, samples

    record = calibrate(params, signals(), method=method, percentile=percentile)
    record["sha256"] = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in files}
    if quant == "fp32":
        params.calibration = record
        save_model(params, out)
        weights_bytes = 4 * params.parameter_count
    else:
        quantized = quantize(params, quant, record["ranges"], record)
        save_quantized(quantized, out)
        weights_bytes = quantized.weight_bytes()
    warnings = []
    if seconds < MIN_CALIBRATION_S:
        warnings.append(f"only {seconds:.2f} s of calibration audio (under {MIN_CALIBRATION_S:g} s): the "
                        f"ranges may not cover what the model meets; calibrate on more speech and noise")
    return {"model": str(model) if model else "default", "out": str(out), "quant": quant,
            "method": method, "files": [p.name for p in files], "ranges": record["ranges"],
            "calibration_s": round(seconds, 3), "weights_bytes": weights_bytes, "warnings": warnings}
