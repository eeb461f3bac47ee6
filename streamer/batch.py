"""Many streams through one network at once: the rolling batch behind `streamer eval --batch`.

A network's step is cut in three stages (`BatchNetwork`). The layers with state step B
independent streams in one call (each layer one matrix-matrix product over the streams, every
stream with its own state rows). The layers without state, before and after them, run over
STAGE_FRAMES frames of one stream at once: a bigger product than a step's, and none of it
repeated in a step that has few streams. The rolling batch keeps its B slots full over a dataset
of uneven lengths: a slot freed by a stream that ended is refilled with the next stream, its
state rows zeroed as at the start of a stream. Streams enter in the order given (`streamer
eval` gives the longest first); when several end on the same step, the freed slots are refilled
in ascending slot order. Per stream the masks are bit-identical to stepping that stream alone in
fp16, int8 and mixed (their sums are exact, or sequential per row, so no row depends on the
others). In fp32 they agree within float32 rounding (tests/test_batch.py states the bound):
BLAS may order a matrix-matrix product's sums differently from a matrix-vector product's, and
differently again for a different number of rows, so fp32 results depend, in the last bits, on
which streams share a step.

`enhance_many` wraps the batch in the engine's whole-signal STFT (`engine.stream_spectra`,
`engine.overlap_add_spectra`), which computes exactly the frames and the output that
streaming the signal hop by hop would: the enhanced audio is the same as `enhance_signal`'s.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from streamer.engine import N_BINS, overlap_add_spectra, stream_spectra


class BatchNetwork(Protocol):
    """What the rolling batch needs of a network (Fp32Network and QuantizedNetwork have it): the
    frame's step cut in three. `front` and `back` hold the layers with no state; the batch runs
    them over many frames of one stream at once (a bigger product, and none of it repeated in a
    step that has few streams). `recurrent` holds the layers with state and steps B streams,
    each with its own state rows. back(recurrent(front(frames))) is `step`'s mask, bit for bit
    in the quantised modes (every layer's result for a row depends on that row alone) and
    within float32 rounding in fp32.
    """

    def initial_state(self, streams: int | None = None) -> list[np.ndarray]: ...

    def front(self, magnitudes: np.ndarray) -> np.ndarray:
        """(frames, N_BINS) float32 magnitudes -> (frames, K): what `recurrent` takes per frame."""
        ...

    def recurrent(self, inputs: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(B, K) inputs of B streams -> their (B, M) outputs and the next state."""
        ...

    def back(self, outputs: np.ndarray) -> np.ndarray:
        """(frames, M) outputs of `recurrent` -> (frames, N_BINS) float32 masks."""
        ...


# Frames of one stream that `front` and `back` take at once: products of 64 rows run near the
# BLAS peak, and the front's output of every slot (64 x 4 kB for an H=256 LSTM) stays small.
STAGE_FRAMES = 64


@dataclass
class Stream:
    """One stream's frames to run: `magnitudes` (frames, N_BINS) float32, under a caller's `key`."""

    key: Any
    magnitudes: np.ndarray


@dataclass
class FinishedStream:
    """A stream's masks (frames, N_BINS) float32 and, per frame, its share of the network time:
    the time of the batch step that computed the frame divided by the streams in that step, plus
    the stream's own `front` and `back` time spread evenly over its frames."""

    key: Any
    masks: np.ndarray
    network_s: np.ndarray


@dataclass
class _Slot:
    stream: Stream
    network_s: np.ndarray
    outputs: np.ndarray | None = None  # recurrent's output per frame, made at the first step
    inputs: np.ndarray | None = None   # front's output for frames first_input ..
    first_input: int = 0
    own_s: float = 0.0                 # front and back
    frame: int = 0

    def next_input(self, network: BatchNetwork) -> np.ndarray:
        row = self.frame - self.first_input
        if self.inputs is None or row == len(self.inputs):
            start = time.perf_counter()
            self.inputs = network.front(self.stream.magnitudes[self.frame:self.frame + STAGE_FRAMES])
            self.own_s += time.perf_counter() - start
            self.first_input, row = self.frame, 0
        return self.inputs[row]

    def finish(self, network: BatchNetwork) -> FinishedStream:
        frames = len(self.network_s)
        masks = np.empty((frames, N_BINS), np.float32)
        start = time.perf_counter()
        for first in range(0, frames, STAGE_FRAMES):  # none for a stream of no frames
            masks[first:first + STAGE_FRAMES] = network.back(self.outputs[first:first + STAGE_FRAMES])
        self.own_s += time.perf_counter() - start
        return FinishedStream(self.stream.key, masks, self.network_s + self.own_s / max(frames, 1))


@dataclass
class RollingBatch:
    """B slots over one network; `run(streams)` yields each stream as it finishes.

    `fills` records (step, slot, key) for every stream placed, the schedule the tests check.
    """

    network: BatchNetwork
    slots: int
    fills: list[tuple[int, int, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"a batch needs at least one slot, got {self.slots}")

    def run(self, streams: Iterable[Stream]) -> Iterator[FinishedStream]:
        pending = iter(streams)
        state = self.network.initial_state(self.slots)
        slots: list[_Slot | None] = [None] * self.slots
        step = 0

        def fill(index: int) -> bool:
            stream = next(pending, None)
            if stream is None:
                slots[index] = None
                return False
            slots[index] = _Slot(stream, np.zeros(len(stream.magnitudes)))
            for tensor in state:
                tensor[index] = 0
            self.fills.append((step, index, stream.key))
            return True

        for index in range(self.slots):
            if not fill(index):
                break
        while True:
            # A stream with no frames left (or none at all) finishes before the next step.
            for index, slot in enumerate(slots):
                while slot is not None and slot.frame == len(slot.network_s):
                    yield slot.finish(self.network)
                    fill(index)
                    slot = slots[index]
            active = [index for index, slot in enumerate(slots) if slot is not None]
            if not active:
                return
            whole = len(active) == self.slots
            rows = slice(None) if whole else np.asarray(active)
            x = np.stack([slots[i].next_input(self.network) for i in active])
            sub_state = state if whole else [tensor[rows] for tensor in state]
            start = time.perf_counter()
            outputs, sub_state = self.network.recurrent(x, sub_state)
            share = (time.perf_counter() - start) / len(active)
            if whole:
                state = sub_state
            else:
                for tensor, new in zip(state, sub_state, strict=True):
                    tensor[rows] = new
            for row, index in enumerate(active):
                slot = slots[index]
                if slot.outputs is None:
                    slot.outputs = np.empty((len(slot.network_s), outputs.shape[1]), outputs.dtype)
                slot.outputs[slot.frame] = outputs[row]
                slot.network_s[slot.frame] = share
                slot.frame += 1
            step += 1


@dataclass
class EnhancedStream:
    """One signal enhanced in a batch: the output (the input's length, clipped to [-1, 1] as
    `enhance_signal`'s) and per frame the host seconds it cost: its share of the network's batch
    steps plus its own analysis and synthesis spread evenly over its frames."""

    key: Any
    enhanced: np.ndarray
    host_s: np.ndarray


def enhance_many(network: BatchNetwork, signals: Iterable[tuple[Any, np.ndarray]], batch: int,
                 mask_floor: float | None = None) -> Iterator[EnhancedStream]:
    """Enhance `(key, signal)` pairs through `network` in a rolling batch of `batch` slots.

    Signals are analysed as the batch takes them, so at most `batch` + 1 are held at once:
    each its samples (128 kB per second of audio), float32 magnitudes (164 kB/s) and the
    recurrent layers' outputs (up to 164 kB/s), and each slot `front`'s output for 64 frames
    (256 kB for an fp32 H=256 LSTM).
    `mask_floor` floors the masks as `pipeline.Denoiser` does with an attenuation limit.
    """
    held: dict[int, tuple[np.ndarray, float]] = {}
    floor = None if mask_floor is None else np.float32(mask_floor)

    def analysed() -> Iterator[Stream]:
        for number, (key, signal) in enumerate(signals):
            start = time.perf_counter()
            magnitudes = np.abs(stream_spectra(signal)).astype(np.float32)
            held[number] = (np.asarray(signal), time.perf_counter() - start)
            yield Stream((number, key), magnitudes)

    rolling = RollingBatch(network, batch)
    for done in rolling.run(analysed()):
        number, key = done.key
        signal, analysis_s = held.pop(number)
        start = time.perf_counter()
        masks = done.masks if floor is None else np.maximum(done.masks, floor)
        # The spectra again rather than kept: the same numbers (the analysis is deterministic),
        # and a stream in the batch holds 2 kB per frame (magnitudes, masks) instead of 6 kB.
        enhanced = np.clip(overlap_add_spectra(stream_spectra(signal) * masks, len(signal)), -1.0, 1.0)
        own_s = analysis_s + time.perf_counter() - start
        yield EnhancedStream(key, enhanced, done.network_s + own_s / max(len(masks), 1))
