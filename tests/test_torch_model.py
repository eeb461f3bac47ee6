"""The PyTorch TinyDenoiser against itself (sequence vs. step) and against the numpy runtime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamer.model.fp32 import Fp32Network  # noqa: E402
from streamer.model.torch_model import TinyDenoiser  # noqa: E402


def _model(cell: str, hidden: int, seed: int = 0) -> TinyDenoiser:
    torch.manual_seed(seed)
    model = TinyDenoiser(cell, hidden, input_scale=0.5)
    model.eval()
    return model


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_by_step_equals_sequence(cell: str) -> None:
    model = _model(cell, 128)
    mags = torch.rand(2, 12, 257) * 3
    with torch.no_grad():
        whole, _ = model(mags)
        state, steps = None, []
        for t in range(mags.shape[1]):
            mask, state = model.step(mags[:, t], state)
            steps.append(mask)
    torch.testing.assert_close(torch.stack(steps, dim=1), whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell,hidden", [("lstm", 128), ("gru", 128), ("lstm", 256)])
def test_numpy_runtime_matches_torch(cell: str, hidden: int) -> None:
    model = _model(cell, hidden, seed=1)
    params = model.to_params({"note": "test"})
    assert params.metadata == {"note": "test"}
    network = Fp32Network(params)
    state_np = network.initial_state()
    state_t = None
    rng = np.random.default_rng(2)
    with torch.no_grad():
        for _ in range(20):
            mags = (rng.random(257) * rng.choice([0.01, 1.0, 20.0])).astype(np.float32)
            mask_t, state_t = model.step(torch.from_numpy(mags)[None], state_t)
            mask_np, state_np = network.step(mags, state_np)
            np.testing.assert_allclose(mask_np, mask_t[0].numpy(), atol=1e-5, rtol=0)


def test_params_round_trip() -> None:
    model = _model("gru", 128)
    params = model.to_params()
    again = TinyDenoiser.from_params(params).to_params()
    assert again.cell == "gru" and again.hidden == 128
    for name, array in params.tensors.items():
        np.testing.assert_array_equal(again.tensors[name], array)


def test_input_scale_is_folded_into_fc0() -> None:
    model = _model("lstm", 128)
    params = model.to_params()
    np.testing.assert_allclose(params.tensors["fc0.weight"],
                               model.fc0.weight.detach().numpy() * 0.5, rtol=1e-6)


def test_rejects_unsupported_architecture() -> None:
    with pytest.raises(ValueError):
        TinyDenoiser("rnn", 128)
    with pytest.raises(ValueError):
        TinyDenoiser("lstm", 64)
