"""Backends run the network one frame at a time: magnitudes in, mask out.

The emulator (numpy, on the host) and the firmware link are implementations of the same
small interface (`base.Backend`), listed once in `registry.BACKENDS`, so the engine, the
reports and the commands never care which is used. Exports are loaded on first use, so the
command line can list the backends without importing numpy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Backend", "open_backend"]


def __getattr__(name: str) -> Any:
    if name == "Backend":
        from streamer.backends.base import Backend

        return Backend
    if name == "open_backend":
        from streamer.backends.registry import open_backend

        return open_backend
    raise AttributeError(name)
