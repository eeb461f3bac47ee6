"""Fuzz model loading: mutated `.tdn` files (digests recomputed, so only the checks behind the
digest stand between them and the code) and small hostile ONNX graphs.

    python tests/fuzz_models.py DIR CASES SEED MEMORY_MB

runs under an address-space limit of MEMORY_MB (resource.setrlimit) and a per-case alarm,
loads every case with `streamer.model.load_model` and uses what loads as `info` and a replay
would (describe it, step a frame, quantise with its embedded calibration), and prints JSON:
cases, how many loaded, how many were refused with a one-line ModelError, and every other
outcome (a traceback, a MemoryError even when wrapped in a ModelError, a timeout) -- which
must be none. Run by
tests/test_model_fuzz.py in a child process, so the limit binds only the fuzzing.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import signal
import struct
import sys
import traceback
from pathlib import Path

import numpy as np

CASE_TIMEOUT_S = 30


def _repack(blob: bytes, header: dict) -> bytes:
    """`blob` with its JSON header replaced by `header` and the digest recomputed."""
    from streamer.model.fileformat import _PREAMBLE, _aligned

    magic, version, reserved, length = _PREAMBLE.unpack_from(blob)
    old_start = _aligned(_PREAMBLE.size + length)
    payload = blob[old_start:-32]
    text = json.dumps(header)
    for depth in (50, 500, 5000):  # nesting json.dumps itself cannot write
        text = text.replace(f'"__DEEP_{depth}__"', "[" * depth + "1" + "]" * depth)
    text = text.encode()
    head = _PREAMBLE.pack(magic, version, reserved, len(text)) + text
    head += b"\0" * (_aligned(len(head)) - len(head))
    body = head + payload
    return body + hashlib.sha256(body).digest()


def _with_digest(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def _deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_VALUES = [None, True, -1, 0, 1 << 40, -(1 << 40), 1e308, float("inf"), float("nan"), "x" * 50,
                  [], {}, _deep(20), {"a": {"b": {"c": [1, "2", None]}}}]


def _mutate_header(header: dict, rng: random.Random) -> dict:
    header = json.loads(json.dumps(header))
    kind = rng.randrange(8)
    if kind == 0:  # a top-level field replaced
        key = rng.choice(sorted(header))
        header[key] = rng.choice(HOSTILE_VALUES)
    elif kind == 1 and header.get("tensors"):  # a tensor-table field replaced
        entry = rng.choice(header["tensors"])
        entry[rng.choice(sorted(entry))] = rng.choice(HOSTILE_VALUES)
    elif kind == 2 and header.get("tensors"):  # a shape made huge or odd
        entry = rng.choice(header["tensors"])
        entry["shape"] = rng.choice([[1 << 30, 1 << 30], [-5, 3], [0], [2, 3, 4, 5, 6], ["a"]])
    elif kind == 3:  # metadata nested deeply (json.loads recursion)
        header["metadata"] = f"__DEEP_{rng.choice([50, 500, 5000])}__"  # written out by _repack
    elif kind == 4:  # calibration ranges hostile
        header["calibration"] = {"method": "mse", "ranges": {"fc0": rng.choice(HOSTILE_VALUES)}}
    elif kind == 5:  # activation scales hostile
        header["activation_scales"] = rng.choice([{"fc0": -1.0}, {"fc0": "1"}, [], {"fc0": float("inf")}])
    elif kind == 6:  # architecture hostile
        header["hidden"] = rng.choice([0, -3, 1 << 20, 2.5, "256", True])
    else:  # quant mode hostile
        header["quant"] = rng.choice(["fp64", None, 3, "int8", "mixed", "fp16"])
    return header


def tdn_cases(valid: list[bytes], count: int, rng: random.Random) -> list[tuple[str, bytes]]:
    from streamer.model.fileformat import _PREAMBLE

    cases = []
    for i in range(count):
        blob = rng.choice(valid)
        _, _, _, length = _PREAMBLE.unpack_from(blob)
        header = json.loads(blob[_PREAMBLE.size:_PREAMBLE.size + length])
        style = rng.randrange(3)
        if style == 0:
            data = _repack(blob, _mutate_header(header, rng))
        elif style == 1:  # bytes flipped anywhere, digest recomputed
            body = bytearray(blob[:-32])
            for _ in range(rng.randint(1, 8)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            data = _with_digest(bytes(body))
        else:  # truncated (or the header length field itself lying), digest recomputed
            body = bytearray(blob[:-32])
            if rng.random() < 0.5:
                body = body[:rng.randrange(len(body))]
            else:
                struct.pack_into("<I", body, 12, rng.choice([0, 1, len(body), 1 << 31]))
            data = _with_digest(bytes(body))
        cases.append((f"tdn-{i}.tdn", data))
    return cases


def onnx_cases(count: int, rng: random.Random) -> list[tuple[str, bytes]]:
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes, inits, hidden=8, lstm=True) -> bytes:
        names = ["input", "rnn1_h_state_in", "rnn2_h_state_in"] + (
            ["rnn1_c_state_in", "rnn2_c_state_in"] if lstm else [])
        outs = ["output", "rnn1_h_state_out", "rnn2_h_state_out"] + (
            ["rnn1_c_state_out", "rnn2_c_state_out"] if lstm else [])
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 257, 1])] + [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, hidden]) for n in names[1:]]
        outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs]
        graph = helper.make_graph(nodes, "fuzz", inputs, outputs, inits)
        return helper.make_model(graph).SerializeToString()

    def identity_tail() -> list:
        return [helper.make_node("Identity", [src], [dst]) for src, dst in (
            ("rnn1_h_state_in", "rnn1_h_state_out"), ("rnn2_h_state_in", "rnn2_h_state_out"),
            ("rnn1_c_state_in", "rnn1_c_state_out"), ("rnn2_c_state_in", "rnn2_c_state_out"))]

    cases = []
    for i in range(count):
        kind = rng.randrange(6)
        if kind == 0:  # a huge constant from a tiny file
            shape = numpy_helper.from_array(np.array([rng.choice([1 << 20, 1 << 28, 1 << 40]), 1 << 10],
                                                     np.int64), "shape")
            nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                     helper.make_node("Sigmoid", ["big"], ["output"]), *identity_tail()]
            data = model(nodes, [shape])
        elif kind == 1:  # an outer product that explodes
            col = numpy_helper.from_array(np.ones((1 << 16, 1), np.float32), "col")
            nodes = [helper.make_node("Transpose", ["col"], ["row"], perm=[1, 0]),
                     helper.make_node("MatMul", ["col", "row"], ["big"]),
                     helper.make_node("Sigmoid", ["big"], ["output"]), *identity_tail()]
            data = model(nodes, [col])
        elif kind == 2:  # broadcasting that explodes
            a = numpy_helper.from_array(np.ones((1 << 14, 1), np.float32), "a")
            b = numpy_helper.from_array(np.ones((1, 1 << 14), np.float32), "b")
            nodes = [helper.make_node("Add", ["a", "b"], ["big"]),
                     helper.make_node("Sigmoid", ["big"], ["output"]), *identity_tail()]
            data = model(nodes, [a, b])
        elif kind == 3:  # an absurd hidden size in the state inputs
            nodes = [helper.make_node("Sigmoid", ["input"], ["output"]), *identity_tail()]
            data = model(nodes, [], hidden=rng.choice([1 << 20, 1 << 31]))
        elif kind == 4:  # padding that explodes
            pads = numpy_helper.from_array(np.array([0, 1 << 30, 0, 0, 1 << 30, 0], np.int64), "pads")
            nodes = [helper.make_node("Pad", ["input", "pads"], ["big"]),
                     helper.make_node("Sigmoid", ["big"], ["output"]), *identity_tail()]
            data = model(nodes, [pads])
        else:  # random bytes, or a valid model's bytes damaged
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
        cases.append((f"onnx-{i}.onnx", data))
    return cases


def main() -> int:
    folder, count, seed, memory_mb = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import random_params

    from streamer.backends.base import BackendError
    from streamer.model import load_model
    from streamer.model.fileformat import encode_model
    from streamer.model.params import ModelError, TinyDenoiserParams
    from streamer.quant.network import quantize
    from streamer.quant.storage import encode_quantized

    rng = random.Random(seed)
    params = random_params("lstm", 32, seed=seed)
    valid = [encode_model(params), encode_model(random_params("gru", 16, seed=seed + 1))]
    valid.append(encode_quantized(quantize(params, "fp16", None)))
    cases = tdn_cases(valid, count, rng) + onnx_cases(max(count // 4, 6), rng)

    def use(model) -> None:
        """What `streamer info` and a replay do with a model: describe it, run a frame in its
        own mode and, with embedded calibration ranges, in int8 (which reads them)."""
        from streamer.backends.emulator import EmulatorBackend

        model.describe()
        frame = np.linspace(0.0, 2.0, 257, dtype=np.float32)
        EmulatorBackend(model).step(frame)
        calibration = getattr(model, "calibration", None)
        ranges = calibration.get("ranges") if isinstance(calibration, dict) else None
        if isinstance(model, TinyDenoiserParams) and ranges:
            EmulatorBackend(model, quant="int8").step(frame)

    def overrun(signum, frame):
        raise TimeoutError(f"case took longer than {CASE_TIMEOUT_S} s")

    signal.signal(signal.SIGALRM, overrun)
    outcome = {"cases": len(cases), "loaded": 0, "refused": 0, "other": []}
    for name, data in cases:
        path = folder / name
        path.write_bytes(data)
        signal.alarm(CASE_TIMEOUT_S)
        try:
            use(load_model(path))
            outcome["loaded"] += 1
        except (ModelError, BackendError) as error:  # a one-line refusal, from loading or using it
            message = str(error)
            if "\n" in message.strip() or "MemoryError" in message:
                # A refusal that came only from running out of memory under the limit would
                # have taken the memory without it.
                outcome["other"].append({"case": name, "error": "ModelError", "message": message[:300]})
            else:
                outcome["refused"] += 1
        except BaseException as error:  # noqa: BLE001 - anything else is what the fuzzing looks for
            outcome["other"].append({"case": name, "error": type(error).__name__, "message": str(error)[:300],
                                     "where": traceback.format_exc(limit=-3)[-600:]})
        finally:
            signal.alarm(0)
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
