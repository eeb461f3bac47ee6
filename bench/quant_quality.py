"""Quality and memory of every numeric mode: PESQ-WB, STOI and weight bytes on the shared pairs.

    python bench/quant_quality.py [--shared ../shared] [--model PATH ...] [--json OUT.json]

For each model (default: the embedded model and both shared ONNX models) and each mode
(fp32, fp16, int8, mixed): the mean PESQ-WB and STOI over ../shared/data/valentini, the change
against fp32, the weight bytes and where they must live on the target. ONNX models are first
calibrated on ../shared/data/calibration (as `streamer quantize MODEL --quant fp32 --calib DIR`
does); a model that already carries calibration keeps it. Prints JSON, then a Markdown table.
"""

from __future__ import annotations

import streamer  # noqa: F401, E402 - first: single-threaded BLAS before numpy loads (streamer/__init__.py)

# isort: split

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from streamer.evaluate import evaluate  # noqa: E402
from streamer.model import load_model  # noqa: E402
from streamer.quant.memory import memory_reports  # noqa: E402
from streamer.quantize import quantize_model  # noqa: E402
from streamer.target import load_target, memory_levels  # noqa: E402

MODES = ("fp32", "fp16", "int8", "mixed")


def measure(model: Path | None, label: str, shared: Path, workdir: Path) -> dict:
    params = load_model(model)
    if not params.calibration:
        calibrated = workdir / f"{label}.calibrated.tdn"
        quantize_model(model, "fp32", shared / "data" / "calibration", calibrated)
        model = calibrated
    memory = {r["quant"]: r for r in memory_reports(params, memory_levels(load_target()))}
    rows = {}
    for mode in MODES:
        result = evaluate(shared / "data" / "valentini" / "noisy", shared / "data" / "valentini" / "clean",
                          model=model, quant=mode)
        files = result.files
        rows[mode] = {
            "pesq_wb": sum(f.enhanced_quality.pesq_wb for f in files) / len(files),
            "stoi": sum(f.enhanced_quality.stoi for f in files) / len(files),
            "weights_bytes": memory[mode]["weights_bytes"],
            "weights_memory": memory[mode]["weights_memory"],
        }
        print(f"{label} {mode}: PESQ {rows[mode]['pesq_wb']:.4f} STOI {rows[mode]['stoi']:.4f}",
              file=sys.stderr, flush=True)
    for mode in MODES:
        rows[mode]["pesq_delta"] = rows[mode]["pesq_wb"] - rows["fp32"]["pesq_wb"]
    return {"model": label, "description": params.describe(), "modes": rows,
            "fp16_over_mixed_bytes": rows["fp16"]["weights_bytes"] / rows["mixed"]["weights_bytes"]}


def markdown(results: list[dict]) -> str:
    lines = ["| model | mode | PESQ-WB | ΔPESQ vs fp32 | STOI | weight bytes | weights live in |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        for mode, row in result["modes"].items():
            lines.append(f"| {result['model']} | {mode} | {row['pesq_wb']:.3f} | {row['pesq_delta']:+.3f} | "
                         f"{row['stoi']:.3f} | {row['weights_bytes']:,} | {row['weights_memory']} |")
    lines.append("")
    lines += [f"fp16/mixed weight ratio, {r['model']}: {r['fp16_over_mixed_bytes']:.2f}x" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                        help="the shared reference folder (default: ../shared beside the repository)")
    parser.add_argument("--model", action="append", type=Path,
                        help="a model to measure (repeatable); default: embedded + both shared ONNX")
    parser.add_argument("--json", type=Path, help="also write the JSON results here")
    args = parser.parse_args(argv)
    if not (args.shared / "data" / "valentini").is_dir():
        print(f"quant_quality: {args.shared} has no data/valentini; pass --shared", file=sys.stderr)
        return 2
    models = [(m, m.stem) for m in args.model] if args.model else [
        (None, "default"),
        (args.shared / "models" / "tt_denoiser_rank_8.onnx", "tt_denoiser_rank_8"),
        (args.shared / "models" / "tt_denoiser_rank_80.onnx", "tt_denoiser_rank_80")]
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(model, label, args.shared, Path(tmp)) for model, label in models]
    text = json.dumps({"benchmark": "quant_quality", "results": results}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
