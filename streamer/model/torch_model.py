"""The TinyDenoiser in PyTorch, for training and for checking the numpy runtime against.

Layer names and gate orders are PyTorch's own, so `to_params` is a rename of the state dict
(``rnn1.weight_ih_l0`` -> ``rnn1.weight_ih``) and the numpy emulator runs the result unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from streamer.model.params import N_BINS, SUPPORTED_HIDDEN, TinyDenoiserParams, tensor_shapes

TorchState = tuple


class TinyDenoiser(nn.Module):
    """fc0 (257->H, ReLU) -> rnn1 -> rnn2 -> fc1 (H->257, ReLU) -> fc2 (257->257, sigmoid) = mask.

    `input_scale` multiplies the magnitudes before fc0. Raw |STFT| values of float audio span
    roughly 1e-4..1e2, and a fixed scale lets training start with well-conditioned activations;
    `to_params` folds it into fc0.weight, so exported models take raw magnitudes as the runtime
    gives them.
    """

    def __init__(self, cell: str = "lstm", hidden: int = 256, input_scale: float = 1.0) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        if hidden not in SUPPORTED_HIDDEN:
            raise ValueError(f"hidden must be one of {SUPPORTED_HIDDEN}, got {hidden}")
        self.cell, self.hidden, self.input_scale = cell, hidden, float(input_scale)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.fc0 = nn.Linear(N_BINS, hidden)
        self.rnn1 = rnn(hidden, hidden, num_layers=1, batch_first=True)
        self.rnn2 = rnn(hidden, hidden, num_layers=1, batch_first=True)
        self.fc1 = nn.Linear(hidden, N_BINS)
        self.fc2 = nn.Linear(N_BINS, N_BINS)

    def forward(self, mags: torch.Tensor, state: TorchState | None = None
                ) -> tuple[torch.Tensor, TorchState]:
        """Whole sequences: mags [B, T, 257] -> mask [B, T, 257] and the final state.

        The state is (rnn1_state, rnn2_state), each an (h, c) pair for LSTM or h for GRU,
        shaped [1, B, H] as torch's recurrent layers keep them.
        """
        s1, s2 = (None, None) if state is None else state
        x = torch.relu(self.fc0(mags * self.input_scale))
        x, s1 = self.rnn1(x, s1)
        x, s2 = self.rnn2(x, s2)
        x = torch.relu(self.fc1(x))
        return torch.sigmoid(self.fc2(x)), (s1, s2)

    def step(self, mags: torch.Tensor, state: TorchState | None = None
             ) -> tuple[torch.Tensor, TorchState]:
        """One frame: mags [B, 257] -> mask [B, 257]; the streaming form of `forward`."""
        mask, state = self.forward(mags[:, None, :], state)
        return mask[:, 0, :], state

    def to_params(self, metadata: dict | None = None) -> TinyDenoiserParams:
        """Export to the runtime's numpy parameters, with `input_scale` folded into fc0."""
        tensors: dict[str, np.ndarray] = {}
        for name, value in self.state_dict().items():
            canonical = name.replace("_l0", "")
            array = value.detach().cpu().numpy().astype(np.float32)
            if canonical == "fc0.weight":
                array = array * np.float32(self.input_scale)
            tensors[canonical] = array
        return TinyDenoiserParams(cell=self.cell, hidden=self.hidden, tensors=tensors,
                                  metadata=dict(metadata or {}))

    @classmethod
    def from_params(cls, params: TinyDenoiserParams) -> TinyDenoiser:
        """Build a module holding `params` (input_scale 1: the weights already expect raw input)."""
        model = cls(params.cell, params.hidden)
        own = model.state_dict()
        loaded = {}
        for name in own:
            canonical = name.replace("_l0", "")
            loaded[name] = torch.from_numpy(np.array(params.tensors[canonical], dtype=np.float32))
        assert set(tensor_shapes(params.cell, params.hidden)) == {n.replace("_l0", "") for n in own}
        model.load_state_dict(loaded)
        return model
