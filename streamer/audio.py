"""Audio files in and out: any rate, channel count and sample format in; 16 kHz mono float out.

Reading goes through `soundfile` (WAV int16/int24/int32/float/double, and whatever else
libsndfile knows, FLAC included). Several channels are down-mixed to their mean, and any
rate other than 16 kHz is resampled with soxr's HQ filter. Every failure is an `AudioError`
whose message names the file and says what is wrong, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from streamer.atomic import write_atomically
from streamer.engine import SAMPLE_RATE

# Sample formats an enhanced file may keep from its input; others (u-law, ADPCM, ...) are
# lossy or odd enough that plain 16-bit PCM is the better choice for the output.
_KEPT_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
DEFAULT_SUBTYPE = "PCM_16"


class AudioError(ValueError):
    """An audio file that cannot be read or written; the message says which and why."""


@dataclass(frozen=True)
class Audio:
    """A mono float64 signal at `rate`, with what the file originally held."""

    samples: np.ndarray
    rate: int
    path: Path | None = None
    source_rate: int = SAMPLE_RATE
    source_channels: int = 1
    source_subtype: str = "FLOAT"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def __len__(self) -> int:
        return len(self.samples)


def downmix(data: np.ndarray) -> np.ndarray:
    """Mono from (frames,) or (frames, channels): the mean of the channels."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise ValueError(f"expected (frames,) or (frames, channels), got shape {data.shape}")
    return data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1)


def resample(signal: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal with soxr (HQ); the same rate returns the samples untouched.

    The output has round(len * rate_out / rate_in) samples, as soxr produces.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if rate_in == rate_out:
        # Bit-exact pass-through: 16 kHz inputs must reach the engine unchanged.
        return signal
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    return soxr.resample(signal, rate_in, rate_out, quality="HQ")


def read_audio(path: str | Path, rate: int = SAMPLE_RATE, what: str = "audio") -> Audio:
    """Read an audio file as mono float64 at `rate` (down-mixed, resampled as needed).

    `what` names the file's role ("noisy", "clean") in error messages.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{what} file not found: {path}")
    if path.is_dir():
        raise AudioError(f"{what} file {path} is a directory, not an audio file")
    try:
        with soundfile.SoundFile(str(path)) as f:
            subtype, source_rate, channels = f.subtype, f.samplerate, f.channels
            data = f.read(dtype="float64", always_2d=True)
    except soundfile.LibsndfileError as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(f"{what} file {path} is not a readable audio file ({reason})") from exc
    except OSError as exc:
        raise AudioError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{what} file {path} contains no audio samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{what} file {path} contains NaN or infinite samples")
    samples = resample(downmix(data), source_rate, rate)
    if len(samples) == 0:
        raise AudioError(f"{what} file {path} is too short: {data.shape[0]} samples at "
                         f"{source_rate} Hz leave none at {rate} Hz")
    return Audio(samples=samples, rate=rate, path=path, source_rate=source_rate,
                 source_channels=channels, source_subtype=subtype)


def output_subtype(source_subtype: str | None) -> str:
    """The sample format for an enhanced file: the input's when it is plain PCM or float."""
    return source_subtype if source_subtype in _KEPT_SUBTYPES else DEFAULT_SUBTYPE


def _container_for(path: Path) -> str:
    # Pick the container from the suffix (.wav, .flac, ...), WAV when the suffix is unknown.
    suffix = path.suffix.lstrip(".").upper()
    return suffix if suffix in soundfile.available_formats() else "WAV"


def write_audio(path: str | Path, signal: np.ndarray, rate: int = SAMPLE_RATE,
                subtype: str = DEFAULT_SUBTYPE) -> Path:
    """Write a mono signal atomically: a crash or Ctrl-C never leaves a half-written file."""
    path = Path(path)
    container = _container_for(path)
    if not soundfile.check_format(container, subtype):
        subtype = soundfile.default_subtype(container)
    def write(tmp: Path) -> None:
        soundfile.write(str(tmp), np.asarray(signal, dtype=np.float64), rate, subtype=subtype,
                        format=container)

    try:
        return write_atomically(path, write)
    except soundfile.LibsndfileError as exc:
        raise AudioError(f"cannot write {path}: {getattr(exc, 'error_string', exc)}") from exc
    except OSError as exc:
        raise AudioError(f"cannot write {path}: {exc.strerror or exc}") from exc
