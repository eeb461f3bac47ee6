"""Byte transports for the device link: serial ports, pseudo-terminals and TCP sockets.

    with Transport.open("serial:/dev/ttyUSB0@921600") as link:   # or "socket://127.0.0.1:5555"
        link.write(packet, deadline=time.monotonic() + 1)
        data = link.read(deadline=time.monotonic() + 1)        # b"" when the deadline passes

All of them go through pyserial (`serial.serial_for_url`), kept non-blocking: this module waits
with `select` itself, so every read and write ends by its deadline whatever the other end does.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass

import serial

DEFAULT_BAUD = 921_600
_READ_SIZE = 65536


class LinkError(RuntimeError):
    """The device link failed. `cause` names the failure for per-cause counting."""

    cause = "link"


class LinkTimeout(LinkError):
    cause = "timeout"


class LinkClosed(LinkError):
    """The other end went away (device reset, process killed, cable pulled)."""

    cause = "disconnected"


@dataclass(frozen=True)
class TransportSpec:
    """A parsed link address: `kind` is "serial" (ports and ptys) or "socket"."""

    kind: str
    url: str
    baud: int | None

    @classmethod
    def parse(cls, spec: str) -> TransportSpec:
        """`serial:PATH[@BAUD]`, a bare `/dev/...` path, or `socket://HOST:PORT`."""
        if spec.startswith("socket://"):
            host, _, port = spec[len("socket://"):].rpartition(":")
            if not host or not port.isdigit():
                raise LinkError(f"bad socket address {spec!r}: expected socket://HOST:PORT")
            return cls("socket", spec, None)
        path = spec[len("serial:"):] if spec.startswith("serial:") else spec
        if not path.startswith("/") and not spec.startswith("serial:"):
            raise LinkError(f"unknown link address {spec!r}: expected serial:PATH[@BAUD] or "
                            f"socket://HOST:PORT")
        baud = DEFAULT_BAUD
        if "@" in path:
            path, _, rate = path.rpartition("@")
            if not rate.isdigit() or int(rate) <= 0:
                raise LinkError(f"bad baud rate {rate!r} in {spec!r}")
            baud = int(rate)
        if not path:
            raise LinkError(f"no device path in {spec!r}")
        return cls("serial", path, baud)

    def __str__(self) -> str:
        if self.kind == "socket":
            return self.url
        return f"serial:{self.url}@{self.baud}"


class Transport:
    """A byte stream to the device whose reads and writes are bounded by deadlines."""

    def __init__(self, spec: TransportSpec, port: serial.SerialBase) -> None:
        self.spec = spec
        self._port: serial.SerialBase | None = port

    @classmethod
    def open(cls, spec: str | TransportSpec, connect_timeout: float = 2.0) -> Transport:
        """Open a serial port, a pty, or connect a TCP socket; LinkClosed when it cannot."""
        spec = spec if isinstance(spec, TransportSpec) else TransportSpec.parse(spec)
        try:
            if spec.kind == "socket":
                # pyserial's socket handler connects with its own short timeout; retry until
                # ours so a simulator that is still binding its port is not a failure.
                port = _retry(lambda: serial.serial_for_url(spec.url, timeout=0), connect_timeout)
                _no_delay(port)
            else:
                port = serial.serial_for_url(spec.url, baudrate=spec.baud, timeout=0,
                                             exclusive=True)
        except (serial.SerialException, OSError, ValueError) as error:
            raise LinkClosed(f"cannot open {spec}: {error}") from error
        return cls(spec, port)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._port.is_open

    def _require_port(self) -> serial.SerialBase:
        if self._port is None:
            raise LinkClosed(f"{self.spec} is closed")
        return self._port

    def write(self, data: bytes, deadline: float) -> None:
        """Send all of `data` before `deadline` (time.monotonic()), else LinkTimeout."""
        port = self._require_port()
        port.write_timeout = max(deadline - time.monotonic(), 0.001)
        try:
            # No flush(): tcdrain would wait for the UART to empty, with no deadline.
            port.write(data)
        except serial.SerialTimeoutException as error:
            raise LinkTimeout(f"write to {self.spec} did not finish in time") from error
        except (serial.SerialException, OSError) as error:
            raise LinkClosed(f"write to {self.spec} failed: {error}") from error

    def read(self, deadline: float) -> bytes:
        """Whatever bytes arrive first, waiting until `deadline` at most (then b"")."""
        port = self._require_port()
        try:
            ready, _, _ = select.select([port.fileno()], [], [], max(deadline - time.monotonic(), 0.0))
            if not ready:
                return b""
            # timeout=0: one read of what is there, no waiting inside pyserial.
            data = port.read(_READ_SIZE)
        except (serial.SerialException, OSError, ValueError) as error:
            raise LinkClosed(f"{self.spec} closed: {error}") from error
        return data

    def read_available(self) -> bytes:
        """Bytes already received, without waiting (used to drain stale replies)."""
        return self.read(deadline=0.0)

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass  # the other end is already gone: nothing left to release
            self._port = None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transport({self.spec}, {'open' if self.is_open else 'closed'})"


def _no_delay(port: serial.SerialBase) -> None:
    # Requests are small and each waits for its reply: Nagle's algorithm would hold a second
    # small write (garbage or a request right after another) until the peer's delayed ACK.
    sock = getattr(port, "_socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _retry(attempt, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except (serial.SerialException, OSError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
