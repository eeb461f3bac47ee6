"""`streamer info`: describe a model file and where its weights live on the target."""

from __future__ import annotations

import argparse

from streamer.options import (
    OptionError,
    add_placement_option,
)
from streamer.quant.modes import modes_text

DESCRIPTION = """\
Describe a model: recurrent cell, hidden size, parameter count, weight
bytes and its metadata (training recipe, provenance).
"""

EPILOG = """\
The memory table gives, per numeric mode, the weight bytes per layer and storage type and
the memory level the whole blob fits: L2 (its weight budget), the on-chip MRAM, or external
L3. The placement table gives the plan the firmware makes at MODEL_END (--placement auto: each
tile's rows over L2, then MRAM, then L3; docs/cost-model.md): bytes of each layer per level.

examples:
  streamer info                 the embedded default model
  streamer info my.onnx --json
  streamer info my.tdn --quant mixed
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                      help="a .tdn or .onnx file (default: the embedded default model)")
    parser.add_argument("--quant", metavar="MODE",
                      help="report memory for this mode only (default: every mode)")
    parser.add_argument("--target", metavar="NAME|TARGET.toml",
                      help="target description for memory sizes: a packaged name (gap9, cortex-m7) or a "
                           "TOML file (default: gap9)")
    add_placement_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from streamer.model import default_model_path
    from streamer.replay import load
    from streamer.report import model_info, to_json

    loaded = load(args.model)
    info = model_info(loaded.source, loaded.params)
    file = default_model_path() if loaded.path is None else loaded.path
    info["file"] = str(file)
    info["file_bytes"] = file.stat().st_size
    info["memory"] = _memory_reports(loaded.params, args.quant, args.target)
    info["placement"] = _plans(info, info["memory"], args.target, args.placement)
    if args.json:
        print(to_json(info), end="")
        return 0
    where = "" if info["file"] == info["path"] else f" ({info['file']})"
    print(f"model        {info['path']}{where}")
    print(f"description  {info['description']}")
    print(f"cell         {info['cell'].upper()}, hidden {info['hidden']}")
    print(f"parameters   {info['parameters']:,}")
    print(f"weight bytes {info['weight_bytes']:,} as stored; file {info['file_bytes']:,} bytes")
    metadata = info["metadata"] or {}
    print("metadata" + ("     (none)" if not metadata else ""))
    for key, value in sorted(metadata.items()):
        print(f"  {key}: {value}")
    print(_memory_table(info["memory"]))
    if info["placement"]:
        print(_plan_table(info["placement"]))
    return 0


def _plans(info: dict, reports: list[dict], target: str | None, placement: str) -> dict[str, dict]:
    """Per quantised mode: the placement plan (bytes of each layer per level) on the target."""
    from streamer.costmodel import CostModelError, firmware_work
    from streamer.target import read_target

    chosen = read_target(target)
    plans = {}
    for report in reports:
        mode = report["quant"]
        if mode == "fp32":
            continue  # the target does not run it
        try:
            work = firmware_work(mode, info["cell"], info["hidden"], chosen, placement)
        except CostModelError as error:
            plans[mode] = {"placement": placement, "error": str(error)}
            continue
        plans[mode] = {"placement": placement, "weights_memory": work.level, "layers": work.bytes_by_layer(),
                       "bytes_by_level": dict(zip(("L2", "MRAM", "L3"), work.counters().l1_bytes_from,
                                                  strict=True))}
    return plans


def _plan_table(plans: dict[str, dict]) -> str:
    lines = []
    for mode, plan in plans.items():
        lines.append(f"placement    {mode}: " + (plan.get("error") or f"--placement {plan['placement']}: "
                                                                   f"{plan['weights_memory']}"))
        if "layers" not in plan:
            continue
        names = list(plan["layers"])
        lines.append("  level      " + "".join(f"{name:>10}" for name in names) + "     total")
        for level, level_total in plan["bytes_by_level"].items():
            cells = "".join(f"{plan['layers'][name][level]:>10,}" for name in names)
            lines.append(f"  {level:<10} {cells}{level_total:>10,}")
    return "\n".join(lines)


def _memory_reports(params, quant: str | None, target: str | None) -> list[dict]:
    from streamer.quant.memory import memory_report, memory_reports
    from streamer.quant.network import QuantizedModel
    from streamer.target import load_target, memory_levels

    memory = memory_levels(load_target(target), target or "target")
    if isinstance(params, QuantizedModel):
        if quant not in (None, params.mode):
            raise OptionError(f"this model is quantised for {params.mode}; it has no {quant} form")
        return [memory_report(params, memory)]
    reports = memory_reports(params, memory)
    if quant is None:
        return reports
    chosen = [r for r in reports if r["quant"] == quant]
    if not chosen:
        raise OptionError(f"unknown numeric mode {quant!r}; expected {modes_text()}")
    return chosen


def _memory_table(reports: list[dict]) -> str:
    layers = list(reports[0]["layers"])
    lines = ["memory       " + "".join(f"{name:>10}" for name in layers) + "     total  lives in"]
    for report in reports:
        cells = "".join(f"{report['layers'][name]['total']:>10,}" for name in layers)
        lines.append(f"  {report['quant']:<10} {cells}{report['weights_bytes']:>10,}  "
                     f"{report['weights_memory']}")
    return "\n".join(lines)
