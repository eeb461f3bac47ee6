"""The work of `streamer eval`, wherever it runs: one loaded model and open backend that
enhances and scores files, one at a time (streamed, as `replay` does) or as a rolling batch.

The same `Runner` serves this process, the `--jobs` worker processes and a cluster's workers
(streamer/cluster.py); `chunks` cuts the file list into the pieces those workers take.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.backends.base import Backend
from streamer.backends.registry import open_backend
from streamer.link.policy import LinkPolicy
from streamer.options import DEFAULT_BATCH  # noqa: F401 - evaluate's default, re-exported
from streamer.pipeline import FrameEvent, mask_floor
from streamer.replay import (
    LoadedModel,
    ReplayError,
    check_lengths,
    enhance_file,
    file_result,
    score,
    target_observer,
)
from streamer.results import ReplayResult

if TYPE_CHECKING:
    from streamer.feeds import StreamFeed

# One file to evaluate: the noisy file, its clean reference, where to write the output (or None).
Task = tuple[Path, Path, Path | None]


@dataclass(frozen=True)
class RunSpec:
    """How every file of an evaluation is run (picklable: worker processes and a cluster's
    workers build their Runner from it)."""

    backend: str
    quant: str | None
    verify: bool = False
    timing: Any = None
    atten_lim_db: float | None = None
    policy: LinkPolicy | None = None
    batch: int = 1


class Runner:
    """One loaded model and open backend, reused for every file a process evaluates."""

    def __init__(self, loaded: LoadedModel, spec: RunSpec) -> None:
        self.spec = spec
        self.model_info = loaded.info()
        # a device is asked for the placement the cost model assumes (`--placement`)
        self.backend: Backend = open_backend(spec.backend, loaded.params, spec.quant, verify=spec.verify,
                                             policy=spec.policy,
                                             placement=getattr(spec.timing, "placement", "auto"))

    def close(self) -> None:
        self.backend.close()

    def run(self, noisy: Path, clean: Path, out: Path | None, feed: StreamFeed | None = None
            ) -> ReplayResult:
        """One file streamed hop by hop, exactly as `streamer replay` does."""
        spec = self.spec
        return enhance_file(noisy, self.backend, model_info=self.model_info,
                            backend_spec=spec.backend, quant=spec.quant, clean=clean, out=out,
                            timing=spec.timing, atten_lim_db=spec.atten_lim_db, feed=feed)

    def run_many(self, tasks: list[Task]) -> Iterator[ReplayResult]:
        """Every task's result, as each finishes: a rolling batch where the spec asks for one
        (spec.batch > 1), else one file after another."""
        if self.spec.batch > 1:
            yield from self._run_batch(tasks)
            return
        for task in tasks:
            yield self.run(*task)

    def _run_batch(self, tasks: list[Task]) -> Iterator[ReplayResult]:
        from streamer.audio import read_audio
        from streamer.batch import enhance_many

        spec = self.spec
        network = self.backend.batch_network()
        if network is None:
            raise ReplayError(f"--batch {spec.batch} needs a backend that steps many streams at once "
                              f"(the emulator); {spec.backend} runs one stream")
        backend_info = self.backend.describe()
        files: dict[int, tuple[Task, Any, Any]] = {}

        def signals() -> Iterator[tuple[int, Any]]:
            for number, task in enumerate(tasks):
                noisy_audio = read_audio(task[0], what="noisy")
                clean_audio = read_audio(task[1], what="clean")
                check_lengths(noisy_audio, clean_audio)
                files[number] = (task, noisy_audio, clean_audio)
                yield number, noisy_audio.samples

        for item in enhance_many(network, signals(), spec.batch, mask_floor(spec.atten_lim_db)):
            task, noisy_audio, clean_audio = files.pop(item.key)
            timing, note = target_observer(spec.timing, self.backend)
            if timing is not None:
                for index, host_s in enumerate(item.host_s):
                    timing(FrameEvent(index, float(host_s), None))
            result = file_result(noisy_audio, clean_audio, item.enhanced, task[2],
                                 model_info=self.model_info, backend_spec=spec.backend, quant=spec.quant,
                                 backend_info=backend_info, host_s=item.host_s,
                                 wall_s=float(item.host_s.sum()),
                                 target=None if timing is None else timing.record(), target_note=note,
                                 atten_lim_db=None if spec.atten_lim_db is None else float(spec.atten_lim_db))
            score(result, clean_audio, noisy_audio, item.enhanced)
            yield result


def longest_first(tasks: list[Task]) -> list[Task]:
    """The tasks in the order a rolling batch takes them: the longest noisy file first (by its
    header's duration, at its own rate), equal durations in the given order, a file whose header
    cannot be read last (its error is reported when it is read).

    Taken in name order, a long file that comes late keeps stepping with few other streams
    long after the rest have finished, and a step of few streams costs more per stream. Longest
    first, the batch drains on short files. On the 60 pairs of bench/eval_throughput.py the
    mean number of streams per step goes from 26.6 to 29.2 of 32.
    """
    import soundfile

    def duration(task: Task) -> float:
        try:
            return float(soundfile.info(str(task[0])).duration)
        except (RuntimeError, OSError):  # soundfile.LibsndfileError is a RuntimeError
            return -1.0

    durations = [duration(task) for task in tasks]
    order = sorted(range(len(tasks)), key=lambda i: (-durations[i], i))
    return [tasks[i] for i in order]


def chunks(tasks: list[Task], workers: int, batch: int) -> list[list[Task]]:
    """The file list in consecutive pieces for `workers` processes: enough pieces to keep every
    worker busy, none longer than 4 batches (so results come back while the rest run)."""
    if not tasks:
        return []
    size = max(1, min(4 * max(batch, 1), math.ceil(len(tasks) / max(workers, 1))))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


# --- the worker side of a process pool -------------------------------------------------------

_worker_runner: Runner | None = None


def init_worker(model: Path | None, spec: RunSpec) -> None:
    """Pool initialiser: load the model and open the backend once per worker process."""
    import signal

    from streamer.replay import load

    global _worker_runner
    # Ctrl-C reaches the whole process group; the parent handles it (reports what finished,
    # then stops the workers), so a worker neither dies mid-answer nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_runner = Runner(load(model), spec)


def run_in_worker(chunk: list[Task]) -> list[ReplayResult]:
    assert _worker_runner is not None, "worker used before its initialiser ran"
    return list(_worker_runner.run_many(chunk))
