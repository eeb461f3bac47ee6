"""The host emulator: the TinyDenoiser step in numpy, with explicit recurrent state."""

from __future__ import annotations

from typing import Any

import numpy as np

from streamer.backends.base import Backend, BackendError, TargetModel


def build_network(model, quant: str | None = None):
    """`streamer.numerics.build_network`, its refusals as BackendError (the backend's words)."""
    from streamer.model.params import ModelError
    from streamer.numerics import build_network as build

    try:
        return build(model, quant)
    except ModelError as error:
        raise BackendError(str(error)) from None


class EmulatorBackend(Backend):
    """Runs the network on the host in numpy: FP32 reference, or bit-accurate fp16/int8/mixed."""

    name = "emulator"

    def __init__(self, model, quant: str | None = None) -> None:
        self.params = model
        self.network = build_network(model, quant)
        self.quant = getattr(self.network, "mode", "fp32")
        self.state = self.network.initial_state()

    def reset(self) -> None:
        self.state = self.network.initial_state()

    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        mask, self.state = self.network.step(np.asarray(magnitudes, np.float32), self.state)
        return mask

    def batch_network(self) -> Any:
        return self.network

    def target_model(self) -> TargetModel | None:
        model = getattr(self.network, "model", None)  # a QuantizedNetwork's; fp32 has none
        return None if model is None else TargetModel(model.mode, model.cell, model.hidden)

    def describe(self) -> dict[str, Any]:
        from streamer.quant.memory import memory_report
        from streamer.target import load_target, memory_levels

        memory = memory_report(getattr(self.network, "model", self.params), memory_levels(load_target()))
        described = {"backend": self.name, "quant": self.quant, "weights_bytes": memory["weights_bytes"],
                     "weights_memory": memory["weights_memory"]}
        if "fp16" in getattr(self.network, "precision", {}).values():
            from streamer.quant.compiled import sum_kernel_status

            described["fp16_sum"] = sum_kernel_status()  # compiled or numpy, and why
        return described
