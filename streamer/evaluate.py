"""Evaluate a model over a folder of noisy/clean pairs: PESQ-WB, STOI and host timing per file.

Files pair by name (`noisy/x.wav` with `clean/x.wav`). On the emulator the files run as a
rolling batch of streams (`batch`, streamer/batch.py); files run in parallel worker processes
(`jobs`, default min(2, CPU count)) or on a Ray cluster (`cluster`); each worker loads the
model and opens the backend itself and keeps them for all its files (streamer/eval_runner.py).
The emulator is deterministic, so the scores depend on none of these; host timings do.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.eval_runner import (
    DEFAULT_BATCH,
    Runner,
    RunSpec,
    Task,
    chunks,
    init_worker,
    longest_first,
    run_in_worker,
)
from streamer.link.policy import LinkPolicy
from streamer.pipeline import mask_floor
from streamer.replay import LoadedModel, ReplayError, check_output_paths, load
from streamer.results import EvalResult, ReplayResult

AUDIO_SUFFIXES = (".wav", ".flac")

FileCallback = Callable[[ReplayResult, int, int], None]

if TYPE_CHECKING:
    from streamer.feeds import StreamFeed


@dataclass
class Pairing:
    """Noisy/clean files matched by name, and the names found on one side only."""

    pairs: list[tuple[Path, Path]]
    noisy_only: list[str] = field(default_factory=list)
    clean_only: list[str] = field(default_factory=list)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _audio_files(directory: Path, role: str) -> dict[str, Path]:
    if not directory.is_dir():
        raise ReplayError(f"{role} directory not found: {directory}")
    return {p.name: p for p in sorted(directory.iterdir())
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES}


def pair_files(noisy_dir: str | Path, clean_dir: str | Path) -> Pairing:
    """Pair audio files (.wav, .flac) of the two folders by exact file name."""
    noisy = _audio_files(Path(noisy_dir), "noisy")
    clean = _audio_files(Path(clean_dir), "clean")
    both = sorted(set(noisy) & set(clean))
    return Pairing(pairs=[(noisy[n], clean[n]) for n in both],
                   noisy_only=sorted(set(noisy) - set(clean)),
                   clean_only=sorted(set(clean) - set(noisy)))


def _check_out_dir(out_dir: Path, noisy_dir: Path, clean_dir: Path) -> None:
    for role, directory in (("noisy", noisy_dir), ("clean", clean_dir)):
        if out_dir.resolve() == directory.resolve():
            raise ReplayError(f"refusing to write enhanced files into the {role} directory {directory}")
    out_dir.mkdir(parents=True, exist_ok=True)


def evaluate(noisy_dir: str | Path, clean_dir: str | Path, *,
             model: str | Path | LoadedModel | None = None, backend: str = "emulator",
             quant: str | None = None, out_dir: str | Path | None = None, jobs: int | None = None,
             verify: bool = False, target: str | Path | None = None,
             voltages: str | list[float] | None = None, atten_lim_db: float | None = None,
             report: str | Path | None = None, csv: str | Path | None = None,
             on_pairing: Callable[[Pairing], None] | None = None,
             on_file: FileCallback | None = None,
             feed: Callable[[Pairing], StreamFeed] | None = None,
             policy: LinkPolicy | None = None, batch: int | None = None,
             cluster: str | None = None, placement: str = "auto") -> EvalResult:
    """Evaluate every noisy/clean pair of two folders.

    Writes the enhanced files to `out_dir` (under the noisy file's name) when given, the JSON
    report to `report` and the CSV to `csv`. `on_pairing` sees the pairing before any work
    (to warn about unpaired names); `on_file(result, done, total)` runs as each file finishes.
    On Ctrl-C the reports of the files finished so far are written, marked incomplete, and
    KeyboardInterrupt propagates. Every frame is costed on the target (`target`, default GAP9)
    at each operating point (`voltages`, default all), as in `replay`. `atten_lim_db` limits the
    suppression in every file, as in `replay` (None, the default: off). `feed(pairing)` makes
    the `StreamFeed` of a dashboard: files streamed here stream into it frame by frame, files
    run in a batch or by worker processes arrive whole.

    `batch` streams share each network step in a rolling batch (streamer/batch.py); None: the
    measured default (DEFAULT_BATCH) for a backend that can, 1 for a device. Scores do not
    depend on it. `cluster` ("auto", "ray://HOST:PORT" or "HOST:PORT") runs the files on a Ray
    cluster's workers instead of local processes (streamer/cluster.py). `placement`: where the
    weights live on the target (as in `replay`; a device is asked for it).
    """
    from streamer.costmodel import TimingSpec
    from streamer.report import eval_report, write_csv, write_json

    mask_floor(atten_lim_db)  # a bad value is an error now, before any pairing or worker
    timing = TimingSpec.load(target, voltages, placement=placement)
    if batch is not None and batch < 1:
        raise ReplayError(f"--batch must be at least 1, got {batch}")
    if cluster is not None:
        from streamer.cluster import check_cluster_available

        check_cluster_available()

    noisy_dir, clean_dir = Path(noisy_dir), Path(clean_dir)
    pairing = pair_files(noisy_dir, clean_dir)
    if not pairing.pairs:
        raise ReplayError(f"no files of the same name in {noisy_dir} and {clean_dir} "
                          f"(looked for {', '.join(AUDIO_SUFFIXES)})")
    if on_pairing is not None:
        on_pairing(pairing)
    check_output_paths({"report": None if report is None else Path(report),
                        "CSV": None if csv is None else Path(csv)}, {})
    out_path = None if out_dir is None else Path(out_dir)
    if out_path is not None:
        _check_out_dir(out_path, noisy_dir, clean_dir)
    if jobs is not None and jobs < 1:
        raise ReplayError(f"--jobs must be at least 1, got {jobs}")
    jobs = min(jobs or default_jobs(), len(pairing.pairs))
    if backend.startswith(("serial:", "socket://")):
        jobs = 1  # one physical device: workers would fight over its state and its port

    # Load and open in this process first: a bad model or backend is one clear error here,
    # not a broken worker pool.
    loaded = model if isinstance(model, LoadedModel) else load(model)
    spec = RunSpec(backend, quant, verify, timing, atten_lim_db, policy)
    runner = Runner(loaded, spec)
    can_batch = runner.backend.batch_network() is not None
    if batch is not None and batch > 1 and not can_batch:
        runner.close()
        raise ReplayError(f"--batch {batch} needs a backend that steps many streams at once (the "
                          f"emulator, without --verify); {backend} runs one stream at a time")
    slots = (batch or DEFAULT_BATCH) if can_batch else 1
    spec = runner.spec = dataclasses.replace(spec, batch=slots)
    result = EvalResult(noisy_dir=noisy_dir, clean_dir=clean_dir, out_dir=out_path,
                        model=runner.model_info, backend=backend, quant=quant,
                        backend_info=runner.backend.describe(), jobs=jobs, files=[],
                        noisy_only=pairing.noisy_only, clean_only=pairing.clean_only,
                        atten_lim_db=None if atten_lim_db is None else float(atten_lim_db),
                        batch=slots)
    tasks: list[Task] = [(noisy, clean, None if out_path is None else out_path / noisy.name)
                         for noisy, clean in pairing.pairs]
    if slots > 1:
        tasks = longest_first(tasks)  # the reports stay in name order (write_reports)
    watch = None if feed is None else feed(pairing)

    def finished(item: ReplayResult) -> None:
        result.files.append(item)
        if item.error is not None:
            result.error = f"{item.input.name}: {item.error}"
        if watch is not None and (jobs > 1 or slots > 1 or cluster is not None):
            watch.file_done_elsewhere(item)
        if on_file is not None:
            on_file(item, len(result.files), len(tasks))

    def write_reports() -> None:
        result.files.sort(key=lambda r: r.input.name)
        if report is not None or csv is not None:
            data = eval_report(result)
            if report is not None:
                write_json(report, data)
            if csv is not None:
                write_csv(csv, data)

    try:
        if cluster is not None:
            from streamer.cluster import run_on_cluster

            result.cluster = run_on_cluster(cluster, loaded, spec, tasks, finished)
            result.jobs = max(result.cluster["workers"], 1)
        elif jobs == 1 and slots == 1:
            for task in tasks:
                finished(runner.run(*task, feed=watch))
                if result.error is not None:
                    break  # the device is gone: the files left would only fail too
        elif jobs == 1:
            for item in runner.run_many(tasks):
                finished(item)
        else:
            _run_pool(chunks(tasks, jobs, slots), loaded.path, spec, jobs, finished)
        result.complete = result.error is None and len(result.files) == len(tasks)
        write_reports()
    except KeyboardInterrupt:
        result.complete = False
        write_reports()
        raise
    finally:
        runner.close()
    return result


def _run_pool(pieces: list[list[Task]], model: Path | None, spec: RunSpec, jobs: int,
              finished: Callable[[ReplayResult], None]) -> None:
    # spawn, not fork: the parent may have a progress-bar thread running, and forking a
    # threaded process can deadlock.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                               initializer=init_worker, initargs=(model, spec))
    try:
        # Workers inherit this process's environment, so the single-threaded BLAS that
        # `import streamer` sets up applies to them too.
        pending: set[Future[list[ReplayResult]]] = {pool.submit(run_in_worker, piece) for piece in pieces}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for item in future.result():  # re-raises a worker's error here, with its message
                    finished(item)
    except BaseException:
        # Ctrl-C or a failed file: nothing more is wanted from the other workers.
        _stop_workers(pool)
        raise
    finally:
        # Wait for the pool's manager thread: left running, it may close its wake-up pipe just
        # as the interpreter's exit hook writes to it (Python 3.11 checks, then writes, without
        # a lock), and a Ctrl-C would end in an 'OSError: Bad file descriptor' traceback. The
        # workers are done or terminated by now, so this wait is short.
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's own worker processes now rather than after their current file."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
