"""How many bytes a model's weights take in each numeric mode, and where they must live."""

from __future__ import annotations

from typing import Any

from streamer.model.params import TinyDenoiserParams
from streamer.quant.network import QUANTIZED_MODES, QuantizedModel, quantize
from streamer.target import MemoryLevels

LAYERS = ("fc0", "rnn1", "rnn2", "fc1", "fc2")


def _layer_table(tensors: dict) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {layer: {} for layer in LAYERS}
    for name, tensor in tensors.items():
        kinds = table[name.split(".")[0]]
        kinds[tensor.dtype.name] = kinds.get(tensor.dtype.name, 0) + int(tensor.nbytes)
    return table


def memory_report(model: TinyDenoiserParams | QuantizedModel, memory: MemoryLevels) -> dict[str, Any]:
    """Bytes per layer and storage type, the total, and the memory level the weights need."""
    mode = model.mode if isinstance(model, QuantizedModel) else "fp32"
    layers = _layer_table(model.tensors)
    by_type: dict[str, int] = {}
    for kinds in layers.values():
        for dtype, size in kinds.items():
            by_type[dtype] = by_type.get(dtype, 0) + size
    total = sum(by_type.values())
    level = memory.placement(total)
    return {
        "quant": mode,
        "weights_bytes": total,
        "bytes_by_type": by_type,
        "layers": {name: {**kinds, "total": sum(kinds.values())} for name, kinds in layers.items()},
        "weights_memory": level or "too large",
        "fits": {"L1": total <= memory.l1_bytes, "L2": total <= memory.l2_weight_bytes,
                 "MRAM": total <= memory.mram_bytes, "L3": total <= memory.l3_bytes},
    }


def memory_reports(params: TinyDenoiserParams, memory: MemoryLevels) -> list[dict[str, Any]]:
    """The memory report of `params` in every mode; int8/mixed byte counts need no calibration."""
    # Weight bytes do not depend on activation scales, so placeholder ranges serve here.
    ranges = dict.fromkeys(("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input"), 1.0)
    reports = [memory_report(params, memory)]
    for mode in QUANTIZED_MODES:
        reports.append(memory_report(quantize(params, mode, ranges), memory))
    return reports
