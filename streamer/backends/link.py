"""LinkBackend: the network runs on a device (or the host simulator) over the frame link.

Each step sends the frame's magnitudes as binary16 (the contract's network input stage, so the
device sees exactly what the emulator computes on) and returns the device's binary16 mask as
float32. A frame the link loses gets the documented fallback, an all-ones mask (the input
passes through), and is counted by cause: frames_sent = frames_answered + sum(failed_by_cause).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from streamer.backends.base import Backend, BackendError, DeviceGone, LastFrame, TargetModel
from streamer.distribution import Distribution
from streamer.engine import DEADLINE_S, N_BINS
from streamer.link.device import DeviceClient, MalformedReply
from streamer.link.messages import TRACE_TENSORS, Counters, DeviceInfo, ModelInfo, frame_bytes
from streamer.link.policy import LinkPolicy
from streamer.link.transport import LinkError
from streamer.quant import arith
from streamer.quant.modes import QUANTIZED_MODES, modes_text

BITS_PER_BYTE = 10  # UART framing: start bit, 8 data bits, stop bit


def magnitude_bits(magnitudes: np.ndarray) -> np.ndarray:
    """The contract's network input, f16(sanitize(x)), as little-endian u16 bit patterns."""
    values = arith.f16(arith.sanitize_input(np.asarray(magnitudes, np.float32)))
    return values.astype(np.float16).view("<u2")


def mask_values(bits: np.ndarray) -> np.ndarray:
    """binary16 bit patterns -> float32 values (exact)."""
    return np.asarray(bits, "<u2").view(np.float16).astype(np.float32)


def device_model(model, quant: str | None, supported: tuple[str, ...] | None = None):
    """The QuantizedModel a device runs for `model` in `quant`, by the emulator's own path.

    FP32 params are quantised exactly as `build_network` does for the emulator (so verify
    compares like with like); fp32 itself cannot run on a device.
    """
    from streamer.backends.emulator import build_network
    from streamer.quant.network import QuantizedNetwork

    network = build_network(model, quant)
    if not isinstance(network, QuantizedNetwork):
        modes = modes_text(tuple(supported or QUANTIZED_MODES))
        raise BackendError(f"fp32 runs only on the emulator; the device runs {modes}: pass --quant "
                           f"with one of them (int8 and mixed need a calibrated model)")
    if supported is not None and network.mode not in supported:
        raise BackendError(f"the device does not support {network.mode}; it runs {', '.join(supported)}")
    return network.model


def realtime_baud(bytes_up: int, bytes_down: int) -> int:
    """The lowest baud rate that carries one frame each way per hop (full duplex)."""
    return math.ceil(max(bytes_up, bytes_down) * BITS_PER_BYTE / DEADLINE_S)


class LinkBackend(Backend):
    """Steps frames on a device through a DeviceClient; owns the client and, if given, the simulator."""

    name = "link"

    def __init__(self, client: DeviceClient, model_info: ModelInfo, device_info: DeviceInfo,
                 transport: str, baud: int | None = None, simulator=None,
                 weights_bytes: int | None = None, policy: LinkPolicy | None = None) -> None:
        self.client, self.model_info, self.device_info = client, model_info, device_info
        self.weights_bytes = weights_bytes
        self.transport, self.baud, self.simulator = transport, baud, simulator
        self.quant = model_info.mode
        self.index = 0
        # Fixed memory, for a live session of any length: per-frame lists grew by ~37 MB an hour.
        self.round_trip = Distribution()
        self.device_time = Distribution()
        self._last_round_trip_s: float | None = None
        self.last_counters: Counters | None = None
        self.instret_sum: list[int] | None = None  # retired instructions per hart, summed over frames
        self.instret_frames = 0
        self.last_failed = False
        self.policy = policy or LinkPolicy()
        self.failed_in_a_row = 0
        self._last_answer = time.monotonic()
        self._fallback = np.ones(N_BINS, np.float32)

    # --- failure accounting (the client counts; these are the report's names) --------------------
    @property
    def frames_sent(self) -> int:
        return self.client.frames_sent

    @property
    def frames_answered(self) -> int:
        return self.client.frames_answered

    @property
    def failed_by_cause(self) -> dict[str, int]:
        return dict(self.client.frame_failures)

    # --- Backend --------------------------------------------------------------------------------
    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        bits = magnitude_bits(magnitudes)
        index, self.index = self.index, self.index + 1
        start = time.perf_counter()
        try:
            mask_bits, counters = self.client.frame(index, bits)
        except LinkError as error:
            self.last_failed = True
            self.failed_in_a_row += 1
            self._give_up_if_gone(error)
            return self._fallback.copy()
        self._last_round_trip_s = time.perf_counter() - start
        self.round_trip.add(self._last_round_trip_s)
        self.last_failed = False
        self.failed_in_a_row = 0
        self._last_answer = time.monotonic()
        self.last_counters = counters
        if any(counters.instructions):
            if self.instret_sum is None:
                self.instret_sum = [0] * len(counters.instructions)
            self.instret_sum = [a + b for a, b in zip(self.instret_sum, counters.instructions, strict=True)]
            self.instret_frames += 1
        if self.device_info.timer_hz:
            self.device_time.add(counters.ticks / self.device_info.timer_hz)
        return mask_values(mask_bits)

    def _give_up_if_gone(self, error: LinkError) -> None:
        limit, silent = self.policy.max_failed_frames, time.monotonic() - self._last_answer
        if limit and self.failed_in_a_row >= limit:
            why = f"{self.failed_in_a_row} frames in a row failed"
        elif silent > self.policy.give_up_s:
            why = f"no answer for {silent:.1f} s"
        else:
            return
        raise DeviceGone(f"the device stopped answering: {why} (last: {error}); limits: "
                         f"--max-failed-frames {limit}, --link-timeout {self.policy.give_up_s:g} s")

    @property
    def is_device(self) -> bool:
        return True

    def last_frame(self) -> LastFrame:
        if self.last_failed:
            return LastFrame(failed=True)
        return LastFrame(False, self._last_round_trip_s, self.last_counters)

    def target_model(self) -> TargetModel:
        info = self.model_info
        cuts = None if info.plan is None else tuple(layer.cuts for layer in info.plan)
        return TargetModel(info.mode, info.cell, info.hidden, info.weights_level, self.baud, cuts)

    def trace_last_frame(self) -> dict[str, np.ndarray]:
        """The device's intermediates of the last frame (TRACE), by TRACE_TENSORS name; tensors
        the cell lacks (c of a GRU) are left out. Raises LinkError (DeviceError where the
        device refuses, e.g. firmware without TRACE)."""
        trace = {}
        for tensor, name in enumerate(TRACE_TENSORS):
            reply = self.client.trace(tensor)
            if reply.tensor != tensor:
                raise MalformedReply(f"TRACE reply for tensor {reply.tensor}, asked for {tensor}")
            if reply.values.size:
                trace[name] = reply.values
        return trace

    def reset(self) -> None:
        try:
            self.client.reset()
        except LinkError as error:
            raise BackendError(f"device reset failed: {error}") from error
        self.index = 0
        self.failed_in_a_row = 0
        self._last_answer = time.monotonic()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.simulator is not None:
                self.simulator.close()

    def describe(self) -> dict[str, Any]:
        up, down = frame_bytes(self.device_info.cores)
        needed = realtime_baud(up, down)
        return {
            "backend": self.name,
            "quant": self.quant,
            "weights_bytes": self.weights_bytes,
            # Where the device itself placed the weights (it decides at MODEL_END).
            "weights_memory": self.model_info.weights_level,
            "transport": self.transport,
            "baud": self.baud,
            "bytes_per_frame_up": up,
            "bytes_per_frame_down": down,
            "baud_needed_for_realtime": needed,
            # A pty or a socket has no baud rate: the question does not arise there.
            "baud_carries_realtime": None if self.baud is None else self.baud >= needed,
            "device": self.device_info.as_dict(),
            "model": self.model_info.as_dict(),
            "frames_sent": self.frames_sent,
            "frames_answered": self.frames_answered,
            "failed_by_cause": self.failed_by_cause,
            "first_failure_by_cause": dict(self.client.first_failure),
            "late_replies": self.client.late_replies,
            "model_reloads": self.client.model_reloads,
            "reconnects": self.client.reconnects,
            "link_rtt_ms": self.round_trip.summary_ms(),
            "device_compute_ms": self.device_time.summary_ms(),
            "last_counters": None if self.last_counters is None else self.last_counters.as_dict(),
            **self.instret_report(),
        }

    def instret_report(self) -> dict[str, Any]:
        """Retired instructions per hart per frame (mean over the answered frames, controller
        first, then the workers) and the workers' imbalance, max / mean; None where the device
        counts no instructions (the host simulator)."""
        if not self.instret_sum:
            return {"instret_per_hart": None, "instret_worker_imbalance": None}
        per_frame = [round(total / self.instret_frames) for total in self.instret_sum]
        workers = self.instret_sum[1:]
        mean = sum(workers) / len(workers) if workers else 0
        return {"instret_per_hart": per_frame,
                "instret_worker_imbalance": round(max(workers) / mean, 4) if mean else None}


def open_link(spec: str, model, quant: str | None, progress=None,
              policy: LinkPolicy | None = None, placement: str = "auto") -> LinkBackend:
    """Open `sim`, `sim-tcp`, `qemu`, `qemu-tcp`, `qemu-m7`, `qemu-m7-tcp`, `qemu-m55`, `qemu-m55-tcp`,
    `serial:PATH[@BAUD]` or `socket://HOST:PORT`
    and load the model."""
    from streamer.link.simulator import Simulator
    from streamer.link.transport import Transport, TransportSpec

    simulator = None
    if spec in ("qemu", "qemu-tcp"):
        from streamer.link.qemu import Qemu

        simulator = Qemu("tcp" if spec == "qemu-tcp" else "pty")
        connect = simulator.connect
        transport, baud = ("socket" if spec == "qemu-tcp" else "pty"), None
    elif spec in ("qemu-m7", "qemu-m7-tcp", "qemu-m55", "qemu-m55-tcp"):
        from streamer.link.qemu_arm import QemuArm, QemuM55

        board = QemuM55 if spec.startswith("qemu-m55") else QemuArm
        simulator = board("tcp" if spec.endswith("-tcp") else "pty")
        connect = simulator.connect
        transport, baud = ("socket" if spec.endswith("-tcp") else "pty"), None
    elif spec in ("sim", "sim-tcp"):
        simulator = Simulator("tcp" if spec == "sim-tcp" else "pty")
        connect = simulator.connect
        transport, baud = ("socket" if spec == "sim-tcp" else "pty"), None
    else:
        try:
            parsed = TransportSpec.parse(spec)
        except LinkError as error:
            raise BackendError(str(error)) from error
        connect = lambda: Transport.open(parsed)  # noqa: E731 - a factory: reconnects reopen it
        transport, baud = parsed.kind, parsed.baud
    client = None
    try:
        if simulator is not None:
            simulator.start()
        client = DeviceClient(connect)
        info = client.info()
        qmodel = device_model(model, quant, info.modes)
        if qmodel.cell not in info.cells:
            raise BackendError(f"the device runs {', '.join(info.cells)} cells, not {qmodel.cell}")
        from streamer.link.blob import encode_blob

        blob = encode_blob(qmodel)
        if placement == "whole":  # the rule before the planner, on the device's own capacities
            fits = [level for level, cap in (("L2", info.l2_bytes), ("MRAM", info.mram_bytes),
                                             ("L3", info.l3_bytes)) if len(blob) <= cap]
            placement = fits[0] if fits else "L3"  # too large: the device refuses it
        model_info = client.load_model(blob, progress, placement)
        return LinkBackend(client, model_info, info, transport, baud, simulator,
                           weights_bytes=qmodel.weight_bytes(), policy=policy)
    except LinkError as error:
        _close_quietly(client, simulator)
        raise BackendError(f"device link {spec}: {error}") from error
    except BaseException:
        _close_quietly(client, simulator)
        raise


def _close_quietly(client: DeviceClient | None, simulator) -> None:
    if client is not None:
        client.close()
    if simulator is not None:
        simulator.close()
