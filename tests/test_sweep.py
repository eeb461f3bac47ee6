"""streamer sweep, and operating points on replay / eval / live: reports, logs, CLI, the paper's ratios."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import random_params

from streamer.cli import main
from streamer.costmodel import TargetNote, TimingSpec
from streamer.model.fileformat import save_model
from streamer.replay import target_observer

RANGES = dict.fromkeys(("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input"), 4.0)
POINT_KEYS = {"voltage", "freq_mhz", "cycles_p99", "latency_ms_p99", "deadline_misses", "meets_deadline",
              "power_mw", "energy_uj_per_frame", "weights_memory", "latency_ms_max", "slack_ms", "frames",
              "cycles_to_ideal", "power_active_mw"}


def model_file(tmp_path: Path, cell: str = "lstm", hidden: int = 32, seed: int = 0) -> Path:
    params = replace(random_params(cell, hidden, seed=seed),
                     calibration={"method": "placeholder", "ranges": RANGES})
    return save_model(params, tmp_path / f"{cell}{hidden}.tdn")


def wav_pair(folder: Path, name: str = "a.wav", seconds: float = 0.3, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    clean = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / 16000)
    noisy = clean + 0.05 * rng.standard_normal(n)
    (folder / "noisy").mkdir(exist_ok=True)
    (folder / "clean").mkdir(exist_ok=True)
    sf.write(folder / "noisy" / name, noisy, 16000, subtype="PCM_16")
    sf.write(folder / "clean" / name, clean, 16000, subtype="PCM_16")
    return folder / "noisy" / name, folder / "clean" / name


# --- the paper's ratios with the H = 256 LSTM --------------------------------------------------

def test_paper_ratios_for_the_h256_lstm(tmp_path):
    """Cycles depend on the model's shape only: a random H = 256 LSTM gives the default model's."""
    from streamer.sweep import sweep

    report = sweep(model_file(tmp_path, "lstm", 256))
    r, modes = report["ratios"], report["modes"]
    assert [row["voltage"] for row in modes["mixed"]["operating_points"]] == [0.65, 0.70, 0.75, 0.80]
    assert 3.5 <= r["speedup_mixed_vs_fp16_max"] <= 4.5                    # paper: up to 4x
    assert r["lowest_feasible_voltage"]["mixed"] == 0.65                     # paper: 0.65 V
    assert r["lowest_feasible_voltage"]["fp16"] == 0.65                      # L2 + MRAM, planned
    saving = r["power_saving_high_to_low_voltage"]["mixed"]
    assert saving["from_v"] == 0.8 and saving["to_v"] == 0.65 and saving["to_v_meets_deadline"]
    assert 2.0 <= saving["active_power"] <= 2.5                              # paper: up to 2.5x
    assert 1.4 <= r["memory_fp16_vs_mixed"] <= 1.75                          # paper: 1.4-1.7x
    where = {m: w["memory"] for m, w in r["weights"].items()}
    assert where == {"fp16": "L2+MRAM", "int8": "L2+MRAM", "mixed": "L2+MRAM"}
    # the whole blob in one level, as before the planner: fp16 streams from L3 and misses
    whole = sweep(model_file(tmp_path, "lstm", 256), modes=("fp16",), placement="L3")
    assert whole["ratios"]["lowest_feasible_voltage"]["fp16"] is None
    assert whole["modes"]["fp16"]["target"]["weights_memory"] == "L3"
    for entry in modes.values():
        facts = entry["target"]
        assert facts["ideal_cycles"] > 0
        for row in entry["operating_points"]:
            ratio = row["cycles_p99"] / facts["ideal_cycles"]
            assert row["cycles_to_ideal"] == pytest.approx(ratio, rel=1e-2)
            assert row["cycles_to_ideal"] > 1


# --- sweep -------------------------------------------------------------------------------------

def test_sweep_cli_table_report_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model = model_file(tmp_path)
    report, png = tmp_path / "sweep.json", tmp_path / "sweep.png"
    assert main(["sweep", "--model", str(model), "--quants", "fp16,mixed", "--voltages", "0.8,0.65",
                 "--report", str(report), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "mixed vs fp16 speed-up" in out and "paper: up to 4x" in out and "lowest voltage" in out
    # No audio scored: no empty PESQ-WB/STOI columns, one line saying how to get them instead.
    header = next(line for line in out.splitlines() if "mode" in line and "x ideal" in line)
    assert "PESQ" not in header and "STOI" not in header
    hints = [line for line in out.splitlines() if line.startswith("PESQ-WB/STOI: ")]
    assert hints == ["PESQ-WB/STOI: not scored; pass --noisy and --clean (two files or two folders) "
                     "to score each mode"]
    data = json.loads(report.read_text())
    assert list(data["modes"]) == ["fp16", "mixed"] and data["voltages"] == [0.65, 0.8]
    for entry in data["modes"].values():
        assert entry["pesq_wb"] is None and entry["stoi"] is None  # the fields stay, null
        assert len(entry["operating_points"]) == 2
        assert POINT_KEYS - {"frames"} <= set(entry["operating_points"][0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_scores_each_mode_on_audio(tmp_path):
    import io

    from rich.console import Console

    from streamer.sweep import quality_hint, sweep, sweep_table

    noisy, clean = wav_pair(tmp_path)
    report = sweep(model_file(tmp_path), modes=("fp16", "int8"), voltages="0.65", noisy=noisy, clean=clean)
    for entry in report["modes"].values():
        assert entry["pesq_wb"] is not None and entry["frames_scored"] > 0
        assert entry["operating_points"][0]["frames"] == entry["frames_scored"]
        assert entry["operating_points"][0]["deadline_misses"] == 0
    text = io.StringIO()
    Console(file=text, width=200).print(sweep_table(report))
    header = next(line for line in text.getvalue().splitlines() if "mode" in line and "x ideal" in line)
    assert "PESQ-WB" in header and "STOI" in header
    fp16_row = next(line for line in text.getvalue().splitlines() if "fp16" in line)
    assert f"{report['modes']['fp16']['pesq_wb']:.3f}" in fp16_row
    stoi = report["modes"]["fp16"]["stoi"]  # None on this 0.3 s clip (too short for STOI): "n/a"
    assert ("n/a" if stoi is None else f"{stoi:.3f}") in fp16_row
    assert quality_hint(report) is None


def test_sweep_with_a_link_baud_rate_adds_link_time(tmp_path):
    from streamer.sweep import sweep

    model = model_file(tmp_path)

    def point(**options):
        report = sweep(model, modes=("mixed",), voltages="0.65", **options)
        return report["modes"]["mixed"]["operating_points"][0]

    plain, slow = point(), point(baud=115200)
    assert slow["latency_ms_p99"] > plain["latency_ms_p99"] + 50  # ~1.1 kB each way at 115200 baud
    assert not slow["meets_deadline"] and plain["meets_deadline"]


@pytest.mark.parametrize("argv,message", [
    (["--quants", "fp32"], "--quants takes fp16, int8 and/or mixed"),
    (["--voltages", "0.5"], "no operating point at 0.5 V"),
    (["--noisy", "x.wav"], "give both --noisy and --clean"),
])
def test_sweep_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main(["sweep", "--model", str(model_file(tmp_path)), *argv]) == 2
    assert message in capsys.readouterr().err


def test_sweep_with_an_incomplete_target_file_names_the_field(tmp_path, capsys):
    from streamer.target import DEFAULT_TARGET

    text = DEFAULT_TARGET.read_text().replace("l3_pj_per_byte = 150", "")
    (tmp_path / "board.toml").write_text(text)
    board = str(tmp_path / "board.toml")
    assert main(["sweep", "--model", str(model_file(tmp_path)), "--target", board]) == 2
    assert "[power]: missing field 'l3_pj_per_byte'" in capsys.readouterr().err


# --- replay / eval / live ----------------------------------------------------------------------

def test_replay_reports_operating_points_and_logs_each_frame(tmp_path, capsys):
    noisy, clean = wav_pair(tmp_path)
    report, log = tmp_path / "r.json", tmp_path / "f.jsonl"
    assert main(["replay", str(noisy), "--clean", str(clean), "--model", str(model_file(tmp_path)),
                 "--quant", "mixed", "--voltages", "0.65,0.80", "--out", str(tmp_path / "o.wav"),
                 "--report", str(report), "--log", str(log)]) == 0
    assert "lowest voltage meeting the deadline" in capsys.readouterr().out
    data = json.loads(report.read_text())
    points = data["operating_points"]
    assert [p["voltage"] for p in points] == [0.65, 0.8]
    assert POINT_KEYS <= set(points[0])
    assert points[0]["frames"] == data["frames"] and points[0]["weights_memory"] == "L2"
    assert data["lowest_feasible_voltage"] == 0.65
    assert data["target"]["counters"]["forks"] == 5
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == data["frames"]
    assert set(lines[0]["target_cycles"]) == {"0.65", "0.8"} == set(lines[0]["target_meets"])
    assert lines[0]["target_cycles"]["0.65"] == points[0]["cycles_p99"]
    assert lines[0]["target_meets"] == {"0.65": True, "0.8": True}


def test_fp32_replay_says_the_target_does_not_run_it(tmp_path):
    from streamer.replay import replay
    from streamer.report import replay_report

    noisy, _ = wav_pair(tmp_path)
    data = replay_report(replay(noisy, model=model_file(tmp_path), write_output=False))
    assert data["operating_points"] is None and "fp32 does not run on the target" in data["target_note"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_eval_pools_operating_points_over_files(tmp_path, jobs):
    from streamer.evaluate import evaluate
    from streamer.report import eval_report

    wav_pair(tmp_path, "a.wav", 0.3, seed=1)
    wav_pair(tmp_path, "b.wav", 0.2, seed=2)
    result = evaluate(tmp_path / "noisy", tmp_path / "clean", model=model_file(tmp_path), quant="int8",
                      jobs=jobs, voltages=[0.7])
    data = eval_report(result)
    assert [p["voltage"] for p in data["operating_points"]] == [0.7]
    assert data["operating_points"][0]["frames"] == data["frames"] == sum(f["frames"] for f in data["files"])
    assert all(f["target_deadline_misses"] == {"0.7": 0} for f in data["files"])


def test_live_accepts_voltages_and_reports_operating_points(tmp_path):
    import argparse

    from streamer.backends import open_backend
    from streamer.live import add_arguments
    from streamer.model import load_model

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--voltages", "0.65,0.75", "--target", "x.toml"])
    assert (args.voltages, args.target) == ("0.65,0.75", "x.toml")
    spec = TimingSpec.load(None, args.voltages)
    params = load_model(model_file(tmp_path))
    with open_backend("emulator", params, "mixed") as backend:
        timing, note = target_observer(spec, backend)
        assert note is None
        for index in range(3):
            backend.step(np.ones(257, np.float32))
            timing(index)
        fields = timing.report_fields()
    assert [p["frames"] for p in fields["operating_points"]] == [3, 3]
    with open_backend("emulator", params) as backend:  # fp32: no target
        timing, note = target_observer(spec, backend)
    assert timing is None and "fp32" in TargetNote(note).report_fields()["target_note"]


def test_sweep_compares_placements(tmp_path):
    """`--compare-placement whole` costs the modes as before the planner beside the plan."""
    pytest.importorskip("matplotlib")
    from streamer.sweep import compare_table, plot, sweep

    report = sweep(model_file(tmp_path, "lstm", 256), modes=("mixed",), voltages="0.65,0.8", compare="whole")
    planned, whole = report["modes"]["mixed"], report["compare"]["modes"]["mixed"]
    assert report["placement"] == "auto" and report["compare"]["placement"] == "whole"
    assert planned["target"]["weights_memory"] == "L2+MRAM" and whole["target"]["weights_memory"] == "MRAM"
    assert [r["cycles_p99"] for r in whole["operating_points"]] == [618_978, 932_387]
    assert [r["cycles_p99"] for r in planned["operating_points"]] == [196_790, 196_790]
    assert planned["target"]["cycles_breakdown"]["0.65"]["bound"]["rnn1"] == "L2"
    assert compare_table(report) is not None
    assert plot(report, tmp_path / "p.png").stat().st_size > 10_000
