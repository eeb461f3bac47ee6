"""ONNX import of TinyDenoiser graphs (numpy and `onnx` only: no torch, no onnxruntime).

Import never pattern-matches the layers' construction. The bounded evaluator
(`onnx_graph.Graph`) runs the graph in float64, and each affine part of the network is read
off by probing it with basis vectors while the tensors around it are overridden:

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

from pathlib import Path

import numpy as np
import onnx

from streamer.model.onnx_convention import ONNX_TO_TORCH, expected_io
from streamer.model.onnx_graph import MAX_HIDDEN, Graph, check_recurrent_attrs
from streamer.model.params import N_BINS, ModelError, TinyDenoiserParams, tensor_shapes


def _static_dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


class _Layer:
    """One recurrent layer found in the graph: where to probe it and what it produces."""

    def __init__(self, graph: Graph, cell: str, layer: int) -> None:
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
        rows = len(ONNX_TO_TORCH[op.op_type]) * hidden
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
        order = ONNX_TO_TORCH[op.op_type]

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
    graph = Graph(model)
    inputs = {v.name: v for v in graph.inputs}
    cell = "lstm" if "rnn1_c_state_in" in inputs else "gru"
    want_in, want_out = expected_io(cell)
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


def _verify(graph: Graph, params: TinyDenoiserParams, want_in: list[str], want_out: list[str]) -> None:
    """Run graph and densified model on random frames and states: they must agree."""
    from streamer.model.fp32 import Fp32Network

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
