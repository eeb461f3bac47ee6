"""`streamer sweep`: one model across numeric modes and operating voltages -- the paper's trade-off.

For each mode (fp16, int8, mixed by default) the target cost of a frame is computed from the
firmware's schedule for that model (docs/cost-model.md; every frame of this firmware costs the
same cycles, whatever the audio), at each operating point: cycles, latency, deadline, power,
energy, where the weights live and the ratio to the ideal cycle count. With `noisy` and
`clean` (two files, or two folders of pairs) each mode is also run on the emulator over the
audio, which adds PESQ-WB/STOI and per-frame deadline counts. The result feeds a terminal
table, a JSON report and a PNG (latency and power against voltage, one line per mode, the
deadline drawn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamer.costmodel import (
    TargetRecord,
    TimingSpec,
    frame_cycles,
    link_seconds,
    model_work,
    target_fields,
    work_summary,
)
from streamer.quant.modes import QUANTIZED_MODES, modes_text

DEFAULT_MODES = QUANTIZED_MODES  # every mode the target runs

Say = Callable[[str], None]


def parse_modes(text: str | None) -> tuple[str, ...]:
    from streamer.replay import ReplayError

    if text is None:
        return DEFAULT_MODES
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in DEFAULT_MODES]
    if bad or not modes:
        raise ReplayError(f"--quants takes {modes_text(DEFAULT_MODES, 'and/or')} (the modes the target "
                          f"runs), not {', '.join(bad) or repr(text)}")
    return modes


def sweep(model: str | Path | None = None, *, modes: Sequence[str] = DEFAULT_MODES,
          target: str | Path | None = None, voltages: str | Sequence[float] | None = None,
          baud: int | None = None, noisy: str | Path | None = None, clean: str | Path | None = None,
          jobs: int | None = None, say: Say | None = None, batch: int | None = None,
          cluster: str | None = None, placement: str = "auto", compare: str | None = None) -> dict[str, Any]:
    """The sweep report: per mode, operating points and model facts; then the paper's ratios.

    Folders of pairs are scored per mode as `evaluate` does, with its `jobs`, `batch` and
    `cluster` (a Ray cluster's workers take each mode's files). `compare`: a second placement
    costed beside it (no scoring), in `report["compare"]`."""
    from streamer.backends.link import device_model
    from streamer.replay import ReplayError, load

    spec = TimingSpec.load(target, voltages, baud, placement)
    if (noisy is None) != (clean is None):
        raise ReplayError("give both --noisy and --clean (two files, or two folders of pairs) to "
                          "score each mode, or neither")
    loaded = load(model)
    results: dict[str, Any] = {}
    for mode in modes:
        qmodel = device_model(loaded.params, mode)  # int8/mixed need the model's calibration
        work = model_work(qmodel, spec.target, placement)
        cycles = [frame_cycles(work, spec.target, p.freq_hz).total for p in spec.points]
        record = TargetRecord(spec.target, spec.points, [cycles], work.level,
                              work.bytes_read(), link_seconds(baud, spec.target.workers), 0,
                              work_summary(work, spec.target, spec.points))
        entry: dict[str, Any] = {"quant": mode, **target_fields(record), "pesq_wb": None, "stoi": None,
                                 "frames_scored": None}
        entry["operating_points"] = [{k: v for k, v in row.items() if k != "frames"}
                                     for row in entry["operating_points"]]
        if noisy is not None:
            if say:
                say(f"scoring {mode} on {noisy}")
            scored = _score(loaded, mode, target, [p.voltage for p in spec.points], noisy, clean, jobs,
                            batch, cluster, placement)
            entry.update(pesq_wb=scored.get("pesq_wb"), stoi=scored.get("stoi"),
                         frames_scored=scored.get("frames"))
            # per-frame deadline counts over the audio (the same cycles on every frame)
            entry["operating_points"] = scored["operating_points"]
            entry["lowest_feasible_voltage"] = scored["lowest_feasible_voltage"]
        results[mode] = entry
    from streamer.report import run_header

    report = run_header("sweep", loaded.info(), "cost model", None, {})
    report.update({"target": spec.target.source, "placement": placement,
                   "voltages": [p.voltage for p in spec.points],
                   "link_baud": baud, "modes": results, "ratios": ratios(results)})
    if compare is not None:
        other = sweep(model, modes=modes, target=target, voltages=voltages, baud=baud, placement=compare)
        report["compare"] = {"placement": compare, "modes": other["modes"], "ratios": other["ratios"]}
    return report


def _score(loaded, mode: str, target, voltages: list[float], noisy, clean, jobs, batch=None,
           cluster=None, placement: str = "auto") -> dict[str, Any]:
    from streamer.evaluate import evaluate
    from streamer.replay import replay
    from streamer.report import eval_report, replay_report

    if Path(noisy).is_dir():
        return eval_report(evaluate(noisy, clean, model=loaded, quant=mode, jobs=jobs, target=target,
                                    voltages=voltages, batch=batch, cluster=cluster, placement=placement))
    return replay_report(replay(noisy, clean=clean, model=loaded, quant=mode, write_output=False,
                                target=target, voltages=voltages, placement=placement))


def _row(entry: dict[str, Any], voltage: float) -> dict[str, Any] | None:
    for row in entry.get("operating_points") or []:
        if abs(row["voltage"] - voltage) < 1e-9:
            return row
    return None


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The paper's figures as ratios of our numbers (None where a mode was not swept)."""
    out: dict[str, Any] = {}
    fp16 = results.get("fp16")
    for fast in ("mixed", "int8"):
        other = results.get(fast)
        if fp16 and other:
            per_v = {}
            for row in other["operating_points"]:
                base = _row(fp16, row["voltage"])
                if base and row["latency_ms_p99"]:
                    per_v[f"{row['voltage']:g}"] = round(base["latency_ms_p99"] / row["latency_ms_p99"], 2)
            out[f"speedup_{fast}_vs_fp16"] = per_v
            out[f"speedup_{fast}_vs_fp16_max"] = max(per_v.values()) if per_v else None
    out["lowest_feasible_voltage"] = {m: e["lowest_feasible_voltage"] for m, e in results.items()}
    out["power_saving_high_to_low_voltage"] = {}
    for mode, entry in results.items():
        rows = entry["operating_points"]
        if len(rows) >= 2:
            hi, lo = max(rows, key=lambda r: r["voltage"]), min(rows, key=lambda r: r["voltage"])
            out["power_saving_high_to_low_voltage"][mode] = {
                "from_v": hi["voltage"], "to_v": lo["voltage"],
                "active_power": round(hi["power_active_mw"] / lo["power_active_mw"], 2),
                "average_power": round(hi["power_mw"] / lo["power_mw"], 2) if lo["power_mw"] else None,
                "energy_per_frame": round(hi["energy_uj_per_frame"] / lo["energy_uj_per_frame"], 2)
                if lo["energy_uj_per_frame"] else None,
                "to_v_meets_deadline": lo["meets_deadline"]}
    out["weights"] = {m: {"blob_bytes": e["target"]["blob_bytes"], "memory": e["target"]["weights_memory"]}
                      for m, e in results.items()}
    if fp16:
        for other in ("mixed", "int8"):
            if other in results:
                out[f"memory_fp16_vs_{other}"] = round(fp16["target"]["blob_bytes"]
                                                       / results[other]["target"]["blob_bytes"], 2)
    out["cycles_to_ideal"] = {m: {f"{r['voltage']:g}": r["cycles_to_ideal"] for r in e["operating_points"]}
                              for m, e in results.items()}
    return out


# --- presentation ------------------------------------------------------------------------------

def _scored(report: dict[str, Any]) -> bool:
    """Whether the modes were run over audio (--noisy/--clean), which gives PESQ-WB and STOI."""
    return any(e["frames_scored"] for e in report["modes"].values())


def _metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def sweep_table(report: dict[str, Any]) -> Any:
    """A rich table: one row per (mode, voltage); PESQ-WB and STOI columns only when scored."""
    from rich.table import Table

    scored = _scored(report)
    table = Table(title=f"{report['model']['path']}: {report['model']['description']}; target "
                        f"{Path(report['target']).name}, deadline {report['deadline_ms']:g} ms, "
                        f"--placement {report.get('placement', 'auto')}",
                  caption="x ideal: modelled cycles / (MACs / (cores x peak MACs per cycle)) for the mode"
                  + ("" if scored else "; every frame costs the same cycles on this firmware"))
    for name in ("mode", "V", "MHz", "cycles", "ms p99", "slack ms", "misses" if scored else "meets",
                 "mW avg", "mW active", "uJ/frame", "weights", "x ideal",
                 *(("PESQ-WB", "STOI") if scored else ())):
        table.add_column(name, justify="left" if name in ("mode", "weights") else "right", no_wrap=True)
    for mode, entry in report["modes"].items():
        for i, row in enumerate(entry["operating_points"]):
            misses = (f"{row['deadline_misses']}/{row['frames']}" if scored
                      else "yes" if row["meets_deadline"] else "NO")
            # The mode's scores, on its first row only.
            quality = () if not scored else ("", "") if i else (_metric(entry["pesq_wb"]),
                                                                 _metric(entry["stoi"]))
            table.add_row(mode if i == 0 else "", f"{row['voltage']:.2f}", f"{row['freq_mhz']:g}",
                          f"{row['cycles_p99']:,}", f"{row['latency_ms_p99']:.3f}", f"{row['slack_ms']:.2f}",
                          misses, f"{row['power_mw']:.1f}", f"{row['power_active_mw']:.1f}",
                          f"{row['energy_uj_per_frame']:.1f}", row["weights_memory"],
                          f"{row['cycles_to_ideal']:.1f}",
                          *quality)
        table.add_section()
    return table


def quality_hint(report: dict[str, Any]) -> str | None:
    """The line under an unscored table saying how to get PESQ-WB/STOI; None when scored."""
    if _scored(report):
        return None
    return "PESQ-WB/STOI: not scored; pass --noisy and --clean (two files or two folders) to score each mode"


def ratio_lines(report: dict[str, Any]) -> list[str]:
    """The paper's claims beside ours."""
    r = report["ratios"]
    lines = []
    if "speedup_mixed_vs_fp16_max" in r:
        per_v = ", ".join(f"{v} V {x:g}x" for v, x in r["speedup_mixed_vs_fp16"].items())
        lines.append(f"mixed vs fp16 speed-up: up to {r['speedup_mixed_vs_fp16_max']:g}x ({per_v}); "
                     f"paper: up to 4x")
    if "speedup_int8_vs_fp16_max" in r:
        lines.append(f"int8 vs fp16 speed-up: up to {r['speedup_int8_vs_fp16_max']:g}x")
    lowest = r["lowest_feasible_voltage"]
    lines.append("lowest voltage meeting the deadline on every frame: "
                 + ", ".join(f"{m} {'none' if v is None else f'{v:.2f} V'}" for m, v in lowest.items())
                 + "; paper: mixed meets real time at 0.65 V")
    for mode, s in r["power_saving_high_to_low_voltage"].items():
        lines.append(f"{mode}: {s['from_v']:.2f} V -> {s['to_v']:.2f} V saves {s['active_power']:g}x active "
                     f"power, {s['average_power']:g}x average power over the hop, "
                     f"{s['energy_per_frame']:g}x energy per frame"
                     + ("" if s["to_v_meets_deadline"] else f" (misses the deadline at {s['to_v']:.2f} V)")
                     + ("; paper: up to 2.5x" if mode == "mixed" else ""))
    weights = ", ".join(f"{m} {w['blob_bytes'] / 1e6:.2f} MB in {w['memory']}"
                        for m, w in r["weights"].items())
    mem = r.get("memory_fp16_vs_mixed")
    lines.append(f"weights: {weights}" + (f"; fp16/mixed memory {mem:g}x (paper: 1.4-1.7x)" if mem else ""))
    return lines


def compare_table(report: dict[str, Any]) -> Any:
    """The compared placement's rows, as `sweep_table` draws them (None without --compare-placement)."""
    other = report.get("compare")
    if not other:
        return None
    return sweep_table({**report, "placement": other["placement"], "modes": other["modes"]})


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """PNG: latency and power against voltage, one line per mode, the deadline drawn; the
    compared placement's lines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_pow) = plt.subplots(1, 2, figsize=(11, 4.2))
    other = (report.get("compare") or {}).get("modes", {})
    for mode, entry in report["modes"].items():
        rows = entry["operating_points"]
        volts = [r["voltage"] for r in rows]
        label = mode + ("" if entry["pesq_wb"] is None else f" (PESQ-WB {entry['pesq_wb']:.2f})")
        label += f", weights in {entry['target']['weights_memory']}"
        line, = ax_lat.plot(volts, [r["latency_ms_p99"] for r in rows], marker="o", label=label)
        ax_pow.plot(volts, [r["power_mw"] for r in rows], marker="o", color=line.get_color(),
                    label=f"{mode} average")
        drawn = [rows]
        if mode in other:
            before = other[mode]["operating_points"]
            ax_lat.plot([r["voltage"] for r in before], [r["latency_ms_p99"] for r in before], ls="--",
                        marker=".", color=line.get_color(),
                        label=f"{mode}, whole blob in {other[mode]['target']['weights_memory']}")
            ax_pow.plot([r["voltage"] for r in before], [r["power_mw"] for r in before], ls="--",
                        marker=".", color=line.get_color())
            drawn.append(before)
        for r in (r for rows_ in drawn for r in rows_):
            if not r["meets_deadline"]:
                ax_lat.plot([r["voltage"]], [r["latency_ms_p99"]], "x", color="red", ms=9)
    if report["modes"]:
        rows = next(iter(report["modes"].values()))["operating_points"]
        ax_pow.plot([r["voltage"] for r in rows], [r["power_active_mw"] for r in rows], ls=":",
                    color="gray", label="active power of the point")
    ax_lat.axhline(report["deadline_ms"], color="red", ls="--", lw=1,
                   label=f"deadline {report['deadline_ms']:g} ms")
    ax_lat.set(xlabel="supply voltage (V)", ylabel="latency per frame, p99 (ms)",
               title="latency (x: misses the deadline)")
    ax_lat.set_ylim(bottom=0)
    ax_lat.legend(fontsize=8)
    ax_pow.set(xlabel="supply voltage (V)", ylabel="power (mW)",
               title="average power over the 6.25 ms hop\n(dotted: active power"
               + (f"; dashed: --placement {report['compare']['placement']})" if other else ")"))
    ax_pow.set_ylim(bottom=0)
    ax_pow.legend(fontsize=8)
    model = report["model"]
    fig.suptitle(f"{model['description']} on {Path(report['target']).stem}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
