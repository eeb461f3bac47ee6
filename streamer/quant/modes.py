"""The numeric modes, written once: their names, what each layer is stored in, their wire code.

Adding a mode is a row here, its kernels (Python `quant/network.py`, C `firmware/src/*`) and
their tests; the CLI's help and errors, the link, the blob, the cost model and the sweep all
read this table.

    fp32   the reference: float32 everywhere (host emulator only, never on the target)
    fp16   every layer IEEE binary16
    int8   every layer 8-bit (weights per output row, symmetric)
    mixed  the recurrent layers 8-bit (cell state int16), the dense layers and the mask binary16
"""

from __future__ import annotations

DENSE_LAYERS = ("fc0", "fc1", "fc2")
RECURRENT_LAYERS = ("rnn1", "rnn2")
LAYERS = ("fc0", "rnn1", "rnn2", "fc1", "fc2")

MODES = ("fp32", "fp16", "int8", "mixed")
QUANTIZED_MODES = ("fp16", "int8", "mixed")          # what the target (and a device) runs
# Per mode, the storage of each layer: "fp32", "fp16" or "int8".
LAYER_PRECISION = {
    "fp32": {layer: "fp32" for layer in LAYERS},
    "fp16": {layer: "fp16" for layer in LAYERS},
    "int8": {layer: "int8" for layer in LAYERS},
    "mixed": {layer: "int8" if layer in RECURRENT_LAYERS else "fp16" for layer in LAYERS},
}
# The mode's code in the device blob's header and the link's MODEL_END reply (docs/protocol.md).
WIRE_CODES = {"fp16": 1, "int8": 2, "mixed": 3}
# The mode's bit in INFO's supported-modes mask.
INFO_BITS = {"fp16": 0, "int8": 1, "mixed": 2}


def modes_text(modes: tuple[str, ...] = MODES, last: str = "or") -> str:
    """'fp32, fp16, int8 or mixed': the modes as the help and errors name them."""
    return modes[0] if len(modes) == 1 else f"{', '.join(modes[:-1])} {last} {modes[-1]}"


class ModeError(ValueError):
    """A numeric mode that does not exist, or does not run where it was asked to."""


def check_mode(mode: str, allowed: tuple[str, ...] = MODES, where: str = "") -> str:
    """`mode` if it is one of `allowed`, else ModeError naming them."""
    if mode not in allowed:
        place = f" {where}" if where else ""
        raise ModeError(f"unknown numeric mode {mode!r}{place}; expected {modes_text(allowed)}"
                        if mode not in MODES else
                        f"{mode} does not run{place}: use {modes_text(allowed)}")
    return mode


def layer_precision(mode: str, layer: str) -> str:
    """Storage of `layer` ("fp32", "fp16" or "int8") in numeric `mode`."""
    return LAYER_PRECISION[check_mode(mode)][layer]
