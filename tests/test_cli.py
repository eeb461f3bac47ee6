"""The `streamer` console command, run for real in a subprocess; report building and timing stats."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import REPO, run_streamer

from streamer.engine import DEADLINE_S

HEAVY_MODULES = ("numpy", "scipy", "soundfile", "soxr", "pesq", "pystoi", "rich", "onnx", "torch")

REPORT_KEYS = {
    "streamer_version", "command", "model", "backend", "quant", "backend_info", "deadline_ms",
    "input", "output", "clean", "sample_rate_in", "channels_in", "sample_format_in", "sample_rate_out",
    "samples", "duration_s", "frames", "pesq_wb", "stoi", "noisy_pesq_wb", "noisy_stoi", "host_ms",
    "host_deadline_misses", "host_total_s", "realtime_factor", "warnings",
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("streamer: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- help -----------------------------------------------------------------------------------

def test_help_is_fast_and_lists_every_command() -> None:
    start = time.perf_counter()
    result = run_streamer("--help")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert elapsed < 1.0, f"streamer --help took {elapsed:.2f} s"
    for text in ("replay", "eval", "info", "train", "live", "quick start", "streamer replay",
                 "exit status 2"):
        assert text in result.stdout


def test_importing_the_cli_pulls_in_nothing_heavy() -> None:
    code = ("import sys, streamer.cli as c; c.build_parser(); "
            f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            check=True).stdout.strip()
    assert loaded == "", f"imported at cli import time: {loaded}"


@pytest.mark.parametrize("command, expected", [
    ("replay", ["NOISY.wav", "--out", "--clean", "--model", "--backend", "--quant", "--report", "--log",
                "16 kHz", "mean", "soxr", "default: <NOISY stem>.enhanced.wav", "PESQ-WB", "STOI",
                "examples:"]),
    ("eval", ["--noisy", "--clean", "--csv", "--report", "--out-dir", "--jobs", "min(2, CPU count)",
              "pair by name", "examples:"]),
    ("info", ["MODEL", "--json", "parameter count", "examples:"]),
])
def test_each_command_explains_itself(command: str, expected: list[str]) -> None:
    result = run_streamer(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse re-wraps lines
    for fragment in expected:
        assert " ".join(fragment.split()) in text, fragment


def test_no_command_prints_help_and_fails() -> None:
    result = run_streamer()
    assert result.returncode == 2
    assert "replay" in result.stdout


@pytest.mark.parametrize("command", ["train", "live"])
def test_delegated_commands_are_wired_or_say_what_is_missing(command: str) -> None:
    result = run_streamer(command, "--help")
    if result.returncode == 0:
        assert f"usage: streamer {command}" in result.stdout
    else:
        assert_one_line_error(result, "pip install")


def test_train_without_the_recipe_says_what_to_install() -> None:
    # A None entry in sys.modules makes that import fail, as in an install without the extras.
    code = ("import sys; sys.modules['streamer.train.recipe'] = None; "
            "from streamer.cli import main; sys.exit(main(['train', '--help']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert_one_line_error(result, "streamer[train]")


# --- bad inputs: one line, exit 2 ---------------------------------------------------------------

@pytest.fixture
def inputs(tmp_path: Path, make_wav) -> dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    files = {
        "noisy": make_wav(folder / "noisy.wav", seconds=1.0, noise=0.05),
        "clean": make_wav(folder / "clean.wav", seconds=1.0),
        "short": make_wav(folder / "short.wav", seconds=0.9),
        "text": folder / "text.wav",
        "empty": folder / "empty.wav",
    }
    files["text"].write_text("this is not audio\n")
    soundfile.write(str(files["empty"]), np.zeros(0), 16_000)
    return files


def corrupt_copy(model: Path, folder: Path) -> Path:
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path = folder / "corrupt.tdn"
    path.write_bytes(bytes(blob))
    return path


@pytest.mark.parametrize("case, fragments", [
    ("missing file", ["not found", "nope.wav"]),
    ("text file named .wav", ["not a readable audio file", "text.wav"]),
    ("empty wav", ["no audio samples"]),
    ("length mismatch", ["lengths differ", "14400", "16000"]),
    ("missing clean", ["clean file not found"]),
    ("bad backend", ["unknown backend 'fpga'"]),
    ("bad quant", ["'int3'"]),
    ("corrupt model", ["corrupt"]),
    ("text file as model", ["not a streamer model file"]),
    ("missing model", ["model file not found"]),
    ("output equal to input", ["refusing", "noisy"]),
    ("output equal to clean", ["refusing", "clean"]),
    ("report into a missing folder", ["does not exist"]),
    ("unknown option", ["--bogus"]),
])
def test_bad_replay_inputs_give_one_line_and_exit_2(tmp_path: Path, inputs: dict[str, Path],
                                                  random_model: Path, case: str,
                                                  fragments: list[str]) -> None:
    noisy, model = inputs["noisy"], ["--model", random_model]
    args = {
        "missing file": [tmp_path / "nope.wav", *model],
        "text file named .wav": [inputs["text"], *model],
        "empty wav": [inputs["empty"], *model],
        "length mismatch": [noisy, "--clean", inputs["short"], *model],
        "missing clean": [noisy, "--clean", tmp_path / "gone.wav", *model],
        "bad backend": [noisy, "--backend", "fpga", *model],
        "bad quant": [noisy, "--quant", "int3", *model],
        "corrupt model": [noisy, "--model", corrupt_copy(random_model, tmp_path)],
        "text file as model": [noisy, "--model", inputs["text"]],
        "missing model": [noisy, "--model", tmp_path / "none.tdn"],
        "output equal to input": [noisy, "--out", noisy, *model],
        "output equal to clean": [noisy, "--clean", inputs["clean"], "--out", inputs["clean"], *model],
        "report into a missing folder": [noisy, "--report", tmp_path / "no" / "r.json", *model],
        "unknown option": [noisy, "--bogus", *model],
    }[case]
    before = {name: digest(p) for name, p in inputs.items() if p.exists()}
    result = run_streamer("replay", *args, cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert before == {name: digest(p) for name, p in inputs.items() if p.exists()}, "an input changed"
    assert not list(tmp_path.glob("*.enhanced.wav")), "no output after an error"


def test_corrupt_onnx_model_gives_one_line(tmp_path: Path, inputs: dict[str, Path]) -> None:
    pytest.importorskip("streamer.model.onnx_import")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    assert_one_line_error(run_streamer("replay", inputs["noisy"], "--model", garbage, cwd=tmp_path))


def test_bad_eval_inputs_give_one_line_and_exit_2(tmp_path: Path, inputs: dict[str, Path],
                                                 random_model: Path) -> None:
    folder = inputs["noisy"].parent
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert_one_line_error(run_streamer("eval", "--noisy", tmp_path / "x", "--clean", folder),
                          "noisy directory not found")
    assert_one_line_error(run_streamer("eval", "--noisy", folder, "--clean", empty, "--model", random_model),
                          "no files of the same name")
    assert_one_line_error(run_streamer("eval", "--noisy", folder, "--clean", folder, "--model", random_model,
                                       "--out-dir", folder), "refusing")
    assert_one_line_error(run_streamer("eval", "--noisy", folder, "--clean", folder, "--jobs", "0"),
                          "--jobs")
    # A bad pair inside a worker process still ends as one line naming the files.
    pairs = tmp_path / "pairs"
    for side, seconds in (("noisy", 1.0), ("clean", 0.9)):
        (pairs / side).mkdir(parents=True)
        for name in ("a.wav", "b.wav"):
            soundfile.write(str(pairs / side / name), np.zeros(int(seconds * 16_000)), 16_000)
    assert_one_line_error(run_streamer("eval", "--noisy", pairs / "noisy", "--clean", pairs / "clean",
                                       "--model", random_model, "--jobs", "2"), "lengths differ", ".wav")


# --- replay ---------------------------------------------------------------------------------------

def test_replay_of_44k_stereo_int24_writes_16k_and_a_full_report(tmp_path: Path, make_wav,
                                                                 random_model: Path) -> None:
    folder, work = tmp_path / "in", tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    noisy = make_wav(folder / "talk.wav", seconds=1.5, rate=44_100, channels=2, subtype="PCM_24", noise=0.05)
    clean = make_wav(folder / "talk_clean.wav", seconds=1.5, rate=44_100, channels=2, subtype="PCM_24")
    before = digest(noisy)

    result = run_streamer("replay", noisy, "--clean", clean, "--model", random_model,
                          "--report", "r.json", "--log", "frames.jsonl", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "PESQ-WB" in result.stdout and "STOI" in result.stdout and "6.25 ms" in result.stdout

    out = work / "talk.enhanced.wav"  # the default: <stem>.enhanced.wav in the current directory
    info = soundfile.info(str(out))
    n_in = soundfile.info(str(noisy)).frames
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_24")
    assert info.frames == round(n_in * 16_000 / 44_100)
    assert digest(noisy) == before

    report = json.loads((work / "r.json").read_text())
    assert REPORT_KEYS <= set(report), REPORT_KEYS - set(report)
    assert set(report["host_ms"]) >= {"p50", "p99", "max"}
    assert report["host_ms"]["p50"] <= report["host_ms"]["p99"] <= report["host_ms"]["max"]
    assert report["deadline_ms"] == pytest.approx(DEADLINE_S * 1e3) == 6.25
    source = (report["sample_rate_in"], report["channels_in"], report["sample_format_in"])
    assert source == (44_100, 2, "PCM_24")
    assert report["samples"] == info.frames
    assert report["duration_s"] == pytest.approx(1.5, abs=1e-3)
    assert report["model"]["path"] == str(random_model)
    assert "LSTM" in report["model"]["description"]
    assert (report["backend"], report["quant"]) == ("emulator", "fp32")
    assert isinstance(report["pesq_wb"], float) and 1.0 <= report["pesq_wb"] <= 4.7
    assert isinstance(report["stoi"], float) and 0.0 <= report["stoi"] <= 1.0
    assert report["realtime_factor"] > 0
    assert report["streamer_version"]

    lines = [json.loads(line) for line in (work / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == report["frames"] > 0
    assert [line["frame"] for line in lines] == list(range(len(lines)))
    assert all(set(line) == {"frame", "host_ms", "deadline_miss"} for line in lines)
    assert sum(line["deadline_miss"] for line in lines) == report["host_deadline_misses"]
    assert max(line["host_ms"] for line in lines) == pytest.approx(report["host_ms"]["max"], abs=1e-3)


def test_replay_without_clean_has_null_scores(tmp_path: Path, make_wav, random_model: Path) -> None:
    noisy = make_wav(tmp_path / "n.wav", seconds=0.5, noise=0.05)
    result = run_streamer("replay", noisy, "--model", random_model, "--out", tmp_path / "o.wav",
                          "--report", tmp_path / "r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["pesq_wb"] is None and report["stoi"] is None and report["clean"] is None
    assert soundfile.info(str(tmp_path / "o.wav")).frames == 8000


def test_replay_output_is_time_aligned(tmp_path: Path, make_wav) -> None:
    """An all-pass model (mask 1 everywhere) must give the input back, sample for sample."""
    from helpers import random_params

    from streamer.model.fileformat import save_model

    params = random_params("gru", 128, seed=1)
    params.tensors["fc2.weight"][:] = 0.0
    params.tensors["fc2.bias"][:] = 40.0  # sigmoid(40) == 1.0 in float32
    model = save_model(params, tmp_path / "allpass.tdn")
    noisy = make_wav(tmp_path / "n.wav", seconds=0.7, subtype="FLOAT", noise=0.05)
    result = run_streamer("replay", noisy, "--model", model, "--out", tmp_path / "o.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    x, _ = soundfile.read(str(noisy))
    y, _ = soundfile.read(str(tmp_path / "o.wav"))
    assert len(y) == len(x)
    assert np.max(np.abs(y - x)) < 1e-6


def test_default_model(tmp_path: Path, make_wav) -> None:
    from streamer.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip(f"default model not trained yet: {default_model_path()} is missing")
    info = run_streamer("info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["path"] == "default"
    noisy = make_wav(tmp_path / "n.wav", seconds=0.6, noise=0.05)
    result = run_streamer("replay", noisy, "--report", tmp_path / "r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["model"]["path"] == "default"


def test_quick_start_replays_the_bundled_demo(tmp_path: Path) -> None:
    from streamer.replay import demo_paths

    noisy, clean = demo_paths()
    from streamer.model import default_model_path

    missing = [p.name for p in (noisy, clean, default_model_path()) if not p.is_file()]
    if missing:
        pytest.skip(f"not bundled yet: {', '.join(missing)}")
    result = run_streamer("replay", "--report", "r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert (tmp_path / "demo_noisy.enhanced.wav").is_file()
    assert report["pesq_wb"] is not None and report["pesq_wb"] > report["noisy_pesq_wb"]


def test_ctrl_c_exits_130_without_traceback(tmp_path: Path, make_wav, random_model: Path) -> None:
    noisy = make_wav(tmp_path / "long.wav", seconds=120.0, noise=0.05)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "streamer", "replay", str(noisy), "--model",
                                str(random_model), "--log", "frames.jsonl"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "frames.jsonl"
    deadline = time.monotonic() + 60
    while not (log.exists() and log.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until frames are being processed
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "streamer: interrupted"
    assert not (tmp_path / "long.enhanced.wav").exists()
    assert not list(tmp_path.glob(".*.partial"))


# --- eval -----------------------------------------------------------------------------------------

def test_eval_pairs_by_name_and_writes_csv_and_report(tmp_path: Path, make_wav, random_model: Path) -> None:
    noisy_dir, clean_dir = tmp_path / "noisy", tmp_path / "clean"
    noisy_dir.mkdir()
    clean_dir.mkdir()
    for i, name in enumerate(("a.wav", "b.wav")):
        make_wav(noisy_dir / name, seconds=0.8 + 0.2 * i, seed=i, noise=0.05)
        make_wav(clean_dir / name, seconds=0.8 + 0.2 * i, seed=i)
    make_wav(noisy_dir / "extra.wav", seconds=0.5)

    result = run_streamer("eval", "--noisy", noisy_dir, "--clean", clean_dir, "--model", random_model,
                          "--csv", "r.csv", "--report", "r.json", "--out-dir", "enhanced", "--jobs", "2",
                          "--batch", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "extra.wav" in result.stderr
    assert "Traceback" not in result.stderr
    assert "a.wav" in result.stdout and "all" in result.stdout  # the summary table

    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [row["file"] for row in rows] == ["a.wav", "b.wav", "mean"]
    pesq = [float(row["pesq_wb"]) for row in rows]
    assert pesq[2] == pytest.approx((pesq[0] + pesq[1]) / 2)
    assert all(row["stoi"] and row["host_p99_ms"] for row in rows)

    report = json.loads((tmp_path / "r.json").read_text())
    assert [e["file"] for e in report["files"]] == ["a.wav", "b.wav"]
    assert REPORT_KEYS - {"input", "output", "clean", "sample_rate_in", "channels_in", "sample_format_in",
                          "sample_rate_out", "samples", "noisy_pesq_wb", "noisy_stoi", "host_total_s",
                          "warnings"} <= set(report)
    assert all(REPORT_KEYS - {"streamer_version", "command", "model", "backend", "quant", "backend_info",
                              "deadline_ms"} <= set(e) for e in report["files"])
    assert report["mean"]["pesq_wb"] == pytest.approx(pesq[2])
    assert report["frames"] == sum(e["frames"] for e in report["files"])
    assert report["skipped"] == {"noisy_only": ["extra.wav"], "clean_only": []}
    assert report["complete"] is True and report["jobs"] == 2
    assert sorted(p.name for p in (tmp_path / "enhanced").iterdir()) == ["a.wav", "b.wav"]

    # The emulator is deterministic: one in-process job scores exactly as two workers did (fp32,
    # so each file streamed alone: in a batch, fp32 sums round with the batch's shape, see
    # tests/test_batch.py).
    from streamer.evaluate import evaluate

    single = evaluate(noisy_dir, clean_dir, model=random_model, jobs=1, batch=1)
    assert [r.enhanced_quality.pesq_wb for r in single.files] == [e["pesq_wb"] for e in report["files"]]
    assert [r.enhanced_quality.stoi for r in single.files] == [e["stoi"] for e in report["files"]]


def test_eval_ctrl_c_keeps_the_files_finished(tmp_path: Path, make_wav, random_model: Path) -> None:
    noisy_dir, clean_dir = tmp_path / "noisy", tmp_path / "clean"
    noisy_dir.mkdir()
    clean_dir.mkdir()
    for i in range(8):
        make_wav(noisy_dir / f"f{i}.wav", seconds=8.0, seed=i, noise=0.05)
        make_wav(clean_dir / f"f{i}.wav", seconds=8.0, seed=i)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # Its own session, so that the Ctrl-C below reaches its workers and not pytest.
    process = subprocess.Popen([sys.executable, "-m", "streamer", "eval", "--noisy", str(noisy_dir),
                                "--clean", str(clean_dir), "--model", str(random_model), "--jobs", "2",
                                "--report", "r.json", "--csv", "r.csv"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    first = process.stderr.readline()  # "[1/8] ..." once the first file is done
    assert first.startswith("[1/8]"), first
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("every file finished before Ctrl-C arrived")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "streamer: interrupted"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is False and 1 <= report["files_evaluated"] <= 8
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == report["files_evaluated"] + 1 and rows[-1]["file"] == "mean"
    # The CSV says it is partial too: its mean covers only the files done.
    assert rows[-1]["complete"] == "False" and all(row["complete"] == "True" for row in rows[:-1])


# --- report building --------------------------------------------------------------------------------

def test_timing_stats() -> None:
    from streamer.metrics import timing_stats

    seconds = np.array([1, 2, 3, 4, 100]) * 1e-3
    stats = timing_stats(seconds, deadline_s=0.00625)
    assert stats.frames == 5 and stats.misses == 1
    assert stats.p50_ms == pytest.approx(3.0) and stats.max_ms == pytest.approx(100.0)
    assert stats.p99_ms == pytest.approx(np.percentile(seconds * 1e3, 99))
    empty = timing_stats([])
    assert (empty.frames, empty.p50_ms, empty.misses) == (0, None, 0)


def test_quality_of_unscorable_signals_is_none_with_a_warning() -> None:
    from streamer.metrics import quality

    short = np.random.default_rng(0).standard_normal(1000) * 0.1
    scores = quality(short, short)
    assert scores.pesq_wb is None and scores.stoi is None
    assert len(scores.warnings) == 2 and "PESQ" in scores.warnings[0]


def test_json_is_atomic_and_never_holds_nan(tmp_path: Path) -> None:
    from streamer.report import write_json

    path = write_json(tmp_path / "r.json", {"a": math.nan, "b": [1.0, math.inf], "c": np.float32(0.5),
                                            "d": Path("x")})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": 0.5, "d": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_csv_mean_row_skips_missing_values(tmp_path: Path) -> None:
    from streamer.report import write_csv

    def entry(name: str, pesq: float | None) -> dict:
        return {"file": name, "duration_s": 1.0, "frames": 10, "pesq_wb": pesq, "stoi": 0.5,
                "noisy_pesq_wb": None, "noisy_stoi": None, "host_ms": {"p50": 0.1, "p99": 0.2, "max": 0.3},
                "host_deadline_misses": 0, "realtime_factor": 20.0}

    write_csv(tmp_path / "r.csv", {"files": [entry("a", 2.0), entry("b", None), entry("c", 3.0)]})
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert rows[-1]["file"] == "mean" and float(rows[-1]["pesq_wb"]) == 2.5
    assert rows[1]["pesq_wb"] == "" and rows[-1]["noisy_pesq_wb"] == ""
