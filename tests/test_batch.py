"""Many streams at once (streamer/batch.py): per stream bit-identical to stepping it alone in
fp16, int8 and mixed, within a stated bound in fp32; the whole-signal STFT equal to streaming;
the rolling batch's refill order; `streamer eval --batch` scoring exactly as one at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import random_params

from streamer.backends.emulator import EmulatorBackend
from streamer.batch import STAGE_FRAMES, RollingBatch, Stream, enhance_many
from streamer.engine import overlap_add_spectra, stream_spectra
from streamer.eval_runner import chunks, longest_first
from streamer.model.fp32 import Fp32Network
from streamer.pipeline import Denoiser, enhance_signal, mask_floor
from streamer.quant import arith, compiled
from streamer.quant.network import QuantizedNetwork, quantize
from streamer.report import throughput_x_realtime

F32 = np.float32
RANGES = {"fc0.input": 6.0, "rnn1.input": 3.0, "rnn1.cell": 4.0, "rnn2.cell": 4.0, "fc2.input": 3.0}
# Uneven streams, more than the batch's slots, ending on different steps.
LENGTHS = (23, 7, 41, 1, 16, 30, 9)


def _streams(lengths=LENGTHS, seed: int = 0, specials: bool = True) -> list[Stream]:
    rng = np.random.default_rng(seed)
    streams = []
    for key, frames in enumerate(lengths):
        mags = np.abs(rng.standard_normal((frames, 257))) * rng.uniform(0.05, 8.0)
        if specials and frames > 5:  # the quantised input stage; fp32 has none (NaN stays NaN)
            mags[2, ::7] = np.nan     # the input stage: NaN -> 0
            mags[4, ::5] = 1e9        # saturates at 65504
        streams.append(Stream(key, mags.astype(F32)))
    return streams


@pytest.fixture(params=["compiled", "numpy"])
def sum_kernel(request, monkeypatch) -> str:
    """Runs a test with the fp16 sums of networks built in it done by the compiled kernel, then
    by numpy (streamer/quant/compiled.py): both must give the contract's bits."""
    loaded = compiled.load(request.param)
    monkeypatch.setattr(compiled, "_loaded", loaded)
    assert (loaded[0] is not None) == (request.param == "compiled")
    return request.param


def _alone(network, stream: Stream) -> np.ndarray:
    state, masks = network.initial_state(), []
    for frame in stream.magnitudes:
        mask, state = network.step(frame, state)
        masks.append(mask)
    return np.array(masks, F32).reshape(len(stream.magnitudes), 257)


def _batched(network, streams: list[Stream], slots: int) -> dict:
    return {done.key: done.masks for done in RollingBatch(network, slots).run(streams)}


@pytest.mark.parametrize("hidden", [128, 256])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["fp16", "int8", "mixed"])
def test_batched_streams_are_bit_identical_to_each_stream_alone(mode: str, cell: str, hidden: int,
                                                                sum_kernel: str) -> None:
    network = QuantizedNetwork(quantize(random_params(cell, hidden, seed=hidden + len(cell)), mode, RANGES))
    streams = _streams(seed=hidden)
    for slots in (3, len(LENGTHS) + 2):  # refilled slots; more slots than streams
        batched = _batched(network, streams, slots)
        assert sorted(batched) == list(range(len(LENGTHS)))
        for stream in streams:
            alone = _alone(network, stream)
            assert np.array_equal(batched[stream.key].view(np.uint32), alone.view(np.uint32)), (
                f"{mode} {cell} H={hidden} stream {stream.key} differs in a batch of {slots} "
                f"({sum_kernel} sum)")


@pytest.mark.parametrize(("mode", "cell"), [("fp16", "gru"), ("mixed", "lstm"), ("int8", "lstm")])
def test_front_and_back_in_chunks_of_frames_are_bit_identical(mode: str, cell: str) -> None:
    """Streams longer than STAGE_FRAMES: `front` is called again when a slot's chunk runs out
    (at frame 64, 128), `back` over the outputs chunk by chunk; no chunk is longer than 64."""
    network = QuantizedNetwork(quantize(random_params(cell, 128, seed=3), mode, RANGES))
    chunk_rows = {"front": [], "back": []}

    class Spy:
        def __getattr__(self, name):
            return getattr(network, name)

        def front(self, magnitudes):
            chunk_rows["front"].append(len(magnitudes))
            return network.front(magnitudes)

        def back(self, outputs):
            chunk_rows["back"].append(len(outputs))
            return network.back(outputs)

    streams = _streams((STAGE_FRAMES, STAGE_FRAMES + 1, 2 * STAGE_FRAMES + 1, 0, 2), seed=4)
    batched = _batched(Spy(), streams, 2)
    for stream in streams:
        assert np.array_equal(batched[stream.key].view(np.uint32), _alone(network, stream).view(np.uint32))
    assert sorted(chunk_rows["front"]) == sorted(chunk_rows["back"]) == [1, 1, 2, 64, 64, 64, 64]


# fp32: a stream in a batch goes through matrix-matrix products, whose sums BLAS may order (and
# fuse) differently from the matrix-vector product of a stream alone: over B streams in a step,
# and over 64 frames at once in `front` and `back`. Each sum then differs by float32 rounding
# (relative 2^-24 per operation); the pre-activations of these random streams reach about 100,
# so their masks differ by up to 1.5e-5 (measured: 4.4e-6 LSTM, 1.5e-5 GRU; 2.4e-7 while every
# layer ran in the step). The bound leaves a factor of about 7 for other BLAS builds.
FP32_MASK_BOUND = 1e-4


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fp32_batch_within_float32_rounding(cell: str) -> None:
    network = Fp32Network(random_params(cell, 128, seed=5, scale=0.2))
    streams = _streams((120, 60, 90), seed=9, specials=False)
    batched = _batched(network, streams, 2)
    worst = max(float(np.max(np.abs(batched[s.key] - _alone(network, s)))) for s in streams)
    assert worst <= FP32_MASK_BOUND


def test_sequential_dot_is_the_contracts_sequential_sum(sum_kernel: str) -> None:
    """SequentialDot == dot_f32_sequential bit for bit, on terms whose sum depends on the order
    (magnitudes over 40 binades, both signs), for one input and for a batch."""
    rng = np.random.default_rng(2)
    rows, width = 37, 300
    weights = arith.f16(rng.standard_normal((rows, width)) * np.exp2(rng.integers(-20, 15, (rows, width))))
    start = arith.f16(rng.standard_normal((rows, 2)) * 100)
    x = arith.f16(rng.standard_normal((5, width)) * np.exp2(rng.integers(-10, 10, (5, width))))
    dot = arith.SequentialDot(weights, start)
    expected = np.stack([arith.dot_f32_sequential(weights, row, start) for row in x])
    assert np.array_equal(dot(x[0]).view(np.uint32), expected[0].view(np.uint32))
    assert np.array_equal(dot(x).view(np.uint32), expected.view(np.uint32))
    # Pairwise summation of the same terms gives a different answer: the data is order-sensitive.
    terms = np.concatenate([start, weights * x[0]], axis=1)
    assert not np.array_equal(np.sum(terms, axis=1, dtype=F32), expected[0])


def test_the_order_check_rejects_a_sum_that_is_not_sequential() -> None:
    """The probe that lets SequentialDot use np.add.reduce: it accepts numpy's leading-axis
    reduce and rejects a pairwise sum of the same terms."""

    def pairwise(block, axis, dtype):
        while len(block) > 1:
            half = len(block) // 2
            paired = block[:half] + block[half:2 * half]
            block = np.concatenate([paired, block[2 * half:]]) if len(block) % 2 else paired
        return block[0]

    assert arith.sequential_reduce_holds((65, 3, 40))
    assert not arith.sequential_reduce_holds((65, 3, 40), reduce=pairwise)
    # One row of one stream: the terms lie contiguous and numpy sums them pairwise. A single
    # probe draw once passed this by chance; enough draws for 64 sums catch it.
    assert not arith.sequential_reduce_holds((259, 1, 1))


def test_explicit_loop_fallback_gives_the_same_sum(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    block = (rng.standard_normal((50, 2, 30)) * np.exp2(rng.integers(-20, 20, (50, 2, 30)))).astype(F32)
    fast = arith._sum_in_order(block)
    monkeypatch.setitem(arith._REDUCE_CHECKED, block.shape, False)  # as if numpy's order failed the probe
    assert np.array_equal(arith._sum_in_order(block).view(np.uint32), fast.view(np.uint32))


@pytest.mark.parametrize("samples", [0, 1, 99, 100, 101, 299, 300, 399, 400, 1234, 4000])
def test_whole_signal_stft_is_bit_identical_to_streaming(samples: int) -> None:
    """stream_spectra and overlap_add_spectra compute exactly what StreamingStft yields and
    emits when enhance_signal streams the signal (the same floats, added in the same order)."""
    rng = np.random.default_rng(samples)
    signal = rng.standard_normal(samples) * 0.3
    spectra = stream_spectra(signal)
    masks = rng.random(spectra.shape).astype(F32)

    class Recorder(EmulatorBackend):
        frames: list = []

        def step(self, magnitudes):
            self.frames.append(magnitudes)
            return masks[len(self.frames) - 1]

    backend = Recorder(random_params("gru", 128), "fp16")
    backend.frames = []
    streamed = enhance_signal(Denoiser(backend), signal)
    assert len(backend.frames) == len(spectra)
    assert np.array_equal(np.abs(spectra).astype(F32), np.array(backend.frames).reshape(spectra.shape))
    offline = np.clip(overlap_add_spectra(spectra * masks, samples), -1.0, 1.0)
    assert offline.shape == streamed.shape
    assert np.array_equal(offline, streamed)


@pytest.mark.parametrize("atten_lim_db", [None, 12.0])
def test_enhance_many_equals_streaming_each_signal(atten_lim_db) -> None:
    params = random_params("lstm", 128, seed=7, scale=0.3)
    rng = np.random.default_rng(8)
    signals = [rng.standard_normal(n) * 0.2 for n in (1600, 333, 6600, 0, 900)]  # 6600: 68 frames
    backend = EmulatorBackend(params, "fp16")
    outputs = {item.key: item for item in enhance_many(backend.batch_network(), enumerate(signals), 2,
                                                       mask_floor(atten_lim_db))}
    for key, signal in enumerate(signals):
        backend.reset()
        alone = enhance_signal(Denoiser(backend, atten_lim_db=atten_lim_db), signal)
        assert np.array_equal(outputs[key].enhanced, alone)
        assert len(outputs[key].host_s) == len(stream_spectra(signal))
        assert np.all(outputs[key].host_s > 0)


class Passthrough:
    """A network's front and back that hand the frames on unchanged: the schedule tests' doubles."""

    def front(self, magnitudes):
        return magnitudes

    def back(self, outputs):
        return outputs


def test_rolling_refill_order_is_deterministic() -> None:
    """Hand-worked schedule for frames (3, 1, 2, 5, 1) in 2 slots: a freed slot takes the next
    stream before the next step; slots freed on the same step refill lowest first."""

    class Counter(Passthrough):  # its mask is the frame's own value: the schedule is all we look at
        def initial_state(self, streams=None):
            return [np.zeros((streams, 1), F32)]

        def recurrent(self, x, state):
            return x, [state[0] + 1]

    streams = [Stream(name, np.full((frames, 257), i, F32))
               for i, (name, frames) in enumerate(zip("abcde", (3, 1, 2, 5, 1), strict=True))]
    batch = RollingBatch(Counter(), 2)
    finished = [done.key for done in batch.run(streams)]
    assert batch.fills == [(0, 0, "a"), (0, 1, "b"), (1, 1, "c"), (3, 0, "d"), (3, 1, "e")]
    assert finished == ["b", "a", "c", "e", "d"]
    again = RollingBatch(Counter(), 2)
    assert [done.key for done in again.run(streams)] == finished and again.fills == batch.fills


def test_a_refilled_slot_starts_from_a_zero_state() -> None:
    """A stream placed in a freed slot must not inherit the state of the stream before it: every
    stream's state here counts its own frames."""

    class FrameCounter(Passthrough):
        def initial_state(self, streams=None):
            return [np.zeros((streams, 257), F32)]

        def recurrent(self, x, state):
            count = state[0] + 1
            return count, [count]

    streams = [Stream(k, np.zeros((n, 257), F32)) for k, n in enumerate((4, 2, 3, 1, 5))]
    for done in RollingBatch(FrameCounter(), 2).run(streams):
        assert np.array_equal(done.masks[:, 0], np.arange(1, len(done.masks) + 1, dtype=F32))


def test_a_batch_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        RollingBatch(Fp32Network(random_params("gru", 128)), 0)


def test_throughput_hand_computed() -> None:
    assert throughput_x_realtime(10.0, 2.0, 1) == 5.0
    assert throughput_x_realtime(10.0, 2.0, 2) == 10.0  # two workers side by side
    assert throughput_x_realtime(10.0, 0.0, 1) is None


def test_chunks_keep_every_worker_busy_and_stay_short() -> None:
    tasks = [(f"n{i}", f"c{i}", None) for i in range(10)]
    assert [len(c) for c in chunks(tasks, 2, 16)] == [5, 5]
    assert [len(c) for c in chunks(tasks, 1, 2)] == [8, 2]      # at most 4 batches per piece
    assert [len(c) for c in chunks(tasks, 3, 1)] == [4, 4, 2]
    assert [t for c in chunks(tasks, 3, 1) for t in c] == tasks  # in order, nothing lost or repeated
    assert chunks([], 2, 4) == []


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple:
    """Five pairs of uneven lengths (0.7 to 2.3 s), made here."""
    import soundfile
    from conftest import speechlike

    root = tmp_path_factory.mktemp("pairs")
    (root / "noisy").mkdir()
    (root / "clean").mkdir()
    rng = np.random.default_rng(0)
    for i, seconds in enumerate((1.3, 0.7, 2.3, 1.0, 1.9)):
        clean = speechlike(seconds, 16_000, seed=i)
        noisy = clean + 0.05 * rng.standard_normal(len(clean))
        soundfile.write(root / "clean" / f"f{i}.wav", clean, 16_000, subtype="PCM_16")
        soundfile.write(root / "noisy" / f"f{i}.wav", noisy, 16_000, subtype="PCM_16")
    return root / "noisy", root / "clean"


def _eval(pairs, tmp_path, random_model, name: str, *extra: str, quant: str = "fp16") -> tuple[dict, dict]:
    report, out = tmp_path / f"{name}.json", tmp_path / name
    subprocess.run([sys.executable, "-m", "streamer", "eval", "--noisy", str(pairs[0]), "--clean",
                    str(pairs[1]), "--model", str(random_model), "--quant", quant, "--report",
                    str(report), "--out-dir", str(out), *extra], check=True, capture_output=True)
    data = json.loads(report.read_text())
    return data, {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_eval_batch_scores_and_audio_equal_one_at_a_time(pairs, tmp_path, random_model) -> None:
    alone, alone_audio = _eval(pairs, tmp_path, random_model, "alone", "--batch", "1", "--jobs", "1")
    batched, batched_audio = _eval(pairs, tmp_path, random_model, "batched", "--batch", "3", "--jobs", "1")
    pooled, pooled_audio = _eval(pairs, tmp_path, random_model, "pooled", "--batch", "2", "--jobs", "2")
    assert (alone["batch"], batched["batch"], pooled["batch"]) == (1, 3, 2)
    for other, audio in ((batched, batched_audio), (pooled, pooled_audio)):
        assert audio == alone_audio  # the enhanced files, byte for byte
        for a, b in zip(alone["files"], other["files"], strict=True):
            assert (a["file"], a["pesq_wb"], a["stoi"], a["frames"]) == (b["file"], b["pesq_wb"], b["stoi"],
                                                                       b["frames"])
        assert other["operating_points"] == alone["operating_points"]
        assert other["throughput_x_realtime"] > 0
    assert batched["throughput_x_realtime"] == batched["realtime_factor"]  # one job


def test_eval_fp32_batch_scores_within_rounding_of_one_at_a_time(pairs, tmp_path, random_model) -> None:
    alone, _ = _eval(pairs, tmp_path, random_model, "alone32", "--batch", "1", "--jobs", "1", quant="fp32")
    batched, _ = _eval(pairs, tmp_path, random_model, "batched32", "--batch", "3", "--jobs", "1",
                       quant="fp32")
    for a, b in zip(alone["files"], batched["files"], strict=True):
        assert a["file"] == b["file"]
        assert abs(a["pesq_wb"] - b["pesq_wb"]) <= 1e-4 and abs(a["stoi"] - b["stoi"]) <= 1e-6


def test_longest_first_orders_by_duration_at_each_files_own_rate(tmp_path) -> None:
    import soundfile

    def wav(name: str, seconds: float, rate: int) -> Path:
        path = tmp_path / name
        soundfile.write(path, np.zeros(int(seconds * rate)), rate, subtype="PCM_16")
        return path

    short = wav("a_short.wav", 1.0, 16_000)
    narrow = wav("b_narrow.wav", 2.0, 8_000)     # 16000 samples, as many as a_short's, but 2 s
    tie_first = wav("c_tie.wav", 1.5, 16_000)
    tie_second = wav("d_tie.wav", 1.5, 48_000)   # the same 1.5 s: the given order breaks the tie
    corrupt = tmp_path / "e_corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    missing = tmp_path / "f_missing.wav"
    tasks = [(p, p, None) for p in (corrupt, short, tie_first, missing, narrow, tie_second)]
    assert [t[0].name for t in longest_first(tasks)] == [
        "b_narrow.wav", "c_tie.wav", "d_tie.wav", "a_short.wav", "e_corrupt.wav", "f_missing.wav"]
    assert longest_first([]) == []


def test_eval_batch_takes_the_longest_files_first(pairs, random_model) -> None:
    """Durations 1.3, 0.7, 2.3, 1.0, 1.9 s in 3 slots: in name order f1 (0.7 s) would end first;
    longest first the batch starts with f2, f4, f0, and f0 ends first. The report keeps name order."""
    from streamer.evaluate import evaluate

    finished: list[str] = []
    result = evaluate(pairs[0], pairs[1], model=random_model, quant="fp16", jobs=1, batch=3,
                      on_file=lambda item, done, total: finished.append(item.input.name))
    assert finished[0] == "f0.wav" and sorted(finished) == [f"f{i}.wav" for i in range(5)]
    assert [r.input.name for r in result.files] == [f"f{i}.wav" for i in range(5)]


def test_batch_on_a_device_backend_is_a_clear_error(pairs, random_model) -> None:
    proc = subprocess.run([sys.executable, "-m", "streamer", "eval", "--noisy", str(pairs[0]), "--clean",
                           str(pairs[1]), "--model", str(random_model), "--quant", "fp16",
                           "--backend", "sim", "--batch", "4"], capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--batch 4 needs a backend that steps many streams" in lines[0]
