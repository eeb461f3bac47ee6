"""DeviceClient: requests and replies over a Transport, with deadlines, sequence numbers and
recovery (docs/protocol.md, "Host side rules").

    client = DeviceClient(lambda: Transport.open("socket://127.0.0.1:5555"))
    info = client.info()
    client.load_model(encode_blob(model), progress=lambda done, total: ...)
    mask_bits, counters = client.frame(0, magnitude_bits)

Every request waits for the reply with its own sequence number until its deadline; replies to
older requests are discarded and counted. FRAME failures are counted by cause so that
frames sent = frames answered + frames failed, always. ERROR NO_MODEL (the device restarted)
reloads the last model; a closed connection is reopened with the `connect` factory on the
next request, so a restarted simulator or device is picked up without the caller's help.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamer.link.messages import (
    MAX_CHUNK,
    PROTOCOL_VERSION,
    Counters,
    DeviceInfo,
    ErrorCode,
    ErrorReply,
    FrameReply,
    FrameRequest,
    InfoRequest,
    Message,
    ModelBeginReply,
    ModelBeginRequest,
    ModelChunkReply,
    ModelChunkRequest,
    ModelEndRequest,
    ModelInfo,
    ResetReply,
    ResetRequest,
    StatsReply,
    StatsRequest,
    TraceReply,
    TraceRequest,
    decode_message,
    error_name,
)
from streamer.link.protocol import PacketParser, ProtocolError, crc32, reply_type
from streamer.link.transport import LinkClosed, LinkError, LinkTimeout, Transport

FRAME_TIMEOUT_S = 1.0
MODEL_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 1.0
MODEL_ATTEMPTS = 3

Progress = Callable[[int, int], None]


class DeviceError(LinkError):
    """The device answered ERROR: `code`, its `name` (NO_MODEL, ...) and the device's text."""

    def __init__(self, reply: ErrorReply, context: str = "") -> None:
        self.code, self.request_type, self.text = reply.code, reply.request_type, reply.text
        self.name = error_name(reply.code)
        self.cause = f"error:{self.name}"
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}device refused request 0x{reply.request_type:02x} with "
                         f"{self.name} ({reply.code}): {reply.text or 'no detail'}")


class MalformedReply(LinkError):
    """A reply with the right sequence number whose type or payload is not what was asked for."""

    cause = "malformed"


class ModelTooLarge(DeviceError):
    """The device has no room for the blob (ERROR MODEL_TOO_LARGE)."""


class ImplausibleReply(LinkError):
    """A FRAME reply that decodes but cannot be true: a mask value that is not finite or not in
    [0, 1], or counters that do not fit the device (INFO) and the model it holds. The frame
    fails like a lost one (counted by `cause`; the backend plays its fallback)."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


# Ceilings for counters a frame cannot exceed on any real device (see ReplyLimits).
MAX_COUNTER_EVENTS = 10_000_000          # DMA transfers, forks, barrier waits per frame
MAX_INSTRUCTIONS = 10_000_000_000        # per hart per frame: 10 s at 1 GIPS
MAX_CORES = 64


@dataclass(frozen=True)
class ReplyLimits:
    """What a FRAME reply from this device with this model can plausibly say.

    `cores` and `timer_hz` come from INFO; `max_device_s` is the host's frame timeout (a frame
    cannot take longer on the device than the host waited for its answer); `max_macs` is twice
    the model's parameter count (each weight is used once per frame); `max_l1_bytes` four
    times the blob plus 64 KiB (the weights stream into L1 once per frame, activations on top).
    """

    cores: int
    timer_hz: int
    max_device_s: float
    max_macs: int
    max_l1_bytes: int

    @classmethod
    def for_model(cls, device: DeviceInfo, model: ModelInfo, frame_timeout: float) -> ReplyLimits:
        from streamer.model.params import tensor_shapes

        parameters = sum(int(np.prod(shape)) for shape in tensor_shapes(model.cell, model.hidden).values())
        return cls(device.cores, device.timer_hz, frame_timeout, 2 * parameters,
                   4 * model.blob_bytes + 65_536)


def check_frame_reply(bits: np.ndarray, counters: Counters, limits: ReplyLimits | None) -> None:
    """Raise ImplausibleReply when the mask or the counters cannot be true (see the class)."""
    with np.errstate(invalid="ignore"):
        mask = np.asarray(bits, "<u2").view(np.float16)
        good = np.isfinite(mask) & (mask >= 0) & (mask <= 1)
    if not good.all():
        first = int(np.flatnonzero(~good)[0])
        raise ImplausibleReply(f"FRAME reply mask bin {first} is {float(mask[first])!r}: a mask is "
                               f"finite and in [0, 1] ({int((~good).sum())} bad bins)", "bad_mask")
    if limits is None:
        return
    problems = []
    if counters.cores != limits.cores:
        problems.append(f"counters for {counters.cores} cores, the device has {limits.cores}")
    if limits.timer_hz and counters.ticks / limits.timer_hz > limits.max_device_s:
        problems.append(f"{counters.ticks} ticks = {counters.ticks / limits.timer_hz:.3g} s of compute, "
                        f"longer than the host waits ({limits.max_device_s:g} s)")
    macs = sum(counters.int8_macs) + sum(counters.fp16_macs)
    if macs > limits.max_macs:
        problems.append(f"{macs:,} MACs, the model has {limits.max_macs // 2:,} parameters")
    copied = sum(counters.l1_bytes_from)
    if copied > limits.max_l1_bytes:
        problems.append(f"{copied:,} bytes into L1, more than {limits.max_l1_bytes:,} can be")
    for name in ("dma_transfers", "forks", "barrier_waits"):
        if getattr(counters, name) > MAX_COUNTER_EVENTS:
            problems.append(f"{name} {getattr(counters, name):,}")
    if any(n > MAX_INSTRUCTIONS for n in counters.instructions):
        problems.append(f"{max(counters.instructions):,} instructions on one hart")
    if problems:
        raise ImplausibleReply("FRAME reply counters cannot be true: " + "; ".join(problems),
                               "implausible_counters")


def check_device_info(info: DeviceInfo) -> None:
    """Raise LinkError when INFO cannot describe a device this host can drive."""
    if info.protocol_version != PROTOCOL_VERSION:
        raise LinkError(f"the device speaks protocol version {info.protocol_version}, this host "
                        f"speaks {PROTOCOL_VERSION}: update the firmware or the host")
    if not 1 <= info.cores <= MAX_CORES:
        raise LinkError(f"the device says it has {info.cores} worker cores (1 to {MAX_CORES} expected)")
    if info.timer_hz > 100_000_000_000:
        raise LinkError(f"the device's timer runs at {info.timer_hz:,} Hz: not plausible")


class DeviceClient:
    """One device behind a transport: typed requests, deadlines, recovery, failure counts."""

    def __init__(self, connect: Callable[[], Transport] | Transport, *,
                 frame_timeout: float = FRAME_TIMEOUT_S, model_timeout: float = MODEL_TIMEOUT_S,
                 request_timeout: float = REQUEST_TIMEOUT_S, reconnect: bool = True,
                 auto_reload: bool = True) -> None:
        if isinstance(connect, Transport):
            transport = connect
            self._connect: Callable[[], Transport] = lambda: Transport.open(transport.spec)
            self.transport: Transport | None = transport
            self._connected_once = True
        else:
            self._connect = connect
            self.transport = None
            self._connected_once = False
        self.frame_timeout, self.model_timeout = frame_timeout, model_timeout
        self.request_timeout = request_timeout
        self.reconnect_enabled, self.auto_reload = reconnect, auto_reload
        self.parser = PacketParser()
        self._seq = 0
        self.blob: bytes | None = None
        self.model_info: ModelInfo | None = None
        self.device_info: DeviceInfo | None = None
        self.frames_sent = 0
        self.frames_answered = 0
        self.frame_failures: Counter[str] = Counter()
        self.first_failure: dict[str, str] = {}  # per cause, what the first such failure said
        self.late_replies = 0
        self.limits: ReplyLimits | None = None   # set once a model is loaded
        self.reconnects = 0
        self.model_reloads = 0
        self.placement = "auto"
        self._closed = False

    # --- requests -------------------------------------------------------------------------------
    def info(self) -> DeviceInfo:
        """Ask the device what it is (INFO)."""
        info = self._call(InfoRequest(), DeviceInfo, self.request_timeout)
        check_device_info(info)
        self.device_info = info
        return info

    def reset(self) -> None:
        """Zero the device's recurrent state (RESET)."""
        self._call(ResetRequest(), ResetReply, self.request_timeout)

    def stats(self) -> StatsReply:
        """The device's receive error counters and frames computed (STATS)."""
        return self._call(StatsRequest(), StatsReply, self.request_timeout)

    def trace(self, tensor: int) -> TraceReply:
        """One of the last frame's intermediates (TRACE; index into TRACE_TENSORS)."""
        return self._call(TraceRequest(tensor), TraceReply, self.request_timeout)

    def load_model(self, blob: bytes, progress: Progress | None = None, placement: str = "auto") -> ModelInfo:
        """Send a TDNB blob in chunks of 1024 bytes; the ModelInfo of the accepted model.

        `placement` "auto" lets the device plan where each tile's rows live; "L2", "MRAM" or
        "L3" asks for the whole blob in that level (MODEL_TOO_LARGE if it does not fit).

        A lost or out-of-order chunk restarts the transfer from MODEL_BEGIN (up to
        MODEL_ATTEMPTS times); a refusal (too large, bad model, unsupported) raises DeviceError.
        """
        blob = bytes(blob)
        for attempt in range(1, MODEL_ATTEMPTS + 1):
            try:
                info = self._send_model(blob, progress, placement)
            except DeviceError as error:
                if error.code != ErrorCode.BAD_SEQUENCE or attempt == MODEL_ATTEMPTS:
                    raise self._explain_model_error(error, len(blob)) from None
            except (LinkTimeout, MalformedReply):
                if attempt == MODEL_ATTEMPTS:
                    raise
            else:
                self.blob, self.model_info, self.placement = blob, info, placement
                if self.device_info is not None:
                    self.limits = ReplyLimits.for_model(self.device_info, info, self.frame_timeout)
                return info
        raise AssertionError("unreachable")

    def frame(self, index: int, magnitude_bits: np.ndarray) -> tuple[np.ndarray, Counters]:
        """Run one frame: binary16 magnitudes (u16 bit patterns) in, (mask bits, Counters) out.

        Raises a LinkError on failure, already counted in `frame_failures` by its cause.
        """
        index &= 0xFFFFFFFF  # the wire carries a u32 frame index
        request = FrameRequest(index, magnitude_bits)
        self.frames_sent += 1
        try:
            reply = self._call(request, FrameReply, self.frame_timeout)
            if reply.index != index:
                raise MalformedReply(f"FRAME reply for frame {reply.index}, expected {index}")
            check_frame_reply(reply.bits, reply.counters, self.limits)
        except LinkError as error:
            self.frame_failures[_cause(error)] += 1
            self.first_failure.setdefault(_cause(error), f"frame {index}: {error}")
            if isinstance(error, DeviceError) and error.code == ErrorCode.NO_MODEL:
                self._reload_after_restart(error)
            raise
        self.frames_answered += 1
        return reply.bits, reply.counters

    @property
    def frames_failed(self) -> int:
        return sum(self.frame_failures.values())

    def close(self) -> None:
        """Close the link for good: later requests fail with LinkClosed instead of reconnecting."""
        self._closed = True
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the request/reply exchange ---------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _ensure_transport(self) -> Transport:
        if self._closed:
            raise LinkClosed("the device client is closed")
        if self.transport is None or not self.transport.is_open:
            if self._connected_once and not self.reconnect_enabled:
                raise LinkClosed("the link is closed and reconnection is off")
            self.transport = self._connect()
            self.parser = PacketParser()
            if self._connected_once:
                self.reconnects += 1
            self._connected_once = True
        return self.transport

    def _drop_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None

    def send_raw(self, data: bytes, timeout: float = REQUEST_TIMEOUT_S) -> None:
        """Write bytes as they are (fault injection, diagnostics): no framing, no reply awaited."""
        self._ensure_transport().write(data, time.monotonic() + timeout)

    def _call(self, request: Message, expected: type, timeout: float):
        """Send `request`, wait for the reply with its sequence number; raise LinkError on failure."""
        deadline = time.monotonic() + timeout
        try:
            transport = self._ensure_transport()
            self._drain(transport, deadline)
            seq = self._next_seq()
            transport.write(request.encode(seq), deadline)
            return self._await_reply(transport, seq, request.TYPE, expected, deadline)
        except LinkClosed:
            self._drop_transport()
            raise

    def _drain(self, transport: Transport, deadline: float) -> None:
        """Discard replies to earlier requests (late answers) and any partial packet before asking.

        The device only answers after our request, so no byte received before it can belong
        to the reply we are about to wait for. Bounded by the deadline: a device that never
        stops talking cannot keep us here.
        """
        while time.monotonic() < deadline and (data := transport.read_available()):
            self.late_replies += len(self.parser.feed(data, time.monotonic()))
        self.parser.discard()

    def _await_reply(self, transport: Transport, seq: int, request_type: int, expected: type,
                     deadline: float):
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise LinkTimeout(f"no reply to request 0x{request_type:02x} (seq {seq}) in time")
            # Wake at least every stale period so that a stuck partial packet is given up on.
            data = transport.read(min(deadline, now + self.parser.stale_s))
            after = time.monotonic()
            packets = self.parser.feed(data, after) if data else self.parser.expire(after)
            for packet in packets:
                if packet.seq != seq:
                    self.late_replies += 1
                    continue
                return self._decode_reply(packet, request_type, expected)

    @staticmethod
    def _decode_reply(packet, request_type: int, expected: type):
        try:
            message = decode_message(packet)
        except ProtocolError as error:
            raise MalformedReply(f"reply to 0x{request_type:02x}: {error}") from error
        if isinstance(message, ErrorReply):
            raise DeviceError(message)
        if packet.type != reply_type(request_type) or not isinstance(message, expected):
            raise MalformedReply(f"reply of type 0x{packet.type:02x} to request 0x{request_type:02x}")
        return message

    # --- model transfer ---------------------------------------------------------------------------
    def _send_model(self, blob: bytes, progress: Progress | None, placement: str = "auto") -> ModelInfo:
        total = len(blob)
        accepted = self._call(ModelBeginRequest(total, crc32(blob)), ModelBeginReply, self.model_timeout)
        if accepted.accepted_bytes != total:
            raise MalformedReply(f"MODEL_BEGIN accepted {accepted.accepted_bytes} of {total} bytes")
        if progress is not None:
            progress(0, total)
        for offset in range(0, total, MAX_CHUNK):
            chunk = blob[offset:offset + MAX_CHUNK]
            reply = self._call(ModelChunkRequest(offset, chunk), ModelChunkReply, self.model_timeout)
            if reply.received_bytes != offset + len(chunk):
                raise MalformedReply(f"device holds {reply.received_bytes} bytes after the chunk "
                                     f"ending at {offset + len(chunk)}")
            if progress is not None:
                progress(offset + len(chunk), total)
        return self._call(ModelEndRequest(placement), ModelInfo, self.model_timeout)

    def _explain_model_error(self, error: DeviceError, size: int) -> DeviceError:
        context = f"model blob of {size:,} bytes"
        if error.code == ErrorCode.MODEL_TOO_LARGE and self.device_info is not None:
            d = self.device_info
            context += (f" does not fit {d.target} (L2 {d.l2_bytes:,} + MRAM {d.mram_bytes:,} + "
                        f"L3 {d.l3_bytes:,} = {d.model_capacity:,} bytes for weights)")
        cls = ModelTooLarge if error.code == ErrorCode.MODEL_TOO_LARGE else DeviceError
        return cls(ErrorReply(error.code, error.request_type, error.text), context)

    def _reload_after_restart(self, error: DeviceError) -> None:
        """ERROR NO_MODEL means the device lost its model (it restarted): send it again."""
        if not self.auto_reload or self.blob is None:
            return
        try:
            self.load_model(self.blob, placement=self.placement)
            self.model_reloads += 1
        except LinkError as reload_error:
            # The frame already failed; the next NO_MODEL will try again.
            error.add_note(f"reloading the model failed: {reload_error}")


def _cause(error: LinkError) -> str:
    return getattr(error, "cause", "link")
