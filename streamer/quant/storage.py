"""Quantised model files: the same container as FP32 models, tensors in their storage types."""

from __future__ import annotations

from pathlib import Path

from streamer.atomic import write_atomically
from streamer.model.fileformat import pack, unpack
from streamer.model.params import ModelError
from streamer.quant.network import QUANTIZED_MODES, QuantizedModel, validate_quantized


def encode_quantized(model: QuantizedModel) -> bytes:
    header = {"cell": model.cell, "hidden": model.hidden, "quant": model.mode,
              "activation_scales": model.activation_scales, "calibration": model.calibration,
              "metadata": model.metadata}
    return pack(header, model.tensors)


def decode_quantized(blob: bytes, source: str = "model") -> QuantizedModel:
    header, tensors = unpack(blob, source)
    mode = header.get("quant")
    if mode not in QUANTIZED_MODES:
        raise ModelError(f"{source}: not a quantised model (quant = {mode!r})")
    try:
        model = QuantizedModel(mode=mode, cell=header["cell"], hidden=header["hidden"],
                               tensors=tensors, activation_scales=header["activation_scales"],
                               calibration=header.get("calibration") or {},
                               metadata=header.get("metadata", {}))
    except KeyError as exc:
        raise ModelError(f"{source}: quantised model header lacks {exc}") from exc
    try:
        validate_quantized(model)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from exc
    return model


def save_quantized(model: QuantizedModel, path: str | Path) -> Path:
    """Write a quantised model atomically."""
    return write_atomically(path, encode_quantized(model))
