"""The host simulator `tdn-sim` (the firmware built for the host) as a child process.

    with Simulator(transport="tcp") as sim:          # or "pty"
        client = DeviceClient(sim.connect)

The binary is built with `make -C firmware` when it is missing or older than any firmware
source; TDN_SIM_BINARY=/path/to/tdn-sim runs another build instead. The child is always
terminated: on close(), on an exception in a `with` block, at interpreter exit (atexit), and,
on Linux, by the kernel if this process dies without running any of those
(PR_SET_PDEATHSIG). No stray simulators, ever.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path

from streamer.link.transport import LinkError, Transport

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "firmware"
SIM_BINARY = FIRMWARE_DIR / "build" / "host" / "tdn-sim"
START_TIMEOUT_S = 10.0
BUILD_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 2.0
# Run another simulator build (a sanitizer build, an older release) instead of building one.
BINARY_ENV = "TDN_SIM_BINARY"
_SOURCE_SUFFIXES = {".c", ".h", ".S", ".s", ".ld", ".mk"}
_READY = re.compile(r"^(PTY (?P<pty>/\S+)|TCP (?P<host>[\w.:-]+):(?P<port>\d+))\s*$")

_live: weakref.WeakSet[Simulator] = weakref.WeakSet()


class SimulatorError(LinkError):
    """The simulator could not be built or started, or it died."""

    cause = "simulator"


def firmware_sources(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """Files whose change makes the simulator binary out of date: the portable sources, the
    host HAL, the headers and the Makefile (not the fuzzers or tools, which it does not use)."""
    if not firmware_dir.is_dir():
        return []
    found = [firmware_dir / "Makefile"]
    for folder in ("src", "include", "hal/host"):
        found += [p for p in (firmware_dir / folder).rglob("*") if p.suffix in _SOURCE_SUFFIXES]
    return [p for p in found if p.is_file()]


def needs_build(binary: Path = SIM_BINARY, firmware_dir: Path = FIRMWARE_DIR) -> bool:
    """True when `binary` is missing or older than a firmware source."""
    if not binary.is_file():
        return True
    built = binary.stat().st_mtime
    return any(source.stat().st_mtime > built for source in firmware_sources(firmware_dir))


def build_simulator(binary: Path = SIM_BINARY, firmware_dir: Path = FIRMWARE_DIR,
                    timeout: float = BUILD_TIMEOUT_S) -> Path:
    """Run `make -C firmware` if the binary is missing or stale; its path."""
    if not (firmware_dir / "Makefile").is_file():
        raise SimulatorError(f"no firmware to build: {firmware_dir / 'Makefile'} does not exist")
    if needs_build(binary, firmware_dir):
        # Several processes (evaluate workers, parallel tests) may start simulators at once:
        # one make at a time, and the others find the binary fresh when they get the lock.
        lock_path = firmware_dir / "build" / ".tdn-sim-build.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if needs_build(binary, firmware_dir):
                _make(firmware_dir, timeout)
    if not binary.is_file():
        raise SimulatorError(f"`make -C {firmware_dir}` did not produce {binary}")
    return binary


def _make(firmware_dir: Path, timeout: float) -> None:
    try:
        result = subprocess.run(["make", "-C", str(firmware_dir)], capture_output=True, text=True,
                                timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SimulatorError(f"`make -C {firmware_dir}` failed: {error}") from error
    if result.returncode != 0:
        raise SimulatorError(f"`make -C {firmware_dir}` failed ({result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-4000:]}")


def _load_prctl():
    # Resolved in the parent: the child must not import or allocate between fork and exec.
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM the child when its parent dies (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Simulator:
    """One running `tdn-sim`, serving a pseudo-terminal ("pty") or a TCP socket ("tcp")."""

    def __init__(self, transport: str = "pty", port: int = 0, binary: Path | str | None = None,
                 args: tuple[str, ...] = (), build: bool = True,
                 start_timeout: float = START_TIMEOUT_S) -> None:
        if transport not in ("pty", "tcp"):
            raise SimulatorError(f"simulator transport must be 'pty' or 'tcp', not {transport!r}")
        self.transport, self.port, self.args = transport, port, tuple(args)
        if binary is None and os.environ.get(BINARY_ENV):
            binary, build = os.environ[BINARY_ENV], False
        self.binary = Path(binary) if binary is not None else SIM_BINARY
        self.build, self.start_timeout = build, start_timeout
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self.output: deque[str] = deque(maxlen=200)
        self.restarts = 0
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------------
    def start(self) -> Simulator:
        """Build if needed, start the child, wait for its PTY/TCP line; SimulatorError on failure."""
        if self.alive():
            return self
        if self.build and self.binary == SIM_BINARY:
            build_simulator(self.binary)
        if not self.binary.is_file():
            raise SimulatorError(f"simulator binary not found: {self.binary}")
        command = [str(self.binary), *self.args]
        if self.transport == "tcp":
            command += ["--tcp", str(self.port)]
        self._spawn(command, "tdn-sim")
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, command: list[str], name: str) -> None:
        """Start the child in its own session, tied to our life, with its output drained."""
        self._ready.clear()
        self.url = None
        self.output.clear()
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True, bufsize=1,
                                            start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as error:
            raise SimulatorError(f"cannot start {command[0]}: {error}") from error
        _live.add(self)
        self._reader = threading.Thread(target=self._read_output, args=(self.process,),
                                        name=f"{name}-{self.process.pid}", daemon=True)
        self._reader.start()

    def _read_output(self, process: subprocess.Popen) -> None:
        """Keep the child's output drained (a full pipe would stall it) and find its address."""
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            match = _READY.match(line.strip())
            if match and not self._ready.is_set() and process is self.process:
                if match["pty"]:
                    self.url = match["pty"]
                else:
                    self.port = int(match["port"]) if self.port == 0 else self.port
                    self.url = f"socket://{match['host']}:{match['port']}"
                self._ready.set()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.02):
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise SimulatorError(f"{self.binary.name} exited ({code}) before serving:\n"
                                     + "\n".join(self.output))
            if time.monotonic() >= deadline:
                raise SimulatorError(f"{self.binary.name} printed no 'PTY ...' or 'TCP ...' line "
                                     f"within {self.start_timeout:.0f} s:\n" + "\n".join(self.output))

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the child now, as a crash or a power cut would (fault tests)."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)

    def restart(self) -> Simulator:
        """Stop the child if it runs and start a new one (a TCP simulator keeps its port if it can)."""
        self._stop()
        self.restarts += 1
        return self._start_again()

    def ensure_running(self) -> Simulator:
        """Start a new child if this one died (used when reconnecting after a device restart)."""
        if not self.alive():
            if self.process is not None:
                self.restarts += 1
            self._stop()
            self._start_again()
        return self

    def _start_again(self) -> Simulator:
        try:
            return self.start()
        except SimulatorError:
            if self.transport != "tcp" or self.port == 0:
                raise
            # The old port may still be held by the dead child's socket: take any free one.
            self.port = 0
            return self.start()

    def connect(self, timeout: float = 2.0) -> Transport:
        """A transport to this simulator, restarting it first if it died."""
        self.ensure_running()
        assert self.url is not None
        return Transport.open(self.url, connect_timeout=timeout)

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                process.wait(STOP_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(STOP_TIMEOUT_S)

    def close(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 2 s) and reap it."""
        self._stop()
        _live.discard(self)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass  # interpreter shutdown: modules may be gone, and atexit has already run

    def __repr__(self) -> str:
        state = f"pid {self.pid}, {self.url}" if self.alive() else "stopped"
        return f"Simulator({self.transport}, {state})"


@atexit.register
def _close_all() -> None:
    for simulator in list(_live):
        simulator.close()

