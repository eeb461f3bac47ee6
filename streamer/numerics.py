"""The network's numerics for a numeric mode: the FP32 reference or the bit-accurate quantised
network (docs/arithmetic-contract.md). The emulator runs what this builds; a device link
quantises a model exactly the same way, so that `--verify` compares like with like."""

from __future__ import annotations

from streamer.model.fp32 import Fp32Network
from streamer.model.params import ModelError
from streamer.quant.modes import modes_text


def build_network(model, quant: str | None = None):
    """The numpy network for `model` (FP32 params or a QuantizedModel) in numeric mode `quant`.

    FP32 params quantise on the fly: fp16 needs nothing more, int8 and mixed need the
    calibration the model file carries. A quantised file runs in its own mode only.
    """
    from streamer.quant.network import QuantizedModel, QuantizedNetwork, quantize

    if isinstance(model, QuantizedModel):
        if quant not in (None, model.mode):
            raise ModelError(f"this model file is quantised for {model.mode}; it cannot run as "
                               f"{quant} (quantise the FP32 model for that mode instead)")
        return QuantizedNetwork(model)
    quant = quant or "fp32"
    if quant == "fp32":
        return Fp32Network(model)
    if quant == "fp16":
        return QuantizedNetwork(quantize(model, "fp16", None))
    if quant in ("int8", "mixed"):
        if not model.calibration:
            raise ModelError(f"--quant {quant} needs calibration this model does not carry: run "
                               f"`streamer quantize MODEL --quant {quant} --calib DIR -o OUT.tdn` and "
                               f"use OUT.tdn")
        return QuantizedNetwork(quantize(model, quant, model.calibration["ranges"], model.calibration))
    raise ModelError(f"unknown numeric mode {quant!r}; expected {modes_text()}")
