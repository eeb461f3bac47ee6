"""VerifyingBackend: run the bit-accurate emulator beside a device on the same frames.

The stream uses the device's mask; the emulator's mask is only compared with it. A frame
counts as mismatched when any of the 257 binary16 values differs in even one bit. The device
returns nothing but the mask, so the first differing *layer* cannot be located from the
device's side: `verify_first_mismatch_layer` is "output" whenever a mismatch is found, which
says exactly what was compared and no more.

Frames the link lost (fallback masks) are counted apart, as `verify_failed_frames`: their
all-ones mask says nothing about the device's arithmetic. After a device restart its
recurrent state starts again from zero, so the following frames differ: the report shows
them as mismatched, as docs/protocol.md says it must.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamer.backends.base import Backend
from streamer.backends.emulator import EmulatorBackend


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

    @classmethod
    def for_device(cls, device: Backend, model, quant: str | None) -> VerifyingBackend:
        """Pair `device` with an emulator for the same model and numeric mode."""
        mode = getattr(device, "quant", None) or quant
        return cls(device, EmulatorBackend(model, quant=mode))

    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        index = self.frames
        self.frames += 1
        mask = self.device.step(magnitudes)
        expected = self.reference.step(magnitudes)
        if getattr(self.device, "last_failed", False):
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
        return mask

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
            # The device reports only its output: no layer-by-layer comparison is possible.
            "verify_first_mismatch_layer": None if self.first_mismatch_frame is None else "output",
            "verify_max_abs_difference": self.max_abs_difference,
        }

    def describe(self) -> dict[str, Any]:
        return {**self.device.describe(), **self.report()}
