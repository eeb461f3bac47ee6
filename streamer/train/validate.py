"""Checkpoint selection on a validation set of our own: a held-out voice, held-out prose.

    python -m streamer.train.validate CHECKPOINT.tdn [...] [--json OUT.json]

Training checkpoints are compared by mean PESQ-WB on utterances no checkpoint trained on:
flite's kal16 voice (left out of training, like the demo) reading real sentences (training
reads random word strings), each mixed with one draw of the recipe's noises (no babble, so no
training speech leaks in) at 0-15 dB SNR. The test pairs in ../shared are never used to
choose; they only measure the chosen model afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from streamer.engine import SAMPLE_RATE

VALIDATION_TEXTS = (
    "The harbour lights came on one by one as the ferry pulled away from the pier.",
    "Most of the committee agreed to postpone the vote until the spring meeting.",
    "He folded the map twice, slipped it into his coat, and walked towards the station.",
    "A cold wind from the north kept the fishing boats in the bay for three days.",
    "Our neighbours planted tomatoes, beans and a row of sunflowers along the fence.",
    "Please remember to switch off the oven before you leave the kitchen tonight.",
)
VALIDATION_SNR_DB = (0.0, 5.0, 10.0, 15.0, 2.5, 7.5)
VALIDATION_SEED = 4242


def validation_set(seed: int = VALIDATION_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(noisy, clean) pairs at 16 kHz, float64, speech at -26 dBFS; deterministic for a seed."""
    from streamer.train.noise import random_noise, scale_to_snr
    from streamer.train.speech import DEMO_VOICE, UtteranceSpec, synthesise

    engine, voice = DEMO_VOICE
    rng = np.random.default_rng(seed)
    pairs = []
    for text, snr in zip(VALIDATION_TEXTS, VALIDATION_SNR_DB, strict=True):
        clean = synthesise(UtteranceSpec(engine=engine, voice=voice, text=text, rate=1.0,
                                         pitch=0.0, warp=1.0)).astype(np.float64)
        clean = np.concatenate([np.zeros(SAMPLE_RATE // 4), clean, np.zeros(SAMPLE_RATE // 4)])
        noise, _ = random_noise(len(clean), rng)
        noisy = clean + scale_to_snr(clean, noise, snr)
        gain = 10 ** (-26 / 20) / float(np.sqrt(np.mean(clean * clean)))
        pairs.append((noisy * gain, clean * gain))
    return pairs


def score(model_path: str | Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean PESQ-WB of `model_path` (FP32, numpy runtime) over `pairs`."""
    from streamer.backends.emulator import EmulatorBackend
    from streamer.metrics import pesq_wb
    from streamer.model import load_model
    from streamer.pipeline import Denoiser, enhance_signal

    denoiser = Denoiser(EmulatorBackend(load_model(model_path)))
    scores = []
    for noisy, clean in pairs:
        denoiser.reset()
        scores.append(pesq_wb(clean, enhance_signal(denoiser, noisy)))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args(argv)
    pairs = validation_set()
    scores = {}
    for path in args.checkpoints:
        scores[str(path)] = score(path, pairs)
        print(f"{path}  validation PESQ-WB {scores[str(path)]:.4f}", file=sys.stderr, flush=True)
    best = max(scores, key=scores.get)
    result = {"validation_pesq_wb": scores, "best": best}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
