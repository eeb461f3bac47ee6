"""A device is hardware at the end of a cable: every reply is checked before it touches audio.

The real host simulator computes each answer; tests/adversary.py's proxy damages it (masks
that are NaN, infinite, too large or negative; counters that cannot be true; wrong frame
indices; silence; a freeze; a cut cable). Each bad reply must cost exactly its frame
(counted by cause, the input passed through), and a dead device must end the run within the
stated bound with the output so far kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from adversary import FaultyDevice, only_frames, with_counters, with_index_offset, with_mask
from helpers import deadline, random_params

from streamer.link.policy import LinkPolicy
from streamer.link.simulator import Simulator
from streamer.model.fileformat import save_model
from streamer.replay import LoadedModel, replay

REPO = Path(__file__).resolve().parents[1]
BAD_FRAMES = {5, 9, 20}


@pytest.fixture(scope="module")
def sim_binary() -> Path | None:
    from test_link_device import build_simulator, simulator_binary

    binary = simulator_binary()
    if binary is None:
        build_simulator()  # once, outside the tests' deadlines
    return binary


@pytest.fixture
def simulator(sim_binary: Path | None) -> Iterator[Simulator]:
    """A fresh simulator per test: each proxy holds its one upstream connection."""
    with Simulator("tcp", binary=sim_binary) as sim:
        yield sim


@pytest.fixture
def noisy(tmp_path: Path, make_wav) -> Path:
    return make_wav(tmp_path / "noisy.wav", seconds=1.0, seed=2, noise=0.05)


# How long one replay through the proxy may take before the test calls it a hang: the host
# simulator takes a few seconds (a device module overrides the fixture for a slower device).
HOST_REPLAY_GUARD_S = 60


@pytest.fixture
def replay_guard_s() -> int:
    return HOST_REPLAY_GUARD_S


def _model() -> LoadedModel:
    return LoadedModel(random_params("lstm", 64, seed=4))


def _replay(device: FaultyDevice, noisy: Path, tmp_path: Path, policy: LinkPolicy | None = None,
            guard_s: int = HOST_REPLAY_GUARD_S):
    with deadline(guard_s, "a replay through the faulty device"):
        return replay(noisy, model=_model(), backend=device.url, quant="fp16", out=tmp_path / "out.wav",
                      report=tmp_path / "r.json", policy=policy)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 65504.0, -0.5])
def test_a_mask_that_cannot_be_true_costs_its_frame_only(simulator: Simulator, noisy: Path,
                                                         tmp_path: Path, value: float,
                                                         replay_guard_s: int) -> None:
    with FaultyDevice(simulator.port, only_frames(BAD_FRAMES, with_mask(value))) as device:
        result = _replay(device, noisy, tmp_path, guard_s=replay_guard_s)
    assert result.failed_frames == {"bad_mask": len(BAD_FRAMES)} and result.complete
    out, _ = soundfile.read(str(tmp_path / "out.wav"))
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed_frames"] == 3 and report["failed_by_cause"] == {"bad_mask": 3}
    assert any("3 of" in w and "bad_mask 3" in w for w in report["warnings"])
    # The stream's frames all answered or counted: nothing lost silently.
    info = report["backend_info"]
    assert info["frames_sent"] == info["frames_answered"] + sum(info["failed_by_cause"].values())


@pytest.mark.parametrize("rewrite, cause", [
    (with_counters(cores=0, int8_macs=(), fp16_macs=(), instructions=(0,)), "implausible_counters"),
    (with_counters(ticks=0xFFFFFFFF), "implausible_counters"),
    (with_counters(int8_macs=(0xFFFFFFFF,) * 8), "implausible_counters"),
    (with_counters(forks=0xFFFFFFFF), "implausible_counters"),
    (with_index_offset(7), "malformed"),
    (None, "timeout"),                                   # the reply never comes
])
def test_replies_that_cannot_be_true_are_counted_by_cause(simulator: Simulator, noisy: Path,
                                                          tmp_path: Path, rewrite, cause: str) -> None:
    frames = {5} if rewrite is None else BAD_FRAMES  # each silent frame waits the 1 s timeout
    with FaultyDevice(simulator.port, only_frames(frames, rewrite)) as device:
        result = _replay(device, noisy, tmp_path)
    assert result.failed_frames == {cause: len(frames)} and result.complete
    report = json.loads((tmp_path / "r.json").read_text())
    # The warning says what the first lost frame's reply said, not only how many were lost.
    first = f"first {cause}: frame {min(frames)}: "
    assert any(first in w for w in report["warnings"]), report["warnings"]
    if rewrite is not None and cause == "implausible_counters":
        assert "cannot be true" in report["backend_info"]["first_failure_by_cause"][cause]
    # The cost model saw the failed frames as lost, never the impossible counters.
    assert report["target"]["frames_lost"] == len(frames)
    assert all(row["frames"] == report["frames"] for row in report["operating_points"])


@pytest.mark.parametrize("fault", ["freeze", "cut"])
def test_a_dead_device_ends_the_run_within_the_bound_and_keeps_the_output(
        simulator: Simulator, tmp_path: Path, make_wav, fault: str) -> None:
    noisy = make_wav(tmp_path / "long.wav", seconds=20.0, seed=3, noise=0.05)
    policy = LinkPolicy(max_failed_frames=32, give_up_s=1.5)

    def die_at_frame_200(reply):
        if reply.index == 200:
            getattr(device, fault)()
        return reply

    with FaultyDevice(simulator.port, die_at_frame_200) as device:
        start = time.monotonic()
        result = _replay(device, noisy, tmp_path, policy)
        elapsed = time.monotonic() - start
    assert not result.complete and "stopped answering" in result.error
    # Bound: give_up_s after the last answer, plus at most one frame timeout (1 s) in flight;
    # the 200 good frames before took well under the rest.
    assert elapsed < policy.give_up_s + 1.0 + 6.0
    out, rate = soundfile.read(str(tmp_path / "out.wav"))
    assert rate == 16_000 and 200 * 100 - 300 <= len(out) == result.samples_done < 20 * 16_000
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is False and report["error"] == result.error
    assert report["samples_done"] == len(out)


def test_cli_exit_status_says_frames_were_lost_unless_allowed(simulator: Simulator, noisy: Path,
                                                              tmp_path: Path, replay_guard_s: int) -> None:
    model = save_model(random_params("lstm", 64, seed=4), tmp_path / "m.tdn")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with FaultyDevice(simulator.port, only_frames(BAD_FRAMES, with_mask(float("nan")))) as device:
        runs = {}
        for allow in (False, True):
            runs[allow] = subprocess.run(
                [sys.executable, "-m", "streamer", "replay", str(noisy), "--model", str(model), "--quant",
                 "fp16", "--backend", device.url, "--out", str(tmp_path / f"o{allow}.wav"),
                 *(["--allow-failed-frames"] if allow else [])],
                capture_output=True, text=True, timeout=2 * replay_guard_s, env=env)
    refused, allowed = runs[False], runs[True]
    assert refused.returncode == 1 and allowed.returncode == 0, (refused.stderr, allowed.stderr)
    for run in (refused, allowed):
        assert "failed    3 of" in run.stdout and "bad_mask 3" in run.stdout  # the summary says so
        assert "RuntimeWarning" not in run.stderr and "Traceback" not in run.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("streamer: error: 3 frame(s) were lost")


def test_device_info_is_checked(simulator: Simulator) -> None:
    from streamer.link.device import check_device_info
    from streamer.link.messages import DeviceInfo
    from streamer.link.transport import LinkError

    good = DeviceInfo((1, 0, 0), 1, 8, ("fp16",), ("lstm",), 65536, 1 << 20, 1 << 21, 1 << 23, 1_000_000,
                      "gap9")
    check_device_info(good)
    for change, message in (({"protocol_version": 2}, "protocol version 2"), ({"cores": 0}, "0 worker"),
                            ({"cores": 65}, "65 worker")):
        fields = {**good.__dict__, **change}
        with pytest.raises(LinkError, match=message):
            check_device_info(DeviceInfo(**fields))


def _set(payload: bytes, offset: int, fmt: str, value: int) -> bytes:
    import struct

    out = bytearray(payload)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize("damage,message", [
    (lambda p: _set(p, 8, "<B", 1), "names level 1 but its plan uses L2"),       # says MRAM, plan is L2
    (lambda p: _set(p, 28, "<H", 999), "tile 0 has cuts 999"),                   # a cut past the tile
    (lambda p: _set(p, 16, "<I", 5), "bytes per level"),                         # bytes the cuts do not give
    (lambda p: p[:-2], "expected"),                                               # a plan cut short
])
def test_a_model_end_plan_that_cannot_be_true_refuses_the_device(simulator: Simulator, noisy: Path,
                                                                 tmp_path: Path, damage, message) -> None:
    """MODEL_END's plan is checked like every reply: a device that claims a plan its own tiling
    cannot have is refused before any frame, with a one-line error, and nothing is written."""
    from streamer.backends.base import BackendError

    with FaultyDevice(simulator.port, model_rewrite=damage) as device:
        with pytest.raises(BackendError, match=message):
            _replay(device, noisy, tmp_path)
    assert not (tmp_path / "out.wav").exists() and not (tmp_path / "r.json").exists()
