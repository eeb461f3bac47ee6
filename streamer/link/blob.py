"""The device model blob `TDNB` (version 1): a QuantizedModel as one flat, aligned byte string.

docs/protocol.md ("The device model blob") is the specification; the firmware's
`firmware/src/blob.c` parses the same layout in place, without allocation. Every array starts
on a 4-byte boundary (zero padding before it); the blob ends right after fc2's bias.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from streamer.model.params import CELL_CODES, CELLS, N_BINS, ModelError
from streamer.quant.modes import WIRE_CODES, modes_text
from streamer.quant.network import QuantizedModel, layer_precision, validate_quantized

MAGIC = b"TDNB"
VERSION = 1
HEADER = struct.Struct("<4sHBBHH5fI")  # 36 bytes
MODE_CODES = WIRE_CODES
GATES = CELLS
SCALE_NAMES = ("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input")
ALIGN = 4


@dataclass(frozen=True)
class BlobArray:
    """One array of the blob: tensor name, byte offset, storage dtype and shape."""

    name: str
    offset: int
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def array_order(mode: str, cell: str, hidden: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """(tensor name, storage dtype, shape) in blob order: fc0, rnn1, rnn2, fc1, fc2 (blob.c
    `layout`); the one description of the blob that the link and the cost model both read."""
    h, g = hidden, GATES[cell] * hidden
    order: list[tuple[str, str, tuple[int, ...]]] = []
    dense = {"fc0": (h, N_BINS), "fc1": (N_BINS, h), "fc2": (N_BINS, N_BINS)}
    for layer in ("fc0", "rnn1", "rnn2", "fc1", "fc2"):
        int8 = layer_precision(mode, layer) == "int8"
        wtype = "int8" if int8 else "float16"
        if layer in dense:
            shape = dense[layer]
            order.append((f"{layer}.weight", wtype, shape))
            if int8:
                order.append((f"{layer}.weight_scale", "float32", shape[:1]))
            order.append((f"{layer}.bias", "float16", shape[:1]))
        else:
            for w in ("weight_ih", "weight_hh"):
                order.append((f"{layer}.{w}", wtype, (g, h)))
                if int8:
                    order.append((f"{layer}.{w}_scale", "float32", (g,)))
            order.append((f"{layer}.bias_ih", "float16", (g,)))
            order.append((f"{layer}.bias_hh", "float16", (g,)))
    return order


def blob_layout(model: QuantizedModel) -> tuple[list[BlobArray], int]:
    """Offsets of every array of `model`'s blob, and the blob's total size in bytes."""
    return layout(model.mode, model.cell, model.hidden)


def layout(mode: str, cell: str, hidden: int) -> tuple[list[BlobArray], int]:
    """Offsets of every array of a `mode` `cell` model's blob, and its total size in bytes."""
    if mode not in MODE_CODES:
        raise ModelError(f"the device blob holds {modes_text(tuple(MODE_CODES))} models, not {mode}")
    offset = HEADER.size
    arrays = []
    for name, dtype, shape in array_order(mode, cell, hidden):
        offset = -(-offset // ALIGN) * ALIGN
        array = BlobArray(name, offset, dtype, shape)
        arrays.append(array)
        offset += array.nbytes
    return arrays, offset


def encode_blob(model: QuantizedModel) -> bytes:
    """The TDNB bytes of a quantised model (docs/protocol.md), little-endian."""
    validate_quantized(model)
    if model.hidden > 0xFFFF:
        raise ModelError(f"hidden size {model.hidden} does not fit the blob's u16 field")
    arrays, total = blob_layout(model)
    blob = bytearray(total)
    scales = [float(np.float32(model.activation_scales.get(name, 0.0))) for name in SCALE_NAMES]
    HEADER.pack_into(blob, 0, MAGIC, VERSION, MODE_CODES[model.mode], CELL_CODES[model.cell],
                     model.hidden, N_BINS, *scales, total)
    for array in arrays:
        tensor = np.ascontiguousarray(model.tensors[array.name])
        if tensor.dtype.name != array.dtype or tensor.shape != array.shape:
            raise ModelError(f"tensor {array.name} is {tensor.dtype.name}{list(tensor.shape)}, "
                             f"the blob needs {array.dtype}{list(array.shape)}")
        data = tensor.astype(tensor.dtype.newbyteorder("<"), copy=False).tobytes()
        blob[array.offset:array.offset + len(data)] = data
    return bytes(blob)
