"""Replay a recorded file through a backend, as if it arrived live, and measure what it cost.

`replay()` is what `streamer replay` runs: read (any rate, any channel count), enhance one
100-sample hop at a time through `Denoiser`, write the 16 kHz result, score it against a
clean reference when there is one, and time every frame on the host. `enhance_file()` is
the part that `streamer eval` repeats per file with a backend it keeps open.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamer.audio import Audio, output_subtype, read_audio, write_audio
from streamer.backends.base import Backend
from streamer.backends.registry import open_backend
from streamer.engine import SAMPLE_RATE
from streamer.link.policy import LinkPolicy
from streamer.metrics import HostTimer, quality
from streamer.model import TinyDenoiserParams, load_model
from streamer.pipeline import (
    Denoiser,
    FrameObserver,
    StreamAborted,
    blocks_for,
    enhance_signal,
    mask_floor,
)
from streamer.results import ReplayResult

DEMO_NOISY = "demo_noisy.wav"
DEMO_CLEAN = "demo_clean.wav"
ENHANCED_SUFFIX = ".enhanced.wav"

Progress = Callable[[int, int], None]

if TYPE_CHECKING:
    from streamer.feeds import StreamFeed


class ReplayError(ValueError):
    """A replay that cannot go ahead as asked (paths, lengths); the message says why."""


@dataclass(frozen=True)
class LoadedModel:
    """A model's parameters and where they came from (`path` None: the embedded default)."""

    params: TinyDenoiserParams
    path: Path | None = None

    @property
    def source(self) -> str:
        """How reports name the model: "default" or the path as given."""
        return "default" if self.path is None else str(self.path)

    def info(self) -> dict[str, Any]:
        from streamer.report import model_info

        return model_info(self.source, self.params)


def load(model: str | Path | None = None) -> LoadedModel:
    """Load the model named by `--model`: None for the embedded default, else a .tdn/.onnx path."""
    return LoadedModel(load_model(model), None if model is None else Path(model))


def demo_paths() -> tuple[Path, Path]:
    """The bundled demo pair (noisy, clean) inside the package."""
    data = resources.files("streamer.data")
    return Path(str(data.joinpath(DEMO_NOISY))), Path(str(data.joinpath(DEMO_CLEAN)))


def default_output_path(noisy: str | Path, directory: str | Path | None = None) -> Path:
    """`<noisy stem>.enhanced.wav` in `directory` (the current directory by default)."""
    return Path(directory or Path.cwd()) / (Path(noisy).stem + ENHANCED_SUFFIX)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _writable(folder: Path) -> str | None:
    """None when a file can be created in `folder`, else why not (tried for real: permission
    bits say nothing to root, and nothing about a read-only file system)."""
    import tempfile

    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".streamer-write-check-")
    except OSError as error:
        return error.strerror or str(error)
    os.close(handle)
    os.unlink(name)
    return None


def check_output_paths(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """Before any work: every output must have a writable folder to go to and land on no input
    (nor on another output). Raises ReplayError naming the two roles."""
    named_outputs = [(name, p) for name, p in outputs.items() if p is not None]
    for out_name, out_path in named_outputs:
        if out_path.is_dir():
            raise ReplayError(f"the {out_name} {out_path} is a directory; give a file name")
        parent = out_path.parent
        if not parent.is_dir():
            raise ReplayError(f"cannot write the {out_name} {out_path}: folder {parent} does not exist")
        why = _writable(parent)
        if why is not None:
            raise ReplayError(f"cannot write the {out_name} {out_path}: {why} (folder {parent})")
        for in_name, in_path in inputs.items():
            if in_path is not None and _same_file(out_path, in_path):
                raise ReplayError(f"refusing to write the {out_name} onto the {in_name} file {in_path}")
    for i, (name_a, a) in enumerate(named_outputs):
        for name_b, b in named_outputs[i + 1:]:
            if _same_file(a, b):
                raise ReplayError(f"the {name_a} and the {name_b} are the same file: {a}")


def check_lengths(noisy: Audio, clean: Audio) -> None:
    """The pair must be sample-aligned at 16 kHz: exactly equal lengths, no tolerance."""
    if len(noisy) != len(clean):
        raise ReplayError(f"clean and noisy lengths differ at {SAMPLE_RATE} Hz: {clean.path} has "
                          f"{len(clean)} samples, {noisy.path} has {len(noisy)}")


def _as_audio(source: str | Path | Audio, what: str) -> Audio:
    return source if isinstance(source, Audio) else read_audio(source, what=what)


def enhance_file(noisy: str | Path | Audio, backend: Backend, *, model_info: dict[str, Any],
                 backend_spec: str, quant: str | None, clean: str | Path | Audio | None = None,
                 out: str | Path | None = None, observers: Sequence[FrameObserver] = (),
                 progress: Progress | None = None, score_noisy: bool = True,
                 timing: Any = None, atten_lim_db: float | None = None,
                 feed: StreamFeed | None = None) -> ReplayResult:
    """Enhance one file with an open backend (reset first), write it, score it, time it.

    `timing` (a `costmodel.TimingSpec`, or a `TargetTiming` already watching `backend`) adds
    the target cycles of every frame at each operating point (`result.target`). `atten_lim_db`
    floors the masks (see `streamer.pipeline.Denoiser`; None, the default: the network's mask).
    `feed` (a `streamer.feeds.StreamFeed`) watches the file for a dashboard.

    `noisy` and `clean` are paths or already-read `Audio`. `out=None` writes no audio. With
    `clean`, the enhanced (and, with `score_noisy`, the unprocessed) signal is scored; a metric
    that cannot be computed becomes None plus a warning.
    """
    noisy_audio = _as_audio(noisy, "noisy")
    clean_audio = _as_audio(clean, "clean") if clean is not None else None
    if clean_audio is not None:
        check_lengths(noisy_audio, clean_audio)

    backend.reset()
    failed_before = failed_frames(backend)
    timer = HostTimer()
    target_timing, target_note = target_observer(timing, backend)
    watchers = [timer, *([target_timing] if target_timing else []), *observers]
    on_block = None
    if feed is not None:
        feed.begin(Path(noisy_audio.path or "<memory>").name, backend, target_timing,
                   blocks_for(len(noisy_audio)))
        watchers.append(feed)
        on_block, progress = feed.block, _both(progress, feed.progress)
    denoiser = Denoiser(backend, watchers, atten_lim_db=atten_lim_db)
    start = time.perf_counter()
    aborted = None
    try:
        enhanced = enhance_signal(denoiser, noisy_audio.samples, progress, on_block)
    except StreamAborted as stopped:
        # Keep what was enhanced: the output file holds it, the result says where it stops.
        aborted, enhanced = stopped, stopped.output
    wall_s = time.perf_counter() - start
    backend_info = backend.describe()
    result = file_result(noisy_audio, clean_audio, enhanced, out, model_info=model_info,
                         backend_spec=backend_spec, quant=quant, backend_info=backend_info,
                         host_s=timer.seconds(), wall_s=wall_s,
                         target=None if target_timing is None else target_timing.record(),
                         target_note=target_note, atten_lim_db=denoiser.atten_lim_db)
    failed = {cause: n - failed_before.get(cause, 0) for cause, n in
              (backend_info.get("failed_by_cause") or {}).items() if n > failed_before.get(cause, 0)}
    if failed:
        result.failed_frames = failed
        causes = ", ".join(f"{cause} {n}" for cause, n in sorted(failed.items()))
        first = backend_info.get("first_failure_by_cause") or {}
        said = "; ".join(f"first {cause}: {first[cause]}" for cause in sorted(failed) if cause in first)
        result.warnings.append(f"{sum(failed.values())} of {len(result.host_s)} frames failed on the "
                               f"device link ({causes}): the input passed through unchanged for them"
                               + (f" ({said})" if said else ""))
    if aborted is not None:
        result.error, result.samples_done = str(aborted), len(enhanced)
        result.warnings.append(f"stopped after {len(enhanced) / SAMPLE_RATE:.2f} s of "
                               f"{result.duration_s:.2f} s: {aborted}; the output holds the part done, "
                               f"not scored")
    else:
        score(result, clean_audio, noisy_audio, enhanced, score_noisy)
    if feed is not None:
        feed.end(result)
    return result


def file_result(noisy_audio: Audio, clean_audio: Audio | None, enhanced: np.ndarray,
                out: str | Path | None, *, model_info: dict[str, Any], backend_spec: str,
                quant: str | None, backend_info: dict[str, Any], host_s: np.ndarray, wall_s: float,
                target: Any, target_note: str | None, atten_lim_db: float | None) -> ReplayResult:
    """The result of one enhanced file, however it was enhanced (streamed, or in a batch):
    the output written, the input's peak checked; not yet scored (`score`)."""
    out_path = None
    if out is not None:
        out_path = write_audio(out, enhanced, SAMPLE_RATE, output_subtype(noisy_audio.source_subtype))
    result = ReplayResult(
        input=Path(noisy_audio.path or "<memory>"), output=out_path,
        clean=None if clean_audio is None else clean_audio.path,
        model=model_info, backend=backend_spec, quant=quant, backend_info=backend_info,
        sample_rate_in=noisy_audio.source_rate, channels_in=noisy_audio.source_channels,
        subtype_in=noisy_audio.source_subtype, samples=len(noisy_audio), host_s=host_s,
        wall_s=wall_s, target=target, target_note=target_note, atten_lim_db=atten_lim_db)
    peak = float(np.max(np.abs(noisy_audio.samples))) if len(noisy_audio) else 0.0
    result.input_peak = round(peak, 6)
    if peak > 1.0:
        clipped = int(np.count_nonzero(np.abs(enhanced) >= 1.0))
        result.warnings.append(f"the input peaks at {peak:.3g} ({20 * np.log10(peak):+.1f} dBFS), above full "
                               f"scale: {clipped} output samples are clipped to [-1, 1]")
    return result


def score(result: ReplayResult, clean_audio: Audio | None, noisy_audio: Audio, enhanced: np.ndarray,
          score_noisy: bool = True) -> None:
    """PESQ-WB and STOI of the enhanced (and, with `score_noisy`, the unprocessed) signal against
    the clean reference, when there is one; a metric that cannot be computed is None plus a warning."""
    if clean_audio is None:
        return
    result.enhanced_quality = quality(clean_audio.samples, enhanced)
    result.warnings += result.enhanced_quality.warnings
    if score_noisy:
        result.noisy_quality = quality(clean_audio.samples, noisy_audio.samples)


def _both(first: Progress | None, second: Progress) -> Progress:
    if first is None:
        return second

    def both(done: int, total: int) -> None:
        first(done, total)
        second(done, total)

    return both


def failed_frames(backend: Backend) -> dict[str, int]:
    """Frames a device backend lost so far, by cause (empty for the emulator)."""
    return dict(backend.describe().get("failed_by_cause") or {})


def target_observer(timing: Any, backend: Backend) -> tuple[Any, str | None]:
    """(TargetTiming watching `backend`, None), or (None, why not) -- fp32 has no target cost."""
    if timing is None:
        return None, None
    from streamer.costmodel import CostModelError, TargetTiming, TimingSpec

    if not isinstance(timing, TimingSpec):
        return timing, None
    try:
        return TargetTiming(timing, backend), None
    except CostModelError as error:
        return None, str(error)


def replay(noisy: str | Path | None = None, *, out: str | Path | None = None,
           clean: str | Path | None = None, model: str | Path | LoadedModel | None = None,
           backend: str = "emulator", quant: str | None = None, report: str | Path | None = None,
           log: str | Path | None = None, progress: Progress | None = None,
           write_output: bool = True, verify: bool = False, target: str | Path | None = None,
           voltages: str | Sequence[float] | None = None,
           atten_lim_db: float | None = None, feed: StreamFeed | None = None,
           policy: LinkPolicy | None = None, placement: str = "auto") -> ReplayResult:
    """Replay `noisy` (None: the bundled demo, scored against its clean twin).

    Writes the enhanced file to `out` (default `<noisy stem>.enhanced.wav` in the current
    directory; never onto an input), the report JSON to `report` and one JSON line per frame
    to `log` when given. `verify` runs the emulator beside a device backend and reports frames
    whose masks differ (`verify_mismatched_frames`). Every frame is also costed on the target
    (`target`: a target file, default GAP9) at each operating point (`voltages`, default all;
    docs/cost-model.md). `atten_lim_db` limits the suppression to that many dB (the masks are
    floored; None, the default: off). `feed` watches it for a dashboard. Raises ReplayError,
    AudioError, ModelError, BackendError or PipelineError with a one-line message for anything
    the user can fix.
    """
    from streamer.costmodel import TimingSpec
    from streamer.report import FrameLog, replay_report, write_json

    if noisy is None:
        noisy_path, demo_clean = demo_paths()
        if not noisy_path.is_file():
            raise ReplayError(f"the bundled demo {noisy_path.name} is not in this install "
                              f"(looked in {noisy_path.parent}); give a NOISY.wav to replay")
        clean_path = Path(clean) if clean is not None else (demo_clean if demo_clean.is_file() else None)
    else:
        noisy_path, clean_path = Path(noisy), None if clean is None else Path(clean)
    out_path = None
    if write_output:
        out_path = Path(out) if out is not None else default_output_path(noisy_path)
    report_path = None if report is None else Path(report)
    log_path = None if log is None else Path(log)
    check_output_paths({"enhanced output": out_path, "report": report_path, "frame log": log_path},
                     {"noisy": noisy_path, "clean": clean_path})

    mask_floor(atten_lim_db)  # a bad value is an error now, before any file is read
    spec = TimingSpec.load(target, voltages, placement=placement)
    # Inputs before the model: a mistyped file name should not wait for a model to load.
    noisy_audio = read_audio(noisy_path, what="noisy")
    clean_audio = read_audio(clean_path, what="clean") if clean_path is not None else None
    if clean_audio is not None:
        check_lengths(noisy_audio, clean_audio)

    loaded = model if isinstance(model, LoadedModel) else load(model)
    with open_backend(backend, loaded.params, quant, verify=verify, policy=policy,
                      placement=placement) as opened:
        timing, note = target_observer(spec, opened)
        frame_log = None
        if log_path is not None:
            frame_log = FrameLog(log_path, extra=None if timing is None else timing.log_fields)
        try:
            result = enhance_file(noisy_audio, opened, model_info=loaded.info(), backend_spec=backend,
                                  quant=quant, clean=clean_audio, out=out_path,
                                  observers=[frame_log] if frame_log else [], progress=progress,
                                  timing=timing, atten_lim_db=atten_lim_db, feed=feed)
            if note is not None:
                result.target_note = note
        finally:
            if frame_log is not None:
                frame_log.close()
    if report_path is not None:
        write_json(report_path, replay_report(result))
    return result
