"""The Backend interface: what every backend does, and what observers may ask of it.

The list of backends and the factory that opens one from a `--backend` spec live in
`streamer/backends/registry.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


class BackendError(RuntimeError):
    """A backend could not be opened or stopped answering."""


class DeviceGone(BackendError):
    """A device that stopped answering for good (LinkPolicy's bounds): the stream must end."""

@dataclass(frozen=True)
class LastFrame:
    """What the last step cost outside this process, for observers (timing, cost model, views):
    whether a device lost it, the link's round trip, and the device's own counters
    (`streamer.link.messages.Counters`). The emulator has none of these."""

    failed: bool = False
    rtt_s: float | None = None
    counters: Any = None


@dataclass(frozen=True)
class TargetModel:
    """What runs on the target, for the cost model: the numeric mode, cell and hidden size, and
    for a device the memory level(s) it placed the weights in, its plan, and its link's baud
    rate (None: the cost model places them itself, no wire)."""

    mode: str
    cell: str
    hidden: int
    level: str | None = None
    baud: int | None = None
    cuts: tuple | None = None  # a device's own placement plan (ModelInfo), per layer per tile


class Backend(ABC):
    """One network instance with its recurrent state, stepped one STFT frame at a time."""

    name: str = "backend"

    @abstractmethod
    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        """Advance one frame: N_BINS float32 magnitudes in, N_BINS float32 mask in [0, 1] out."""

    @abstractmethod
    def reset(self) -> None:
        """Zero the recurrent state, as at the start of a new stream."""

    def close(self) -> None:
        """Release whatever the backend holds (processes, ports). The emulator holds nothing."""
        return None

    def describe(self) -> dict[str, Any]:
        """Facts about this backend for reports."""
        return {"backend": self.name}

    @property
    def is_device(self) -> bool:
        """True when the network runs on firmware at the end of a link (its frames can fail)."""
        return False

    def last_frame(self) -> LastFrame:
        """The last step's link and device facts (none for a backend without a link)."""
        return LastFrame()

    def target_model(self) -> TargetModel | None:
        """What would run on the target; None where nothing can (fp32)."""
        return None

    def batch_network(self) -> Any:
        """A network that steps many independent streams at once (streamer/batch.py's
        `BatchNetwork`: `front`, `recurrent` over B streams with `initial_state(B)`, `back`), or
        None where the backend runs one stream (a device, or a verifying pair)."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
