"""ONNX import (dense and tensor-train graphs) and export, checked against onnxruntime."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import random_params

from streamer.model import load_model
from streamer.model.fp32 import Fp32Network
from streamer.model.onnx_export import export_onnx
from streamer.model.onnx_import import import_onnx
from streamer.model.params import N_BINS, ModelError, TinyDenoiserParams

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TOLERANCE = 1e-5


def shared_path(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"../shared not found: {path} is missing (reference material lives outside the repo)")
    return path


def ort_session(path: Path):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_difference(params: TinyDenoiserParams, session, frames: np.ndarray) -> float:
    """Largest mask or state difference between the emulator and onnxruntime, frame by frame.

    onnxruntime's states are fed back into both sides. Letting each side run on its own states
    would measure float32 rounding amplified by the recurrence, not the import: on
    tt_denoiser_rank_80 the same dense weights run in float32 and in float64 drift 2e-3 apart.
    """
    network = Fp32Network(params)
    state = network.initial_state()
    state_names = [i.name for i in session.get_inputs() if i.name != "input"]
    output_names = ["output"] + [name.replace("_in", "_out") for name in state_names]
    worst = 0.0
    for frame in np.asarray(frames, np.float32):
        feeds = {"input": frame.reshape(1, N_BINS, 1)}
        feeds.update({n: s.reshape(1, -1) for n, s in zip(state_names, state, strict=True)})
        expected = [r.reshape(-1) for r in session.run(output_names, feeds)]
        mask, new_state = network.step(frame, state)
        # Absolute for the mask and h (both within [-1, 1]); relative for c, which grows past 700
        # in tt_denoiser_rank_80, where one float32 step is already 6e-5.
        worst = max(worst, *(float((np.abs(a - b) / np.maximum(1.0, np.abs(a))).max())
                             for a, b in zip(expected, [mask, *new_state], strict=True)))
        state = expected[1:]
    return worst


def random_frames(count: int, seed: int = 0) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).standard_normal((count, N_BINS))) * 3.0


# --- the shipped tensor-train models ----------------------------------------------------------

def valentini_magnitudes() -> np.ndarray:
    import soundfile

    from streamer.engine import stft_centred

    files = sorted(shared_path("data/valentini/noisy").glob("*.wav"))
    assert len(files) == 6
    spectra = []
    for wav in files:
        samples, _ = soundfile.read(str(wav), dtype="int16")
        spectra.append(np.abs(stft_centred(samples.astype(np.float64) / 32768.0)))
    return np.concatenate(spectra)


@pytest.mark.parametrize("rank", [8, 80])
def test_tensor_train_model_matches_onnxruntime_on_valentini(rank):
    path = shared_path(f"models/tt_denoiser_rank_{rank}.onnx")
    session = ort_session(path)
    params = load_model(path)
    assert (params.cell, params.hidden) == ("lstm", 256)
    assert params.metadata["source"] == "onnx" and params.metadata["file"] == path.name
    assert params.metadata["recurrent_form"] == "primitive-ops"
    diff = max_difference(params, session, valentini_magnitudes())
    assert diff <= TOLERANCE, f"rank {rank}: max difference {diff:.3g}"


# --- export, and the round trip through it ----------------------------------------------------

@pytest.mark.parametrize("cell,hidden", [("lstm", 128), ("lstm", 256), ("gru", 128), ("gru", 256)])
def test_export_import_round_trip_is_exact(tmp_path, cell, hidden):
    params = random_params(cell, hidden, seed=hidden)
    path = export_onnx(params, tmp_path / "m.onnx")
    assert not list(tmp_path.glob("*.partial"))
    onnx.checker.check_model(onnx.load(str(path)))
    loaded = import_onnx(path)
    assert (loaded.cell, loaded.hidden) == (cell, hidden)
    assert loaded.metadata["recurrent_form"] == "onnx-op"
    for name, tensor in params.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], tensor, err_msg=name)


@pytest.mark.parametrize("cell,hidden,opset", [("lstm", 128, 17), ("lstm", 256, 14), ("gru", 128, 17),
                                               ("gru", 256, 17)])
def test_exported_graph_runs_like_the_emulator(tmp_path, cell, hidden, opset):
    params = random_params(cell, hidden, seed=1)
    session = ort_session(export_onnx(params, tmp_path / "m.onnx", opset=opset))
    assert max_difference(params, session, random_frames(50)) <= TOLERANCE


# --- graphs written by torch.onnx.export ------------------------------------------------------

def torch_export(module, path: Path, cell: str, hidden: int) -> Path:
    import inspect

    import torch

    states = 4 if cell == "lstm" else 2
    args = (torch.rand(1, N_BINS, 1),) + tuple(torch.zeros(1, hidden) for _ in range(states))
    names = ["rnn1_h_state", "rnn1_c_state", "rnn2_h_state", "rnn2_c_state"] if cell == "lstm" \
        else ["rnn1_h_state", "rnn2_h_state"]
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(module.eval(), args, str(path), opset_version=17,
                      input_names=["input"] + [n + "_in" for n in names],
                      output_names=["output"] + [n + "_out" for n in names], **kwargs)
    return path


def dense_torch_module(cell: str, hidden: int, linear: bool):
    """A TinyDenoiser as nn.Module: fc layers as Conv1d(k=1) or Linear, nn.LSTM / nn.GRU."""
    import torch
    from torch import nn

    class Dense(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            fc = nn.Linear if linear else (lambda i, o: nn.Conv1d(i, o, 1))
            rnn = nn.LSTM if cell == "lstm" else nn.GRU
            self.fc0, self.fc1, self.fc2 = fc(N_BINS, hidden), fc(hidden, N_BINS), fc(N_BINS, N_BINS)
            self.rnn1, self.rnn2 = rnn(hidden, hidden), rnn(hidden, hidden)

        def dense(self, layer, x):  # x: [1, channels, 1]
            return layer(x.transpose(1, 2)).transpose(1, 2) if linear else layer(x)

        def forward(self, x, *states):
            x = torch.relu(self.dense(self.fc0, x)).permute(2, 0, 1)  # [time, batch, H]
            if cell == "lstm":
                x, (h1, c1) = self.rnn1(x, (states[0][None], states[1][None]))
                x, (h2, c2) = self.rnn2(x, (states[2][None], states[3][None]))
                new_states = (h1[0], c1[0], h2[0], c2[0])
            else:
                x, h1 = self.rnn1(x, states[0][None])
                x, h2 = self.rnn2(x, states[1][None])
                new_states = (h1[0], h2[0])
            y = torch.relu(self.dense(self.fc1, x.permute(1, 2, 0)))
            return (torch.sigmoid(self.dense(self.fc2, y)),) + new_states

    torch.manual_seed(0)
    return Dense()


@pytest.mark.parametrize("cell,hidden,linear",
                         [("lstm", 128, False), ("gru", 128, False), ("lstm", 128, True)])
def test_torch_exported_dense_graph_imports(tmp_path, cell, hidden, linear):
    pytest.importorskip("torch")
    path = torch_export(dense_torch_module(cell, hidden, linear), tmp_path / "dense.onnx", cell, hidden)
    params = import_onnx(path)
    assert (params.cell, params.hidden) == (cell, hidden)
    assert max_difference(params, ort_session(path), random_frames(30)) <= TOLERANCE


def tensor_train_torch_module(hidden: int, rank: int):
    """An LSTM TinyDenoiser whose cell is primitive ops over two tensor-train cores per matrix."""
    import torch
    from torch import nn

    class TTMatrix(nn.Module):  # (o1*o2) x (i1*i2) matrix = two cores joined over `rank`
        def __init__(self, outs: tuple[int, int], ins: tuple[int, int]) -> None:
            super().__init__()
            (self.o1, self.o2), (self.i1, self.i2) = outs, ins
            self.core1 = nn.Parameter(torch.randn(self.o1, self.i1 * rank) / (self.i1 * rank) ** 0.5)
            self.core2 = nn.Parameter(torch.randn(rank * self.o2, self.i2) / self.i2 ** 0.5)

        def forward(self, x):  # x: [1, i1*i2]
            t = self.core2 @ x.reshape(self.i1, self.i2).t()
            t = t.reshape(rank, self.o2, self.i1).permute(2, 0, 1).reshape(self.i1 * rank, self.o2)
            return (self.core1 @ t).reshape(1, self.o1 * self.o2)

    class Cell(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            shape = ((16, 4 * hidden // 16), (8, hidden // 8))
            self.w_i, self.w_h = TTMatrix(*shape), TTMatrix(*shape)
            self.bias_i = nn.Parameter(torch.randn(4 * hidden) * 0.1)
            self.bias_h = nn.Parameter(torch.randn(4 * hidden) * 0.1)

        def forward(self, x, h, c):
            i, f, g, o = (self.w_i(x) + self.bias_i + self.w_h(h) + self.bias_h).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c

    class TTDenoiser(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc0, self.fc1 = nn.Conv1d(N_BINS, hidden, 1), nn.Conv1d(hidden, N_BINS, 1)
            self.fc2 = nn.Conv1d(N_BINS, N_BINS, 1)
            self.rnn1, self.rnn2 = Cell(), Cell()

        def forward(self, x, h1, c1, h2, c2):
            x = torch.relu(self.fc0(x))[:, :, 0]
            h1, c1 = self.rnn1(x, h1, c1)
            h2, c2 = self.rnn2(h1, h2, c2)
            y = torch.relu(self.fc1(h2[:, :, None]))
            return torch.sigmoid(self.fc2(y)), h1, c1, h2, c2

    torch.manual_seed(rank)
    return TTDenoiser()


@pytest.mark.parametrize("rank", [3, 12])
def test_tensor_train_graph_of_any_rank_imports(tmp_path, rank):
    pytest.importorskip("torch")
    path = torch_export(tensor_train_torch_module(128, rank), tmp_path / "tt.onnx", "lstm", 128)
    params = import_onnx(path)
    assert params.metadata["recurrent_form"] == "primitive-ops"
    assert max_difference(params, ort_session(path), random_frames(30)) <= TOLERANCE


# --- damaged and foreign graphs ---------------------------------------------------------------

@pytest.fixture
def exported(tmp_path) -> Path:
    return export_onnx(random_params("gru", 128), tmp_path / "model.onnx")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.97])
def test_truncated_file_is_a_model_error(tmp_path, exported, keep):
    blob = exported.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(blob[:int(len(blob) * keep)])
    with pytest.raises(ModelError, match="cut.onnx"):
        import_onnx(cut)


def test_foreign_bytes_are_a_model_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"RIFF\x00\x01 not an onnx model at all \xff\xfe" * 10)
    with pytest.raises(ModelError, match="junk.onnx"):
        import_onnx(junk)


def rewrite(path: Path, edit) -> Path:
    model = onnx.load(str(path))
    edit(model.graph)
    onnx.save(model, str(path))
    return path


def test_wrong_input_names_are_rejected(exported):
    def rename(graph):
        graph.input[0].name = "spectrum"
        for node in graph.node:
            node.input[:] = ["spectrum" if t == "input" else t for t in node.input]

    with pytest.raises(ModelError, match="TinyDenoiser convention"):
        import_onnx(rewrite(exported, rename))


def test_wrong_input_size_is_rejected(exported):
    def shrink(graph):
        graph.input[0].type.tensor_type.shape.dim[1].dim_value = 100

    with pytest.raises(ModelError, match="input has shape"):
        import_onnx(rewrite(exported, shrink))


def test_gru_without_linear_before_reset_is_rejected(exported):
    def flip(graph):
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.name == "linear_before_reset":
                    attribute.i = 0

    with pytest.raises(ModelError, match="linear_before_reset"):
        import_onnx(rewrite(exported, flip))


def test_unsupported_op_is_rejected(exported):
    def leaky(graph):
        for node in graph.node:
            if node.op_type == "Relu":
                node.op_type = "LeakyRelu"

    with pytest.raises(ModelError, match="unsupported ONNX op LeakyRelu"):
        import_onnx(rewrite(exported, leaky))


def test_nonlinear_step_where_a_dense_layer_belongs_is_rejected(exported):
    def squash(graph):
        nodes = list(graph.node)
        relu = next(i for i, n in enumerate(nodes) if n.op_type == "Relu")
        for node in nodes[relu + 1:]:
            node.input[:] = ["squashed" if t == nodes[relu].output[0] else t for t in node.input]
        nodes.insert(relu + 1, onnx.helper.make_node("Tanh", [nodes[relu].output[0]], ["squashed"]))
        del graph.node[:]
        graph.node.extend(nodes)

    with pytest.raises(ModelError, match="not affine"):
        import_onnx(rewrite(exported, squash))
