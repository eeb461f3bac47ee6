"""`streamer train` under torchrun: two real processes (gloo on this CPU), compared with one.

Two ranks with batch B see exactly the items of one process with batch 2B and average their
gradients, so the two runs must agree step for step (up to float summation order), and only
rank 0 may write files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train_corpus import _dns

STEPS = 6


def _train(tmp_path: Path, name: str, processes: int, batch: int,
           limit: tuple[str, str] = ("--steps", str(STEPS))) -> tuple[Path, str]:
    out = tmp_path / f"{name}.tdn"
    recipe = ["-m", "streamer.train.recipe", "--out", str(out), "--hidden", "128",
              *limit, "--batch", str(batch), "--segment", "0.5", "--threads", "1",
              "--lr", "0.2", "--data-dir", str(tmp_path / "data"),
              "--speech", str(tmp_path / "dns" / "clean"), "--noise", str(tmp_path / "dns" / "noise"),
              "--synthetic-share", "0", "--log-every", "1", "--checkpoint-minutes", "0",
              "--keep-checkpoints"]
    if processes > 1:
        # --standalone: a private rendezvous on a free local port.
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(processes), *recipe]
    else:
        command = [sys.executable, *recipe]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out, done.stdout


def _losses(log: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"^step\s+\d+\s+loss (\S+)", log, re.M)]


def test_two_processes_match_one(tmp_path) -> None:
    pytest.importorskip("torch")
    from streamer.model import load_model

    _dns(tmp_path / "dns")
    two, log_two = _train(tmp_path, "two", processes=2, batch=2)
    one, log_one = _train(tmp_path, "one", processes=1, batch=4)

    # Rank 0 alone logs and writes: one checkpoint line and one file per step.
    assert log_two.count("checkpoint: step") == STEPS
    assert "on 2 processes (gloo)" in log_two
    assert sorted(p.name for p in tmp_path.glob("two-step*.tdn")) == \
        sorted(f"two-step{s}.tdn" for s in range(1, STEPS + 1))
    assert not list(tmp_path.glob(".*partial*"))
    meta = load_model(two).metadata
    assert meta["processes"] == 2 and meta["batch"] == 4 and meta["steps"] == STEPS

    # Same loss curve as one process with the combined batch, and the same weights.
    curve_two, curve_one = _losses(log_two), _losses(log_one)
    assert len(curve_two) == len(curve_one) == STEPS
    np.testing.assert_allclose(curve_two, curve_one, rtol=1e-4)
    assert max(curve_one) - min(curve_one) > 1e-3      # the curve has a shape to compare
    a, b = load_model(two).tensors, load_model(one).tensors
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=2e-5, err_msg=name)
    moved = max(float(np.max(np.abs(b[n] - load_model(tmp_path / "one-step1.tdn").tensors[n]))) for n in b)
    assert moved > 1e-3                                # training changed the weights


def test_a_wall_clock_budget_stops_every_rank(tmp_path) -> None:
    """Rank 0's clock decides for all: a rank that stopped alone would leave the other
    waiting in a collective until the subprocess timeout."""
    pytest.importorskip("torch")
    from streamer.model import load_model

    _dns(tmp_path / "dns")
    out, log = _train(tmp_path, "budget", processes=2, batch=2, limit=("--minutes", "0.03"))
    steps = load_model(out).metadata["steps"]
    assert steps >= 1 and f"done: {steps} steps" in log
    assert log.count("checkpoint: step") == steps      # --checkpoint-minutes 0: every step
