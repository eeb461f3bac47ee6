"""Checkpoint selection on validation sets of our own: held-out voices, prose and noises.

    python -m streamer.train.validate CHECKPOINT.tdn [...] [--set both] [--json OUT.json]

Training checkpoints are compared by mean PESQ-WB on utterances no checkpoint trained on.

* "synthetic": flite's kal16 voice (left out of training, like the demo) reading sixteen real
  sentences (training reads random word strings) as eight apparent talkers (rate and
  vocal-tract warp), each mixed with one draw of the recipe's noises (no babble, so no
  training speech leaks in) at 0-17.5 dB SNR and -32..-23 dBFS. It shares the training
  noise generators, so it cannot see the gap between synthetic and recorded noise.
* "real": the Debian recordings that `--debian-recordings` training holds out
  (`streamer.train.debian`): prompts of every Asterisk talker and a LibriVox reader no
  training run hears, in a held-out recorded piece of music (even items) or in babble of
  four other held-out recordings (odd items), at the same SNRs and levels.

With both sets (the default where the recordings are installed) the best checkpoint is the
highest mean of the two sets' PESQ-WB among those whose STOI on each set is at most
--max-stoi-drop below the noisy input's. The test pairs in ../shared are never used to
choose; they only measure the chosen model afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from streamer.engine import SAMPLE_RATE
from streamer.model.params import TinyDenoiserParams

VALIDATION_TEXTS = (
    "The harbour lights came on one by one as the ferry pulled away from the pier.",
    "Most of the committee agreed to postpone the vote until the spring meeting.",
    "He folded the map twice, slipped it into his coat, and walked towards the station.",
    "A cold wind from the north kept the fishing boats in the bay for three days.",
    "Our neighbours planted tomatoes, beans and a row of sunflowers along the fence.",
    "Please remember to switch off the oven before you leave the kitchen tonight.",
    "The library will close early on Friday because the heating has broken down again.",
    "She answered the phone on the second ring and wrote the number on her hand.",
    "Two of the old bridges were repaired last summer, but the third is still closed.",
    "If the train is late, wait for me by the clock in the main hall.",
    "The children counted the ducks on the pond and fed them the last of the bread.",
    "We drove through the valley at dawn, when the fields were still white with frost.",
    "His sister teaches music at the school across the road from the market.",
    "Nobody noticed that the painting had been hung upside down for a week.",
    "The doctor said the results would be ready on Monday afternoon.",
    "After the storm, the beach was covered with seaweed, shells and broken wood.",
)
# Each sentence is read by a different apparent talker: speaking rate and a vocal-tract warp
# (pitch and formants together), so the score is not one voice's.
VALIDATION_TALKERS = ((1.0, 1.0), (0.9, 0.92), (1.1, 1.08), (1.0, 0.88),
                      (0.95, 1.12), (1.05, 0.96), (1.0, 1.04), (0.9, 1.0))
VALIDATION_SNR_DB = (0.0, 5.0, 10.0, 15.0, 2.5, 7.5, 12.5, 17.5)
VALIDATION_LEVEL_DBFS = (-26.0, -32.0, -23.0, -29.0)
VALIDATION_SEED = 4242


def validation_set(seed: int = VALIDATION_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(noisy, clean) pairs at 16 kHz, float64; deterministic for a seed.

    Sentence i is read by talker i mod 8 at SNR i mod 8 (0-17.5 dB) and speech level i mod 4
    (-32..-23 dBFS), so each talker is heard at two levels and each SNR with two sentences.
    """
    from streamer.train.noise import random_noise, scale_to_snr
    from streamer.train.speech import DEMO_VOICE, UtteranceSpec, synthesise

    engine, voice = DEMO_VOICE
    rng = np.random.default_rng(seed)
    pairs = []
    for i, text in enumerate(VALIDATION_TEXTS):
        rate, warp = VALIDATION_TALKERS[i % len(VALIDATION_TALKERS)]
        snr = VALIDATION_SNR_DB[i % len(VALIDATION_SNR_DB)]
        level = VALIDATION_LEVEL_DBFS[i % len(VALIDATION_LEVEL_DBFS)]
        clean = synthesise(UtteranceSpec(engine=engine, voice=voice, text=text, rate=rate,
                                         pitch=0.0, warp=warp)).astype(np.float64)
        clean = np.concatenate([np.zeros(SAMPLE_RATE // 4), clean, np.zeros(SAMPLE_RATE // 4)])
        noise, _ = random_noise(len(clean), rng)
        noisy = clean + scale_to_snr(clean, noise, snr)
        gain = 10 ** (level / 20) / float(np.sqrt(np.mean(clean * clean)))
        pairs.append((noisy * gain, clean * gain))
    return pairs


REAL_SEED = 4343


def real_validation_set(seed: int = REAL_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(noisy, clean) pairs from the held-out Debian recordings; empty if none is installed."""
    from streamer.train import debian
    from streamer.train.corpus import read_audio
    from streamer.train.noise import scale_to_snr

    speech_files, noise_files = debian.validation_files()
    if len(speech_files) < 5 or not noise_files:
        return []
    speech = [read_audio(p).astype(np.float64) for p in speech_files]
    music = read_audio(noise_files[0]).astype(np.float64)
    rng = np.random.default_rng(seed)
    pairs = []
    for i, utterance in enumerate(speech):
        pad = np.zeros(SAMPLE_RATE // 4)
        clean = np.concatenate([pad, utterance / np.max(np.abs(utterance)), pad])
        n = len(clean)
        if i % 2 == 0:
            start = int(rng.integers(0, max(len(music) - n, 1)))
            noise = np.resize(music[start:], n)
        else:
            others = [j for j in range(len(speech)) if j != i]
            noise = np.zeros(n)
            for j in rng.choice(others, size=4, replace=False):
                talker = np.resize(speech[j], n + len(speech[j]))
                offset = int(rng.integers(len(speech[j])))
                part = talker[offset:offset + n]
                noise += part / max(float(np.sqrt(np.mean(part * part))), 1e-9)
        snr = VALIDATION_SNR_DB[i % len(VALIDATION_SNR_DB)]
        if i % 2:
            snr = max(snr, 5.0)   # as in training: a louder crowd makes the talker ambiguous
        noisy = clean + scale_to_snr(clean, noise, snr)
        level = VALIDATION_LEVEL_DBFS[i % len(VALIDATION_LEVEL_DBFS)]
        gain = 10 ** (level / 20) / float(np.sqrt(np.mean(clean * clean)))
        pairs.append((noisy * gain, clean * gain))
    return pairs


def score(model: str | Path | TinyDenoiserParams | None,
          pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean PESQ-WB and STOI of `model` (a file or loaded parameters; FP32, numpy runtime), or
    of the noisy input (None)."""
    from streamer.backends.emulator import EmulatorBackend
    from streamer.metrics import pesq_wb, stoi
    from streamer.model import load_model
    from streamer.pipeline import Denoiser, enhance_signal

    if isinstance(model, (str, Path)):
        model = load_model(model)
    denoiser = Denoiser(EmulatorBackend(model)) if model is not None else None
    pesq_scores, stoi_scores = [], []
    for noisy, clean in pairs:
        if denoiser is None:
            output = noisy
        else:
            denoiser.reset()
            output = enhance_signal(denoiser, noisy)
        pesq_scores.append(pesq_wb(clean, output))
        stoi_scores.append(stoi(clean, output))
    return {"pesq_wb": float(np.mean(pesq_scores)), "stoi": float(np.mean(stoi_scores))}


def main(argv: list[str] | None = None) -> int:
    from streamer.model import ModelError, load_model

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the scores here")
    parser.add_argument("--max-stoi-drop", type=float, default=0.01,
                        help="ignore checkpoints whose STOI is this far below the noisy input's")
    parser.add_argument("--set", choices=("synthetic", "real", "both"), default="both",
                        help="validation set(s) to choose by (both: where the Debian recordings "
                             "are installed; otherwise synthetic alone)")
    args = parser.parse_args(argv)
    models = {}
    for path in args.checkpoints:  # every file is read before minutes of scoring start
        try:
            models[str(path)] = load_model(path)
        except (OSError, ModelError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
    sets = {}
    if args.set in ("synthetic", "both"):
        sets["synthetic"] = validation_set()
    if args.set in ("real", "both"):
        real = real_validation_set()
        if real:
            sets["real"] = real
        elif args.set == "real":
            print("error: the held-out Debian recordings are not installed (docs/training.md)",
                  file=sys.stderr)
            return 2
    noisy = {name: score(None, pairs) for name, pairs in sets.items()}
    for name, s in noisy.items():
        print(f"noisy input  {name}: PESQ-WB {s['pesq_wb']:.4f}  STOI {s['stoi']:.4f}",
              file=sys.stderr, flush=True)
    scores: dict[str, dict] = {}
    for path, model in models.items():
        scores[path] = {name: score(model, pairs) for name, pairs in sets.items()}
        scores[path]["mean_pesq_wb"] = float(np.mean([scores[path][n]["pesq_wb"] for n in sets]))
        print(f"{path}  " + "  ".join(f"{n}: PESQ-WB {scores[path][n]['pesq_wb']:.4f} STOI "
                                      f"{scores[path][n]['stoi']:.4f}" for n in sets),
              file=sys.stderr, flush=True)
    eligible = {path: s for path, s in scores.items()
                if all(s[n]["stoi"] >= noisy[n]["stoi"] - args.max_stoi_drop for n in sets)}
    best = max(eligible, key=lambda path: eligible[path]["mean_pesq_wb"]) if eligible else None
    result = {"sets": sorted(sets), "noisy": noisy, "checkpoints": scores,
              "max_stoi_drop": args.max_stoi_drop, "best": best}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if best else 1


if __name__ == "__main__":
    raise SystemExit(main())
