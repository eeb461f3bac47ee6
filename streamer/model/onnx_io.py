"""ONNX import and export of TinyDenoiser graphs (numpy and `onnx` only: no torch, no onnxruntime).

Both directions use the TinyDenoiser I/O convention: input `input` [1, 257, 1], states
`rnn{1,2}_h_state_in` (and `rnn{1,2}_c_state_in` for LSTM) [1, H], outputs `output` [1, 257, 1]
and the matching `*_state_out`.

Import never pattern-matches the layers' construction. A small numpy evaluator runs the graph
in float64, and each affine part of the network is read off by probing it with basis vectors
while the tensors around it are overridden:

    fc0   `input`             -> input of the first ReLU
    rnnN  layer input x, h_in -> the gate pre-activations (a primitive-op LSTM cell, e.g. the
                                 tensor-train factorised ones), or the X / initial_h inputs of
                                 an ONNX LSTM/GRU op whose own W, R, B are then read directly
    fc1   rnn2 output         -> input of the second ReLU
    fc2   second ReLU output  -> input of the final Sigmoid

Every probed map is checked to be affine at a random point, and the finished model is checked
against the graph itself on random frames and states, so a graph that only looks like a
TinyDenoiser is rejected with a ModelError instead of being imported wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamer.atomic import write_atomically
from streamer.model.params import N_BINS, ModelError, TinyDenoiserParams, tensor_shapes

# Ops that only move or relabel values: walked through when tracing a tensor to its origin.
_SHAPE_ONLY = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten", "Cast"}
# Gate blocks reordered ONNX -> PyTorch: LSTM (i,o,f,c) -> (i,f,g,o); GRU (z,r,h) -> (r,z,n).
_ONNX_TO_TORCH = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
_TORCH_TO_ONNX = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}
_FLOAT = np.float64  # evaluation precision: densified products are then exact to float32

# Bounds on the work an untrusted file can ask for. A TinyDenoiser's largest tensor is 4H x H
# (1M values at H = 512) and its graph a few hundred nodes; a 459-byte file once asked the
# evaluator for 3.2 GB (a ConstantOfShape broadcast by a MatMul). Every node's output size is
# computed from its inputs' shapes before numpy allocates it.
MAX_ELEMENTS = 1 << 24        # values in any one tensor (128 MiB of float64)
MAX_STORED = 1 << 26          # values over all initializers
MAX_NODES = 20_000
MAX_HIDDEN = 4096
MAX_IMPORT_S = 60.0           # wall time for the whole import (evaluation and probing)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _as_value(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(_FLOAT) if array.dtype.kind == "f" else array


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
    return [inputs[0].astype(_FLOAT if np.dtype(dtype).kind == "f" else dtype)]


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
            return [_as_value(np.asarray(value, None if key == "value" else np.float32))]
    raise ModelError("Constant node without a supported value attribute")


def _constant_of_shape(inputs, attrs):
    value = attrs.get("value", np.zeros(1, np.float32))
    return [np.full([int(s) for s in inputs[0]], value.reshape(-1)[0], dtype=_as_value(value).dtype)]


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
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
            else:
                (xz, xr, xh), (hz, hr, hh) = np.split(gx, 3, axis=-1), np.split(gh, 3, axis=-1)
                z, reset = _sigmoid(xz + hz), _sigmoid(xr + hr)
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
    "Sigmoid": lambda i, a: [_sigmoid(i[0])],
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


class _Graph:
    """An ONNX graph as numpy: evaluate all of it, or re-run the nodes between two tensors."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        if len(graph.node) > MAX_NODES:
            raise ModelError(f"{len(graph.node):,} nodes: more than any TinyDenoiser ({MAX_NODES:,} at most)")
        stored = sum(_elements(t.dims) for t in graph.initializer)
        if stored > MAX_STORED:
            raise ModelError(f"{stored:,} stored values: more than any TinyDenoiser ({MAX_STORED:,} at most)")
        self.deadline = time.monotonic() + MAX_IMPORT_S
        self.consts = {t.name: _as_value(numpy_helper.to_array(t)) for t in graph.initializer}
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
        values.update({k: _as_value(v) for k, v in feeds.items()})
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
        while (node := self.node_of(name)) is not None and node.op_type in _SHAPE_ONLY:
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


# --- import -----------------------------------------------------------------------------------

def _static_dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _expected_io(cell: str) -> tuple[list[str], list[str]]:
    states = ["h", "c"] if cell == "lstm" else ["h"]
    names = [f"rnn{layer}_{s}_state" for layer in (1, 2) for s in states]
    return ["input"] + [n + "_in" for n in names], ["output"] + [n + "_out" for n in names]


class _Layer:
    """One recurrent layer found in the graph: where to probe it and what it produces."""

    def __init__(self, graph: _Graph, cell: str, layer: int) -> None:
        self.graph, self.cell, self.name = graph, cell, f"rnn{layer}"
        h_in, h_out = f"{self.name}_h_state_in", f"{self.name}_h_state_out"
        self.h_in, self.c_in = h_in, f"{self.name}_c_state_in" if cell == "lstm" else None
        inside = graph.descendants([h_in]) & graph.ancestors([h_out])
        ops = [i for i in inside if graph.nodes[i].op_type in ("LSTM", "GRU")]
        if len(ops) > 1:
            raise ModelError(f"{self.name}: {len(ops)} recurrent ops between {h_in} and {h_out}")
        self.op = graph.nodes[ops[0]] if ops else None
        self.op_attrs = graph.attrs[ops[0]] if ops else {}
        if self.op is not None:
            if self.op.op_type.lower() != cell:
                raise ModelError(f"{self.name} is an ONNX {self.op.op_type} but the graph's state "
                                 f"inputs are those of a {cell.upper()}")
            self.outputs = [t for t in self.op.output[:2] if t]  # Y or Y_h may feed the next layer
            self.targets = [self.op.input[0]]
        elif cell == "gru":
            raise ModelError(f"{self.name}: GRU cells built from primitive ops are not supported")
        else:
            self._find_gates(inside)

    def _find_gates(self, inside: set[int]) -> None:
        """Find the four gate nonlinearities of a primitive-op LSTM cell and their roles."""
        g = self.graph
        after_c = g.descendants([self.c_in])
        gates = [i for i in inside - after_c if g.nodes[i].op_type in ("Sigmoid", "Tanh")]
        tanh = [i for i in gates if g.nodes[i].op_type == "Tanh"]
        sigmoids = [i for i in gates if g.nodes[i].op_type == "Sigmoid"]
        if len(tanh) != 1 or len(sigmoids) != 3:
            raise ModelError(f"{self.name}: expected an LSTM cell with 3 sigmoid gates and 1 tanh "
                             f"gate, found {len(sigmoids)} and {len(tanh)}")
        g_out = g.nodes[tanh[0]].output[0]
        roles: dict[str, onnx.NodeProto] = {"g": g.nodes[tanh[0]]}
        self.outputs = []
        for index in sigmoids:
            gate_out = g.nodes[index].output[0]
            for consumer in g.consumers.get(gate_out, []):
                node = g.nodes[consumer]
                if node.op_type != "Mul":
                    continue
                partner = node.input[1] if node.input[0] == gate_out else node.input[0]
                source = g.node_of(g.origin(partner))
                # f gates the old cell state, i the candidate, o the tanh of the new cell state.
                if g.origin(partner) == self.c_in:
                    roles.setdefault("f", g.nodes[index])
                elif g.origin(partner) == g_out:
                    roles.setdefault("i", g.nodes[index])
                elif source is not None and source.op_type == "Tanh" and \
                        g.producer[g.origin(partner)] in after_c:
                    roles.setdefault("o", g.nodes[index])
                    self.outputs.append(node.output[0])
        if sorted(roles) != ["f", "g", "i", "o"] or len(set(map(id, roles.values()))) != 4:
            raise ModelError(f"{self.name}: cannot tell the input, forget, cell and output gates "
                             f"apart (found roles {sorted(roles)})")
        self.targets = [roles[k].input[0] for k in "ifgo"]  # PyTorch's gate order

    def extract(self, base: dict, x_source: str) -> dict[str, np.ndarray]:
        """The layer's PyTorch tensors, probing from `x_source` (the layer's input)."""
        g, hidden = self.graph, base[self.h_in].size
        x_maps = g.probe(base, x_source, self.targets)
        if self.op is not None:
            return self._from_op(base, x_maps[0], hidden)
        # A primitive cell: the probes reach the four gate pre-activations themselves.
        h_maps = g.probe(base, self.h_in, self.targets)
        for w, _ in x_maps + h_maps:
            if w.shape[0] != hidden:
                raise ModelError(f"{self.name}: a gate has {w.shape[0]} units, expected {hidden}")
        bias = np.concatenate([b for _, b in x_maps])
        return {"weight_ih": np.vstack([w for w, _ in x_maps]),
                "weight_hh": np.vstack([w for w, _ in h_maps]),
                # Only the sum of the two biases matters to an LSTM.
                "bias_ih": bias, "bias_hh": np.zeros_like(bias)}

    def _from_op(self, base: dict, x_map: tuple, hidden: int) -> dict[str, np.ndarray]:
        g, op = self.graph, self.op
        check_recurrent_attrs(op.op_type, self.op_attrs)
        consts = [base.get(t) if t else None for t in op.input] + [None] * 8
        w, r, b = consts[1], consts[2], consts[3]
        for name in op.input[1:4]:
            if name and g.descendants([v.name for v in g.inputs]) & g.ancestors([name]):
                raise ModelError(f"{self.name}: {op.op_type} weights depend on the graph's inputs")
        rows = len(_ONNX_TO_TORCH[op.op_type]) * hidden
        if self.op_attrs.get("hidden_size") != hidden:
            raise ModelError(f"{self.name}: hidden_size differs from the state size {hidden}")
        if w is None or r is None or w.ndim != 3 or w.shape[:2] != (1, rows) or r.shape != (1, rows, hidden):
            raise ModelError(f"{self.name}: {op.op_type} needs single-direction W [1, {rows}, in] "
                             f"and R [1, {rows}, {hidden}]")
        if len(op.input) > 4 and op.input[4] and np.any(consts[4] != 1):
            raise ModelError(f"{self.name}: sequence_lens other than 1 is not supported")
        if len(op.input) > 7 and op.input[7]:
            raise ModelError(f"{self.name}: LSTM with peephole weights is not supported")
        states = [(self.h_in, 5)] + ([(self.c_in, 6)] if self.c_in else [])
        for state, slot in states:
            if len(op.input) <= slot or not op.input[slot]:
                raise ModelError(f"{self.name}: the {op.op_type} op ignores {state}")
            (p, q), = g.probe(base, state, [op.input[slot]])
            if p.shape != (hidden, hidden) or not np.array_equal(p, np.eye(hidden)) or np.any(q):
                raise ModelError(f"{self.name}: {state} reaches the {op.op_type} op other than "
                                 "as a plain copy")
        order = _ONNX_TO_TORCH[op.op_type]

        def torch_order(matrix: np.ndarray) -> np.ndarray:
            return np.concatenate([np.split(matrix, len(order))[k] for k in order])

        p, q = x_map  # X = p @ x + q: fold the reshaping (or any affine) step into W
        if p.shape[0] != w.shape[2]:
            raise ModelError(f"{self.name}: the op's input has {p.shape[0]} values, W expects {w.shape[2]}")
        b = np.zeros((1, 2 * w.shape[1])) if b is None else b
        w_b, r_b = np.split(b[0], 2)
        return {"weight_ih": torch_order(w[0] @ p), "weight_hh": torch_order(r[0]),
                "bias_ih": torch_order(w_b + w[0] @ q), "bias_hh": torch_order(r_b)}

    def output_feeding(self, consumer_targets: list[str]) -> str:
        """Which of this layer's outputs the next part of the network reads."""
        g = self.graph
        # Tensor-level, not node-level: Y and Y_h of one recurrent op share their producer.
        read = {t for i in g.ancestors(consumer_targets) for t in g.nodes[i].input} | set(consumer_targets)
        used = [t for t in self.outputs if t in read]
        if len(used) != 1:
            raise ModelError(f"{self.name}: the next layer reads {len(used)} of its outputs, expected 1")
        return used[0]


def _load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a truncated or foreign file
        raise ModelError(f"not a readable ONNX model ({type(exc).__name__}: {exc})") from exc


def import_onnx(path: str | Path) -> TinyDenoiserParams:
    """Read a TinyDenoiser ONNX graph (dense or tensor-train factorised) as dense parameters."""
    path = Path(path)
    try:
        return _import(_load(path), path.name)
    except ModelError as exc:
        raise ModelError(f"{path.name}: {exc}") from None
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # a graph shaped unlike any we know
        raise ModelError(f"{path.name}: not a TinyDenoiser graph ({type(exc).__name__}: {exc})") from exc


def _import(model: onnx.ModelProto, name: str) -> TinyDenoiserParams:
    graph = _Graph(model)
    inputs = {v.name: v for v in graph.inputs}
    cell = "lstm" if "rnn1_c_state_in" in inputs else "gru"
    want_in, want_out = _expected_io(cell)
    if sorted(inputs) != sorted(want_in) or sorted(graph.outputs) != sorted(want_out):
        raise ModelError(f"inputs {sorted(inputs)} and outputs {sorted(graph.outputs)} do not follow "
                         f"the TinyDenoiser convention ({', '.join(want_in)} -> {', '.join(want_out)})")
    if _static_dims(inputs["input"]) not in ([1, N_BINS, 1], []):
        raise ModelError(f"input has shape {_static_dims(inputs['input'])}, expected [1, {N_BINS}, 1]")
    state_dims = {_static_dims(inputs[n]).__repr__() for n in want_in[1:]}
    dims = _static_dims(inputs["rnn1_h_state_in"])
    if len(state_dims) != 1 or len(dims) != 2 or dims[0] != 1 or not dims[1]:
        raise ModelError(f"state inputs must all have the static shape [1, H], got {sorted(state_dims)}")
    hidden = dims[1]
    if hidden > MAX_HIDDEN:
        raise ModelError(f"hidden size {hidden} is larger than any TinyDenoiser ({MAX_HIDDEN} at most)")

    feeds = {"input": np.zeros((1, N_BINS, 1))}
    feeds.update({n: np.zeros((1, hidden)) for n in want_in[1:]})
    base = graph.run(feeds)  # every tensor at zero input and zero state

    relus = [i for i in graph.ancestors(["output"]) if graph.nodes[i].op_type == "Relu"]
    first = [i for i in relus if i in graph.ancestors(["rnn1_h_state_out"])]
    last = [i for i in relus if i not in first]
    if len(first) != 1 or len(last) != 1:
        raise ModelError(f"expected one ReLU after fc0 and one after fc1, found {len(first)} and {len(last)}")
    relu0, relu1 = graph.nodes[first[0]], graph.nodes[last[0]]
    final = graph.node_of(graph.origin("output"))
    if final is None or final.op_type != "Sigmoid":
        raise ModelError("output is not the result of a Sigmoid (the mask)")

    tensors: dict[str, np.ndarray] = {}
    ((tensors["fc0.weight"], tensors["fc0.bias"]),) = graph.probe(base, "input", [relu0.input[0]])
    layers = [_Layer(graph, cell, 1), _Layer(graph, cell, 2)]
    sources = [relu0.output[0], layers[0].output_feeding(layers[1].targets),
               layers[1].output_feeding([relu1.input[0]])]
    for layer, source in zip(layers, sources[:2], strict=True):
        for key, value in layer.extract(base, source).items():
            tensors[f"{layer.name}.{key}"] = value
    ((tensors["fc1.weight"], tensors["fc1.bias"]),) = graph.probe(base, sources[2], [relu1.input[0]])
    ((tensors["fc2.weight"], tensors["fc2.bias"]),) = graph.probe(base, relu1.output[0], [final.input[0]])

    expected = tensor_shapes(cell, hidden)
    for key, value in tensors.items():
        if value.shape != expected[key]:
            raise ModelError(f"{key} comes out with shape {value.shape}, expected {expected[key]}")
    stored = sum(int(np.size(v)) for v in graph.consts.values() if v.dtype.kind == "f")
    params = TinyDenoiserParams(cell=cell, hidden=hidden, tensors=tensors, metadata={
        "source": "onnx", "file": name,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0),
        "recurrent_form": "onnx-op" if layers[0].op is not None else "primitive-ops",
        "graph_parameters": stored})
    _verify(graph, params, want_in, want_out)
    return params


def _verify(graph: _Graph, params: TinyDenoiserParams, want_in: list[str], want_out: list[str]) -> None:
    """Run graph and densified model on random frames and states: they must agree."""
    from streamer.backends.emulator import Fp32Network

    network, rng = Fp32Network(params), np.random.default_rng(1)
    for _ in range(2):
        mags = np.abs(rng.standard_normal(N_BINS)) * 4.0
        state = [rng.uniform(-1, 1, params.hidden).astype(np.float32) for _ in want_in[1:]]
        values = graph.run({"input": mags.reshape(1, N_BINS, 1),
                            **{n: s.reshape(1, -1) for n, s in zip(want_in[1:], state, strict=True)}})
        mask, new_state = network.step(mags.astype(np.float32), state)
        diff = max(float(np.abs(values[n].reshape(-1) - v).max())
                   for n, v in zip(want_out, [mask, *new_state], strict=True))
        if diff > 1e-4:
            raise ModelError(f"the dense model does not reproduce the graph (max difference {diff:.3g}); "
                             "its layers are not in the TinyDenoiser arrangement")


# --- export -----------------------------------------------------------------------------------

def export_onnx(params: TinyDenoiserParams, path: str | Path, opset: int = 17) -> Path:
    """Write `params` as a PyTorch-like ONNX graph: Conv(k=1) dense layers, ONNX LSTM/GRU ops."""
    if not 14 <= opset <= onnx.defs.onnx_opset_version():
        raise ModelError(f"opset {opset} is not supported (14 to {onnx.defs.onnx_opset_version()})")
    t, hidden, op = params.tensors, params.hidden, params.cell.upper()
    want_in, want_out = _expected_io(params.cell)
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
        blocks = np.split(matrix, len(_TORCH_TO_ONNX[op]))
        return np.concatenate([blocks[k] for k in _TORCH_TO_ONNX[op]])

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
