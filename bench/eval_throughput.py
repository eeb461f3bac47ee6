"""Benchmark: evaluation throughput, single stream against batched streams, same run.

    python bench/eval_throughput.py [--model PATH] [--batches 1,2,4,8,16,32,64] [--frames N]
                                    [--repeats R] [--made-pairs N] [--eval-modes fp32,mixed]
                                    [--eval-rounds R] [--skip-eval]

Prints one JSON object with two parts:

- `network`: per numeric mode, the emulator's time per stream-frame stepping one stream, and
  batched at each B as the rolling batch runs it (the layers without state over 64 frames of a
  stream at once, the recurrent layers one step for B streams; all divided by B x frames);
  onnxruntime single-stream on the exported FP32 model beside them. Interleaved rounds, best
  round kept (medians beside).
- `eval`: `streamer eval --jobs 1` over a folder of real pairs (the 6 Valentini pairs of
  ../shared plus pairs made here from recorded speech and recorded noise, below) at the
  default batch and at --batch 1, and `streamer replay` of one of its files, all in this run:
  throughput_x_realtime against replay's realtime_factor (interleaved rounds of both, the best
  of each kept, every round listed), and whether every file's PESQ-WB and STOI are unchanged by
  the batch (fp16/int8/mixed: exactly; fp32: within 1e-4).

Pairs made here (when Debian's asterisk-core-sounds-en-wav and asterisk-moh-opsound-wav are
installed): recorded English prompts (Allison voice, 8 kHz, upsampled to 16 kHz, consecutive
prompts joined and cut to 2.5-4 s) mixed with recorded music-on-hold at 0-10 dB SNR. Licences: the
prompts CC BY-SA 3.0 (Digium), the music CC BY-SA 3.0 (opsound.org artists), per their
Debian copyright files.
"""

from __future__ import annotations

import streamer  # noqa: F401, E402 - first: single-threaded BLAS before numpy loads (streamer/__init__.py)

# isort: split

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from frames import magnitudes, onnxruntime_session, time_onnxruntime  # noqa: E402  (bench/frames.py: run as python bench/NAME.py)

from streamer.batch import STAGE_FRAMES  # noqa: E402
from streamer.engine import DEADLINE_S, SAMPLE_RATE  # noqa: E402
from streamer.model import load_model  # noqa: E402
from streamer.numerics import build_network  # noqa: E402
from streamer.quant.compiled import sum_kernel_status  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
MUSIC = Path("/usr/share/asterisk/moh")
MODES = ("fp32", "fp16", "int8", "mixed")


def time_batched(network, mags: np.ndarray, streams: int, steps: int) -> float:
    """Seconds per stream-frame for `streams` streams stepped together, as the rolling batch runs
    them (streamer/batch.py): `front` and `back` over STAGE_FRAMES frames of each stream at once,
    `recurrent` over the streams per step. B=1: the plain one-stream `step`, as replay runs it."""
    if streams == 1:
        state = network.initial_state()
        start = time.perf_counter()
        for frame in mags[:steps]:
            _, state = network.step(frame, state)
        return (time.perf_counter() - start) / steps
    state = network.initial_state(streams)
    batch = [np.roll(mags, k, axis=0)[:steps] for k in range(streams)]  # (frames, bins) per stream
    start = time.perf_counter()
    inputs = [np.concatenate([network.front(m[f:f + STAGE_FRAMES]) for f in range(0, steps, STAGE_FRAMES)])
              for m in batch]
    outputs = []
    for frame in range(steps):
        out, state = network.recurrent(np.stack([x[frame] for x in inputs]), state)
        outputs.append(out)
    stacked = np.stack(outputs, axis=1)  # (streams, frames, width)
    for rows in stacked:
        for f in range(0, steps, STAGE_FRAMES):
            network.back(rows[f:f + STAGE_FRAMES])
    return (time.perf_counter() - start) / (steps * streams)


def network_part(params, batches: list[int], frames: int, repeats: int) -> dict:
    mags = magnitudes(frames)
    networks = {mode: build_network(params, mode) for mode in MODES}
    session = onnxruntime_session(params)
    times: dict[str, dict[int, list[float]]] = {m: {b: [] for b in batches} for m in MODES}
    onnx_times: list[float] = []
    for _ in range(repeats):
        onnx_times.append(time_onnxruntime(session, params, mags))
        for mode, network in networks.items():
            for streams in batches:
                # every B over all the frames: the batch's front and back take 64 frames at once
                steps = frames
                times[mode][streams].append(time_batched(network, mags, streams, steps))
    out = {}
    for mode in MODES:
        best = {b: float(np.min(v)) for b, v in times[mode].items()}
        single = best[batches[0]]
        out[mode] = {
            "us_per_stream_frame": {str(b): round(t * 1e6, 1) for b, t in best.items()},
            "median_us_per_stream_frame": {str(b): round(float(np.median(v)) * 1e6, 1)
                                           for b, v in times[mode].items()},
            "speedup_over_one_stream": {str(b): round(single / t, 2) for b, t in best.items()},
            "one_stream_realtime": single < DEADLINE_S,
        }
    out["onnxruntime_fp32_one_stream_us_per_frame"] = round(float(np.min(onnx_times)) * 1e6, 1)
    return out


def make_pairs(root: Path, count: int) -> list[str]:
    """Copy in the shared Valentini pairs (links) and mix `count` more from recordings."""
    import soundfile
    import soxr

    (root / "noisy").mkdir(parents=True)
    (root / "clean").mkdir()
    sources = []
    valentini = SHARED / "data" / "valentini"
    if valentini.is_dir():
        for clean in sorted((valentini / "clean").glob("*.wav")):
            (root / "clean" / clean.name).symlink_to(clean)
            (root / "noisy" / clean.name).symlink_to(valentini / "noisy" / clean.name)
        sources.append("valentini (../shared)")
    prompts = sorted(PROMPTS.glob("*.wav"))
    music = sorted(MUSIC.glob("*.wav"))
    if not prompts or not music:
        return sources
    rng = np.random.default_rng(0)
    noise = np.concatenate([soundfile.read(m, dtype="float64")[0] for m in music[:2]])
    noise = soxr.resample(noise, 8000, SAMPLE_RATE)
    index = 0
    for k in range(count):
        speech, length = [], int(rng.uniform(2.5, 4.0) * 8000)
        while sum(len(s) for s in speech) < length:
            speech.append(soundfile.read(prompts[index % len(prompts)], dtype="float64")[0])
            index += 7
        # Cut to the drawn length: one long prompt would otherwise make a 25 s mixture.
        clean = soxr.resample(np.concatenate(speech)[:length], 8000, SAMPLE_RATE)
        clean = 0.25 * clean / max(np.max(np.abs(clean)), 1e-9)
        start = rng.integers(0, len(noise) - len(clean))
        part = noise[start:start + len(clean)]
        snr_db = rng.uniform(0.0, 10.0)
        part = part * np.sqrt(np.mean(clean ** 2) / max(np.mean(part ** 2), 1e-12)) * 10 ** (-snr_db / 20)
        noisy = np.clip(clean + part, -1.0, 1.0)
        soundfile.write(root / "clean" / f"rec{k:02d}.wav", clean, SAMPLE_RATE, subtype="PCM_16")
        soundfile.write(root / "noisy" / f"rec{k:02d}.wav", noisy, SAMPLE_RATE, subtype="PCM_16")
    sources.append(f"{count} mixtures: asterisk en_US_f_Allison prompts + asterisk music on hold, 0-10 dB")
    return sources


def eval_part(model: str | None, folder: Path, modes: list[str], repeats: int) -> dict:
    from streamer.evaluate import evaluate
    from streamer.options import DEFAULT_BATCH
    from streamer.replay import replay

    noisy, clean = folder / "noisy", folder / "clean"
    files = sorted(p.name for p in noisy.iterdir())
    replayed = noisy / files[0]
    out = {"files": len(files), "replayed_file": files[0], "batch": DEFAULT_BATCH, "rounds": repeats}
    for mode in modes:
        # Interleaved rounds of replay and batched eval, the best of each kept: one replay of a
        # 3 s file takes a tenth of a second, and on a shared machine one round can be 1.5x
        # slower than the next. Both sides get the same number of tries.
        replays, throughputs, batched = [], [], None
        for _ in range(repeats):
            single = replay(replayed, clean=clean / files[0], model=model, quant=mode, write_output=False)
            replays.append(single.realtime_factor)
            batched = evaluate(noisy, clean, model=model, quant=mode, jobs=1, batch=DEFAULT_BATCH)
            audio_s = sum(r.duration_s for r in batched.files)
            throughputs.append(audio_s / sum(r.wall_s for r in batched.files))
        alone = evaluate(noisy, clean, model=model, quant=mode, jobs=1, batch=1)
        audio_s = sum(r.duration_s for r in alone.files)
        one_at_a_time = audio_s / sum(r.wall_s for r in alone.files)
        diffs = [(abs(a.enhanced_quality.pesq_wb - b.enhanced_quality.pesq_wb),
                  abs(a.enhanced_quality.stoi - b.enhanced_quality.stoi))
                 for a, b in zip(alone.files, batched.files, strict=True)]
        out[mode] = {
            "replay_realtime_factor": round(max(replays), 2),
            "eval_batch1_throughput_x_realtime": round(one_at_a_time, 2),
            "eval_batched_throughput_x_realtime": round(max(throughputs), 2),
            "batched_over_replay": round(max(throughputs) / max(replays), 2),
            "median_batched_over_replay": round(float(np.median(throughputs) / np.median(replays)), 2),
            # the same files streamed one at a time (replay's path) as the steadier yardstick
            "batched_over_batch1": round(max(throughputs) / one_at_a_time, 2),
            "rounds_replay_realtime_factor": [round(r, 2) for r in replays],
            "rounds_eval_batched_throughput_x_realtime": [round(t, 2) for t in throughputs],
            "max_pesq_difference": max(d[0] for d in diffs),
            "max_stoi_difference": max(d[1] for d in diffs),
            "mean_pesq_wb": round(float(np.mean([r.enhanced_quality.pesq_wb for r in batched.files])), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (.tdn or .onnx); default: the embedded model")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64", help="batch sizes, the first is 1")
    parser.add_argument("--frames", type=int, default=96, help="frames per timing (default 96)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--made-pairs", type=int, default=10, help="pairs to mix from recordings")
    parser.add_argument("--eval-modes", default="fp32,mixed", help="modes of the eval part")
    parser.add_argument("--eval-rounds", type=int, default=3,
                        help="interleaved rounds of replay and batched eval, best kept (default 3)")
    parser.add_argument("--skip-eval", action="store_true", help="network part only")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    params = load_model(args.model)
    result = {"benchmark": "eval_throughput", "model": args.model or "default",
              "model_description": params.describe(), "batches": batches,
              "network": network_part(params, batches, args.frames, args.repeats)}
    if not args.skip_eval:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            sources = make_pairs(folder, args.made_pairs)
            result["eval_pairs"] = sources
            result["eval"] = eval_part(args.model, folder, args.eval_modes.split(","), args.eval_rounds)
    result.update({"fp16_sum": sum_kernel_status(), "deadline_us": DEADLINE_S * 1e6,
                   "python": platform.python_version(),
                   "numpy": np.__version__, "machine": platform.machine()})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
