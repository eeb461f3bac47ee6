"""Many streams through one network at once: the rolling batch behind `streamer eval --batch`.

A network steps B independent streams in one call (each layer one matrix-matrix product over
the streams, every stream with its own state rows; see `QuantizedNetwork.step`). The rolling
batch keeps its B slots full over a dataset of uneven lengths: a slot freed by a stream that
ended is refilled with the next stream, its state rows zeroed as at the start of a stream.
Streams enter in the order given; when several end on the same step, the freed slots are
refilled in ascending slot order. Per stream the masks are bit-identical to stepping that
stream alone in fp16, int8 and mixed (their sums are exact, or sequential per row). In fp32
they agree within float32 rounding (tests/test_batch.py states the bound): BLAS may order a
matrix-matrix product's sums differently from a matrix-vector product's, and differently
again for a different number of rows, so fp32 results depend, in the last bits, on which
streams share a step.

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
    """What the rolling batch needs of a network (Fp32Network and QuantizedNetwork have it)."""

    def initial_state(self, streams: int | None = None) -> list[np.ndarray]: ...

    def step(self, magnitudes: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        ...


@dataclass
class Stream:
    """One stream's frames to run: `magnitudes` (frames, N_BINS) float32, under a caller's `key`."""

    key: Any
    magnitudes: np.ndarray


@dataclass
class FinishedStream:
    """A stream's masks (frames, N_BINS) float32 and, per frame, its share of the network time:
    the time of the batch step that computed the frame divided by the streams in that step."""

    key: Any
    masks: np.ndarray
    network_s: np.ndarray


@dataclass
class _Slot:
    stream: Stream
    masks: np.ndarray
    network_s: np.ndarray
    frame: int = 0


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
            frames = len(stream.magnitudes)
            slots[index] = _Slot(stream, np.empty((frames, N_BINS), np.float32), np.zeros(frames))
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
                while slot is not None and slot.frame == len(slot.masks):
                    yield FinishedStream(slot.stream.key, slot.masks, slot.network_s)
                    fill(index)
                    slot = slots[index]
            active = [index for index, slot in enumerate(slots) if slot is not None]
            if not active:
                return
            whole = len(active) == self.slots
            rows = slice(None) if whole else np.asarray(active)
            x = np.stack([slots[i].stream.magnitudes[slots[i].frame] for i in active])
            sub_state = state if whole else [tensor[rows] for tensor in state]
            start = time.perf_counter()
            masks, sub_state = self.network.step(x, sub_state)
            share = (time.perf_counter() - start) / len(active)
            if whole:
                state = sub_state
            else:
                for tensor, new in zip(state, sub_state, strict=True):
                    tensor[rows] = new
            for row, index in enumerate(active):
                slot = slots[index]
                slot.masks[slot.frame] = masks[row]
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
    each its samples, float32 magnitudes and masks (about 330 kB per second of audio).
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
