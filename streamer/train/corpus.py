"""Recordings a user has, for training: audio trees read lazily, resampled once to a cache.

    corpus = open_corpus(AudioCorpus.find("speech/"), cache_dir)

`find` lists every WAV, FLAC (and, with the optional `g722` package, raw G.722 at 64 kbit/s as
the Asterisk prompts ship) under a folder, at any depth. `prepare` converts each file once to
16 kHz mono float32 (channels averaged, soxr resampling) as a `.npy` file in the cache, named
by a hash of the source's path, size and modification time, so a changed file is converted
again and an unchanged one never is. A file that cannot be read (corrupt, empty, silent,
unsupported) gets a `.bad` marker with the reason instead, so it is skipped, counted and
reported, never fatal, and not retried on every run.

`AudioCorpus` then holds only paths and lengths: `corpus[i]` memory-maps the cached file, so
a mixture reads the few seconds it uses and a corpus of hundreds of hours never has to fit in
memory (one file at a time does, during its conversion). Preparation can be split between
processes (`rank`, `world`): each converts its share and they meet at a barrier before
`open_corpus`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
AUDIO_SUFFIXES = (".wav", ".flac", ".g722")
MIN_SECONDS = 0.1    # shorter files carry no usable speech or noise
SILENCE_PEAK = 1e-4  # a file whose peak is below this (about -80 dBFS) is treated as silent


class CorpusError(RuntimeError):
    """A corpus folder is missing or holds no usable audio."""


def find_audio(root: str | Path) -> list[Path]:
    """Every audio file under `root` (any depth; .wav, .flac, .g722, any case), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def cache_key(path: Path) -> str:
    """Cache file stem for `path`: changes when the file's path, size or mtime does."""
    st = path.stat()
    ident = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha1(ident.encode()).hexdigest()[:20]


def _read_g722(path: Path) -> np.ndarray:
    """Raw G.722 (64 kbit/s, 16 kHz wide-band), as the Asterisk `*-g722` prompt packages ship."""
    try:
        import G722  # the `g722` package on PyPI (libg722, public domain)
    except ImportError as exc:
        raise ValueError("reading .g722 needs the g722 package (pip install 'streamer[train]')") from exc
    data = path.read_bytes()
    if not data:
        raise ValueError("empty file")
    decoded = np.asarray(G722.G722(SAMPLE_RATE, 64000).decode(data), dtype=np.float32)
    return decoded / 32768.0


def read_audio(path: Path) -> np.ndarray:
    """`path` as 16 kHz mono float32. Raises ValueError/RuntimeError/OSError on a bad file."""
    if path.suffix.lower() == ".g722":
        audio = _read_g722(path)
    else:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = data.mean(axis=1)
        if rate != SAMPLE_RATE:
            audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    if len(audio) < MIN_SECONDS * SAMPLE_RATE:
        raise ValueError(f"shorter than {MIN_SECONDS:g} s")
    if not np.all(np.isfinite(audio)):
        raise ValueError("non-finite samples")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise ValueError("silent")
    return np.ascontiguousarray(audio, dtype=np.float32)


def prepare(files: Sequence[Path], cache_dir: str | Path, rank: int = 0, world: int = 1,
            log: Callable[[str], None] = print) -> int:
    """Convert this process's share (`files[rank::world]`) into the cache; returns how many
    files were converted now (cached ones are skipped)."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    converted = 0
    for path in list(files)[rank::world]:
        key = cache_key(path)
        good, bad = cache / f"{key}.npy", cache / f"{key}.bad"
        if good.exists() or bad.exists():
            continue
        try:
            audio = read_audio(path)
        except (ValueError, RuntimeError, OSError, EOFError) as exc:
            # soundfile raises LibsndfileError (a RuntimeError) on corrupt or unknown data.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _write(bad, lambda handle, r=f"{path}: {reason}\n": handle.write(r.encode()))
            continue
        _write(good, lambda handle, a=audio: np.save(handle, a, allow_pickle=False))
        converted += 1
        if converted % 500 == 0:
            log(f"corpus: converted {converted} files into {cache}")
    return converted


def _write(path: Path, writer: Callable[[object], object]) -> None:
    """Write via a temporary name unique to this process, then rename: processes preparing
    the same cache never see a half-written entry."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as handle:
            writer(handle)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class AudioCorpus(Sequence):
    """Cached, resampled recordings: `corpus[i]` is a read-only memory map (float32, 16 kHz)."""

    paths: list[Path]                 # cache files (.npy)
    sources: list[Path]               # the recordings they came from
    lengths: list[int]                # samples at 16 kHz
    skipped: list[str] = field(default_factory=list)   # "source: reason" of unusable files

    find = staticmethod(find_audio)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("AudioCorpus does not slice; index one recording at a time")
        return np.load(self.paths[index], mmap_mode="r", allow_pickle=False)

    @property
    def hours(self) -> float:
        return sum(self.lengths) / SAMPLE_RATE / 3600

    def describe(self) -> str:
        return (f"{len(self)} files, {self.hours:.2f} h"
                + (f", {len(self.skipped)} unusable files skipped" if self.skipped else ""))


def open_corpus(files: Iterable[Path], cache_dir: str | Path) -> AudioCorpus:
    """The prepared corpus of `files` (every one must have been through `prepare`)."""
    cache = Path(cache_dir)
    paths, sources, lengths, skipped = [], [], [], []
    for path in files:
        key = cache_key(path)
        good, bad = cache / f"{key}.npy", cache / f"{key}.bad"
        if good.exists():
            # Only the header is read: the samples stay on disk until a mixture needs them.
            lengths.append(int(np.load(good, mmap_mode="r", allow_pickle=False).shape[0]))
            paths.append(good)
            sources.append(path)
        elif bad.exists():
            skipped.append(bad.read_text().strip())
        else:
            raise CorpusError(f"{path}: not in the cache {cache} (prepare it first)")
    return AudioCorpus(paths, sources, lengths, skipped)


def load_corpus(root: str | Path, cache_dir: str | Path, rank: int = 0, world: int = 1,
                barrier: Callable[[], None] | None = None, exclude: Callable[[Path], bool] | None = None,
                log: Callable[[str], None] = print) -> AudioCorpus:
    """find + prepare (this rank's share) + barrier + open, for one folder."""
    files = [p for p in find_audio(root) if not (exclude and exclude(p))]
    if not files:
        raise CorpusError(f"{root}: no .wav/.flac/.g722 files")
    prepare(files, cache_dir, rank, world, log)
    if barrier is not None:
        barrier()
    corpus = open_corpus(files, cache_dir)
    if not len(corpus):
        raise CorpusError(f"{root}: none of its {len(files)} audio files is usable "
                          f"(first: {corpus.skipped[0]})")
    return corpus


@dataclass
class PairCorpus:
    """Ready-made (noisy, clean) recordings matched by relative path, e.g. VoiceBank-DEMAND."""

    noisy: AudioCorpus
    clean: AudioCorpus
    unmatched: int       # files present in only one of the two trees

    def __len__(self) -> int:
        return len(self.noisy)

    @property
    def skipped(self) -> list[str]:
        return self.noisy.skipped + self.clean.skipped

    def describe(self) -> str:
        text = f"{len(self)} pairs, {self.clean.hours:.2f} h"
        if self.skipped:
            text += f", {len(self.skipped)} unusable files skipped"
        if self.unmatched:
            text += f", {self.unmatched} files without a twin"
        return text


def load_pairs(noisy_root: str | Path, clean_root: str | Path, cache_dir: str | Path,
               rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None,
               log: Callable[[str], None] = print) -> PairCorpus:
    """Pairs of NOISY_DIR/x/y.wav and CLEAN_DIR/x/y.wav (or .flac: the suffix may differ)."""
    def by_name(root: str | Path) -> dict[Path, Path]:
        return {p.relative_to(root).with_suffix(""): p for p in find_audio(root)}

    noisy, clean = by_name(noisy_root), by_name(clean_root)
    names = sorted(noisy.keys() & clean.keys())
    if not names:
        raise CorpusError(f"no file of {noisy_root} has a twin of the same name in {clean_root}")
    files = [noisy[n] for n in names] + [clean[n] for n in names]
    prepare(files, cache_dir, rank, world, log)
    if barrier is not None:
        barrier()
    both = [(noisy[n], clean[n]) for n in names]
    noisy_c, clean_c = open_corpus([], cache_dir), open_corpus([], cache_dir)
    for pair in both:
        parts = [open_corpus([p], cache_dir) for p in pair]
        if all(len(c) for c in parts):
            for corpus, part in zip((noisy_c, clean_c), parts, strict=True):
                corpus.paths += part.paths
                corpus.sources += part.sources
                corpus.lengths += part.lengths
        for corpus, part in zip((noisy_c, clean_c), parts, strict=True):
            corpus.skipped += part.skipped
    pairs = PairCorpus(noisy_c, clean_c, len(noisy.keys() ^ clean.keys()))
    if not len(pairs):
        raise CorpusError(f"{noisy_root} / {clean_root}: no usable pair (first problem: {pairs.skipped[0]})")
    return pairs
