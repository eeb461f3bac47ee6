"""TinyDenoiser parameters as plain numpy arrays: the one in-memory form every loader produces.

Architecture (PyTorch conventions, so a torch state dict maps onto it 1:1)::

    fc0  257 -> H, ReLU
    rnn1 H -> H   (LSTM gates i,f,g,o  |  GRU gates r,z,n)
    rnn2 H -> H
    fc1  H -> 257, ReLU
    fc2  257 -> 257, sigmoid  = mask
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamer.engine import N_BINS  # noqa: F401 - the model's input and mask size is the STFT's

# The recurrent cells: gates per hidden unit, and the code a device blob and the link use.
CELLS = {"lstm": 4, "gru": 3}
CELL_CODES = {"lstm": 0, "gru": 1}
SUPPORTED_HIDDEN = (128, 256)


class ModelError(ValueError):
    """A model file or graph that cannot be used: the message says why."""


def tensor_shapes(cell: str, hidden: int) -> dict[str, tuple[int, ...]]:
    """Canonical tensor names and shapes of a TinyDenoiser with `cell` and `hidden` units."""
    gates = CELLS[cell] * hidden
    shapes: dict[str, tuple[int, ...]] = {"fc0.weight": (hidden, N_BINS), "fc0.bias": (hidden,)}
    for layer in ("rnn1", "rnn2"):
        shapes[f"{layer}.weight_ih"] = (gates, hidden)
        shapes[f"{layer}.weight_hh"] = (gates, hidden)
        shapes[f"{layer}.bias_ih"] = (gates,)
        shapes[f"{layer}.bias_hh"] = (gates,)
    shapes.update({
        "fc1.weight": (N_BINS, hidden), "fc1.bias": (N_BINS,),
        "fc2.weight": (N_BINS, N_BINS), "fc2.bias": (N_BINS,),
    })
    return shapes


@dataclass
class TinyDenoiserParams:
    """Weights of one TinyDenoiser, float32, under the canonical names of `tensor_shapes`."""

    cell: str
    hidden: int
    tensors: dict[str, np.ndarray]
    metadata: dict = field(default_factory=dict)
    # Activation ranges from calibration ({"method", "ranges", "files", ...}); None if never run.
    calibration: dict | None = None

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ModelError(f"unknown recurrent cell {self.cell!r}; expected one of {sorted(CELLS)}")
        if not isinstance(self.hidden, int) or self.hidden <= 0:
            raise ModelError(f"hidden size must be a positive integer, got {self.hidden!r}")
        expected = tensor_shapes(self.cell, self.hidden)
        missing = sorted(set(expected) - set(self.tensors))
        extra = sorted(set(self.tensors) - set(expected))
        if missing or extra:
            raise ModelError(f"tensor set does not match a {self.cell.upper()} TinyDenoiser "
                             f"(H={self.hidden}): missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            array = np.asarray(self.tensors[name], dtype=np.float32)
            if array.shape != shape:
                raise ModelError(f"tensor {name} has shape {array.shape}, expected {shape}")
            if not np.all(np.isfinite(array)):
                raise ModelError(f"tensor {name} holds NaN or infinite values")
            self.tensors[name] = np.ascontiguousarray(array)

    @property
    def parameter_count(self) -> int:
        return sum(int(t.size) for t in self.tensors.values())

    def state_shapes(self) -> list[tuple[str, int]]:
        """Names of the recurrent state vectors, in the ONNX convention's order."""
        names = []
        for layer in ("rnn1", "rnn2"):
            names.append(f"{layer}_h")
            if self.cell == "lstm":
                names.append(f"{layer}_c")
        return [(name, self.hidden) for name in names]

    def describe(self) -> str:
        return f"{self.cell.upper()} TinyDenoiser, H={self.hidden}, {self.parameter_count:,} parameters"
