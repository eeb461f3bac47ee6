"""The weight placement planner (docs/cost-model.md, "Placement"): the firmware's (plan.c, run
through `tdn-edge plan` and through MODEL_END of the real host simulator) and the cost model's
(costmodel/plan.py) on hand-made level sizes and on the target file's; the plan in the
MODEL_END reply and its checks; a model split across L2 and MRAM bit-exact on the simulator.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import deadline, random_params

from streamer.costmodel import firmware_work
from streamer.costmodel.plan import LayerShape, layer_bytes_by_level, plan_cuts
from streamer.link.messages import LayerPlan, ModelEndRequest, ModelInfo
from streamer.link.protocol import ProtocolError
from streamer.quant.network import quantize
from streamer.target import read_target

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
CODES = {"fp16": 1, "int8": 2, "mixed": 3}
RANGES = dict.fromkeys(("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input"), 4.0)




def shapes(mode: str, cell: str, hidden: int) -> list[LayerShape]:
    work = firmware_work(mode, cell, hidden, read_target(), "L3")
    return [LayerShape(layer.rows, layer.rows_per_tile, sum(layer.row_bytes)) for layer in work.layers]


def firmware_plan(tools: Path, mode: str, cell: str, hidden: int, l2: int, mram: int):
    """plan.c's plan: per layer (bytes per level, cuts per tile)."""
    out = subprocess.run([str(tools / "tdn-edge"), "plan", str(CODES[mode]), str(("lstm", "gru").index(cell)),
                          str(hidden), str(l2), str(mram)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    layers = []
    for line in out.stdout.splitlines():
        fields = line.split()
        cuts = tuple(tuple(int(v) for v in f.split(",")[:2]) for f in fields[5:])
        layers.append((tuple(int(v) for v in fields[2:5]), cuts))
    return layers


def python_plan(mode: str, cell: str, hidden: int, l2: int, mram: int):
    layers = shapes(mode, cell, hidden)
    cuts = plan_cuts(layers, l2, mram)
    return [(layer_bytes_by_level(layer, c), c) for layer, c in zip(layers, cuts, strict=True)]


def total(plan, level: int) -> int:
    return sum(b[level] for b, _ in plan)


# --- the rule on hand-made level sizes: Python and the firmware alike ------------------------------

MODEL = ("mixed", "lstm", 64)  # 5 layers, rnn rows 256 in 1 tile, row bytes 140


def test_everything_fits_l2(tools):
    size = sum(s.rows * s.row_bytes for s in shapes(*MODEL))
    for l2 in (size, size + 1, 10 ** 7):  # exactly the weights' bytes: all of them in L2
        plan = python_plan(*MODEL, l2, 0)
        assert plan == firmware_plan(tools, *MODEL, l2, 0)
        assert (total(plan, 0), total(plan, 1), total(plan, 2)) == (size, 0, 0)
    short = python_plan(*MODEL, size - 1, 10 ** 6)  # one byte short: one row goes to MRAM
    assert short == firmware_plan(tools, *MODEL, size - 1, 10 ** 6)
    assert total(short, 2) == 0 and 0 < total(short, 1) <= max(s.row_bytes for s in shapes(*MODEL))


def test_nothing_fits_l2(tools):
    size = sum(s.rows * s.row_bytes for s in shapes(*MODEL))
    plan = python_plan(*MODEL, 0, 10 ** 7)
    assert plan == firmware_plan(tools, *MODEL, 0, 10 ** 7)
    assert (total(plan, 0), total(plan, 1), total(plan, 2)) == (0, size, 0)
    nowhere = python_plan(*MODEL, 0, 0)  # neither: the blob stays in L3, where it was uploaded
    assert nowhere == firmware_plan(tools, *MODEL, 0, 0) and total(nowhere, 2) == size


def test_a_tensor_straddles_two_levels(tools):
    layers = shapes("fp16", "lstm", 256)
    size = sum(s.rows * s.row_bytes for s in layers)
    l2 = 1_228_800
    plan = python_plan("fp16", "lstm", 256, l2, 2_097_152)
    assert plan == firmware_plan(tools, "fp16", "lstm", 256, l2, 2_097_152)
    assert total(plan, 0) + total(plan, 1) == size and total(plan, 2) == 0
    assert l2 - max(s.row_bytes for s in layers) < total(plan, 0) <= l2  # L2 filled to its last row
    # every tile of rnn1 (W_ih, W_hh, biases) has rows in L2 and the rest of them in MRAM
    rnn1 = plan[1][1]
    assert all(0 < c0 < c1 for c0, c1 in rnn1)
    # and L2 is spread evenly: each tile's share of L2 is within three rows of the level's share
    # (rounded down by the proportional pass, topped up by the second)
    share = l2 / size
    for layer, (_, cuts) in zip(layers, plan, strict=True):
        for t, (c0, _c1) in enumerate(cuts):
            assert abs(c0 - share * layer.tile_rows(t)) < 3


def test_a_level_too_small_for_one_tile(tools):
    layers = shapes(*MODEL)
    tile = min(s.tile_rows(0) * s.row_bytes for s in layers)
    row = max(s.row_bytes for s in layers)
    small = python_plan(*MODEL, tile - 1, 10 ** 7)  # fewer bytes than any tile: some rows of some
    assert small == firmware_plan(tools, *MODEL, tile - 1, 10 ** 7)
    assert tile - 1 - row < total(small, 0) <= tile - 1
    tiny = python_plan(*MODEL, min(s.row_bytes for s in layers) - 1, 10 ** 7)  # not even a row
    assert tiny == firmware_plan(tools, *MODEL, min(s.row_bytes for s in layers) - 1, 10 ** 7)
    assert total(tiny, 0) == 0


@pytest.mark.parametrize("mode", ["fp16", "int8", "mixed"])
@pytest.mark.parametrize("cell,hidden", [("lstm", 256), ("gru", 256), ("gru", 96), ("lstm", 8)])
def test_python_and_firmware_plan_alike_on_many_sizes(tools, mode, cell, hidden):
    layers = shapes(mode, cell, hidden)
    size = sum(s.rows * s.row_bytes for s in layers)
    for l2, mram in ((1_228_800, 2_097_152), (size // 3, size // 3), (size // 2, 7), (12_345, size)):
        assert python_plan(mode, cell, hidden, l2, mram) == firmware_plan(tools, mode, cell, hidden, l2, mram)


# --- forcing the whole blob into one level (`--placement`) -----------------------------------------

def test_a_forced_level_takes_a_blob_of_exactly_its_size(tools):
    memory = read_target().memory
    for code, cap in ((1, memory.l2_weight_bytes), (2, memory.mram_bytes), (3, memory.l3_bytes)):
        sizes = [str(cap - 1), str(cap), str(cap + 1)]
        out = subprocess.run([str(tools / "tdn-edge"), "place", str(code), *sizes], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[1:] == [f"{cap - 1} 1", f"{cap} 1", f"{cap + 1} 0"]


# --- the plan in MODEL_END ---------------------------------------------------------------------------

def _info() -> ModelInfo:
    work = firmware_work("mixed", "lstm", 256, read_target())
    plan = tuple(LayerPlan(len(layer.tiles), layer.rows_per_tile, tuple(
        sum(t.bytes_from[lv] for t in layer.tiles) for lv in range(3)), cuts)
        for layer, cuts in zip(work.layers, work.cuts(), strict=True))
    return ModelInfo("mixed", "lstm", 256, work.blob_bytes, work.level, "auto", plan)


def test_model_info_with_a_plan_round_trips():
    info = _info()
    assert info.weights_level == "L2+MRAM"
    assert ModelInfo.unpack(info.pack()) == info
    old = ModelInfo("mixed", "lstm", 256, 1000, "MRAM")  # firmware before the planner: 12 bytes
    assert len(old.pack()) == 12 and ModelInfo.unpack(old.pack()) == old
    for placement in ("auto", "L2", "MRAM", "L3"):
        assert ModelEndRequest.unpack(ModelEndRequest(placement).pack()).placement == placement
    assert ModelEndRequest().pack() == b""  # what firmware before the planner accepts


def _damage(payload: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(payload)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize("where,fmt,value,message", [
    (8, "<B", 0, "names level 0 but its plan uses L2\\+MRAM"),       # says L2, plan is split
    (8, "<B", 4, "not all are defined"),                           # no such level
    (9, "<B", 1, "asked in L2, the plan differs"),                 # forced L2, plan split
    (10, "<B", 4, "not all are defined"),                          # 4 layers
    (12, "<H", 4, "fc0 has 4 tiles"),                              # tiles do not cover the rows
    (16, "<I", 1, "bytes per level"),                              # bytes that the cuts do not give
    (28, "<H", 121, "tile 0 has cuts 121"),                        # a cut beyond the tile's rows
])
def test_a_plan_that_cannot_be_true_is_refused(where, fmt, value, message):
    payload = _info().pack()
    with pytest.raises(ProtocolError, match=message):
        ModelInfo.unpack(_damage(payload, where, fmt, value))
    with pytest.raises(ProtocolError, match="expected"):
        ModelInfo.unpack(payload[:-1])
    with pytest.raises(ProtocolError, match="expected"):
        ModelInfo.unpack(payload + b"\0")


# --- the simulator's MODEL_END and a split model bit-exact ------------------------------------------

@pytest.mark.parametrize("placement", ["auto", "MRAM", "L3"])
def test_the_simulators_plan_is_the_cost_models(tools, placement):
    from streamer.backends import open_backend

    model = quantize(random_params("lstm", 256, seed=5), "mixed", RANGES)
    target = read_target()
    with deadline(120, "tdn-sim"), open_backend("sim", model, placement=placement) as backend:
        info = backend.model_info
        expected = firmware_work("mixed", "lstm", 256, target, placement)
        assert info.placement == placement and info.weights_level == expected.level
        assert backend.target_model().cuts == expected.cuts()
        assert [layer.bytes_from for layer in info.plan] == [
            tuple(v.values()) for v in expected.bytes_by_layer().values()]


def test_a_forced_level_too_small_is_refused_by_the_firmware(tools):
    from streamer.backends import open_backend
    from streamer.backends.base import BackendError

    model = quantize(random_params("lstm", 256, seed=5), "mixed", RANGES)  # 1.47 MB > L2's 1.2 MB
    with deadline(120, "tdn-sim"), pytest.raises(BackendError, match="MODEL_TOO_LARGE|larger than"):
        open_backend("sim", model, placement="L2")


def test_a_split_model_is_bit_exact_on_the_simulator(tools, tmp_path, make_wav):
    noisy = make_wav(tmp_path / "noisy.wav", seconds=1.0, seed=3, noise=0.05)
    from streamer.model.fileformat import save_model

    model = tmp_path / "h256.tdn"
    save_model(random_params("lstm", 256, seed=6), model)
    report = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "-m", "streamer", "replay", str(noisy), "--model", str(model),
                          "--quant", "fp16", "--backend", "sim", "--verify", "--out", str(tmp_path / "o.wav"),
                          "--report", str(report)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(report.read_text())
    info = data["backend_info"]
    assert info["model"]["weights_level"] == "L2+MRAM"
    assert data["verify_mismatched_frames"] == 0 and info["frames_answered"] > 150


def test_info_prints_the_plan():
    run = subprocess.run([sys.executable, "-m", "streamer", "info", "--quant", "mixed", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    work = firmware_work("mixed", data["cell"], data["hidden"], read_target())
    assert data["placement"]["mixed"]["layers"] == work.bytes_by_layer()
    assert data["placement"]["mixed"]["weights_memory"] == work.level
    text = subprocess.run([sys.executable, "-m", "streamer", "info", "--quant", "fp16", "--placement", "L2"],
                          capture_output=True, text=True, timeout=120, cwd=REPO).stdout
    assert "does not fit L2" in text
