"""VerifyingBackend: run the bit-accurate emulator beside a device on the same frames.

The stream uses the device's mask; the emulator's mask is only compared with it. A frame
counts as mismatched when any of the 257 binary16 values differs in even one bit. At the first
mismatching frame only (the normal path costs nothing), the device's intermediates of that
frame are fetched (TRACE, docs/protocol.md) and compared with the emulator's, stepped again
from its state before the frame: `verify_first_mismatch_layer` names the first layer that
differs ("fc0", "rnn1", "rnn2", "fc1", "fc2/mask"), and `verify_layer_source` says "trace".
Where the device cannot trace (no TRACE support, a link error, an emulator without
`step_traced`) the layer stays "output", which says exactly what was compared, and
`verify_layer_source` says why.

Frames the link lost (fallback masks) are counted apart, as `verify_failed_frames`: their
all-ones mask says nothing about the device's arithmetic. After a device restart its
recurrent state starts again from zero, so the following frames differ: the report shows
them as mismatched, as docs/protocol.md says it must.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamer.backends.base import Backend, LastFrame, TargetModel
from streamer.backends.emulator import EmulatorBackend
from streamer.link.transport import LinkError

# TRACE tensors (streamer.link.messages.TRACE_TENSORS) -> the layer they belong to, in order.
TRACE_LAYERS = (("fc0", "fc0"), ("rnn1.h", "rnn1"), ("rnn1.c", "rnn1"), ("rnn2.h", "rnn2"),
                ("rnn2.c", "rnn2"), ("fc1", "fc1"), ("mask", "fc2/mask"))


def first_differing_layer(device: dict[str, np.ndarray], golden: dict[str, np.ndarray]) -> str | None:
    """The first layer whose traced tensors differ in any bit (binary16 masks compared as bits)."""
    for tensor, layer in TRACE_LAYERS:
        if tensor not in device and tensor not in golden:
            continue
        if tensor not in device or tensor not in golden:
            return layer
        got = device[tensor]
        want = f16_bits(golden[tensor]) if tensor == "mask" else np.asarray(golden[tensor])
        if got.shape != want.shape or got.tobytes() != want.astype(got.dtype).tobytes():
            return layer
    return None


def f16_bits(mask: np.ndarray) -> np.ndarray:
    """The binary16 bit patterns of a mask of binary16 values held as float32."""
    return np.asarray(mask, np.float32).astype(np.float16).view(np.uint16)


class VerifyingBackend(Backend):
    """Wraps a device backend and an emulator; returns the device's masks, counts differences."""

    name = "verify"

    def __init__(self, device: Backend, reference: Backend) -> None:
        self.device, self.reference = device, reference
        self._zero_counts()

    def _zero_counts(self) -> None:
        self.frames = 0
        self.compared_frames = 0
        self.failed_frames = 0
        self.mismatched_frames = 0
        self.first_mismatch_frame: int | None = None
        self.first_mismatch_bins: int | None = None
        self.max_abs_difference = 0.0
        self.first_mismatch_layer: str | None = None
        self.layer_source: str | None = None

    @classmethod
    def for_device(cls, device: Backend, model, quant: str | None) -> VerifyingBackend:
        """Pair `device` with an emulator for the same model and numeric mode."""
        target = device.target_model()
        mode = target.mode if target is not None else quant
        return cls(device, EmulatorBackend(model, quant=mode))

    @property
    def is_device(self) -> bool:
        return self.device.is_device  # the native library, verified too, is no device

    def last_frame(self) -> LastFrame:
        return self.device.last_frame()

    def target_model(self) -> TargetModel | None:
        return self.device.target_model()

    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        index = self.frames
        self.frames += 1
        mask = self.device.step(magnitudes)
        before = getattr(self.reference, "state", None) if self.first_mismatch_frame is None else None
        expected = self.reference.step(magnitudes)
        if self.device.last_frame().failed:
            self.failed_frames += 1
            return mask
        self.compared_frames += 1
        differing = f16_bits(mask) != f16_bits(expected)
        if differing.any():
            self.mismatched_frames += 1
            self.max_abs_difference = max(self.max_abs_difference,
                                          float(np.max(np.abs(mask - expected))))
            if self.first_mismatch_frame is None:
                self.first_mismatch_frame = index
                self.first_mismatch_bins = int(differing.sum())
                self._locate_layer(magnitudes, before)
        return mask

    def _locate_layer(self, magnitudes: np.ndarray, state) -> None:
        """Name the first differing layer of this (the first mismatching) frame."""
        self.first_mismatch_layer = "output"
        trace_device = getattr(self.device, "trace_last_frame", None)
        step_traced = getattr(getattr(self.reference, "network", None), "step_traced", None)
        if trace_device is None or step_traced is None or state is None:
            self.layer_source = "output only: no per-layer trace on one side"
            return
        try:
            device = trace_device()
        except LinkError as error:
            self.layer_source = f"output only: the device gave no trace ({error})"
            return
        golden = step_traced(np.asarray(magnitudes, np.float32), state)[2]
        layer = first_differing_layer(device, golden)
        if layer is None:
            self.layer_source = "output only: the traced layers agree"
        else:
            self.first_mismatch_layer, self.layer_source = layer, "trace"

    def reset(self) -> None:
        """A new stream: both sides restart from zero state, and so do the counts."""
        self.device.reset()
        self.reference.reset()
        self._zero_counts()

    def close(self) -> None:
        try:
            self.device.close()
        finally:
            self.reference.close()

    def report(self) -> dict[str, Any]:
        """The verification fields of a report."""
        return {
            "verify_frames": self.frames,
            "verify_compared_frames": self.compared_frames,
            "verify_failed_frames": self.failed_frames,
            "verify_mismatched_frames": self.mismatched_frames,
            "verify_first_mismatch_frame": self.first_mismatch_frame,
            "verify_first_mismatch_bins": self.first_mismatch_bins,
            "verify_first_mismatch_layer": self.first_mismatch_layer,
            "verify_layer_source": self.layer_source,
            "verify_max_abs_difference": self.max_abs_difference,
        }

    def describe(self) -> dict[str, Any]:
        return {**self.device.describe(), **self.report()}
