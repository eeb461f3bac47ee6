"""The target cost model: hand-computed cycles, the firmware's schedule and counters (against
tdn-sim), the deadline edge, memory-level power, and target-file errors."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import random_params, require_tool

from streamer.backends.base import Backend, LastFrame, TargetModel
from streamer.costmodel import (
    CostModelError,
    FrameCounters,
    FrameWork,
    LayerWork,
    TargetRecord,
    TargetTiming,
    Tile,
    TimingSpec,
    blob_bytes,
    firmware_work,
    frame_cycles,
    ideal_cycles,
    point_cost,
    summarise,
    target_fields,
)
from streamer.engine import DEADLINE_S
from streamer.link.blob import encode_blob
from streamer.quant.network import quantize
from streamer.target import MEMORY_LEVELS, TargetError, load_target, parse_target, read_target

RANGES = dict.fromkeys(("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input"), 4.0)


def toy_target(**changes) -> dict:
    """A target with round numbers, for cycle counts that can be checked by hand."""
    data = {
        "name": "toy",
        "cluster": {"workers": 2},
        "memory": {"l1_bytes": 4096, "l2_bytes": 10_000, "l2_weight_bytes": 10_000,
                   "mram_bytes": 20_000, "l3_bytes": 100_000},
        "compute": {"int8_macs_per_cycle_per_core": 4, "fp16_macs_per_cycle_per_core": 2, "fpus": 1,
                    "int8_cycles_per_simd": 1, "fp16_cycles_per_simd": 1, "row_cycles": 0,
                    "activation_cycles": 0, "elementwise_cycles": 0},
        "overheads": {"fork_cycles": 10, "barrier_cycles": 5, "layer_setup_cycles": 20,
                      "dma_transfer_cycles": 0},
        "dma": {"L2": {"bytes_per_cycle": 1}, "MRAM": {"mbytes_per_s": 100},
                "L3": {"mbytes_per_s": 10}},
        "power": {"mram_pj_per_byte": 10, "l3_pj_per_byte": 100},
        "operating_points": [{"voltage": 0.65, "freq_mhz": 240, "active_mw": 20, "idle_mw": 2},
                             {"voltage": 0.8, "freq_mhz": 370, "active_mw": 50, "idle_mw": 5}],
    }
    for key, value in changes.items():
        data[key] = value
    return data


def one_layer(tiles: list[tuple[int, int, int]], level: str = "L2", int8: bool = True) -> FrameWork:
    """A frame of one dense layer; tiles as (rows per worker, MACs per worker, bytes)."""
    built = []
    lv = MEMORY_LEVELS.index(level)
    for rows, macs, nbytes in tiles:
        zero = (0, 0)
        at = tuple(nbytes if i == lv else 0 for i in range(3))
        built.append(Tile(2 * rows, (rows, rows), (macs, macs) if int8 else zero,
                          zero if int8 else (macs, macs), nbytes, 1,
                          tuple(2 * rows if i == lv else 0 for i in range(3)), at,
                          tuple(1 if i == lv else 0 for i in range(3))))
    layer = LayerWork("fc0", int8, False, 2 * sum(t[0] for t in tiles), 100, (100,), 2 * tiles[0][0],
                      tuple(built), (0, 0), (0, 0), 1, 0)
    return FrameWork("int8" if int8 else "fp16", "lstm", 8, 2, level, 1000, (layer,))


# --- hand-computed cycles ----------------------------------------------------------------------

def test_cycles_compute_bound_hand_computed():
    target = parse_target(toy_target())
    # tile 0: 400 int8 MACs per worker = 100 cycles at 4 MACs/cycle; 100 bytes = 100 cycles
    # tile 1: 200 MACs = 50 cycles; 50 bytes = 50 cycles (hidden behind tile 0's compute)
    work = one_layer([(2, 400, 100), (1, 200, 50)])
    cycles = frame_cycles(work, target, 240e6)
    # set-up 20 + fork 10 + 3 barriers x 5 + DMA of tile 0 100 + max(100, 50) + 50
    assert cycles.total == 20 + 10 + 15 + 100 + 100 + 50 == 295
    assert (cycles.compute, cycles.dma_exposed, cycles.overhead) == (150, 100, 45)


def test_cycles_dma_bound_hand_computed():
    target = parse_target(toy_target())
    work = one_layer([(2, 400, 100), (1, 200, 300)])  # tile 1's copy (300) outlasts tile 0's rows
    cycles = frame_cycles(work, target, 240e6)
    assert cycles.total == 20 + 10 + 15 + 100 + max(100, 300) + 50 == 495
    assert cycles.dma_exposed == 100 + 200


def _split_tile(l2_bytes: int, mram_bytes: int) -> FrameWork:
    """One layer of one tile (no compute) reading `l2_bytes` from L2 and `mram_bytes` from MRAM."""
    tile = Tile(2, (1, 1), (0, 0), (0, 0), l2_bytes + mram_bytes, 2, (1, 1, 0), (l2_bytes, mram_bytes, 0),
                (1, 1, 0))
    layer = LayerWork("fc0", True, False, 2, 100, (100,), 2, (tile,), (0, 0), (0, 0), 1, 0)
    return FrameWork("int8", "lstm", 8, 2, "L2+MRAM", 1000, (layer,))


def test_levels_on_separate_channels_are_copied_at_once():
    # L2 1 byte/cycle, MRAM 100 MB/s = 2.4 cycles/byte at 240 MHz; 2 transfers x 7 cycles each
    data = toy_target(overheads={"fork_cycles": 10, "barrier_cycles": 5, "layer_setup_cycles": 20,
                                 "dma_transfer_cycles": 7})
    shared = parse_target(data)  # no channel given: one shared channel
    data["dma"] = {"L2": {"bytes_per_cycle": 1, "channel": "cluster"},
                   "MRAM": {"mbytes_per_s": 100, "channel": "udma"},
                   "L3": {"mbytes_per_s": 10, "channel": "udma"}}
    apart = parse_target(data)
    work = _split_tile(1000, 200)  # L2 1,000 cycles; MRAM 480 cycles
    base = 20 + 10 + 2 * 5
    assert frame_cycles(work, shared, 240e6).total == base + 14 + 1000 + 480
    assert frame_cycles(work, apart, 240e6).total == base + 14 + 1000
    assert frame_cycles(work, apart, 240e6).bound == ("L2",)
    assert frame_cycles(_split_tile(100, 500), apart, 240e6).bound == ("MRAM",)  # 100 vs 1,200 cycles
    data["dma"]["MRAM"]["channel"] = ""
    with pytest.raises(TargetError, match=r"\[dma.MRAM\]: field 'channel' must be a name"):
        parse_target(data)


def test_fp16_rate_shares_the_fpu():
    # 2 workers share 1 FPU: one FPU instruction (2 MACs) per worker every 2 cycles = 1 MAC/cycle
    target = parse_target(toy_target())
    work = one_layer([(1, 100, 0)], int8=False)
    assert frame_cycles(work, target, 240e6).compute == 100
    assert ideal_cycles(work, target) == 200 / (2 * 1)  # 200 MACs / (2 workers x 1 shared peak)


def test_fixed_bandwidth_levels_cost_more_cycles_at_a_faster_clock():
    target = parse_target(toy_target())
    work = one_layer([(1, 0, 1000)], level="MRAM")  # 1000 bytes at 100 MB/s = 10 us
    assert frame_cycles(work, target, 240e6).dma_exposed == pytest.approx(2400)
    assert frame_cycles(work, target, 370e6).dma_exposed == pytest.approx(3700)


def test_per_row_and_elementwise_costs():
    data = toy_target()
    data["compute"].update(row_cycles=3, activation_cycles=7, elementwise_cycles=2)
    target = parse_target(data)
    layer = LayerWork("rnn1", True, True, 4, 8, (8,), 4,
                      (Tile(4, (2, 2), (32, 32), (0, 0), 32, 1, (4, 0, 0), (32, 0, 0), (1, 0, 0)),),
                      (5, 4), (3, 2), 2, 0, 5, 10)
    work = FrameWork("int8", "lstm", 2, 2, "L2", 100, (layer,))
    cycles = frame_cycles(work, target, 240e6)
    # rows: 32/4 MACs + 2 rows x 2 dot products x 3 = 20; prologue 5 x 2 = 10;
    # gate work 3 units x (5 x 7 + 10 x 2) = 165; overhead 20 + 10 + 2 x 5; DMA of tile 0 32
    assert cycles.compute == 20 and cycles.elementwise == 175
    assert cycles.total == 20 + 175 + 40 + 32


# --- the firmware's schedule -------------------------------------------------------------------

def test_lstm256_fp16_tiles_as_the_firmware_doc_says():
    target = read_target()
    work = firmware_work("fp16", "lstm", 256, target)
    rnn1 = work.layers[1]
    assert (rnn1.rows_per_tile, len(rnn1.tiles)) == (56, 19)  # docs/firmware.md
    assert sum(rnn1.row_bytes) == 1028
    assert work.level == "L2+MRAM"  # 2.5 MB: the planner spreads it over L2 and MRAM
    assert firmware_work("fp16", "lstm", 256, target, "L3").level == "L3"


@pytest.mark.parametrize("mode", ["fp16", "int8", "mixed"])
@pytest.mark.parametrize("cell,hidden", [("lstm", 256), ("gru", 128), ("lstm", 40)])
def test_schedule_counts_every_mac_and_byte(mode, cell, hidden):
    target = read_target()
    model = quantize(random_params(cell, hidden), mode, RANGES)
    work = firmware_work(mode, cell, hidden, target)
    counters = work.counters()
    g = 4 if cell == "lstm" else 3
    total = hidden * 257 + 2 * g * hidden * 2 * hidden + 257 * hidden + 257 * 257
    rnn = 2 * g * hidden * 2 * hidden
    int8 = {"fp16": 0, "int8": total, "mixed": rnn}[mode]
    assert (sum(counters.int8_macs), sum(counters.fp16_macs)) == (int8, total - int8)
    blob = encode_blob(model)
    assert blob_bytes(mode, cell, hidden) == work.blob_bytes == len(blob)
    assert sum(counters.l1_bytes_from) == model.weight_bytes()  # every stored byte, once
    assert counters.forks == 5
    assert counters.barrier_waits == 8 * sum(1 + len(layer.tiles) for layer in work.layers)
    # one transfer per array and per level a tile's rows come from
    assert counters.dma_transfers == sum(len(layer.row_bytes) * sum(1 for r in t.rows_from if r)
                                         for layer in work.layers for t in layer.tiles)
    whole = firmware_work(mode, cell, hidden, target, "L3").counters()
    assert whole.dma_transfers == sum(len(layer.row_bytes) * len(layer.tiles) for layer in work.layers)
    assert whole.l1_bytes_from == (0, 0, sum(counters.l1_bytes_from))
    for layer in work.layers:
        assert sum(t.rows for t in layer.tiles) == layer.rows
        packed = sum((b * layer.rows_per_tile + 3) & ~3 for b in layer.row_bytes)
        assert packed <= target.tile_bytes  # a tile's arrays, 4-byte aligned, fit one L1 half


@pytest.mark.parametrize("mode,cell,hidden", [("mixed", "lstm", 256), ("fp16", "lstm", 256),
                                              ("int8", "gru", 128), ("mixed", "gru", 64)])
def test_emulator_counters_equal_the_simulators(mode, cell, hidden):
    """The counters computed from the model and the firmware's tiling are the ones tdn-sim sends."""
    require_tool("make")
    from streamer.backends import open_backend

    model = quantize(random_params(cell, hidden, seed=3), mode, RANGES)
    target = read_target()
    spec = TimingSpec(target, target.points)
    rng = np.random.default_rng(0)
    with open_backend("sim", model) as backend:
        timing = TargetTiming(spec, backend)
        for index in range(3):
            backend.step(np.abs(rng.standard_normal(257)).astype(np.float32))
            device = FrameCounters.from_link(backend.last_counters)
            assert device == firmware_work(mode, cell, hidden, target).counters()
            timing(SimpleNamespace(index=index))
        # the firmware's plan (MODEL_END) is the cost model's, tile by tile
        planned = firmware_work(mode, cell, hidden, target)
        assert backend.target_model().cuts == planned.cuts()
        assert backend.model_info.weights_level == planned.level
    record = timing.record()
    assert record.counters_mismatch_frames == 0
    expected = [frame_cycles(firmware_work(mode, cell, hidden, target), target, p.freq_hz).total
                for p in target.points]
    assert record.cycles == [expected] * 3


# --- the deadline ------------------------------------------------------------------------------

def _record(target, cycles_per_frame, l1=(0, 0, 0), link_s=0.0, level="L2"):
    return TargetRecord(target, target.points[:1], [[c] if c is not None else None for c in cycles_per_frame],
                        level, l1, link_s, 0, {"ideal_cycles": 1000.0})


def test_a_frame_exactly_at_the_deadline_meets_it():
    target = parse_target(toy_target())
    point = target.points[0]  # 240 MHz: 6.25 ms = 1,500,000 cycles
    at = round(DEADLINE_S * point.freq_hz)
    assert at == 1_500_000
    assert point_cost(at, point, target, (0, 0, 0)).meets
    assert not point_cost(at + 1, point, target, (0, 0, 0)).meets
    rows = summarise(_record(target, [at, at - 10, at + 1]))
    assert rows[0]["deadline_misses"] == 1 and not rows[0]["meets_deadline"]
    assert rows[0]["latency_ms_max"] == pytest.approx(6.25, abs=1e-3)
    exact = summarise(_record(target, [at, at]))[0]
    assert exact["meets_deadline"] and exact["slack_ms"] == 0.0


def test_link_time_counts_against_the_deadline():
    target = parse_target(toy_target())
    at = 1_500_000
    rows = summarise(_record(target, [at - 240], link_s=1e-6))  # 1 us of compute + 1 us of link
    assert rows[0]["deadline_misses"] == 0
    rows = summarise(_record(target, [at - 239], link_s=1e-6))
    assert rows[0]["deadline_misses"] == 1


def test_lost_frames_miss_at_every_voltage():
    target = parse_target(toy_target())
    record = TargetRecord(target, target.points, [[1000, 1000], None], "L2", (0, 0, 0), 0.0, 0, {})
    fields = target_fields(record)
    assert [r["deadline_misses"] for r in fields["operating_points"]] == [1, 1]
    assert fields["lowest_feasible_voltage"] is None and fields["target"]["frames_lost"] == 1


def test_lowest_feasible_voltage_is_named():
    target = parse_target(toy_target())
    # 2,000,000 cycles: 8.3 ms at 240 MHz (miss), 5.4 ms at 370 MHz (meets)
    record = TargetRecord(target, target.points, [[2_000_000, 2_000_000]], "L2", (0, 0, 0), 0.0, 0, {})
    fields = target_fields(record)
    assert [r["meets_deadline"] for r in fields["operating_points"]] == [False, True]
    assert fields["lowest_feasible_voltage"] == 0.8


def test_power_active_then_idle_over_the_hop():
    target = parse_target(toy_target())
    point = target.points[0]
    cost = point_cost(480_000, point, target, (0, 0, 0))  # 2 ms active of the 6.25 ms hop
    assert cost.energy_uj == pytest.approx(20 * 2.0)
    assert cost.power_mw == pytest.approx((20 * 2.0 + 2 * 4.25) / 6.25)


# --- memory level and power --------------------------------------------------------------------

def test_a_model_too_large_for_on_chip_memory_pays_external_memory_power():
    target = read_target()
    fp16 = firmware_work("fp16", "lstm", 256, target, "L3")      # 2.5 MB whole: only L3 holds it
    mixed = firmware_work("mixed", "lstm", 256, target, "MRAM")  # 1.47 MB whole: on-chip MRAM
    small = firmware_work("fp16", "lstm", 128, target)           # 793 kB: L2, planned or not
    assert (fp16.level, mixed.level, small.level) == ("L3", "MRAM", "L2")
    with pytest.raises(CostModelError, match="does not fit L2"):
        firmware_work("fp16", "lstm", 256, target, "L2")
    assert fp16.counters().l1_bytes_from[2] == sum(fp16.counters().l1_bytes_from) > 0
    point = target.points[0]
    cycles = frame_cycles(fp16, target, point.freq_hz).total
    in_l3 = point_cost(cycles, point, target, fp16.counters().l1_bytes_from)
    as_if_mram = point_cost(cycles, point, target, (0, sum(fp16.counters().l1_bytes_from), 0))
    nbytes = sum(fp16.counters().l1_bytes_from)
    assert in_l3.energy_uj - as_if_mram.energy_uj == pytest.approx(
        nbytes * (target.l3_pj_per_byte - target.mram_pj_per_byte) * 1e-6)
    assert in_l3.power_mw > as_if_mram.power_mw
    # on-chip L2 reads cost no extra energy per byte
    l2 = point_cost(1000, point, target, small.counters().l1_bytes_from)
    assert l2.energy_uj == pytest.approx(point.active_mw * 1000 / point.freq_hz * 1e3)


def test_tdn_sim_l2_budget_is_below_the_target_files():
    """Where tdn-sim and the target file disagree on L2, the device's own placement is used."""
    target = read_target()
    work = firmware_work("mixed", "gru", 256, target, level="MRAM")
    assert work.level == "MRAM" and work.counters().l1_bytes_from[1] > 0


# --- target files ------------------------------------------------------------------------------

def _write(tmp_path, data: dict) -> str:
    lines = []

    def emit(table: dict, prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict | list)}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {json.dumps(v)}")
        for k, v in table.items():
            if isinstance(v, dict):
                emit(v, f"{prefix}.{k}" if prefix else k)
            elif isinstance(v, list):
                for row in v:
                    lines.append(f"[[{k}]]")
                    lines.extend(f"{a} = {json.dumps(b)}" for a, b in row.items())

    emit(data, "")
    path = tmp_path / "board.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_packaged_target_is_complete_and_cites_sources():
    target = read_target()
    assert target.workers == 8 and target.memory.l1_bytes == 131072
    assert [p.voltage for p in target.select(None)] == [0.65, 0.70, 0.75, 0.80]
    assert target.select([0.8, 0.65])[0].freq_mhz == 240
    assert target.compute.int8_macs_per_cycle_per_core == 4 and target.fp16_macs_per_cycle_shared() == 1
    from streamer.target import DEFAULT_TARGET

    text = DEFAULT_TARGET.read_text()
    for section in ("[compute]", "[overheads]", "[dma.L2]", "[power]", "[[operating_points]]"):
        assert section in text
    assert "assumption" in text and "arXiv:2210.07692" in text


def test_a_users_own_target_file(tmp_path):
    path = _write(tmp_path, toy_target())
    target = read_target(path)
    assert target.name == "toy" and target.workers == 2 and target.dma["L3"].mbytes_per_s == 10
    assert TimingSpec.load(path, "0.8").points[0].freq_mhz == 370


@pytest.mark.parametrize("breakage,message", [
    (lambda d: d["operating_points"][1].pop("idle_mw"),
     r"\[\[operating_points\]\] #2: missing field 'idle_mw'"),
    (lambda d: d.pop("compute"), r"missing field 'compute'"),
    (lambda d: d["compute"].pop("fpus"), r"\[compute\]: missing field 'fpus'"),
    (lambda d: d["dma"].pop("MRAM"), r"\[dma\]: missing field 'MRAM'"),
    (lambda d: d["dma"]["L2"].update(mbytes_per_s=5), r"\[dma.L2\]: needs exactly one of"),
    (lambda d: d["power"].pop("l3_pj_per_byte"), r"\[power\]: missing field 'l3_pj_per_byte'"),
    (lambda d: d["overheads"].update(fork_cycles="fast"), r"'fork_cycles' must be a number"),
    (lambda d: d["operating_points"][0].update(freq_mhz=0), r"'freq_mhz' must be > 0"),
    (lambda d: d["memory"].pop("l3_bytes"), r"\[memory\]: missing field 'l3_bytes'"),
    (lambda d: d.pop("operating_points"), r"missing field 'operating_points'"),
])
def test_an_incomplete_target_file_names_the_missing_field(tmp_path, breakage, message):
    data = copy.deepcopy(toy_target())
    breakage(data)
    path = _write(tmp_path, data)
    with pytest.raises(TargetError, match=message) as error:
        read_target(path)
    assert "board.toml" in str(error.value)


def test_malformed_and_missing_target_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[compute\nint8 = 4\n")
    with pytest.raises(TargetError, match="not valid TOML"):
        read_target(bad)
    with pytest.raises(TargetError, match="target file not found"):
        read_target(tmp_path / "none.toml")
    with pytest.raises(TargetError, match="no operating point at 0.5 V"):
        TimingSpec.load(None, "0.5")
    with pytest.raises(TargetError, match="not a voltage"):
        TimingSpec.load(None, "0.65,low")
    assert load_target()["name"] == "gap9"


def test_the_worked_example_of_the_docs():
    """docs/cost-model.md works rnn1 of the mixed H = 256 LSTM at 0.65 V by hand, the whole blob
    in MRAM (`--placement MRAM`, the placement before the planner): 225,060 cycles."""
    target = read_target()
    work = firmware_work("mixed", "lstm", 256, target, "MRAM")
    rnn1 = work.layers[1]
    assert (rnn1.rows_per_tile, len(rnn1.tiles), sum(rnn1.row_bytes)) == (120, 9, 524)
    cycles = frame_cycles(work, target, 240e6)
    assert round(cycles.by_layer[1]) == 300 + 150 + 200 + 96 + 25_332 + 7 * 25_332 + 13_594 + 2_304 + 5_760
    assert cycles.total == 618_978
    assert round(ideal_cycles(work, target), 1) == 57_472.1


def test_the_worked_split_plan_of_the_docs():
    """docs/cost-model.md works rnn1 of the same model planned over L2 and MRAM by hand: every
    full tile reads 100 rows from L2 and 20 from MRAM on two channels at once."""
    target = read_target()
    work = firmware_work("mixed", "lstm", 256, target)
    rnn1 = work.layers[1]
    assert [t.rows_from for t in rnn1.tiles] == [(100, 20, 0)] * 8 + [(53, 11, 0)]
    assert work.counters().l1_bytes_from == (1_228_420, 241_538, 0)  # L2: 380 bytes of 1,228,800 unused
    cycles = frame_cycles(work, target, 240e6)
    # full tile: L2 100 x 524 = 52,400 B / 8 = 6,550 cycles beside MRAM 10,480 B at 600 MB/s =
    # 4,192 cycles; 12 transfers x 30 -> dma 6,910 > compute 4,320. Last tile: L2 27,772 B =
    # 3,471.5, MRAM 5,764 B = 2,305.6 -> dma 3,831.5 < the previous tile's 4,320 compute.
    hand = 300 + 150 + 200 + 96 + 6_910 + 7 * 6_910 + 4_320 + 2_304 + 5_760
    assert hand == 68_410 and cycles.by_layer[1] == pytest.approx(hand)
    assert cycles.bound[1] == "L2"
    assert cycles.total == 196_790 and round(cycles.total / ideal_cycles(work, target), 2) == 3.42
    # L2 streams at the cluster clock: the cycles stay, the latency scales with the clock
    assert frame_cycles(work, target, 370e6).total == 196_790


class _FakeDevice(Backend):
    """Test double for a device backend: the counters and failures it reports are set by the
    test, through the Backend interface the cost model reads (no link needed)."""

    name = "fake-device"

    def __init__(self, work, counters, failed: bool = False) -> None:
        self.work, self.last_counters, self.last_failed = work, counters, failed

    def step(self, magnitudes):
        raise NotImplementedError

    def reset(self) -> None:
        pass

    @property
    def is_device(self) -> bool:
        return True

    def last_frame(self) -> LastFrame:
        return LastFrame(failed=True) if self.last_failed else LastFrame(False, None, self.last_counters)

    def target_model(self) -> TargetModel:
        return TargetModel(self.work.mode, self.work.cell, self.work.hidden, self.work.level)


def _fake_device(work, counters, failed=False):
    return _FakeDevice(work, counters, failed)


def test_device_counters_drive_the_cycles_and_lost_frames_miss():
    target = read_target()
    work = firmware_work("int8", "gru", 64, target)
    c = work.counters()
    link = SimpleNamespace(int8_macs=c.int8_macs, fp16_macs=c.fp16_macs, l1_bytes_from=c.l1_bytes_from,
                           dma_transfers=c.dma_transfers, forks=c.forks, barrier_waits=c.barrier_waits)
    device = _fake_device(work, link)
    timing = TargetTiming(TimingSpec(target, target.points[:1]), device)
    timing(SimpleNamespace(index=0))                     # counters as scheduled
    device.last_counters = replace_counters(link, int8_macs=tuple(4 * m for m in c.int8_macs))
    timing(SimpleNamespace(index=1))                     # other firmware: 4x the MACs
    device.last_failed = True
    timing(SimpleNamespace(index=2))                     # lost on the link
    record = timing.record()
    scheduled = frame_cycles(work, target, target.points[0].freq_hz).total
    assert record.cycles[0] == [scheduled] and record.cycles[2] is None
    assert record.cycles[1][0] > scheduled and record.counters_mismatch_frames == 1
    row = summarise(record)[0]
    assert row["frames"] == 3 and row["deadline_misses"] == 1 and not row["meets_deadline"]
    assert timing.log_fields()["target_cycles"] is None


def replace_counters(link, **changes):
    return SimpleNamespace(**{**vars(link), **changes})


def test_a_device_plan_of_another_tiling_is_not_costed_as_ours():
    target = read_target()
    ours = firmware_work("mixed", "lstm", 64, target).cuts()
    assert firmware_work("mixed", "lstm", 64, target, cuts=ours).cuts() == ours
    for other in (ours[:4], (ours[0] + ((0, 0),),) + ours[1:], ((ours[0][0][0], 10_000),) + ours[1:]):
        with pytest.raises(CostModelError, match="tiles the model otherwise"):
            firmware_work("mixed", "lstm", 64, target, cuts=other)
