"""`streamer sweep --targets gap9,cortex-m7`: one model on several targets -- the paper's claim
that the 1+8-core GAP9 is about 10x more energy efficient than a single-core Cortex-M7.

Each target is swept as `streamer sweep` does (streamer/sweep.py, the cost model of
docs/cost-model.md); per mode and target this keeps the lowest voltage that meets the 6.25 ms
deadline, the latency and energy per frame there, and, where no point meets it, the fastest
point's latency and by how much it misses. The energy ratio of the first target to each other
is taken at each one's lowest feasible voltage (where one has none, at its fastest point, and
the row says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PAPER_ENERGY_RATIO = 10.0  # arXiv:2210.07692: ~10x more energy efficient than single-core MCU solutions


def parse_targets(text: str) -> tuple[str, ...]:
    from streamer.target import TargetError

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise TargetError(f"--targets takes two or more different targets, comma-separated "
                          f"(e.g. gap9,cortex-m7), not {text!r}")
    return names


def _best(entry: dict[str, Any]) -> dict[str, Any]:
    """One mode on one target: at its lowest feasible voltage, else at its fastest point."""
    from streamer.engine import DEADLINE_S

    rows = entry["operating_points"]
    feasible = [r for r in rows if r["meets_deadline"]]
    if feasible:
        row = min(feasible, key=lambda r: r["voltage"])
    else:
        row = min(rows, key=lambda r: r["latency_ms_p99"])
    deadline_ms = DEADLINE_S * 1e3
    return {"voltage": row["voltage"], "freq_mhz": row["freq_mhz"], "meets_deadline": bool(feasible),
            "latency_ms": row["latency_ms_p99"], "energy_uj_per_frame": row["energy_uj_per_frame"],
            "power_mw": row["power_mw"], "weights_memory": row["weights_memory"],
            # Where even the fastest point misses: its latency over the deadline.
            "miss_factor": None if feasible else round(row["latency_ms_p99"] / deadline_ms, 2),
            "miss_ms": None if feasible else round(row["latency_ms_p99"] - deadline_ms, 3)}


def compare(model: str | Path | None = None, *, targets: Sequence[str], modes: Sequence[str],
            voltages: Any = None, baud: int | None = None,
            say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Per target, the sweep; per mode, each target's best point and the energy ratios."""
    from streamer.sweep import sweep
    from streamer.target import read_target

    sweeps = {}
    for name in targets:
        if say:
            say(f"sweeping {name}")
        sweeps[name] = sweep(model, modes=modes, target=name, voltages=voltages, baud=baud)
    first = targets[0]
    table: dict[str, Any] = {}
    for mode in modes:
        best = {name: _best(sweeps[name]["modes"][mode]) for name in targets}
        ratios = {}
        for other in targets[1:]:
            mine, theirs = best[first]["energy_uj_per_frame"], best[other]["energy_uj_per_frame"]
            ratios[f"{other}/{first}"] = round(theirs / mine, 1) if mine else None
        table[mode] = {"targets": best, "energy_ratio": ratios}
    header = next(iter(sweeps.values()))
    return {"command": "sweep --targets", "model": header["model"], "deadline_ms": header["deadline_ms"],
            "targets": {name: {"file": sweeps[name]["target"], "workers": read_target(name).workers}
                        for name in targets},
            "paper_energy_ratio": PAPER_ENERGY_RATIO, "modes": table, "sweeps": sweeps}


def compare_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    names = list(report["targets"])
    table = Table(title=f"{report['model']['path']}: {report['model']['description']}; "
                        f"deadline {report['deadline_ms']:g} ms",
                  caption="at each target's lowest voltage that meets the deadline; where none does, at "
                          "its fastest point (misses by: latency / deadline)")
    for column in ("mode", "target", "cores", "V", "MHz", "ms", "meets", "misses by", "uJ/frame", "mW avg",
                   "weights", f"energy vs {names[0]}"):
        table.add_column(column, justify="left" if column in ("mode", "target", "weights") else "right",
                         no_wrap=True)
    for mode, entry in report["modes"].items():
        for i, name in enumerate(names):
            b = entry["targets"][name]
            ratio = "1" if i == 0 else f"{entry['energy_ratio'][f'{name}/{names[0]}']:g}x"
            table.add_row(mode if i == 0 else "", name, str(report["targets"][name]["workers"]),
                          f"{b['voltage']:.2f}", f"{b['freq_mhz']:g}", f"{b['latency_ms']:.2f}",
                          "yes" if b["meets_deadline"] else "NO",
                          "" if b["miss_factor"] is None else f"{b['miss_factor']:g}x",
                          f"{b['energy_uj_per_frame']:.1f}", f"{b['power_mw']:.1f}", b["weights_memory"],
                          ratio)
        table.add_section()
    return table


def compare_lines(report: dict[str, Any]) -> list[str]:
    """The energy ratios beside the paper's ~10x."""
    names = list(report["targets"])
    lines = []
    for mode, entry in report["modes"].items():
        for other in names[1:]:
            ratio = entry["energy_ratio"][f"{other}/{names[0]}"]
            b = entry["targets"][other]
            note = "" if b["meets_deadline"] else (f" ({other} misses the deadline even at "
                                                   f"{b['freq_mhz']:g} MHz: {b['latency_ms']:.2f} ms, "
                                                   f"{b['miss_factor']:g}x)")
            lines.append(f"{mode}: energy per frame {other} / {names[0]} = {ratio:g}x{note}; paper: about "
                         f"{report['paper_energy_ratio']:g}x")
    return lines
