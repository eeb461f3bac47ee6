"""`streamer info`: describe a model file and where its weights live on the target."""

from __future__ import annotations

import argparse

from streamer.options import (
    OptionError,
)
from streamer.quant.modes import modes_text

DESCRIPTION = """\
Describe a model: recurrent cell, hidden size, parameter count, weight
bytes and its metadata (training recipe, provenance).
"""

EPILOG = """\
The memory table gives, per numeric mode, the weight bytes per layer and storage type and
the memory level the weights need on the target: L2 (its weight budget), the on-chip MRAM,
or external L3.

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
    parser.add_argument("--target", metavar="TARGET.toml",
                      help="target description for memory sizes (default: the GAP9 target)")
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
    return 0


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
