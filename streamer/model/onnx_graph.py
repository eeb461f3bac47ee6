"""A small, bounded numpy evaluator of ONNX graphs: what `onnx_import` probes a TinyDenoiser with.

It runs a graph in float64 (so densified products are exact to float32), and can re-run only
the nodes between two tensors with others overridden, which is what reading an affine layer
off by probing needs. Why not onnx's own `onnx.reference.ReferenceEvaluator` (checked): it
evaluates whole graphs in their own dtypes, cannot re-run a slice of a graph with
intermediate tensors overridden, and gives no way to bound what a hostile file makes it
allocate; this one checks every node's output size from its inputs' shapes before numpy
allocates it, and its import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamer.model.params import ModelError

# Ops that only move or relabel values: walked through when tracing a tensor to its origin.
SHAPE_ONLY = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten", "Cast"}
FLOAT = np.float64  # evaluation precision: densified products are then exact to float32

# Bounds on the work an untrusted file can ask for. A TinyDenoiser's largest tensor is 4H x H
# (1M values at H = 512) and its graph a few hundred nodes; a 459-byte file once asked the
# evaluator for 3.2 GB (a ConstantOfShape broadcast by a MatMul). Every node's output size is
# computed from its inputs' shapes before numpy allocates it.
MAX_ELEMENTS = 1 << 24        # values in any one tensor (128 MiB of float64)
MAX_STORED = 1 << 26          # values over all initializers
MAX_NODES = 20_000
MAX_HIDDEN = 4096
MAX_IMPORT_S = 60.0           # wall time for the whole import (evaluation and probing)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def as_value(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(FLOAT) if array.dtype.kind == "f" else array


# --- the numpy evaluator ----------------------------------------------------------------------

def _axes(inputs: list, attrs: dict, index: int) -> list[int] | None:
    """Axes from the input at `index` (opset >= 13) or the `axes` attribute (older opsets)."""
    if len(inputs) > index and inputs[index] is not None:
        return [int(a) for a in inputs[index]]
    return attrs.get("axes")


def _reshape(inputs, attrs):
    data, shape = inputs[0], [int(s) for s in inputs[1]]
    if not attrs.get("allowzero", 0):
        shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [data.reshape(shape)]


def _squeeze(inputs, attrs):
    axes = _axes(inputs, attrs, 1)
    return [np.squeeze(inputs[0], axis=None if axes is None else tuple(axes))]


def _unsqueeze(inputs, attrs):
    data, axes = inputs[0], _axes(inputs, attrs, 1)
    rank = data.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        data = np.expand_dims(data, axis)
    return [data]


def _slice(inputs, attrs):
    data = inputs[0]
    if len(inputs) > 1:
        starts, ends = inputs[1], inputs[2]
        axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:  # opset 1: attributes
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * data.ndim
    # Python's slice clamping matches ONNX's for out-of-range and INT64_MAX bounds.
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return [data[tuple(index)]]


def _split(inputs, attrs):
    data, axis, count = inputs[0], attrs.get("axis", 0), attrs["_outputs"]
    sizes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("split")
    if sizes is None:
        return list(np.array_split(data, count, axis=axis))
    return list(np.split(data, np.cumsum([int(s) for s in sizes])[:-1], axis=axis))


def _cast(inputs, attrs):
    dtype = helper.tensor_dtype_to_np_dtype(attrs["to"])
    return [inputs[0].astype(FLOAT if np.dtype(dtype).kind == "f" else dtype)]


def _conv(inputs, attrs):
    x, w = inputs[0], inputs[1]
    pointwise = (all(k == 1 for k in w.shape[2:]) and attrs.get("group", 1) == 1
                 and all(v == 1 for v in attrs.get("strides", [1]) + attrs.get("dilations", [1]))
                 and all(p == 0 for p in attrs.get("pads", [0]))
                 and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID"))
    if not pointwise:
        raise ModelError(f"Conv with kernel {list(w.shape[2:])} and attributes {attrs} is not a "
                         "pointwise (dense) layer")
    y = np.einsum("mc,nc...->nm...", w.reshape(w.shape[0], w.shape[1]), x)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + inputs[2].reshape((1, -1) + (1,) * (y.ndim - 2))
    return [y]


def _gemm(inputs, attrs):
    a, b = inputs[0], inputs[1]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * (a @ b)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + attrs.get("beta", 1.0) * inputs[2]
    return [y]


def _pad(inputs, attrs):
    if attrs.get("mode", b"constant") != b"constant":
        raise ModelError(f"Pad mode {attrs['mode'].decode()} is not supported")
    data, pads = inputs[0], [int(p) for p in inputs[1]]
    value = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].size else 0
    axes = [int(a) % data.ndim for a in inputs[3]] if len(inputs) > 3 and inputs[3] is not None \
        else list(range(data.ndim))
    if min(pads, default=0) < 0:
        raise ModelError("Pad with negative pads (cropping) is not supported")
    widths = [(0, 0)] * data.ndim
    for k, axis in enumerate(axes):
        widths[axis] = (pads[k], pads[k + len(axes)])
    return [np.pad(data, widths, constant_values=np.asarray(value).reshape(-1)[0])]


def _div(inputs, attrs):
    a, b = inputs
    if a.dtype.kind in "iu":  # ONNX integer division truncates toward zero
        return [(np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(a.dtype)]
    return [a / b]


def _constant(inputs, attrs):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            value = attrs[key]
            if key.startswith("value_int"):
                return [np.asarray(value, np.int64)]
            return [as_value(np.asarray(value, None if key == "value" else np.float32))]
    raise ModelError("Constant node without a supported value attribute")


def _constant_of_shape(inputs, attrs):
    value = attrs.get("value", np.zeros(1, np.float32))
    return [np.full([int(s) for s in inputs[0]], value.reshape(-1)[0], dtype=as_value(value).dtype)]


def check_recurrent_attrs(op: str, attrs: dict) -> None:
    """Reject recurrent-op settings that a PyTorch LSTM/GRU cannot express."""
    default_acts = {"LSTM": [b"Sigmoid", b"Tanh", b"Tanh"], "GRU": [b"Sigmoid", b"Tanh"]}[op]
    if attrs.get("direction", b"forward") != b"forward":
        raise ModelError(f"{op} direction {attrs['direction'].decode()} is not supported (forward only)")
    if [a.capitalize() for a in attrs.get("activations", default_acts)] != default_acts:
        raise ModelError(f"{op} with activations {attrs['activations']} is not supported")
    if "clip" in attrs or attrs.get("input_forget", 0) or attrs.get("layout", 0):
        raise ModelError(f"{op} with clip, input_forget or layout=1 is not supported")
    if op == "GRU" and attrs.get("linear_before_reset", 0) != 1:
        raise ModelError("GRU with linear_before_reset=0 differs from PyTorch's GRU; "
                         "only linear_before_reset=1 is supported")


def _recurrent(op: str) -> Callable:
    def run(inputs, attrs):
        check_recurrent_attrs(op, attrs)
        inputs = inputs + [None] * (8 - len(inputs))
        x, w, r, b, _, h0, c0, peephole = inputs
        if peephole is not None:
            raise ModelError("LSTM with peephole weights is not supported")
        hidden, gates = attrs["hidden_size"], 4 if op == "LSTM" else 3
        b = np.zeros((1, 2 * gates * hidden)) if b is None else b
        wb, rb = b[0, :gates * hidden], b[0, gates * hidden:]
        h = np.zeros((x.shape[1], hidden)) if h0 is None else h0[0]
        c = np.zeros((x.shape[1], hidden)) if c0 is None else c0[0]
        ys = []
        for xt in x:
            gx, gh = xt @ w[0].T + wb, h @ r[0].T + rb
            if op == "LSTM":
                i, o, f, g = np.split(gx + gh, 4, axis=-1)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(c)
            else:
                (xz, xr, xh), (hz, hr, hh) = np.split(gx, 3, axis=-1), np.split(gh, 3, axis=-1)
                z, reset = sigmoid(xz + hz), sigmoid(xr + hr)
                h = (1.0 - z) * np.tanh(xh + reset * hh) + z * h
            ys.append(h)
        out = [np.stack(ys)[:, None], h[None]]
        return out + [c[None]] if op == "LSTM" else out
    return run


_OPS: dict[str, Callable[[list, dict], list]] = {
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Identity": lambda i, a: [i[0]],
    "Cast": _cast,
    "Reshape": _reshape,
    "Flatten": lambda i, a: [i[0].reshape(int(np.prod(i[0].shape[:a.get("axis", 1)])), -1)],
    "Transpose": lambda i, a: [np.transpose(i[0], a.get("perm"))],
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda i, a: [np.concatenate([x for x in i if x is not None], axis=a["axis"])],
    "Split": _split,
    "Slice": _slice,
    "Shape": lambda i, a: [np.asarray(i[0].shape[a.get("start", 0):a.get("end")], np.int64)],
    "Gather": lambda i, a: [np.take(i[0], i[1], axis=a.get("axis", 0))],
    "Pad": _pad,
    "Add": lambda i, a: [i[0] + i[1]],
    "Sub": lambda i, a: [i[0] - i[1]],
    "Mul": lambda i, a: [i[0] * i[1]],
    "Div": _div,
    "MatMul": lambda i, a: [np.matmul(i[0], i[1])],
    "Gemm": _gemm,
    "Conv": _conv,
    "Relu": lambda i, a: [np.maximum(i[0], 0.0)],
    "Sigmoid": lambda i, a: [sigmoid(i[0])],
    "Tanh": lambda i, a: [np.tanh(i[0])],
    "LSTM": _recurrent("LSTM"),
    "GRU": _recurrent("GRU"),
}


def _elements(shape: Iterable[int]) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total


def _output_elements(op: str, inputs: list, attrs: dict) -> int:
    """Values the node will produce, computed from shapes alone (0 where it cannot grow)."""
    shapes = [None if x is None else np.shape(x) for x in inputs]
    if op == "ConstantOfShape":
        dims = [int(d) for d in np.asarray(inputs[0]).reshape(-1)]
        if any(d < 0 for d in dims):
            raise ModelError(f"ConstantOfShape with negative dimensions {dims}")
        return _elements(dims)
    if op in ("Add", "Sub", "Mul", "Div"):
        return _elements(np.broadcast_shapes(shapes[0], shapes[1]))
    if op == "MatMul" and len(shapes[0]) >= 1 and len(shapes[1]) >= 1:
        a, b = shapes[0], shapes[1]
        batch = np.broadcast_shapes(a[:-2], b[:-2]) if len(a) > 2 or len(b) > 2 else ()
        rows = a[-2] if len(a) >= 2 else 1
        cols = b[-1] if len(b) >= 2 else 1
        return _elements(batch) * rows * cols
    if op == "Gemm":
        a, b = shapes[0], shapes[1]
        return (a[-1] if attrs.get("transA", 0) else a[0]) * (b[0] if attrs.get("transB", 0) else b[-1])
    if op == "Pad":
        pads = [int(p) for p in np.asarray(inputs[1]).reshape(-1)]
        return _elements(shapes[0]) + sum(abs(p) for p in pads) * max(_elements(shapes[0]), 1)
    if op == "Gather":
        return _elements(shapes[0]) * max(_elements(shapes[1]), 1)
    if op == "Concat":
        return sum(_elements(s) for s in shapes if s is not None)
    if op == "Conv":
        return _elements(shapes[0]) * max(shapes[1][0] if shapes[1] else 1, 1)
    if op in ("LSTM", "GRU"):
        hidden = int(attrs.get("hidden_size", 0))
        if not 0 < hidden <= MAX_HIDDEN:
            raise ModelError(f"{op} hidden_size {hidden} is outside 1..{MAX_HIDDEN}")
        return _elements(shapes[0][:2]) * hidden * 4
    return 0


class Graph:
    """An ONNX graph as numpy: evaluate all of it, or re-run the nodes between two tensors."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        if len(graph.node) > MAX_NODES:
            raise ModelError(f"{len(graph.node):,} nodes: more than any TinyDenoiser ({MAX_NODES:,} at most)")
        stored = sum(_elements(t.dims) for t in graph.initializer)
        if stored > MAX_STORED:
            raise ModelError(f"{stored:,} stored values: more than any TinyDenoiser ({MAX_STORED:,} at most)")
        self.deadline = time.monotonic() + MAX_IMPORT_S
        self.consts = {t.name: as_value(numpy_helper.to_array(t)) for t in graph.initializer}
        self.inputs = [v for v in graph.input if v.name not in self.consts]
        self.outputs = [v.name for v in graph.output]
        self.nodes = list(graph.node)
        self.attrs: list[dict] = []
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        known = set(self.consts) | {v.name for v in self.inputs}
        for index, node in enumerate(self.nodes):
            if node.domain not in ("", "ai.onnx") or node.op_type not in _OPS:
                raise ModelError(f"unsupported ONNX op {node.domain + '.' if node.domain else ''}"
                                 f"{node.op_type} (node {node.name or index})")
            missing = [t for t in node.input if t and t not in known]
            if missing:
                raise ModelError(f"node {node.name or index} reads {missing[0]!r}, which nothing "
                                 "produces before it (broken or unsorted graph)")
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: numpy_helper.to_array(v) if isinstance(v, TensorProto) else v
                     for k, v in attrs.items()}
            attrs["_outputs"] = len(node.output)
            self.attrs.append(attrs)
            for t in node.input:
                self.consumers.setdefault(t, []).append(index)
            for t in node.output:
                if t:
                    self.producer[t] = index
                    known.add(t)
        absent = [name for name in self.outputs if name not in known]
        if absent:
            raise ModelError(f"graph output {absent[0]!r} is never produced")

    def _run_nodes(self, indices: Iterable[int], values: dict[str, np.ndarray]) -> None:
        if time.monotonic() > self.deadline:
            raise ModelError(f"evaluating the graph took longer than {MAX_IMPORT_S:g} s: not a TinyDenoiser")
        for index in sorted(indices):
            node = self.nodes[index]
            inputs = [values[t] if t else None for t in node.input]
            try:
                size = _output_elements(node.op_type, inputs, self.attrs[index])
            except ModelError:
                raise
            except Exception as exc:  # shapes that do not even broadcast
                raise ModelError(f"cannot evaluate {node.op_type} node {node.name or index}: "
                                 f"{type(exc).__name__}: {exc}") from exc
            if size > MAX_ELEMENTS:
                raise ModelError(f"{node.op_type} node {node.name or index} would make {size:,} values "
                                 f"(at most {MAX_ELEMENTS:,}): not a TinyDenoiser")
            try:
                outputs = _OPS[node.op_type](inputs, self.attrs[index])
            except ModelError:
                raise
            except Exception as exc:  # numpy's complaint about shapes or values, made one line
                raise ModelError(f"cannot evaluate {node.op_type} node {node.name or index}: "
                                 f"{type(exc).__name__}: {exc}") from exc
            for name, value in zip(node.output, outputs, strict=False):
                if name:
                    values[name] = value

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every tensor of the graph for these input values."""
        values = dict(self.consts)
        values.update({k: as_value(v) for k, v in feeds.items()})
        self._run_nodes(range(len(self.nodes)), values)
        return values

    def ancestors(self, names: Iterable[str]) -> set[int]:
        """Indices of the nodes that `names` depend on."""
        seen: set[int] = set()
        stack = [self.producer[n] for n in names if n in self.producer]
        while stack:
            index = stack.pop()
            if index not in seen:
                seen.add(index)
                stack.extend(self.producer[t] for t in self.nodes[index].input if t in self.producer)
        return seen

    def descendants(self, names: Iterable[str]) -> set[int]:
        """Indices of the nodes that depend on `names`."""
        seen: set[int] = set()
        stack = [i for n in names for i in self.consumers.get(n, [])]
        while stack:
            index = stack.pop()
            if index not in seen:
                seen.add(index)
                stack.extend(i for t in self.nodes[index].output for i in self.consumers.get(t, []))
        return seen

    def node_of(self, name: str) -> onnx.NodeProto | None:
        return self.nodes[self.producer[name]] if name in self.producer else None

    def origin(self, name: str) -> str:
        """The tensor `name` is a reshaped or relabelled copy of (itself if none)."""
        while (node := self.node_of(name)) is not None and node.op_type in SHAPE_ONLY:
            name = node.input[0]
        return name

    def probe(self, base: dict[str, np.ndarray], source: str, targets: list[str]
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) per target with target = W @ source + b, the rest of the graph held at `base`.

        Only the nodes between `source` and `targets` are re-run. Raises ModelError if the map
        is not affine (checked at a random point).
        """
        nodes = self.ancestors(targets) & self.descendants([source])
        shape = base[source].shape

        def evaluate(vector: np.ndarray) -> np.ndarray:
            values = dict(base)
            values[source] = vector.reshape(shape)
            self._run_nodes(nodes, values)
            return np.concatenate([values[t].reshape(-1) for t in targets])

        size = int(np.prod(shape))
        offset = evaluate(np.zeros(size))
        basis = np.eye(size)
        matrix = np.stack([evaluate(basis[j]) - offset for j in range(size)], axis=1)
        point = np.random.default_rng(0).standard_normal(size)
        expected = matrix @ point + offset
        if not np.allclose(evaluate(point), expected, rtol=1e-9, atol=1e-9 * (1 + np.abs(expected).max())):
            raise ModelError(f"the part of the graph from {source!r} to {targets[0]!r} is not affine")
        splits = np.cumsum([base[t].size for t in targets])[:-1]
        return list(zip(np.split(matrix, splits), np.split(offset, splits), strict=True))
