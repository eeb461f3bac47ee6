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

from streamer.atomic import write_atomically
from streamer.model.params import ModelError, TinyDenoiserParams, tensor_shapes

MAGIC = b"TDNMODEL"
FORMAT_VERSION = 1
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


# Bounds of the header schema: a TinyDenoiser has 14 tensors of at most two dimensions, and
# its hidden size is in the hundreds; anything far outside is not one of ours.
MAX_HIDDEN = 4096
MAX_TENSORS = 64
MAX_DIM = 1 << 24
MAX_JSON_DEPTH = 16


def _depth(value: object, limit: int) -> int:
    """Nesting depth of a JSON value, stopping early past `limit`."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def _positive_numbers(value: object, what: str, source: str) -> None:
    if not isinstance(value, dict):
        raise ModelError(f"{source}: {what} must be a table of numbers, not {type(value).__name__}")
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or not np.isfinite(number) \
                or number <= 0:
            raise ModelError(f"{source}: {what} {name!r} is {number!r}; expected a finite number > 0")


def check_header(header: object, source: str = "model") -> dict:
    """The header, checked against the schema before any of it is used (ModelError otherwise):
    architecture, numeric mode, calibration ranges, activation scales, tensor table."""
    from streamer.model.params import CELLS

    if not isinstance(header, dict):
        raise ModelError(f"{source}: the model header is not a table")
    if _depth(header, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH:
        raise ModelError(f"{source}: the model header is nested more than {MAX_JSON_DEPTH} levels deep")
    cell, hidden, quant = header.get("cell"), header.get("hidden"), header.get("quant", "fp32")
    if cell not in CELLS:
        raise ModelError(f"{source}: unknown recurrent cell {cell!r}; expected one of {sorted(CELLS)}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= MAX_HIDDEN:
        raise ModelError(f"{source}: hidden size {hidden!r}; expected an integer 1..{MAX_HIDDEN}")
    from streamer.quant.modes import MODES, modes_text

    if quant not in MODES:
        raise ModelError(f"{source}: numeric mode {quant!r} is not {modes_text()}")
    if not isinstance(header.get("metadata", {}), dict):
        raise ModelError(f"{source}: metadata must be a table")
    calibration = header.get("calibration")
    if calibration is not None:
        if not isinstance(calibration, dict):
            raise ModelError(f"{source}: calibration must be a table")
        if "ranges" in calibration:
            _positive_numbers(calibration["ranges"], "calibration range", source)
    if "activation_scales" in header:
        _positive_numbers(header["activation_scales"], "activation scale", source)
    payload, table = header.get("payload_bytes"), header.get("tensors")
    if isinstance(payload, bool) or not isinstance(payload, int) or payload < 0:
        raise ModelError(f"{source}: payload size {payload!r} is not a byte count")
    if not isinstance(table, list) or len(table) > MAX_TENSORS:
        raise ModelError(f"{source}: the tensor table must be a list of at most {MAX_TENSORS} entries")
    for entry in table:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ModelError(f"{source}: a tensor table entry without a name")
        name, shape, dtype = entry["name"], entry.get("shape"), entry.get("dtype")
        if dtype not in _DTYPES:
            raise ModelError(f"{source}: tensor {name}: dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        if not isinstance(shape, list) or len(shape) > 4 or not all(
                not isinstance(d, bool) and isinstance(d, int) and 0 <= d <= MAX_DIM for d in shape):
            raise ModelError(f"{source}: tensor {name}: shape {shape!r} is not a list of up to 4 sizes")
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        want = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
        if (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or nbytes != want
                or offset + want > payload):
            raise ModelError(f"{source}: tensor {name}: offset {offset!r} and size {nbytes!r} do not fit "
                             f"its shape and the payload")
    return header


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
    except RecursionError:
        raise ModelError(f"{source}: the model header is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: malformed model header ({exc})") from exc
    check_header(header, source)
    try:
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


def save_model(params: TinyDenoiserParams, path: str | Path, **encode_kwargs) -> Path:
    """Write `params` to `path` atomically (a crash never leaves a half-written model)."""
    return write_atomically(path, encode_model(params, **encode_kwargs))
