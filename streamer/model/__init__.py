"""TinyDenoiser models: parameters, the native file format, ONNX import/export, the default model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from streamer.model.params import ModelError, TinyDenoiserParams

DEFAULT_MODEL_NAME = "default_lstm256.tdn"

__all__ = ["ModelError", "TinyDenoiserParams", "default_model_path", "load_model", "load_native"]


def default_model_path() -> Path:
    """Path of the trained LSTM H=256 model shipped inside the package."""
    return Path(str(resources.files("streamer.data").joinpath(DEFAULT_MODEL_NAME)))


def load_model(path: str | Path | None = None) -> TinyDenoiserParams:
    """Load a model: None for the embedded default, a `.tdn` native file, or an `.onnx` graph."""
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        from streamer.model.onnx_import import import_onnx

        return import_onnx(path)
    return load_native(path)


def load_native(path: str | Path):
    """Load a `.tdn` file: TinyDenoiserParams for FP32, QuantizedModel for a quantised one."""
    from streamer.model.fileformat import decode_model, unpack
    from streamer.quant.storage import decode_quantized

    path = Path(path)
    blob = path.read_bytes()
    header, _ = unpack(blob, str(path))
    if header.get("quant", "fp32") == "fp32":
        return decode_model(blob, source=str(path))[0]
    return decode_quantized(blob, source=str(path))
