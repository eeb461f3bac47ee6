"""Backends run the network one frame at a time: magnitudes in, mask out.

The emulator (numpy, on the host) and the firmware link are two implementations of the
same small interface, so the engine, the reports and the commands never care which is used.
"""

from streamer.backends.base import Backend, open_backend

__all__ = ["Backend", "open_backend"]
