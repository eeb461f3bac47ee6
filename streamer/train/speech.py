"""Clean training speech made on this machine with the installed text-to-speech engines.

No corpus download: sentences are random word sequences (from the system word list, with
common function words mixed in so the prosody sounds like running speech), spoken by

* flite's unit-selection voices awb, rms and slt (cut from real recordings: the most natural
  sound available offline, so they get most of the weight),
* festival's HTS voice cmu_us_slt_arctic_hts and diphone voices ked/kal,
* espeak-ng's English accents with its voice variants (formant synthesis: robotic, but many
  distinct "speakers" and pitches).

Each utterance is further varied in speaking rate and pitch (the engines' own controls) and
by a resampling "vocal tract" warp of +-12 %, which moves pitch and formants together the way
a different speaker would. Everything is 16 kHz mono float32 in [-1, 1].

flite's kal16 voice is deliberately left out of `TRAIN_VOICES`: the demo sample uses it, so
the demo is a voice the default model never heard.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
WORDS_FILE = Path("/usr/share/dict/words")

# (engine, voice, relative weight). Weights favour the voices cut from real recordings.
TRAIN_VOICES: tuple[tuple[str, str, float], ...] = (
    ("flite", "slt", 0.20), ("flite", "awb", 0.20), ("flite", "rms", 0.20),
    ("festival", "cmu_us_slt_arctic_hts", 0.06), ("festival", "ked_diphone", 0.04),
    ("festival", "kal_diphone", 0.04),
    ("espeak-ng", "*", 0.26),
)
DEMO_VOICE = ("flite", "kal16")

_ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                   "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# Variants that still sound like a person talking (whisper and robot effects left out).
_ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                    "klatt", "klatt2", "klatt3", "klatt4", "adam", "alex", "andy", "annie",
                    "belinda", "benjamin", "caleb", "david", "ed", "edward", "john", "linda",
                    "michael", "mike", "paul", "quincy", "rob", "robert", "steph", "travis",
                    "victor", "zac")
_FUNCTION_WORDS = ("the", "a", "and", "of", "to", "in", "is", "was", "that", "it", "for", "on",
                   "with", "as", "his", "her", "they", "we", "at", "by", "this", "from", "but",
                   "not", "you", "all", "would", "there", "their", "will", "when", "who", "an",
                   "she", "he", "can", "said", "one", "what", "about", "out", "if", "up", "so")
_ENGINE_TOOL = {"flite": "flite", "festival": "text2wave", "espeak-ng": "espeak-ng"}


class SynthesisError(RuntimeError):
    """A text-to-speech engine is missing or failed."""


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to reproduce one utterance."""

    engine: str
    voice: str
    text: str
    rate: float      # speaking-rate factor, > 1 is faster
    pitch: float     # engine pitch control (espeak 0..99, festival/flite f0 mean in Hz; 0 = default)
    warp: float      # resampling factor applied afterwards (pitch and formants x warp)


def available_engines() -> dict[str, bool]:
    """Which engines' command-line tools are on PATH."""
    return {engine: shutil.which(tool) is not None for engine, tool in _ENGINE_TOOL.items()}


def load_words(path: Path = WORDS_FILE) -> list[str]:
    """Plain lower-case alphabetic words (no possessives or proper names) from a word list."""
    if not path.is_file():
        return list(_FUNCTION_WORDS)
    words = [w.strip() for w in path.read_text(errors="ignore").splitlines()]
    return [w for w in words if w.isalpha() and w.islower() and w.isascii() and 2 <= len(w) <= 11]


def random_sentence(rng: np.random.Generator, words: list[str], n_words: int | None = None) -> str:
    """A pseudo-sentence: random content words interleaved with function words."""
    n_words = int(rng.integers(6, 17)) if n_words is None else n_words
    out = []
    for _ in range(n_words):
        pool = _FUNCTION_WORDS if rng.random() < 0.4 else words
        out.append(pool[int(rng.integers(len(pool)))])
    text = " ".join(out)
    if n_words > 9 and rng.random() < 0.5:
        # A comma gives the engines a phrase break, as in read speech.
        cut = text.find(" ", len(text) // 2)
        text = text[:cut] + "," + text[cut:]
    return text[0].upper() + text[1:] + ("?" if rng.random() < 0.15 else ".")


def sample_specs(n: int, seed: int, voices=TRAIN_VOICES, words: list[str] | None = None
                 ) -> list[UtteranceSpec]:
    """Draw `n` utterance specs (voice, text, rate, pitch, warp) reproducibly from `seed`."""
    rng = np.random.default_rng(seed)
    words = load_words() if words is None else words
    weights = np.array([w for _, _, w in voices], dtype=float)
    weights /= weights.sum()
    specs = []
    for _ in range(n):
        engine, voice, _ = voices[int(rng.choice(len(voices), p=weights))]
        pitch = 0.0
        if engine == "espeak-ng":
            accent = _ESPEAK_ACCENTS[int(rng.integers(len(_ESPEAK_ACCENTS)))]
            variant = _ESPEAK_VARIANTS[int(rng.integers(len(_ESPEAK_VARIANTS)))]
            voice = accent + (f"+{variant}" if variant else "")
            pitch = float(rng.integers(25, 75))
        elif engine == "festival" and voice.endswith("_diphone"):
            pitch = float(rng.uniform(90, 150))
        specs.append(UtteranceSpec(engine=engine, voice=voice, text=random_sentence(rng, words),
                                   rate=float(rng.uniform(0.85, 1.2)), pitch=pitch,
                                   warp=float(np.exp(rng.uniform(np.log(0.88), np.log(1.12))))))
    return specs


def _run_engine(spec: UtteranceSpec, wav: Path) -> None:
    tool = _ENGINE_TOOL[spec.engine]
    if shutil.which(tool) is None:
        raise SynthesisError(f"{tool} is not installed (needed for {spec.engine} voices)")
    if spec.engine == "flite":
        cmd = ["flite", "-voice", spec.voice, "--setf", f"duration_stretch={1.0 / spec.rate:.3f}"]
        if spec.pitch:
            cmd += ["--setf", f"int_f0_target_mean={spec.pitch:.1f}"]
        cmd += ["-t", spec.text, "-o", str(wav)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    elif spec.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", spec.voice, "-s", str(int(175 * spec.rate)), "-p",
               str(int(spec.pitch)), "-w", str(wav), spec.text]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    else:
        setup = f"(voice_{spec.voice}) (Parameter.set 'Duration_Stretch {1.0 / spec.rate:.3f})"
        if spec.pitch:
            setup += (f" (set! int_lr_params '((target_f0_mean {spec.pitch:.1f}) (target_f0_std 12)"
                      " (model_f0_mean 170) (model_f0_std 34)))")
        subprocess.run(["text2wave", "-eval", setup, "-o", str(wav)], input=spec.text.encode(),
                       check=True, capture_output=True, timeout=120)


def _trim_silence(audio: np.ndarray, keep: int = 2400) -> np.ndarray:
    """Cut leading/trailing silence beyond `keep` samples (TTS output pads generously)."""
    if audio.size == 0:
        return audio
    frame = 160
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = (audio[:n * frame].reshape(n, frame) ** 2).mean(axis=1)
    active = np.nonzero(energy > energy.max() * 1e-4)[0]
    if active.size == 0:
        return audio
    start = max(active[0] * frame - keep, 0)
    stop = min((active[-1] + 1) * frame + keep, len(audio))
    return audio[start:stop]


def synthesise(spec: UtteranceSpec) -> np.ndarray:
    """Speak one spec: 16 kHz mono float32, peak-normalised to 0.5 (levels are set later)."""
    with tempfile.TemporaryDirectory(prefix="streamer-tts-") as tmp:
        wav = Path(tmp) / "u.wav"
        try:
            _run_engine(spec, wav)
        except subprocess.CalledProcessError as exc:
            raise SynthesisError(f"{spec.engine} failed on voice {spec.voice}: "
                                 f"{exc.stderr.decode(errors='ignore')[:200]}") from exc
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    # Reading the samples as if they were at rate*warp and resampling to 16 kHz scales pitch
    # and formants by `warp` and duration by 1/warp.
    source_rate = rate * spec.warp
    audio = soxr.resample(audio, source_rate, SAMPLE_RATE).astype(np.float32)
    audio = _trim_silence(audio - audio.mean())
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0:
        raise SynthesisError(f"{spec.engine} voice {spec.voice} produced silence")
    return (0.5 / peak * audio).astype(np.float32)


def corpus_key(n: int, seed: int) -> str:
    """Cache directory name for a corpus of `n` utterances drawn with `seed`."""
    digest = hashlib.sha1(json.dumps([n, seed, TRAIN_VOICES]).encode()).hexdigest()[:10]
    return f"speech-n{n}-s{seed}-{digest}"


def build_corpus(data_dir: str | Path, n: int, seed: int, threads: int = 2,
                 log=print) -> list[np.ndarray]:
    """Synthesise (or load from the cache under `data_dir`) `n` training utterances.

    Engines that are not installed are skipped with a message; their share goes to the rest.
    """
    root = Path(data_dir) / corpus_key(n, seed)
    manifest = root / "manifest.json"
    if manifest.is_file():
        entries = json.loads(manifest.read_text())["utterances"]
        return [sf.read(root / e["file"], dtype="float32")[0] for e in entries]
    have = available_engines()
    voices = tuple(v for v in TRAIN_VOICES if have[v[0]])
    missing = sorted({_ENGINE_TOOL[v[0]] for v in TRAIN_VOICES if not have[v[0]]})
    if missing:
        log(f"speech: {', '.join(missing)} not installed; synthesising without those voices")
    if not voices:
        raise SynthesisError("no text-to-speech engine found (need flite, espeak-ng or festival)")
    specs = sample_specs(n, seed, voices)
    root.mkdir(parents=True, exist_ok=True)

    def one(item: tuple[int, UtteranceSpec]) -> np.ndarray | None:
        try:
            return synthesise(item[1])
        except (SynthesisError, subprocess.TimeoutExpired) as exc:
            log(f"speech: skipped utterance {item[0]}: {exc}")
            return None

    audios, entries = [], []
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        for k, audio in enumerate(pool.map(one, enumerate(specs))):
            if audio is None:
                continue
            name = f"u{k:05d}.wav"
            sf.write(root / name, audio, SAMPLE_RATE, subtype="FLOAT")
            audios.append(audio)
            entries.append({"file": name, **asdict(specs[k]), "seconds": len(audio) / SAMPLE_RATE})
            if (k + 1) % 200 == 0:
                log(f"speech: {k + 1}/{n} utterances")
    # The manifest is written last, so an interrupted run is redone rather than half-used.
    manifest.write_text(json.dumps({"n": n, "seed": seed, "utterances": entries}, indent=1))
    return audios
