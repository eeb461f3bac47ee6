"""Paths and audio from outside: outputs checked before any work, never onto an input, no
temporary file left on any error path; audio above full scale said, not clipped silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import random_params

from streamer.atomic import partial_path, write_atomically
from streamer.model.fileformat import save_model
from streamer.replay import ReplayError, check_output_paths, replay

REPO = Path(__file__).resolve().parents[1]
UNWRITABLE = Path("/proc")  # a folder no one, root included, can create files in


def _streamer(*args: str | os.PathLike, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_an_unwritable_output_fails_before_any_work(tmp_path: Path, make_wav) -> None:
    noisy = make_wav(tmp_path / "n.wav")
    for outputs in ({"out": UNWRITABLE / "x.wav"}, {"report": UNWRITABLE / "r.json"},
                    {"log": UNWRITABLE / "f.jsonl"}):
        # A dead device as the backend: had the work started, the error would be the device's.
        with pytest.raises(ReplayError, match=r"cannot write the .* (/proc/)"):
            replay(noisy, backend="socket://127.0.0.1:1", **outputs)
    result = _streamer("replay", noisy, "--out", UNWRITABLE / "x.wav", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("streamer: error: cannot write the enhanced")
    assert "\n" not in result.stderr.strip() and "System error" not in result.stderr


def test_write_check_leaves_nothing_behind(tmp_path: Path) -> None:
    check_output_paths({"report": tmp_path / "r.json"}, {})
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_cleans_its_temporary_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(OSError) as error:
        write_atomically(target, b"model bytes")  # a file cannot replace a folder
    assert error.value.filename == str(target)  # names what the user asked for
    assert not partial_path(target).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path / "m.tdn", failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.fixture
def quantize_setup(tmp_path: Path) -> tuple[Path, Path]:
    model = save_model(random_params("lstm", 32, seed=1), tmp_path / "m.tdn")
    calib = tmp_path / "cal"
    calib.mkdir()
    rng = np.random.default_rng(0)
    soundfile.write(str(calib / "a.wav"), 0.1 * rng.standard_normal(16_000 * 6), 16_000)
    return model, calib


def test_quantize_never_writes_onto_an_input_or_a_folder(tmp_path: Path, quantize_setup) -> None:
    model, calib = quantize_setup
    before = (calib / "a.wav").read_bytes(), model.read_bytes()
    (tmp_path / "existing").mkdir()
    for out, message in ((calib / "a.wav", "onto the calibration audio (a.wav)"),
                         (model, "onto the source model"),
                         (tmp_path / "existing", "is a directory"),
                         (UNWRITABLE / "m.tdn", "cannot write the model output /proc/m.tdn")):
        result = _streamer("quantize", model, "--quant", "fp16", "--calib", calib, "-o", out, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "calibrating" not in result.stderr  # before any work
        assert ".partial" not in result.stderr
    assert ((calib / "a.wav").read_bytes(), model.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal", "existing", "m.tdn"]


def test_quantize_names_a_calibration_file_and_warns_on_too_little_audio(tmp_path: Path,
                                                                        quantize_setup) -> None:
    model, calib = quantize_setup
    result = _streamer("quantize", model, "--quant", "fp16", "--calib", calib / "a.wav", "-o", "q.tdn",
                       cwd=tmp_path)
    assert result.returncode == 2 and "is a file: give a folder" in result.stderr
    short = tmp_path / "short"
    short.mkdir()
    soundfile.write(str(short / "one.wav"), np.zeros(1), 16_000)
    result = _streamer("quantize", model, "--quant", "fp16", "--calib", short, "-o", "q.tdn", "--json",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["calibration_s"] == pytest.approx(1 / 16_000, abs=1e-3)
    assert summary["warnings"] and "calibration audio" in result.stderr
    ok = _streamer("quantize", model, "--quant", "fp16", "--calib", calib, "-o", "q6.tdn", "--json",
                   cwd=tmp_path)
    assert json.loads(ok.stdout)["warnings"] == []  # 6 s: enough, nothing said


def test_float_input_above_full_scale_is_reported(tmp_path: Path, random_model: Path) -> None:
    t = np.arange(16_000) / 16_000
    loud = tmp_path / "loud.wav"
    soundfile.write(str(loud), 3.0 * np.sin(2 * np.pi * 300 * t), 16_000, subtype="FLOAT")
    result = replay(loud, model=random_model, out=tmp_path / "o.wav", report=tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["input_peak"] == pytest.approx(3.0, rel=1e-6)
    assert any("above full scale" in w and "+9.5 dBFS" in w for w in result.warnings)
    assert report["warnings"] == result.warnings
