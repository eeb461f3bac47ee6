"""The native model file (`.tdn`): numpy arrays behind a small versioned header, no torch needed.

Layout (all integers little-endian)::

    0   8 bytes  magic b"TDNMODEL"
    8   u16      format version (FORMAT_VERSION)
    10  u16      reserved, 0
    12  u32      header length L
    16  L bytes  header, UTF-8 JSON: architecture, metadata and a tensor table
                 (name, dtype, shape, offset into the payload, byte count)
    ..  padding to a multiple of 16, then the payload (each tensor 16-byte aligned)
    end 32 bytes SHA-256 of every byte before it

The trailing digest makes a truncated or corrupted file a clear error rather than a wrong model.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from streamer.model.params import ModelError, TinyDenoiserParams, tensor_shapes

MAGIC = b"TDNMODEL"
FORMAT_VERSION = 1
SUFFIX = ".tdn"
_PREAMBLE = struct.Struct("<8sHHI")
_DIGEST_BYTES = 32
_ALIGN = 16
_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "int16": np.int16,
           "int32": np.int32}


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def pack(header: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """Serialise a header (JSON-able) and named arrays; the tensor table is added to the header."""
    table, chunks, offset = [], [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if array.dtype.name not in _DTYPES:
            raise ModelError(f"tensor {name}: dtype {array.dtype} cannot be stored")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        table.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                      "offset": offset, "nbytes": len(raw)})
        chunks.append(raw + b"\0" * (_aligned(len(raw)) - len(raw)))
        offset += _aligned(len(raw))
    header = {**header, "tensors": table, "payload_bytes": offset}
    header_bytes = json.dumps(header, sort_keys=True).encode()
    head = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes)) + header_bytes
    head += b"\0" * (_aligned(len(head)) - len(head))
    body = head + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def unpack(blob: bytes, source: str = "model") -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of `pack`; ModelError naming the problem for a foreign, truncated or corrupted file."""
    if len(blob) < _PREAMBLE.size + _DIGEST_BYTES or blob[:8] != MAGIC:
        raise ModelError(f"{source}: not a streamer model file (bad magic or too short)")
    _, version, _, header_len = _PREAMBLE.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise ModelError(f"{source}: model format version {version} is not supported "
                         f"(this streamer reads version {FORMAT_VERSION})")
    body, digest = blob[:-_DIGEST_BYTES], blob[-_DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelError(f"{source}: checksum mismatch: the file is truncated or corrupted")
    try:
        header = json.loads(body[_PREAMBLE.size:_PREAMBLE.size + header_len].decode())
        payload_start = _aligned(_PREAMBLE.size + header_len)
        if payload_start + header["payload_bytes"] != len(body):
            raise ModelError(f"{source}: payload size does not match its header")
        tensors = {}
        for entry in header["tensors"]:
            start = payload_start + entry["offset"]
            raw = body[start:start + entry["nbytes"]]
            dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
            tensors[entry["name"]] = np.frombuffer(raw, dtype=dtype).reshape(entry["shape"]).astype(
                dtype.newbyteorder("="))
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: malformed model header ({exc})") from exc
    return header, tensors


def encode_model(params: TinyDenoiserParams, extra_header: dict | None = None,
                 extra_tensors: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialise FP32 `params` (with its calibration, if any) plus optional extras."""
    header = {"cell": params.cell, "hidden": params.hidden, "quant": "fp32",
              "metadata": params.metadata, "calibration": params.calibration, **(extra_header or {})}
    return pack(header, {**params.tensors, **(extra_tensors or {})})


def decode_model(blob: bytes, source: str = "model") -> tuple[TinyDenoiserParams, dict, dict]:
    """Parse an FP32 model written by `encode_model`.

    Returns the parameters, the full header, and any tensors beyond the architecture's own.
    """
    header, tensors = unpack(blob, source)
    if header.get("quant", "fp32") != "fp32":
        raise ModelError(f"{source}: a {header['quant']} quantised model, not an FP32 one")
    try:
        cell, hidden = header["cell"], header["hidden"]
        own = set(tensor_shapes(cell, hidden))
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{source}: malformed model header ({exc})") from exc
    params = TinyDenoiserParams(cell=cell, hidden=hidden,
                                tensors={k: v for k, v in tensors.items() if k in own},
                                metadata=header.get("metadata", {}),
                                calibration=header.get("calibration"))
    extras = {k: v for k, v in tensors.items() if k not in own}
    return params, header, extras


def _write_atomically(path: Path, blob: bytes) -> Path:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return path


def save_model(params: TinyDenoiserParams, path: str | Path, **encode_kwargs) -> Path:
    """Write `params` to `path` atomically (a crash never leaves a half-written model)."""
    return _write_atomically(Path(path), encode_model(params, **encode_kwargs))


def load_native(path: str | Path):
    """Load a `.tdn` file: TinyDenoiserParams for FP32, QuantizedModel for a quantised one."""
    path = Path(path)
    blob = path.read_bytes()
    header, _ = unpack(blob, str(path))
    if header.get("quant", "fp32") == "fp32":
        return decode_model(blob, source=str(path))[0]
    from streamer.quant.storage import decode_quantized

    return decode_quantized(blob, source=str(path))
