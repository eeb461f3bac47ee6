"""A real JACK server for tests: `jackd -d dummy -r 16000 -p 100`, started and always stopped.

The dummy driver needs no sound card and runs on its own clock at the rate and period we
give it, so PortAudio (through its JACK host API) sees a device at exactly 16 kHz with
100-frame periods: the live stream's block. Each server gets a unique name (so parallel test
runs and a user's own JACK never meet) and clients find it through JACK_DEFAULT_SERVER.

Not to be confused with the JACK-Client package's `jack` module, which the tests do not use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RATE = 16_000
PERIOD = 100


@dataclass
class JackServer:
    """A running jackd: its name, process and the environment its clients need."""

    name: str
    process: subprocess.Popen
    env: dict[str, str]
    log: Path
    rate: int = RATE
    period: int = PERIOD
    tools: dict[str, str] = field(default_factory=dict)

    def run_tool(self, tool: str, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run([self.tools.get(tool, tool), "-s", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def ports(self) -> list[str]:
        return [p for p in self.run_tool("jack_lsp").stdout.splitlines() if p.strip()]

    def connections(self) -> dict[str, list[str]]:
        """Each port and the ports it is connected to (`jack_lsp -c`)."""
        out: dict[str, list[str]] = {}
        current = None
        for line in self.run_tool("jack_lsp", "-c").stdout.splitlines():
            if line.startswith((" ", "\t")):
                if current is not None:
                    out[current].append(line.strip())
            elif line.strip():
                current = line.strip()
                out[current] = []
        return out

    def connect(self, source: str, destination: str) -> None:
        result = self.run_tool("jack_connect", source, destination)
        if result.returncode != 0:
            raise RuntimeError(f"jack_connect {source} {destination}: {result.stderr.strip()}")

    def disconnect(self, source: str, destination: str) -> None:
        self.run_tool("jack_disconnect", source, destination)

    def isolate(self, port: str) -> None:
        """Disconnect `port` from everything (PortAudio wires new streams to system ports)."""
        for other in self.connections().get(port, []):
            a, b = (port, other) if ":out" in port or ":capture" in port else (other, port)
            self.disconnect(a, b)

    def wait_for_ports(self, predicate, timeout: float = 10.0) -> list[str]:
        """Poll the port list until `predicate(ports)` holds; returns the ports."""
        deadline = time.monotonic() + timeout
        while True:
            ports = self.ports()
            if predicate(ports):
                return ports
            if time.monotonic() > deadline:
                raise TimeoutError(f"JACK ports never matched; have {ports}")
            time.sleep(0.05)

    def new_client_ports(self, before: set[str], timeout: float = 30) -> tuple[str, str]:
        """(input, output) port of the client that appeared since the port list `before`."""
        def has_both(ports: list[str]) -> bool:
            new = [p for p in ports if p not in before]
            return any(":in" in p for p in new) and any(":out" in p for p in new)

        new = [p for p in self.wait_for_ports(has_both, timeout) if p not in before]
        return next(p for p in new if ":in" in p), next(p for p in new if ":out" in p)

    def wire(self, source_client: tuple[str, str], streamer: tuple[str, str]) -> None:
        """Loop two clients' (input, output) ports into each other, and nothing else:
        source out -> streamer in, streamer out -> source in."""
        for port in (*source_client, *streamer):
            self.isolate(port)
        self.connect(source_client[1], streamer[0])
        self.connect(streamer[1], source_client[0])

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def client_env(name: str) -> dict[str, str]:
    """Environment for JACK clients of server `name` (PortAudio, jack_lsp, ...)."""
    return dict(os.environ, JACK_DEFAULT_SERVER=name,
                # Never let a client auto-start a server of its own: a test that lost its
                # server must fail, not silently get a different one.
                JACK_NO_START_SERVER="1",
                # No D-Bus device reservation: there is no session bus in CI containers.
                JACK_NO_AUDIO_RESERVATION="1")


@contextlib.contextmanager
def running_server(tmp_dir: Path, rate: int = RATE, period: int = PERIOD,
                   name: str | None = None, timeout: float = 15.0) -> Iterator[JackServer]:
    """Start `jackd -d dummy` and wait until clients can connect; kill it on exit, always.

    Skips the test when jackd is missing (fails under CI, see helpers.require_tool).
    """
    from helpers import require_tool

    jackd = require_tool("jackd")
    tools = {t: require_tool(t) for t in ("jack_wait", "jack_lsp", "jack_connect", "jack_disconnect")}
    name = name or f"streamer-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = client_env(name)
    log = Path(tmp_dir) / f"{name}.log"
    with log.open("w") as log_file:
        # -T: the server quits when its last client leaves is NOT wanted; -t 2000: a client
        # slowed by a loaded CI host is not kicked out after the default 500 ms.
        process = subprocess.Popen([jackd, "-n", name, "-t", "2000", "-d", "dummy", "-r", str(rate),
                                    "-p", str(period)], env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = JackServer(name, process, env, log, rate, period, tools)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jackd exited with {process.returncode}: {log.read_text()[-2000:]}")
            ready = subprocess.run([tools["jack_wait"], "-s", name, "-c"], env=env,
                                   capture_output=True, text=True, timeout=10)
            if "running" in ready.stdout and "not" not in ready.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jackd did not come up in {timeout:g} s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; reaps the process either way."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)


_CLIENT_VARIABLES = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION")


@contextlib.contextmanager
def portaudio_on(server: JackServer) -> Iterator[None]:
    """Make this process's PortAudio a client of `server` for the duration, then detach it.

    PortAudio enumerates host APIs once, at initialisation (sounddevice's import): a JACK
    server started later is invisible until PortAudio is restarted. Detaching must happen
    while the server still runs: PortAudio aborts the process when it closes its JACK
    client on a server that is gone.
    """
    import sounddevice as sd

    saved = {key: os.environ.get(key) for key in _CLIENT_VARIABLES}
    os.environ.update({key: server.env[key] for key in _CLIENT_VARIABLES})
    sd._terminate()
    sd._initialize()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # Keep clients from ever starting a server of their own after we leave.
        os.environ["JACK_NO_START_SERVER"] = "1"
        sd._terminate()
        sd._initialize()


def jack_device() -> int:
    """The index of PortAudio's JACK device (the server's system ports)."""
    import sounddevice as sd

    for api in sd.query_hostapis():
        if api["name"].startswith("JACK") and api["devices"]:
            return api["devices"][0]
    raise RuntimeError(f"PortAudio has no JACK host API here: {[a['name'] for a in sd.query_hostapis()]}"
                       f" (is libportaudio2 built with JACK support?)")
