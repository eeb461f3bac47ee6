"""The training recipe behind `streamer train`: synthesise speech, mix noise, fit the mask.

The network is trained exactly as the runtime uses it: magnitudes of the engine's centred
STFT of float audio in [-1, 1] go in, the sigmoid mask multiplies the complex noisy frames,
and the loss compares the masked frames with the clean ones. Sequences start from a zero
recurrent state, as every stream does.

Loss (per time-frequency bin, after dividing both spectra by the noisy input's RMS so that
loud and quiet examples count alike)::

    0.7 * (|Y|^0.3 - |S|^0.3)^2  +  0.3 * |Y^0.3 - S^0.3|^2  +  0.1 * (mask - min(|S|/|X|, 1))^2

    +  p * max(|S|^0.3 - |Y|^0.3, 0)^2          (p = --suppression-penalty)

with Y = mask * X and Z^0.3 = |Z|^0.3 exp(j angle Z). The compressed magnitude term is the
usual proxy for perceptual quality (PESQ weighs quiet parts as much as loud ones); the
compressed complex term penalises keeping bins whose noisy phase is wrong; the small mask
term gives a direct signal in bins whose energy is too small for the others to notice; the
last term makes over-suppressing speech dearer than under-suppressing noise.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import queue
import threading
import time
from pathlib import Path

DEFAULT_UTTERANCES = 2000
RECIPE_VERSION = "streamer-train-1"


def default_data_dir() -> Path:
    """Where synthesised speech is cached: $XDG_CACHE_HOME/streamer/train (or ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamer" / "train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `streamer train` options."""
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.tdn)")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--hidden", type=int, choices=(128, 256), default=256)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, speech and mixtures")
    parser.add_argument("--speech-seed", type=int, default=None,
                        help="seed of the speech corpus, if not --seed (fine-tuning on the same corpus "
                             "with fresh mixtures)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps (reproducible); default: as many as --minutes allows")
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-clock budget for the optimisation (default 30 without --steps)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"cache of synthesised speech (default {default_data_dir()})")
    parser.add_argument("--utterances", type=int, default=DEFAULT_UTTERANCES,
                        help="clean utterances to synthesise (about 5 s each)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (1 is fastest on a busy machine) and synthesis workers")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--segment", type=float, default=2.0, help="training segment, seconds")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate")
    parser.add_argument("--suppression-penalty", type=float, default=0.5,
                        help="extra loss weight on bins where the output is below the clean speech")
    parser.add_argument("--speech-eq", type=float, default=0.5,
                        help="probability of a random EQ on each training speech segment")
    parser.add_argument("--babble-min-snr", type=float, default=None,
                        help="redraw babble mixtures below this SNR (dB) above it (default: no floor)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this model file (fine-tuning) instead of random weights")
    parser.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0,
                        help="also write --out every so many minutes while training")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="also keep each checkpoint as OUT-stepN.tdn (for choosing one later "
                             "with python -m streamer.train.validate)")
    parser.add_argument("--ema", type=float, default=None, metavar="DECAY",
                        help="write an exponential moving average of the weights (e.g. 0.999) "
                             "instead of the last step's weights; validation loss is the average's")
    from streamer.train import sources

    sources.add_arguments(parser)


def _learning_rate(peak: float, progress: float, step: int, warmup: int = 200) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak as `progress` goes 0 -> 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(max(progress, 0.0), 1.0)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


class WeightAverage:
    """Exponential moving average of a model's parameters (a smoother model than any one step).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates so that an
    average of a freshly initialised model is not dominated by its random start.
    """

    def __init__(self, model, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), not {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.updates = 0

    def update(self, model) -> None:
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), weight)
        self.updates += 1


def enhancement_loss(mask, noisy_spec, clean_spec, noisy_wave, suppression_penalty: float = 0.0):
    """The recipe's loss (see the module docstring); tensors [B, T, F] and waveforms [B, N]."""
    scale = noisy_wave.pow(2).mean(dim=1).sqrt().clamp_min(1e-5)[:, None, None]
    x, s = noisy_spec / scale, clean_spec / scale
    y = mask * x
    eps = 1e-10

    def compress(z):
        mag2 = z.real.pow(2) + z.imag.pow(2) + eps
        return mag2.pow(0.15), z / mag2.sqrt()

    my, py = compress(y)
    ms, ps = compress(s)
    mag_term = (my - ms).pow(2).mean()
    complex_term = (my * py - ms * ps).abs().pow(2).mean()
    target = (s.abs() / (x.abs() + 1e-8)).clamp(max=1.0)
    mask_term = (mask - target).pow(2).mean()
    total = 0.7 * mag_term + 0.3 * complex_term + 0.1 * mask_term
    if suppression_penalty:
        # Removing speech costs more intelligibility (STOI) than leaving a little noise.
        total = total + suppression_penalty * (ms - my).clamp_min(0).pow(2).mean()
    return total, {"mag": float(mag_term.detach()), "complex": float(complex_term.detach()),
                   "mask": float(mask_term.detach())}


# How long closing the prefetcher waits for the batch it is building (a few seconds at most).
_PREFETCH_JOIN_S = 60.0


class _Prefetcher:
    """Builds the next batches in a background thread (numpy FFTs release the GIL)."""

    def __init__(self, sampler, batch: int, start_step: int, depth: int = 3,
                 rank: int = 0, world: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sampler, batch, start_step, rank, world),
                                        daemon=True)
        self._thread.start()

    def _run(self, sampler, batch: int, step: int, rank: int, world: int) -> None:
        while not self._stop.is_set():
            # Rank r of N takes the r-th of the N batches one process with batch N*B would take.
            first = (step * world + rank) * batch
            item = sampler.batch(range(first, first + batch))
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            step += 1

    def get(self):
        return self._queue.get()

    def close(self) -> None:
        """Stop the thread and wait for it: left running into the interpreter's exit, a thread in
        the middle of torch code can abort the process ("terminate called without an active
        exception"), as a torchrun rank that finished before rank 0 once did."""
        self._stop.set()
        self._thread.join(timeout=_PREFETCH_JOIN_S)


def run(args: argparse.Namespace, log=print) -> int:
    """Train one model as `args` says and write it to `args.out`. Returns a process exit code.

    Under torchrun, every rank runs this; see `streamer.train.distributed`.
    """
    from streamer.train import distributed

    world = distributed.setup()
    try:
        return _run(args, world, log if world.main else (lambda _line: None))
    finally:
        world.close()


def _run(args: argparse.Namespace, world, log) -> int:
    # Spinning OpenMP workers collapse throughput on a shared or oversubscribed CPU (measured
    # 4x slower LSTM steps); passive waiting costs little when the machine is idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        log("streamer train needs PyTorch: pip install 'streamer[train]'")
        return 2
    from streamer.model import load_native
    from streamer.model.fileformat import save_model
    from streamer.model.torch_model import TinyDenoiser
    from streamer.train import sources
    from streamer.train.corpus import CorpusError
    from streamer.train.dataset import MixtureConfig, MixtureSampler, RealSources, torch_stft
    from streamer.train.speech import SynthesisError, build_corpus

    minutes = args.minutes if args.minutes is not None else (None if args.steps else 30.0)
    torch.set_num_threads(max(args.threads, 1))
    # Quiet inputs drive some gradients into denormal range, which is very slow on x86.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    t0 = time.time()
    share = sources.synthetic_share(args)
    if not 0.0 <= share <= 1.0:
        log(f"error: --synthetic-share must be in [0, 1], not {share}")
        return 2
    real, described = RealSources(), {}
    if sources.wants_recordings(args):
        cache_dir = args.corpus_cache or data_dir / "recordings"
        try:
            real, described = sources.load_sources(args, Path(cache_dir), world, log)
        except CorpusError as exc:
            log(f"error: {exc}")
            return 2
    speech_seed = args.seed if args.speech_seed is None else args.speech_seed
    speech: list = []
    # The synthetic corpus is needed for synthetic items, and as the speech of real-noise
    # mixtures when no real speech is given.
    if share > 0 or not (real.speech or real.pairs):
        # Rank 0 synthesises (or finds the cache); the others then read its cache. The barrier
        # is passed on failure too, so every rank meets the error instead of waiting for it.
        failure = None
        for turn in ("main", "others"):
            if (turn == "main") == world.main:
                try:
                    speech = build_corpus(data_dir, args.utterances, speech_seed, threads=args.threads,
                                          log=log)
                except SynthesisError as exc:
                    failure = exc
            world.barrier()
        if failure is not None:
            log(f"error: {failure}")
            return 2
        hours = sum(len(s) for s in speech) / 16000 / 3600
        log(f"speech: {len(speech)} utterances, {hours:.2f} h, ready in {time.time() - t0:.0f} s")
    else:
        hours = 0.0

    config = MixtureConfig(segment_seconds=args.segment, p_speech_eq=args.speech_eq,
                           babble_min_snr=args.babble_min_snr, synthetic_share=share,
                           p_rir=args.rir_share, p_real_noise=args.real_noise_share)
    sampler = MixtureSampler(speech, seed=args.seed, config=config, real=real)
    # Held-out mixtures (different item seed) to report a validation loss at checkpoints.
    val_noisy, val_clean = MixtureSampler(speech, seed=args.seed + 7919, config=config,
                                          real=real).batch(range(32))

    if args.init:
        model = TinyDenoiser.from_params(load_native(args.init))
        if (model.cell, model.hidden) != (args.cell, args.hidden):
            log(f"error: --init is a {model.cell} H={model.hidden} model, not {args.cell} H={args.hidden}")
            return 2
    else:
        # Magnitudes of speech at everyday levels are O(0.1..10); 0.5 keeps fc0's start sane.
        model = TinyDenoiser(args.cell, args.hidden, input_scale=0.5)
    model.to(world.device)
    trained = model
    if world.size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[world.local_rank] if world.backend == "nccl" else None)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    average = WeightAverage(model, args.ema) if args.ema else None

    def written() -> TinyDenoiser:
        return average.model if average else model

    def evaluate() -> float:
        net = written()
        net.eval()
        with torch.no_grad():
            noisy = val_noisy.to(world.device)
            xs, ss = torch_stft(noisy), torch_stft(val_clean.to(world.device))
            mask, _ = net(xs.abs())
            loss, _ = enhancement_loss(mask, xs, ss, noisy, args.suppression_penalty)
        net.train()
        return float(loss)

    def data_description() -> str:
        parts = []
        if speech:
            parts.append(f"{share:.0%} synthetic: {len(speech)} synthetic utterances ({hours:.2f} h: "
                         f"flite awb/rms/slt, festival, espeak-ng) + synthetic noise")
        parts += [f"{key}: {text}" for key, text in described.items()]
        return (f"{'; '.join(parts)}; SNR {config.snr_db[0]:g}..{config.snr_db[1]:g} dB, speech "
                f"{config.level_dbfs[0]:g}..{config.level_dbfs[1]:g} dBFS")

    def metadata(step: int, val: float) -> dict:
        return {
            "recipe": RECIPE_VERSION, "seed": args.seed, "speech_seed": speech_seed, "steps": step,
            "batch": args.batch * world.size, "processes": world.size,
            "synthetic_share": share, "real_noise_share": args.real_noise_share if real.noise else None,
            "segment_seconds": args.segment, "peak_lr": args.lr, "val_loss": round(val, 5),
            "suppression_penalty": args.suppression_penalty, "speech_eq": args.speech_eq,
            "babble_min_snr": args.babble_min_snr, "ema": args.ema,
            "init": str(args.init) if args.init else None,
            "data": data_description(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "train_seconds": round(time.time() - start, 1), "torch": torch.__version__,
        }

    out = Path(args.out)
    if world.main:
        out.parent.mkdir(parents=True, exist_ok=True)
    budget = None if minutes is None else minutes * 60.0
    prefetch = _Prefetcher(sampler, args.batch, 0, rank=world.rank, world=world.size)
    start = last_ckpt = time.time()
    step, running = 0, None
    limits = ([f"{args.steps} steps"] if args.steps else []) + ([f"{minutes:g} min"] if budget else [])
    ranks = f" on {world.size} processes ({world.backend})" if world.size > 1 else ""
    log(f"training {model.cell.upper()} H={model.hidden}: batch {args.batch * world.size} x "
        f"{args.segment:g} s{ranks}, {' / '.join(limits)}")
    try:
        while True:
            elapsed = time.time() - start
            # Rank 0's clock decides for everyone, so no rank waits for a step that never comes.
            checkpoint_due = time.time() - last_ckpt > args.checkpoint_minutes * 60
            stop = (args.steps is not None and step >= args.steps) or (
                budget is not None and elapsed >= budget)
            progress = step / args.steps if args.steps else elapsed / budget
            stop, progress, checkpoint_due = world.from_main([float(stop), progress, float(checkpoint_due)])
            if stop:
                break
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(args.lr, progress, step)
            noisy, clean = (t.to(world.device) for t in prefetch.get())
            xs, ss = torch_stft(noisy), torch_stft(clean)
            mask, _ = trained(xs.abs())
            loss, parts = enhancement_loss(mask, xs, ss, noisy, args.suppression_penalty)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            if average:
                average.update(model)
            step += 1
            value = world.mean(float(loss.detach()))  # the loss of the whole (all ranks') batch
            running = value if running is None else 0.98 * running + 0.02 * value
            if step % args.log_every == 0 or step == 1:
                log(f"step {step:6d}  loss {value:.4f} (avg {running:.4f}, mag {parts['mag']:.4f}, "
                    f"mask {parts['mask']:.4f})  lr {optimiser.param_groups[0]['lr']:.2e}  "
                    f"elapsed {time.time() - start:7.1f} s")
            if checkpoint_due and world.main:
                val = evaluate()
                params = written().to_params(metadata(step, val))
                save_model(params, out)
                kept = ""
                if args.keep_checkpoints:
                    snapshot = out.with_name(f"{out.stem}-step{step}{out.suffix}")
                    save_model(params, snapshot)
                    kept = f" and {snapshot}"
                log(f"checkpoint: step {step}, validation loss {val:.4f} -> {out}{kept}")
                last_ckpt = time.time()
    finally:
        prefetch.close()
    if not world.main:
        return 0
    val = evaluate()
    params = written().to_params(metadata(step, val))
    save_model(params, out)
    log(f"done: {step} steps in {time.time() - start:.0f} s, validation loss {val:.4f}; "
        f"wrote {out} ({params.describe()})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (`python -m streamer.train.recipe`), same options as `streamer train`."""
    parser = argparse.ArgumentParser(prog="streamer train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
