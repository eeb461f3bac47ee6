"""NativeBackend: the network in this process through libtdn (streamer/native.py), the firmware's
own C built for the host. Each step takes the frame's magnitudes through the contract's input
stage to binary16 (as the link backend sends them) and returns the library's binary16 mask as
float32: the same bits as the emulator and the firmware (`--verify` counts any difference)."""

from __future__ import annotations

from typing import Any

import numpy as np

from streamer.backends.base import Backend, BackendError, TargetModel
from streamer.backends.link import device_model, magnitude_bits, mask_values


class NativeBackend(Backend):
    """The QuantizedModel for `quant` as a TDNB blob in one libtdn instance."""

    name = "native"

    def __init__(self, model, quant: str | None = None, library: str | None = None) -> None:
        from streamer.link.blob import encode_blob
        from streamer.native import NativeError, NativeModel

        self.model = device_model(model, quant)
        self.quant = self.model.mode
        try:
            self.native = NativeModel(encode_blob(self.model), library)
        except NativeError as error:
            raise BackendError(str(error)) from None

    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        return mask_values(self.native.network(magnitude_bits(magnitudes)))

    def reset(self) -> None:
        self.native.reset()

    def close(self) -> None:
        self.native.close()

    def target_model(self) -> TargetModel:
        return TargetModel(self.model.mode, self.model.cell, self.model.hidden)

    def describe(self) -> dict[str, Any]:
        from streamer.quant.memory import memory_report
        from streamer.target import load_target, memory_levels

        memory = memory_report(self.model, memory_levels(load_target()))
        return {"backend": self.name, "quant": self.quant, "weights_bytes": memory["weights_bytes"],
                "weights_memory": memory["weights_memory"], "blob_bytes": self.native.info()["blob_bytes"]}
