"""The firmware on QEMU (`qemu-system-riscv32 -machine virt -smp 9 -bios none`) as a child process.

    with Qemu(transport="pty") as qemu:          # or "tcp"
        client = DeviceClient(qemu.connect)

The same life cycle as the host simulator (streamer/link/simulator.py), which it extends: the
image is built with `make -C firmware TARGET=qemu-rv32` when missing or older than a source;
the UART is a pseudo-terminal (QEMU prints "char device redirected to /dev/pts/N") or a TCP
server on 127.0.0.1; the child dies on close(), on an exception, at interpreter exit and, on
Linux, with this process (PR_SET_PDEATHSIG). restart() and kill() serve the fault tests.

Per-hart instruction counts: QEMU's minstret is the host's time-stamp counter, so the launcher
loads the plugin `libinstret.so` (firmware/hal/qemu-rv32/instret_plugin.c), which counts each
vCPU's instructions into a page of guest RAM; guest RAM is therefore a shared file (in
/dev/shm when it exists), unlinked as soon as both have mapped it. See docs/qemu.md.

TDN_QEMU=/path/to/qemu-system-riscv32 runs another QEMU; TDN_QEMU_ACCEL overrides `-accel`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from streamer.link import simulator as _sim
from streamer.link.simulator import FIRMWARE_DIR, Simulator, SimulatorError

QEMU_DIR = FIRMWARE_DIR / "build" / "qemu-rv32"
QEMU_IMAGE = QEMU_DIR / "tdn-qemu.elf"
QEMU_PLUGIN = QEMU_DIR / "libinstret.so"
QEMU_ENV = "TDN_QEMU"
ACCEL_ENV = "TDN_QEMU_ACCEL"
# One host thread for all 9 harts: on a 2-core host, multi-threaded TCG made uploads ~2x
# slower (docs/qemu.md); idle harts sleep in WFI either way.
DEFAULT_ACCEL = "tcg,thread=single"
HARTS = 9  # hart 0 the controller, harts 1..8 the cluster
RAM_MB = 128
COUNTER_PAGE_OFFSET = RAM_MB * 1024 * 1024 - 4096  # 0x87fff000 in the guest: link.ld leaves it free
START_TIMEOUT_S = 20.0
_PTY = re.compile(r"char device redirected to (?P<pty>/dev/\S+)")


def qemu_binary() -> str:
    return os.environ.get(QEMU_ENV) or "qemu-system-riscv32"


def qemu_sources(firmware_dir: Path = FIRMWARE_DIR, hal: str = "hal/qemu-rv32") -> list[Path]:
    """Files whose change makes the QEMU image out of date: the portable sources, the headers,
    the target's HAL (and the instruction-count plugin's source) and the Makefile."""
    if not firmware_dir.is_dir():
        return []
    found = [firmware_dir / "Makefile"]
    for folder in ("src", "include", hal, "hal/qemu-rv32"):
        found += [p for p in (firmware_dir / folder).rglob("*") if p.suffix in _sim._SOURCE_SUFFIXES]
    return [p for p in found if p.is_file()]


def needs_build(firmware_dir: Path = FIRMWARE_DIR, target: str = "qemu-rv32", image: str = "tdn-qemu.elf",
                hal: str = "hal/qemu-rv32") -> bool:
    outputs = [firmware_dir / "build" / target / name for name in (image, "libinstret.so")]
    if not all(p.is_file() for p in outputs):
        return True
    built = min(p.stat().st_mtime for p in outputs)
    return any(source.stat().st_mtime > built for source in qemu_sources(firmware_dir, hal))


def build_qemu_image(firmware_dir: Path = FIRMWARE_DIR, timeout: float = _sim.BUILD_TIMEOUT_S,
                     target: str = "qemu-rv32", image: str = "tdn-qemu.elf",
                     hal: str = "hal/qemu-rv32") -> Path:
    """Run `make -C firmware TARGET=<target>` if the image or the plugin is missing or stale."""
    import fcntl

    if not (firmware_dir / "Makefile").is_file():
        raise SimulatorError(f"no firmware to build: {firmware_dir / 'Makefile'} does not exist")
    if needs_build(firmware_dir, target, image, hal):
        lock_path = firmware_dir / "build" / f".tdn-{target}-build.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if needs_build(firmware_dir, target, image, hal):
                command = ["make", "-C", str(firmware_dir), f"TARGET={target}"]
                try:
                    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
                except (OSError, subprocess.TimeoutExpired) as error:
                    raise SimulatorError(f"`{' '.join(command)}` failed: {error}") from error
                if result.returncode != 0:
                    raise SimulatorError(f"`{' '.join(command)}` failed ({result.returncode}):\n"
                                         f"{(result.stdout + result.stderr)[-4000:]}")
    built = firmware_dir / "build" / target / image
    if not built.is_file():
        raise SimulatorError(f"`make -C {firmware_dir} TARGET={target}` did not produce {built}")
    return built


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    """True when something listens on 127.0.0.1:`port` (read from /proc: connecting to probe
    would take QEMU's one client slot)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":  # LISTEN
                return True
    return False


class Qemu(Simulator):
    """One running QEMU with the firmware, its UART on a pseudo-terminal ("pty") or TCP ("tcp").

    The board is described by the class attributes and `machine_args`; streamer/link/qemu_arm.py
    overrides them for the Cortex-M boards.
    """

    default_image = QEMU_IMAGE
    plugin = QEMU_PLUGIN
    ram_mb = RAM_MB
    package = "qemu-system-misc"  # the Debian package that provides the binary

    def __init__(self, transport: str = "pty", port: int = 0, image: Path | str | None = None,
                 build: bool = True, instret: bool = True, accel: str | None = None,
                 start_timeout: float = START_TIMEOUT_S) -> None:
        super().__init__(transport, port, binary=image or self.default_image, build=build,
                         start_timeout=start_timeout)
        self.instret = instret
        self.accel = accel or os.environ.get(ACCEL_ENV) or DEFAULT_ACCEL
        self._ram_file: Path | None = None
        self._pty_fd: int | None = None

    def program(self) -> str:
        return qemu_binary()

    def build_image(self) -> Path:
        return build_qemu_image()

    def machine_args(self) -> list[str]:
        """-machine and what goes with it; with the RAM as the shared file when counting."""
        machine = "virt,memory-backend=ram" if self.instret else "virt"
        return ["-machine", machine, "-smp", str(HARTS), "-m", f"{RAM_MB}M", "-bios", "none"]

    def command(self) -> list[str]:
        machine = self.machine_args()
        if self.instret:
            assert self._ram_file is not None
            offset = self.ram_mb * 1024 * 1024 - 4096  # the counter page: the RAM's last 4 kB
            machine = ["-object", f"memory-backend-file,id=ram,size={self.ram_mb}M,"
                                  f"mem-path={self._ram_file},share=on",
                       *machine, "-plugin", f"{self.plugin},ram={self._ram_file},offset={offset}"]
        serial = "pty" if self.transport == "pty" else f"tcp:127.0.0.1:{self.port},server=on,wait=off"
        # -nodefaults -display none -monitor none: the UART is the only character device,
        # nothing reads this process's stdin or draws a window.
        return [self.program(), *machine, "-accel", self.accel,
                "-kernel", str(self.binary), "-nodefaults", "-display", "none", "-monitor", "none",
                "-serial", serial]

    def start(self) -> Qemu:
        """Build if needed, start QEMU, wait for its UART; SimulatorError on failure."""
        if self.alive():
            return self
        if shutil.which(self.program()) is None:
            raise SimulatorError(f"{self.program()} not found: install QEMU ({self.package})")
        if self.build and self.binary == self.default_image:
            self.build_image()
        if not self.binary.is_file():
            raise SimulatorError(f"firmware image not found: {self.binary}")
        if self.transport == "tcp" and self.port == 0:
            self.port = _free_port()
        if self.instret:
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, name = tempfile.mkstemp(prefix="tdn-qemu-ram-", dir=shm)
            os.ftruncate(fd, self.ram_mb * 1024 * 1024)
            os.close(fd)
            self._ram_file = Path(name)
        try:
            self._spawn(self.command(), "qemu")
        except SimulatorError:
            self._remove_ram_file()
            raise
        try:
            if self.transport == "tcp":
                self._wait_listening()
                self._probe_tcp()
            else:
                self._wait_ready()
                self._hold_pty()
        except BaseException:
            self.close()
            raise
        # QEMU and the plugin have mapped the RAM file by now (the firmware answered): the
        # name can go, so not even a SIGKILLed host leaves it behind.
        self._remove_ram_file()
        return self

    def _read_output(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            match = _PTY.search(line)
            if match and self.transport == "pty" and not self._ready.is_set() and process is self.process:
                self.url = match["pty"]
                self._ready.set()

    def _hold_pty(self) -> None:
        """Keep a handle on the pty's slave side for QEMU's lifetime, then wait for the firmware.

        QEMU reads its pty master only while a slave is open, and rechecks once a second
        when none was: without a handle of our own, a client's first request could wait a
        second (and time out), and each reconnect would lose that second again.
        """
        import termios
        import tty

        assert self.url is not None
        self._pty_fd = os.open(self.url, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._pty_fd, termios.TCSANOW)
        fd = self._pty_fd

        def read() -> bytes:
            try:
                return os.read(fd, 4096)
            except BlockingIOError:
                return b""

        self._await_firmware(lambda data: os.write(fd, data), read)

    def _probe_tcp(self) -> None:
        """Wait for the firmware over one TCP connection, closed after (QEMU then accepts the
        next client)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.start_timeout) as link:
            link.setblocking(False)

            def read() -> bytes:
                try:
                    return link.recv(4096)
                except BlockingIOError:
                    return b""

            self._await_firmware(link.sendall, read)

    def _await_firmware(self, write, read) -> None:
        """Send INFO every 0.5 s until the firmware answers one.

        The first request may arrive while hart 0 still clears .bss, and enabling the UART's
        FIFO drops what it holds: a client whose first request is lost there would time out.
        After this, the firmware is serving and nothing is in flight.
        """
        from streamer.link.messages import InfoRequest
        from streamer.link.protocol import MsgType, parse_all

        deadline = time.monotonic() + self.start_timeout
        received, next_try = b"", 0.0
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise SimulatorError("QEMU exited before the firmware answered:\n" + "\n".join(self.output))
            if time.monotonic() >= next_try:
                write(InfoRequest().encode(seq=0))
                next_try = time.monotonic() + 0.5
            time.sleep(0.02)
            received += read()
            if any(p.type == MsgType.INFO | 0x80 for p in parse_all(received)):
                time.sleep(0.1)  # the answers to repeated requests: drain them too
                read()
                return
        raise SimulatorError(f"the firmware on QEMU did not answer INFO within {self.start_timeout:.0f} s:\n"
                             + "\n".join(self.output))

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not _listening(self.port):
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                time.sleep(0.05)  # let the reader collect QEMU's last words
                raise SimulatorError(f"QEMU exited ({code}) before listening on port {self.port}:\n"
                                     + "\n".join(self.output))
            if time.monotonic() >= deadline:
                raise SimulatorError(f"QEMU did not listen on port {self.port} within "
                                     f"{self.start_timeout:.0f} s:\n" + "\n".join(self.output))
            time.sleep(0.02)
        self.url = f"socket://127.0.0.1:{self.port}"
        self._ready.set()

    def _stop(self) -> None:
        try:
            super()._stop()
        finally:
            if self._pty_fd is not None:
                os.close(self._pty_fd)
                self._pty_fd = None
            self._remove_ram_file()

    def _remove_ram_file(self) -> None:
        if self._ram_file is not None:
            self._ram_file.unlink(missing_ok=True)
            self._ram_file = None

    def __repr__(self) -> str:
        state = f"pid {self.pid}, {self.url}" if self.alive() else "stopped"
        return f"Qemu({self.transport}, {state})"
