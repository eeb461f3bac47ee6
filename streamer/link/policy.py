"""When a device link is given up on: the one policy every command shares (no numpy here, so
the CLI can show its defaults without loading anything heavy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinkPolicy:
    """When a device link is given up on (README, "Reliability").

    A frame the link loses plays the fallback and the stream goes on, but after
    `max_failed_frames` failed frames in a row (0: never on the count), or `give_up_s` seconds
    without any answer, the device is taken as gone: `DeviceGone` ends the run, whose output
    so far is kept. Each failed frame waits at most the frame timeout (1 s), so a dead or
    frozen device ends a run within about `give_up_s` + 1 s.
    """

    max_failed_frames: int = 32
    give_up_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_failed_frames < 0:
            raise ValueError(f"--max-failed-frames must be 0 or more, not {self.max_failed_frames}")
        if not self.give_up_s > 0:
            raise ValueError(f"--link-timeout must be a positive number of seconds, not {self.give_up_s:g}")
