"""What every command prints the same way: messages on stderr, the progress bar, the exit
status after a run through a device link."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    say(f"streamer: warning: {message}")


def names(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich bar on stderr when it is a terminal; None (no output) otherwise."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            # Every call would cost more than a frame does; a few updates a second suffice.
            if done == total or done % 200 == 0:
                progress.update(task, completed=done, total=total)

        yield update


def link_status(results: Sequence[Any], args: argparse.Namespace) -> int:
    """Exit status after a replay or eval: 1 when a device was given up on, or when frames were
    lost on the link and --allow-failed-frames was not given; the error line says which."""
    stopped = [r for r in results if r.error is not None]
    if stopped:
        say(f"streamer: error: {stopped[0].input.name}: {stopped[0].error}; the output and "
             f"report hold what was done")
        return 1
    failed = sum(sum(r.failed_frames.values()) for r in results)
    if failed and not args.allow_failed_frames:
        say(f"streamer: error: {failed} frame(s) were lost on the device link (the input played "
             f"unchanged for them); pass --allow-failed-frames to accept that")
        return 1
    return 0


