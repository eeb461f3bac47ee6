"""The Backend interface and the factory that turns a `--backend` string into one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from streamer.link.policy import LinkPolicy
from streamer.model.params import TinyDenoiserParams


class BackendError(RuntimeError):
    """A backend could not be opened or stopped answering."""


class DeviceGone(BackendError):
    """A device that stopped answering for good (LinkPolicy's bounds): the stream must end."""

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

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_backend(spec: str, params: TinyDenoiserParams, quant: str | None = None,
                 verify: bool = False, policy: LinkPolicy | None = None) -> Backend:
    """Open the backend named by `spec` for a model in numeric mode `quant`.

    `spec`: "emulator"; "sim" / "sim-tcp" (start the host firmware simulator, link over a pty
    or a TCP socket); "qemu" / "qemu-tcp" (the firmware on QEMU RV32, 1 + 8 harts, its UART on
    a pty or a TCP socket); "serial:PATH[@BAUD]" or "socket://HOST:PORT" (a device). `params` is FP32
    TinyDenoiserParams or a QuantizedModel; `quant` None means the model's own mode (fp32 for
    FP32 params, which a device cannot run). `verify` runs the emulator beside a device and
    counts frames whose masks differ by even one bit. `policy` bounds how long a device
    link is waited for (default: LinkPolicy()).
    """
    if verify:
        if spec == "emulator":
            raise BackendError("--verify compares a device with the emulator: use it with a device "
                               "backend (sim, sim-tcp, qemu, qemu-tcp, serial:PATH, socket://HOST:PORT)")
        from streamer.link.verify import VerifyingBackend

        return VerifyingBackend.for_device(open_backend(spec, params, quant, policy=policy), params, quant)
    if spec == "emulator":
        from streamer.backends.emulator import EmulatorBackend

        return EmulatorBackend(params, quant=quant)
    # Device links: the host simulator over a pty or TCP, a serial port, or a TCP device.
    if spec in ("sim", "sim-tcp", "qemu", "qemu-tcp") or spec.startswith(("serial:", "socket://")):
        from streamer.backends.link import open_link

        return open_link(spec, params, quant, policy=policy)
    raise BackendError(f"unknown backend {spec!r}; available: emulator, sim, sim-tcp, qemu, qemu-tcp, "
                       f"serial:PATH[@BAUD], socket://HOST:PORT")
