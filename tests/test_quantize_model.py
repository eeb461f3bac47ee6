"""`quantize_model`: calibration on real files, deterministic output, clear errors, memory report."""

import numpy as np
import pytest
import soundfile as sf
from helpers import random_params

from streamer.model import load_model
from streamer.model.fileformat import save_model
from streamer.model.params import ModelError
from streamer.quant.memory import memory_reports
from streamer.quantize import quantize_model
from streamer.target import TargetError, load_target, memory_levels


@pytest.fixture
def fp32_model(tmp_path):
    return save_model(random_params("lstm", 128, seed=2), tmp_path / "fp32.tdn")


@pytest.fixture
def calib_dir(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, rate in (("a.wav", 48_000), ("b.wav", 16_000)):
        sf.write(folder / name, rng.standard_normal(rate // 2) * 0.1, rate, subtype="PCM_16")
    (folder / "notes.txt").write_text("not audio")
    return folder


def test_same_inputs_give_the_same_bytes(tmp_path, fp32_model, calib_dir):
    first = quantize_model(fp32_model, "mixed", calib_dir, tmp_path / "q1.tdn")
    quantize_model(fp32_model, "mixed", calib_dir, tmp_path / "q2.tdn")
    assert (tmp_path / "q1.tdn").read_bytes() == (tmp_path / "q2.tdn").read_bytes()
    assert first["files"] == ["a.wav", "b.wav"]
    model = load_model(tmp_path / "q1.tdn")
    assert model.mode == "mixed" and model.calibration["method"] == "mse"
    assert set(model.calibration["sha256"]) == {"a.wav", "b.wav"}


def test_fp32_output_embeds_calibration_for_every_mode(tmp_path, fp32_model, calib_dir):
    quantize_model(fp32_model, "fp32", calib_dir, tmp_path / "cal.tdn", method="percentile")
    params = load_model(tmp_path / "cal.tdn")
    assert params.calibration["method"] == "percentile" and "rnn1.cell" in params.calibration["ranges"]


def test_bad_inputs_are_clear_errors(tmp_path, fp32_model, calib_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no .wav"):
        quantize_model(fp32_model, "mixed", empty, tmp_path / "q.tdn")
    with pytest.raises(ModelError, match="not found"):
        quantize_model(fp32_model, "mixed", tmp_path / "absent", tmp_path / "q.tdn")
    with pytest.raises(ModelError, match="refusing to write the model output onto the source model"):
        quantize_model(fp32_model, "mixed", calib_dir, fp32_model)
    quantize_model(fp32_model, "int8", calib_dir, tmp_path / "q.tdn")
    with pytest.raises(ModelError, match="already quantised"):
        quantize_model(tmp_path / "q.tdn", "mixed", calib_dir, tmp_path / "q2.tdn")


def test_memory_report_places_the_large_model_as_the_paper_does():
    memory = memory_levels(load_target())
    reports = {r["quant"]: r for r in memory_reports(random_params("lstm", 256), memory)}
    assert reports["fp16"]["weights_memory"] == "L3"      # 2.5 MB: beyond L2 and MRAM
    assert reports["mixed"]["weights_memory"] == "MRAM"   # 1.47 MB: on chip
    assert reports["mixed"]["bytes_by_type"]["int8"] == 2 * 2 * 1024 * 256
    assert reports["fp32"]["weights_bytes"] == sum(r["total"] for r in reports["fp32"]["layers"].values())


def test_incomplete_target_file_names_the_field(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[memory]\nl1_bytes = 1\n")
    with pytest.raises(TargetError, match="l2_bytes"):
        memory_levels(load_target(path))
    path.write_text("[memory\n")
    with pytest.raises(TargetError, match="TOML"):
        load_target(path)
