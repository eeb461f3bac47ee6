"""The whole FP32 path against the published reference: each shared ONNX model, each Valentini pair.

`../shared/reference/valentini6_reference.json` holds PESQ-WB and STOI of both ONNX models run
frame by frame in onnxruntime on the same STFT. A correct FP32 path through this project
(ONNX import -> emulator -> streaming engine -> replay/eval) must land within 0.005 PESQ-WB of
those numbers file by file. Runs through the Python API (`evaluate`, the same `enhance_file`
as `streamer replay`) rather than subprocesses, for speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PESQ_TOLERANCE = 0.005
# Not part of the contract, but STOI is far less sensitive than PESQ: a looser check still
# catches a misaligned or mis-scaled output.
STOI_TOLERANCE = 0.002


@pytest.fixture(scope="module")
def reference(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "reference" / "valentini6_reference.json").read_text())


@pytest.mark.parametrize("rank", [8, 80])
def test_replay_matches_the_onnxruntime_reference(shared_dir: Path, reference: dict, rank: int) -> None:
    pytest.importorskip("streamer.model.onnx_import", reason="ONNX import not available yet")
    from streamer.evaluate import evaluate

    name = f"tt_denoiser_rank_{rank}.onnx"
    model = shared_dir / "models" / name
    if not model.is_file():
        pytest.skip(f"{model} is missing")
    expected = reference["systems"][name]
    data = shared_dir / "data" / "valentini"

    result = evaluate(data / "noisy", data / "clean", model=model)

    assert sorted(r.input.name for r in result.files) == sorted(reference["files"])
    assert len(result.files) == 6
    for item in result.files:
        ref = expected[item.input.name]
        scores = item.enhanced_quality
        assert scores is not None and scores.pesq_wb is not None, item.warnings
        assert abs(scores.pesq_wb - ref["pesq_wb"]) <= PESQ_TOLERANCE, (
            f"{name} {item.input.name}: PESQ-WB {scores.pesq_wb:.4f}, reference {ref['pesq_wb']:.4f}")
        assert abs(scores.stoi - ref["stoi"]) <= STOI_TOLERANCE, (
            f"{name} {item.input.name}: STOI {scores.stoi:.4f}, reference {ref['stoi']:.4f}")
        noisy_ref = reference["systems"]["noisy"][item.input.name]
        assert abs(item.noisy_quality.pesq_wb - noisy_ref["pesq_wb"]) <= PESQ_TOLERANCE


def test_the_default_model_meets_the_quality_target(shared_dir: Path) -> None:
    """The embedded model lifts mean PESQ-WB on the pairs by >= 0.15, losing <= 0.01 STOI.

    The pairs only measure the model; they never trained or chose it (docs/training.md).
    """
    import numpy as np

    from streamer.evaluate import evaluate
    from streamer.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip(f"{default_model_path()} is missing")
    data = shared_dir / "data" / "valentini"
    result = evaluate(data / "noisy", data / "clean")
    assert len(result.files) == 6
    enhanced = [item.enhanced_quality for item in result.files]
    noisy = [item.noisy_quality for item in result.files]
    pesq_gain = np.mean([e.pesq_wb for e in enhanced]) - np.mean([n.pesq_wb for n in noisy])
    stoi_change = np.mean([e.stoi for e in enhanced]) - np.mean([n.stoi for n in noisy])
    assert pesq_gain >= 0.15, f"mean PESQ-WB gain {pesq_gain:.3f}"
    assert stoi_change >= -0.01, f"mean STOI change {stoi_change:.3f}"
