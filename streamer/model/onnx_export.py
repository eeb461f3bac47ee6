"""ONNX export of a TinyDenoiser in the I/O convention (`onnx_convention`), with ONNX LSTM/GRU ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamer.atomic import write_atomically
from streamer.model.onnx_convention import TORCH_TO_ONNX, expected_io
from streamer.model.params import N_BINS, ModelError, TinyDenoiserParams


def export_onnx(params: TinyDenoiserParams, path: str | Path, opset: int = 17) -> Path:
    """Write `params` as a PyTorch-like ONNX graph: Conv(k=1) dense layers, ONNX LSTM/GRU ops."""
    if not 14 <= opset <= onnx.defs.onnx_opset_version():
        raise ModelError(f"opset {opset} is not supported (14 to {onnx.defs.onnx_opset_version()})")
    t, hidden, op = params.tensors, params.hidden, params.cell.upper()
    want_in, want_out = expected_io(params.cell)
    inits = [numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in (
        ("shape_seq", [1, 1, hidden]), ("shape_state", [1, hidden]), ("shape_channels", [1, hidden, 1]))]
    nodes = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def dense(layer: str, x: str, y: str) -> None:
        w = t[f"{layer}.weight"]
        nodes.append(helper.make_node("Conv", [x, const(f"{layer}.weight", w[:, :, None]),
                                               const(f"{layer}.bias", t[f"{layer}.bias"])],
                                      [y], name=layer, kernel_shape=[1]))

    def onnx_order(matrix: np.ndarray) -> np.ndarray:
        blocks = np.split(matrix, len(TORCH_TO_ONNX[op]))
        return np.concatenate([blocks[k] for k in TORCH_TO_ONNX[op]])

    dense("fc0", "input", "fc0_out")
    nodes.append(helper.make_node("Relu", ["fc0_out"], ["relu0_out"], name="relu0"))
    x = "relu0_out"
    for layer in ("rnn1", "rnn2"):
        w = const(f"{layer}.W", onnx_order(t[f"{layer}.weight_ih"])[None])
        r = const(f"{layer}.R", onnx_order(t[f"{layer}.weight_hh"])[None])
        b = const(f"{layer}.B", np.concatenate([onnx_order(t[f"{layer}.bias_ih"]),
                                                onnx_order(t[f"{layer}.bias_hh"])])[None])
        states = ["h", "c"] if op == "LSTM" else ["h"]
        ins = [f"{layer}_x", w, r, b, ""] + [f"{layer}_{s}0" for s in states]
        outs = [f"{layer}_y", f"{layer}_yh"] + ([f"{layer}_yc"] if op == "LSTM" else [])
        nodes.append(helper.make_node("Reshape", [x, "shape_seq"], [f"{layer}_x"]))
        nodes += [helper.make_node("Reshape", [f"{layer}_{s}_state_in", "shape_seq"], [f"{layer}_{s}0"])
                  for s in states]
        extra = {"linear_before_reset": 1} if op == "GRU" else {}
        nodes.append(helper.make_node(op, ins, outs, name=layer, hidden_size=hidden, **extra))
        nodes += [helper.make_node("Reshape", [out, "shape_state"], [f"{layer}_{s}_state_out"])
                  for s, out in zip(states, outs[1:], strict=True)]
        x = f"{layer}_yh"
    nodes.append(helper.make_node("Reshape", [x, "shape_channels"], ["fc1_in"]))
    dense("fc1", "fc1_in", "fc1_out")
    nodes.append(helper.make_node("Relu", ["fc1_out"], ["relu1_out"], name="relu1"))
    dense("fc2", "relu1_out", "fc2_out")
    nodes.append(helper.make_node("Sigmoid", ["fc2_out"], ["output"], name="mask"))

    def io(name: str) -> onnx.ValueInfoProto:
        shape = [1, N_BINS, 1] if name in ("input", "output") else [1, hidden]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(nodes, f"tinydenoiser_{params.cell}{hidden}", [io(n) for n in want_in],
                              [io(n) for n in want_out], inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="streamer",
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(model, {"streamer.cell": params.cell, "streamer.hidden": str(hidden)})
    onnx.checker.check_model(model)
    return write_atomically(path, model.SerializeToString())
