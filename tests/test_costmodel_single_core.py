"""The cost model on one core without L1 (a Cortex-M7): no forks or barriers to pay, no tiles,
the weights read in place from their level; hand-computed cycles and bytes; the packaged
targets by name; a Cortex-M7 file missing a field; and `streamer sweep --targets`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from test_costmodel import _write

from streamer.costmodel import firmware_work, frame_cycles, point_cost
from streamer.target import TargetError, packaged_targets, parse_target, read_target

REPO = Path(__file__).resolve().parents[1]
M7_FILE = REPO / "calibration" / "targets" / "cortex-m7.toml"


def one_core(**changes) -> dict:
    """One core, no L1, round numbers: int8 2 MACs per cycle, fp16 one MAC per 2 cycles."""
    data = {
        "name": "one-core",
        "cluster": {"workers": 1},
        "memory": {"weights_in_place": True, "l1_bytes": 131072, "l2_bytes": 1_000_000,
                   "l2_weight_bytes": 1_000_000,
                   "mram_bytes": 2_000_000, "l3_bytes": 8_000_000},
        "compute": {"int8_macs_per_cycle_per_core": 2, "fp16_macs_per_cycle_per_core": 1, "fpus": 1,
                    "int8_cycles_per_simd": 1, "fp16_cycles_per_simd": 2, "row_cycles": 10,
                    "activation_cycles": 20, "elementwise_cycles": 3},
        "overheads": {"fork_cycles": 0, "barrier_cycles": 0, "layer_setup_cycles": 100,
                      "dma_transfer_cycles": 0},
        "dma": {"L2": {"bytes_per_cycle": 4}, "MRAM": {"bytes_per_cycle": 1}, "L3": {"mbytes_per_s": 1}},
        "power": {"mram_pj_per_byte": 0, "l3_pj_per_byte": 600},
        "operating_points": [{"voltage": 1.0, "freq_mhz": 100, "active_mw": 100, "idle_mw": 30}],
    }
    data.update(changes)
    return data


# fp16 LSTM H = 16, by hand. Weight bytes per layer (binary16 weights and biases):
#   fc0  16 x 257 + 16 bias            = 4112 + 16  values -> 8256 bytes
#   rnn  64 x 16 (W_ih) + 64 x 16 (W_hh) + 64 + 64 biases -> 4352 bytes (each of rnn1, rnn2)
#   fc1  257 x 16 + 257                -> 8738 bytes
#   fc2  257 x 257 + 257               -> 132612 bytes
LAYER_BYTES = (8256, 4352, 4352, 8738, 132612)
# Cycles (rate fp16 = 1 MAC / 2 cycles, row 10, activation 20, elementwise 3, set-up 100):
#   fc0  4112 MACs x 2 + 16 rows x 10 + input stage 257 x 3 + 100             = 9255
#   rnn  64 rows x 32 MACs x 2 + 64 x 2 dots x 10 + 16 units x (5 x 20 + 10 x 3) + 100 = 7556
#   fc1  4112 x 2 + 257 x 10 + 100                                            = 10894
#   fc2  66049 x 2 + 257 x (10 + 20) + 100                                    = 139908
HAND_L2 = 9255 + 2 * 7556 + 10894 + 139908  # 175169: every layer compute-bound at 4 B/cycle


def test_one_core_in_place_compute_bound_hand_computed():
    target = parse_target(one_core())
    work = firmware_work("fp16", "lstm", 16, target)
    assert work.level == "L2" and target.weights_in_place
    # Tiles stay the plan's unit (fc2's 132,612 bytes are 3 tiles of 64 kB) but nothing is copied.
    assert tuple(sum(t.nbytes for t in layer.tiles) for layer in work.layers) == LAYER_BYTES
    assert all(t.transfers == 0 for layer in work.layers for t in layer.tiles)
    assert frame_cycles(work, target, 100e6).total == HAND_L2


def test_one_core_in_place_read_bound_hand_computed():
    """Weights in external memory at 1 MB/s, core at 100 MHz: 100 cycles per byte, every layer
    waits for its reads; only the elementwise work and the set-up add to them."""
    target = parse_target(one_core())
    work = firmware_work("fp16", "lstm", 16, target, "L3")  # the whole blob in L3, as asked
    assert work.level == "L3"
    reads = sum(LAYER_BYTES) * 100
    elementwise = 257 * 3 + 2 * 16 * (5 * 20 + 10 * 3)
    assert frame_cycles(work, target, 100e6).total == reads + elementwise + 5 * 100
    # The energy of the bytes read in place: 600 pJ each, on top of the active power.
    assert work.bytes_read() == (0, 0, sum(LAYER_BYTES))
    cost = point_cost(1_000_000, target.points[0], target, work.bytes_read())
    assert cost.energy_uj == pytest.approx(100 * 0.01 * 1e3 + sum(LAYER_BYTES) * 600e-6)


def test_one_core_counters_are_what_the_m7_firmware_reports():
    """One core: no copies into L1, no DMA, no barrier; forks are the 5 layer calls."""
    target = parse_target(one_core())
    counters = firmware_work("mixed", "gru", 32, target).counters()
    assert counters.l1_bytes_from == (0, 0, 0) and counters.dma_transfers == 0
    assert counters.barrier_waits == 0 and counters.forks == 5
    assert counters.int8_macs == (2 * 3 * 32 * (32 + 32),)
    assert counters.fp16_macs == (32 * 257 + 257 * 32 + 257 * 257,)


def test_forks_and_barriers_cost_nothing_on_one_core():
    """The same frame with fork and barrier costs set: nothing changes (there are none to pay
    but the 5 calls, charged as forks only if the target file says a fork costs cycles)."""
    base = frame_cycles(firmware_work("fp16", "lstm", 16, parse_target(one_core())),
                        parse_target(one_core()), 100e6).total
    data = one_core(overheads={"fork_cycles": 0, "barrier_cycles": 1000, "layer_setup_cycles": 100,
                               "dma_transfer_cycles": 1000})
    target = parse_target(data)
    assert frame_cycles(firmware_work("fp16", "lstm", 16, target), target, 100e6).total == base


# --- the packaged Cortex-M7 target -----------------------------------------------------------------

def test_targets_by_name_and_by_path():
    assert {"gap9", "cortex-m7"} <= set(packaged_targets())
    m7 = read_target("cortex-m7")
    assert m7.name == "cortex-m7" and m7.workers == 1 and m7.weights_in_place
    assert not read_target("gap9").weights_in_place
    assert read_target("gap9").workers == 8
    assert read_target(str(M7_FILE)).workers == 1  # a path still works
    with pytest.raises(TargetError, match=r"unknown target 'cortex-m99'.*cortex-m7.*gap9"):
        read_target("cortex-m99")


def test_the_packaged_m7_target_is_the_calibrated_file_and_cites_sources():
    packaged = REPO / "streamer" / "data" / "cortex-m7.toml"
    assert packaged.read_bytes() == M7_FILE.read_bytes()
    text = M7_FILE.read_text()
    assert "DS12110" in text and "RM0433" in text and "assumption" in text
    m7 = read_target("cortex-m7")
    assert [p.freq_mhz for p in m7.select(None)] == [200, 300, 400, 480]


@pytest.mark.parametrize("section,field", [("memory", "mram_bytes"), ("compute", "fpus"),
                                           ("overheads", "layer_setup_cycles"), ("cluster", "workers")])
def test_an_m7_file_missing_a_field_is_a_one_line_error_naming_it(tmp_path, section, field):
    data = copy.deepcopy(tomllib.loads(M7_FILE.read_text()))
    data[section].pop(field)
    path = _write(tmp_path, data)
    with pytest.raises(TargetError) as error:
        read_target(path)
    message = str(error.value)
    assert f"[{section}]: missing field {field!r}" in message and "\n" not in message


def test_the_m7_default_lstm_is_slower_than_gap9_and_misses_at_200_mhz():
    """Default H = 256 mixed: one M7 core needs ~2x GAP9's time at its top clock and misses the
    hop at VOS3's 200 MHz (the figures of docs/cortex-m.md)."""
    m7, gap9 = read_target("cortex-m7"), read_target("gap9")
    work = firmware_work("mixed", "lstm", 256, m7)
    assert work.level == "L2+MRAM"  # 1.47 MB: 512 kB in SRAM, the rest in the 2 MB flash
    ms = {p.freq_mhz: frame_cycles(work, m7, p.freq_hz).total / p.freq_hz * 1e3 for p in m7.points}
    assert ms[200] > 6.25 > ms[300]
    gap = firmware_work("mixed", "lstm", 256, gap9)
    assert frame_cycles(gap, gap9, 370e6).total / 370e6 * 1e3 < ms[480]


def test_sweep_targets_compares_energy_with_the_papers_ratio(tmp_path):
    report = tmp_path / "compare.json"
    result = subprocess.run([sys.executable, "-m", "streamer", "sweep", "--targets", "gap9,cortex-m7",
                             "--quants", "mixed,fp16", "--report", str(report)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(report.read_text())
    mixed = data["modes"]["mixed"]
    assert mixed["targets"]["gap9"]["meets_deadline"] and mixed["targets"]["cortex-m7"]["meets_deadline"]
    ratio = mixed["energy_ratio"]["cortex-m7/gap9"]
    m7, gap = mixed["targets"]["cortex-m7"], mixed["targets"]["gap9"]
    assert ratio == pytest.approx(m7["energy_uj_per_frame"] / gap["energy_uj_per_frame"], rel=0.01)
    # fp16 H = 256 on the M7: 2.5 MB in external flash, far over the hop; by how much is reported.
    fp16 = data["modes"]["fp16"]["targets"]["cortex-m7"]
    assert not fp16["meets_deadline"] and fp16["miss_factor"] == pytest.approx(fp16["latency_ms"] / 6.25,
                                                                               abs=0.01)
    assert "paper: about 10x" in result.stdout and "misses the deadline" in result.stdout
    refused = subprocess.run([sys.executable, "-m", "streamer", "sweep", "--targets", "gap9"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode != 0 and "two or more" in refused.stderr
