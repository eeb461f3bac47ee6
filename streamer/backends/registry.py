"""The backends, by the spec a user writes after `--backend`: one table, the pyserial way.

Each row names a spec, says in a few words what it is (the CLI's help and every error list
the rows), recognises its specs, and opens one. Adding a backend is a row here, its module
and its tests. Nothing heavy is imported until a backend is opened, so the command line can
show the table instantly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamer.backends.base import Backend
    from streamer.link.policy import LinkPolicy


@dataclass(frozen=True)
class BackendKind:
    """One kind of backend: how it is written, what it is, which specs are its, how it opens."""

    spec: str
    about: str
    matches: Callable[[str], bool]
    open: Callable[[str, Any, str | None, LinkPolicy | None], Backend]
    device: bool = True  # the network runs on firmware (a link), not in this process
    verifiable: bool = True  # --verify may run the emulator beside it (not beside itself)


def _open_emulator(spec: str, params: Any, quant: str | None, policy: LinkPolicy | None) -> Backend:
    from streamer.backends.emulator import EmulatorBackend

    return EmulatorBackend(params, quant=quant)


def _open_link(spec: str, params: Any, quant: str | None, policy: LinkPolicy | None,
               placement: str = "auto") -> Backend:
    from streamer.backends.link import open_link

    return open_link(spec, params, quant, policy=policy, placement=placement)


def _open_native(spec: str, params: Any, quant: str | None, policy: LinkPolicy | None) -> Backend:
    from streamer.backends.native import NativeBackend

    return NativeBackend(params, quant=quant)


def _named(name: str) -> Callable[[str], bool]:
    return lambda spec: spec == name


BACKENDS: tuple[BackendKind, ...] = (
    BackendKind("emulator", "numpy on this host: fp32, or bit-accurate fp16, int8, mixed", _named("emulator"),
                _open_emulator, device=False, verifiable=False),
    BackendKind("native", "the firmware's C in this process (libtdn, ctypes): fp16, int8, mixed",
                _named("native"), _open_native, device=False),
    BackendKind("sim", "the firmware's host simulator, started here, over a pseudo-terminal", _named("sim"),
                _open_link),
    BackendKind("sim-tcp", "the same over a TCP socket on loopback", _named("sim-tcp"), _open_link),
    BackendKind("qemu", "the firmware on RISC-V under QEMU (1 controller + 8 worker harts), UART on a pty",
                _named("qemu"), _open_link),
    BackendKind("qemu-tcp", "the same with the UART on a TCP socket", _named("qemu-tcp"), _open_link),
    BackendKind("qemu-m7", "the firmware on one Cortex-M7 core under QEMU (mps2-an500), UART on a pty",
                _named("qemu-m7"), _open_link),
    BackendKind("qemu-m7-tcp", "the same with the UART on a TCP socket", _named("qemu-m7-tcp"), _open_link),
    BackendKind("qemu-m55", "the firmware on one Cortex-M55 core under QEMU (mps3-an547), UART on a pty",
                _named("qemu-m55"), _open_link),
    BackendKind("qemu-m55-tcp", "the same with the UART on a TCP socket", _named("qemu-m55-tcp"), _open_link),
    BackendKind("serial:PATH[@BAUD]", "a device on a serial port, e.g. serial:/dev/ttyUSB0@2000000",
                lambda spec: spec.startswith("serial:"), _open_link),
    BackendKind("socket://HOST:PORT", "a device or simulator listening on TCP",
                lambda spec: spec.startswith("socket://"), _open_link),
)


def backend_names(verifiable_only: bool = False) -> str:
    """'emulator, native, sim, ...': the specs, for errors."""
    return ", ".join(kind.spec for kind in BACKENDS if kind.verifiable or not verifiable_only)


def backend_help() -> str:
    """The --backend help: every row, what it is."""
    return "where the network runs: " + "; ".join(f"'{kind.spec}' ({kind.about})" for kind in BACKENDS) \
        + " (default: emulator)"


def kind_of(spec: str) -> BackendKind | None:
    return next((kind for kind in BACKENDS if kind.matches(spec)), None)


def open_backend(spec: str, params: Any, quant: str | None = None, verify: bool = False,
                 policy: LinkPolicy | None = None, placement: str = "auto") -> Backend:
    """Open the backend named by `spec` (a row of BACKENDS) for a model in numeric mode `quant`.

    `params` is FP32 TinyDenoiserParams or a QuantizedModel; `quant` None means the model's own
    mode (fp32 for FP32 params, which a device cannot run). `verify` runs the emulator beside a
    device (or the native library) and counts frames whose masks differ by even one bit.
    `policy` bounds how long a device link is waited for (default: LinkPolicy()).
    """
    from streamer.backends.base import BackendError

    kind = kind_of(spec)
    if kind is None:
        raise BackendError(f"unknown backend {spec!r}; available: {backend_names()}")
    if verify:
        if not kind.verifiable:
            raise BackendError(f"--verify compares the firmware's arithmetic with the emulator: use it "
                               f"with native or a device backend ({backend_names(verifiable_only=True)})")
        from streamer.backends.verify import VerifyingBackend

        return VerifyingBackend.for_device(_open(kind, spec, params, quant, policy, placement), params, quant)
    return _open(kind, spec, params, quant, policy, placement)


def _open(kind: BackendKind, spec: str, params: Any, quant: str | None, policy: LinkPolicy | None,
          placement: str) -> Backend:
    # only a device takes a placement; "auto" keeps every opener's four-argument call
    if placement == "auto" or not kind.device:
        return kind.open(spec, params, quant, policy)
    return kind.open(spec, params, quant, policy, placement)  # type: ignore[call-arg]
