"""An adversarial device for tests: a TCP proxy in front of the real host simulator.

The host talks to `socket://127.0.0.1:PORT` (the proxy); the proxy forwards its requests to a
real `tdn-sim` and passes the replies back, except that each FRAME reply goes through
`rewrite(reply) -> FrameReply | None` first (None: the reply is dropped), and that the proxy
can be frozen (it keeps the connection open and says nothing more) or cut (it closes the
connection and refuses new ones). It is a test double for a faulty device at the end of a
cable: the simulator computes the real answer, the proxy damages it the way a broken
device, cable or firmware would, and re-encodes it with valid CRCs so that only the host's
own checks can catch it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import numpy as np

from streamer.link.messages import Counters, FrameReply
from streamer.link.protocol import MsgType, PacketParser, encode_packet

Rewrite = Callable[[FrameReply], FrameReply | None]


def f16_bits(value: float) -> int:
    return int(np.array([value], np.float16).view(np.uint16)[0])


def with_mask(value: float) -> Rewrite:
    """Every bin of every mask set to `value` (NaN, inf, 65504, -0.5, ...)."""
    def rewrite(reply: FrameReply) -> FrameReply:
        return FrameReply(reply.index, np.full(257, f16_bits(value), "<u2"), reply.counters)
    return rewrite


def with_counters(**changes) -> Rewrite:
    """The counters with some fields replaced (e.g. cores=0 with matching arrays, ticks=2**32-1)."""
    def rewrite(reply: FrameReply) -> FrameReply:
        fields = {name: getattr(reply.counters, name) for name in (
            "version", "cores", "ticks", "int8_macs", "fp16_macs", "l1_bytes_from", "dma_transfers",
            "forks", "barrier_waits", "instructions")}
        fields.update(changes)
        return FrameReply(reply.index, reply.bits, Counters(**fields))
    return rewrite


def with_index_offset(offset: int) -> Rewrite:
    def rewrite(reply: FrameReply) -> FrameReply:
        return FrameReply((reply.index + offset) & 0xFFFFFFFF, reply.bits, reply.counters)
    return rewrite


def only_frames(frames: set[int], rewrite: Rewrite | None) -> Rewrite:
    """Apply `rewrite` to the replies of these frame indices only (None: drop them)."""
    def apply(reply: FrameReply) -> FrameReply | None:
        if reply.index not in frames:
            return reply
        return None if rewrite is None else rewrite(reply)
    return apply


class FaultyDevice:
    """The proxy: `url` for the host; `rewrite` may be changed at any time; `freeze()`, `cut()`."""

    def __init__(self, upstream_port: int, rewrite: Rewrite | None = None,
                 model_rewrite: Callable[[bytes], bytes] | None = None) -> None:
        self.rewrite = rewrite
        self.model_rewrite = model_rewrite  # changes MODEL_END replies' payloads (the plan)
        self.upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=5)
        self.upstream.settimeout(None)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.frozen = threading.Event()
        self.cut_off = threading.Event()
        self.frame_replies = 0
        self._host: socket.socket | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._from_device, daemon=True).start()

    def freeze(self) -> None:
        """Say nothing more, keep the connection open (a hung device)."""
        self.frozen.set()

    def cut(self) -> None:
        """Close the connection and refuse new ones (a device unplugged)."""
        self.cut_off.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            if self._host is not None:
                with contextlib.suppress(OSError):
                    self._host.shutdown(socket.SHUT_RDWR)
                self._host.close()
                self._host = None

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self.upstream.close()

    def __enter__(self) -> FaultyDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self.cut_off.is_set():
            try:
                host, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._host is not None:
                    self._host.close()
                self._host = host
            threading.Thread(target=self._from_host, args=(host,), daemon=True).start()

    def _from_host(self, host: socket.socket) -> None:
        while True:
            try:
                data = host.recv(4096)
            except OSError:
                return
            if not data or self.cut_off.is_set():
                return
            if not self.frozen.is_set():
                with contextlib.suppress(OSError):
                    self.upstream.sendall(data)

    def _from_device(self) -> None:
        parser = PacketParser()
        while True:
            try:
                data = self.upstream.recv(4096)
            except OSError:
                return
            if not data:
                return
            for packet in parser.feed(data):
                out = encode_packet(packet.type, packet.seq, packet.payload)
                if packet.type == MsgType.MODEL_END_REPLY and self.model_rewrite is not None:
                    out = encode_packet(packet.type, packet.seq, self.model_rewrite(packet.payload))
                if packet.type == MsgType.FRAME_REPLY and self.rewrite is not None:
                    self.frame_replies += 1
                    changed = self.rewrite(FrameReply.unpack(packet.payload))
                    out = b"" if changed is None else changed.encode(packet.seq)
                with self._lock:
                    host = self._host
                if host is None or self.frozen.is_set() or self.cut_off.is_set() or not out:
                    continue
                with contextlib.suppress(OSError):
                    host.sendall(out)
