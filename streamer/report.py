"""Reports: the JSON of `replay` and `eval`, the eval CSV, the per-frame JSONL log, summaries.

Every report field is decided here, so a later measurement (firmware link counters, target
operating points, quantisation bytes) is added in one place: `file_entry` for per-file facts,
`_run_header` for facts about the whole run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

import streamer
from streamer.atomic import write_atomically
from streamer.engine import DEADLINE_S, SAMPLE_RATE
from streamer.metrics import deadline_missed, timing_stats
from streamer.pipeline import FrameEvent

if TYPE_CHECKING:
    from rich.table import Table

    from streamer.model.params import TinyDenoiserParams
    from streamer.results import EvalResult, ReplayResult

_MS_DIGITS = 4  # 0.1 us: finer than perf_counter means anything on a busy host

CSV_COLUMNS = ("file", "duration_s", "frames", "pesq_wb", "stoi", "noisy_pesq_wb", "noisy_stoi",
               "host_p50_ms", "host_p99_ms", "host_max_ms", "host_deadline_misses", "realtime_factor",
               "failed_frames", "complete")
# Columns that are facts of a row, not averaged: the mean row's `complete` is the whole run's
# (false for an interrupted or stopped evaluation: its mean covers only the files done).
_NOT_AVERAGED = ("file", "complete")
# Per-file values that are averaged into `mean` (None values are left out of a mean).
MEAN_KEYS = ("pesq_wb", "stoi", "noisy_pesq_wb", "noisy_stoi", "duration_s", "realtime_factor")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def model_info(source: str, params: TinyDenoiserParams) -> dict[str, Any]:
    """What a report says about the model: where it came from and what it is."""
    return {
        "path": source,
        "description": params.describe(),
        "cell": params.cell,
        "hidden": params.hidden,
        "parameters": params.parameter_count,
        "weight_bytes": int(sum(t.nbytes for t in params.tensors.values())),
        "metadata": params.metadata,
    }


def _host_ms(host_s: np.ndarray) -> dict[str, float | None]:
    return {k: _round(v, _MS_DIGITS) for k, v in timing_stats(host_s).host_ms().items()}


def file_entry(result: ReplayResult) -> dict[str, Any]:
    """Per-file facts, shared by the replay report and each row of an eval report."""
    enhanced, noisy = result.enhanced_quality, result.noisy_quality
    stats = result.timing
    return {
        "input": str(result.input),
        "clean": None if result.clean is None else str(result.clean),
        "output": None if result.output is None else str(result.output),
        "sample_rate_in": result.sample_rate_in,
        "channels_in": result.channels_in,
        "sample_format_in": result.subtype_in,
        "sample_rate_out": result.sample_rate_out,
        "input_peak": result.input_peak,
        "samples": result.samples,
        "duration_s": round(result.duration_s, 6),
        "frames": stats.frames,
        "pesq_wb": None if enhanced is None else enhanced.pesq_wb,
        "stoi": None if enhanced is None else enhanced.stoi,
        "noisy_pesq_wb": None if noisy is None else noisy.pesq_wb,
        "noisy_stoi": None if noisy is None else noisy.stoi,
        "host_ms": _host_ms(result.host_s),
        "host_deadline_misses": stats.misses,
        "host_total_s": round(result.wall_s, 6),
        "realtime_factor": _round(result.realtime_factor, 2),
        # False when a device gone stopped the file early: `error` says why and the output
        # holds `samples_done` samples.
        "complete": result.complete,
        "error": result.error,
        "samples_done": result.samples if result.samples_done is None else result.samples_done,
        "failed_frames": sum(result.failed_frames.values()),
        "failed_by_cause": dict(result.failed_frames),
        "warnings": list(result.warnings),
        # Per file, since each eval worker has its own device and emulator pair.
        **{key: result.backend_info[key] for key in _VERIFY_KEYS if key in result.backend_info},
    }


_VERIFY_KEYS = ("verify_frames", "verify_compared_frames", "verify_failed_frames",
                "verify_mismatched_frames", "verify_first_mismatch_frame", "verify_first_mismatch_layer")

# Device facts every report shows at top level when the backend has them.
_LIFTED_BACKEND_KEYS = ("link_rtt_ms", "last_counters", "verify_mismatched_frames",
                        "verify_first_mismatch_frame", "verify_first_mismatch_layer",
                        "verify_layer_source")


def run_header(command: str, model: dict[str, Any], backend: str, quant: str | None,
               backend_info: dict[str, Any], atten_lim_db: float | None = None) -> dict[str, Any]:
    """The fields every report starts with (replay, eval, live, sweep): what ran, on what."""
    return {
        "streamer_version": streamer.__version__,
        "command": command,
        "model": model,
        "backend": backend,
        # The mode the backend really ran (a quantised file runs in its own mode).
        "quant": backend_info.get("quant", quant),
        "weights_bytes": backend_info.get("weights_bytes"),
        "weights_memory": backend_info.get("weights_memory"),
        # --atten-lim-db: the masks were floored at 10^(-atten_lim_db/20); None: the network's own.
        "atten_lim_db": atten_lim_db,
        **{key: backend_info[key] for key in _LIFTED_BACKEND_KEYS if key in backend_info},
        "backend_info": backend_info,
        "sample_rate": SAMPLE_RATE,
        "deadline_ms": DEADLINE_S * 1e3,
    }


def _target_fields(record: Any, note: str | None) -> dict[str, Any]:
    """Operating points (docs/cost-model.md): every frame's target cycles at each voltage."""
    if record is None:
        return {"operating_points": None, "lowest_feasible_voltage": None,
                "target_note": note or "no target timing"}
    from streamer.costmodel import target_fields

    return target_fields(record)


def replay_report(result: ReplayResult) -> dict[str, Any]:
    """The JSON report of one replay."""
    return {**run_header("replay", result.model, result.backend, result.quant, result.backend_info,
                          result.atten_lim_db),
            **file_entry(result), **_target_fields(result.target, result.target_note)}


def means(entries: Sequence[dict[str, Any]], keys: Iterable[str] = MEAN_KEYS) -> dict[str, Any]:
    """Mean of each key over the entries that have a value for it (None when none do)."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [e[key] for e in entries if e.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def throughput_x_realtime(audio_s: float, work_s: float, jobs: int) -> float | None:
    """Seconds of audio enhanced per wall-clock second of enhancement work (the network and the
    STFT around it; not reading, scoring or writing), with `jobs` workers running side by side:
    audio_s / (work_s / jobs), where work_s is the work of all files summed. On one job it is
    the report's realtime_factor; a file in a batch counts its share of every batch step."""
    return audio_s * jobs / work_s if work_s > 0 else None


def eval_report(result: EvalResult) -> dict[str, Any]:
    """The JSON report of an evaluation: per-file entries, their means, pooled frame timing."""
    entries = [{"file": r.input.name, **file_entry(r)} for r in result.files]
    pooled = np.concatenate([r.host_s for r in result.files]) if result.files else np.zeros(0)
    stats = timing_stats(pooled)
    audio_s = sum(r.duration_s for r in result.files)
    host_s = sum(r.wall_s for r in result.files)
    report = run_header("eval", result.model, result.backend, result.quant, result.backend_info,
                         result.atten_lim_db)
    report.update({
        "noisy_dir": str(result.noisy_dir),
        "clean_dir": str(result.clean_dir),
        "out_dir": None if result.out_dir is None else str(result.out_dir),
        "jobs": result.jobs,
        "batch": result.batch,
        "cluster": result.cluster,
        "complete": result.complete,
        "error": result.error,
        "files_evaluated": len(entries),
        "skipped": {"noisy_only": result.noisy_only, "clean_only": result.clean_only},
        "mean": means(entries),
        "frames": stats.frames,
        "pesq_wb": None, "stoi": None,  # filled below: the means, under the replay report's keys
        "host_ms": _host_ms(pooled),
        "host_deadline_misses": stats.misses,
        "duration_s": round(audio_s, 6),
        "realtime_factor": _round(audio_s / host_s, 2) if host_s > 0 else None,
        "throughput_x_realtime": _round(throughput_x_realtime(audio_s, host_s, result.jobs), 2),
        "files": entries,
    })
    report["pesq_wb"], report["stoi"] = report["mean"]["pesq_wb"], report["mean"]["stoi"]
    records = [r.target for r in result.files if r.target is not None]
    if records:
        from streamer.costmodel import TargetRecord

        report.update(_target_fields(TargetRecord.pooled(records), None))
        for entry, item in zip(entries, result.files, strict=True):
            fields = _target_fields(item.target, item.target_note)
            entry["lowest_feasible_voltage"] = fields["lowest_feasible_voltage"]
            entry["target_deadline_misses"] = {f"{row['voltage']:g}": row["deadline_misses"]
                                               for row in fields["operating_points"] or []}
    else:
        notes = [r.target_note for r in result.files if r.target_note]
        report.update(_target_fields(None, notes[0] if notes else None))
    verified = [e for e in entries if "verify_mismatched_frames" in e]
    if verified:
        report["verify_mismatched_frames"] = sum(e["verify_mismatched_frames"] for e in verified)
        report["verify_failed_frames"] = sum(e.get("verify_failed_frames") or 0 for e in verified)
        first = next((e for e in verified if e.get("verify_first_mismatch_frame") is not None), None)
        for key, source in (("verify_first_mismatch_file", "file"),
                            ("verify_first_mismatch_frame", "verify_first_mismatch_frame"),
                            ("verify_first_mismatch_layer", "verify_first_mismatch_layer")):
            report[key] = None if first is None else first[source]
    return report


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Eval report -> CSV rows (CSV_COLUMNS): one per file, then a `mean` row."""
    rows = []
    for e in report["files"]:
        row = {k: e.get(k) for k in CSV_COLUMNS}
        row.update({f"host_{k}_ms": e["host_ms"][k] for k in ("p50", "p99", "max")})
        rows.append(row)
    mean: dict[str, Any] = {"file": "mean", "complete": report.get("complete", True)}
    for key in CSV_COLUMNS:
        if key in _NOT_AVERAGED:
            continue
        values = [r[key] for r in rows if r[key] is not None]
        mean[key] = float(np.mean(values)) if values else None
    return rows + [mean]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite(value: Any) -> Any:
    # JSON has no NaN or Infinity; a metric that produced one reads as "not available".
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(_finite(report), indent=2, default=_jsonable, allow_nan=False) + "\n"


def write_json(path: str | Path, report: dict[str, Any]) -> Path:
    """Write a report atomically: readers never see half a file."""
    return write_atomically(path, to_json(report))


def write_csv(path: str | Path, report: dict[str, Any]) -> Path:
    """Write an eval report's per-file rows and mean row as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return write_atomically(path, buffer.getvalue())


class FrameLog:
    """Frame observer writing one JSON object per frame: `frame`, `host_ms`, `deadline_miss`.

    `extra()` adds fields to each line; replay passes the target timing's, so each line also
    has `target_cycles` and `target_meets` ({voltage: cycles}, {voltage: true/false}).
    """

    def __init__(self, path: str | Path, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.extra = extra
        self._file: IO[str] = self.path.open("w", encoding="utf-8")

    def __call__(self, event: FrameEvent) -> None:
        line = {"frame": event.index, "host_ms": round(event.host_s * 1e3, _MS_DIGITS),
                "deadline_miss": deadline_missed(event.host_s)}
        if self.extra is not None:
            line.update(self.extra())
        self._file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FrameLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _atten(report: dict[str, Any]) -> str:
    """', suppression limited to 12 dB' when --atten-lim-db was given; '' otherwise."""
    limit = report.get("atten_lim_db")
    return "" if limit is None else f", suppression limited to {limit:g} dB"


def _times(factor: float) -> str:
    # 2 significant digits: "0.31x" for a backend slower than real time, "57x" for a fast one.
    return f"{factor:.2g}x" if factor < 10 else f"{factor:.0f}x"


def _rate(hz: int) -> str:
    return f"{hz / 1000:g} kHz"


def replay_summary(report: dict[str, Any]) -> str:
    """A few human lines about one replay."""
    host, model = report["host_ms"], report["model"]
    channels = {1: "mono", 2: "stereo"}.get(report["channels_in"], f"{report['channels_in']} channels")
    lines = [
        f"input     {report['input']} ({_rate(report['sample_rate_in'])} {channels} "
        f"{report['sample_format_in']}, {report['duration_s']:.2f} s)",
    ]
    if report["output"]:
        lines.append(f"output    {report['output']} ({_rate(report['sample_rate_out'])} mono)")
    lines.append(f"model     {model['path']}: {model['description']}")
    lines.append(f"backend   {report['backend']}, {report['quant']}{_atten(report)}")
    if report["clean"]:
        lines.append(f"quality   PESQ-WB {_fmt(report['pesq_wb'])} (noisy {_fmt(report['noisy_pesq_wb'])})"
                     f"   STOI {_fmt(report['stoi'])} (noisy {_fmt(report['noisy_stoi'])})"
                     f"   against {report['clean']}")
    else:
        lines.append("quality   not scored (no --clean reference)")
    rtt = report.get("link_rtt_ms")
    if rtt:
        lines.append(f"link      round trip p50 {_fmt(rtt['p50'])} ms   p99 {_fmt(rtt['p99'])} ms   "
                     f"max {_fmt(rtt['max'])} ms per frame")
    if report.get("failed_frames"):
        causes = ", ".join(f"{cause} {n}" for cause, n in sorted(report["failed_by_cause"].items()))
        lines.append(f"failed    {report['failed_frames']} of {report['frames']} frames lost on the link "
                     f"({causes}): the input passed through for them")
    if not report.get("complete", True):
        lines.append(f"stopped   after {report['samples_done'] / report['sample_rate']:.2f} s of "
                     f"{report['duration_s']:.2f} s: {report['error']}")
    if "verify_mismatched_frames" in report:
        first = report.get("verify_first_mismatch_frame")
        lines.append(f"verify    {report['verify_mismatched_frames']} frame(s) differ from the emulator"
                     + ("" if first is None else f" (first: frame {first}, layer "
                                                 f"{report.get('verify_first_mismatch_layer')})"))
    lines += target_lines(report)
    rtf = report["realtime_factor"]
    lines.append(f"host time p50 {_fmt(host['p50'])} ms   p99 {_fmt(host['p99'])} ms   max "
                 f"{_fmt(host['max'])} ms per frame; {report['host_deadline_misses']} of "
                 f"{report['frames']} frames over the {report['deadline_ms']:g} ms hop"
                 + (f"; {_times(rtf)} real time" if rtf else ""))
    return "\n".join(lines)


def target_lines(report: dict[str, Any]) -> list[str]:
    """Human lines about the operating points of a report (replay, eval, sweep)."""
    points = report.get("operating_points")
    if not points:
        note = report.get("target_note")
        return [f"target    not modelled: {note}"] if note else []
    facts = report.get("target") or {}
    lines = [f"target    {facts.get('name', '?')}: {facts.get('mode', '?')} blob "
             f"{facts.get('blob_bytes', 0):,} bytes in {facts.get('weights_memory', '?')}; ideal "
             f"{facts.get('ideal_cycles', 0):,.0f} cycles (MACs / (cores x peak))"
             + (f"; link {facts['link_ms_per_frame']:g} ms/frame" if facts.get("link_ms_per_frame") else "")]
    for row in points:
        lines.append(f"  {row['voltage']:.2f} V {row['freq_mhz']:>4g} MHz  cycles p99 "
                     f"{_int(row['cycles_p99'])} ({_fmt(row['cycles_to_ideal'], 2)}x ideal)  latency p99 "
                     f"{_fmt(row['latency_ms_p99'])} ms  {row['deadline_misses']}/{row['frames']} misses  "
                     f"{_fmt(row['power_mw'], 2)} mW  {_fmt(row['energy_uj_per_frame'], 1)} uJ/frame")
    lowest = report.get("lowest_feasible_voltage")
    lines.append("  lowest voltage meeting the deadline on every frame: "
                 + ("none" if lowest is None else f"{lowest:.2f} V"))
    return lines


def _int(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def eval_table(report: dict[str, Any]) -> Table:
    """A rich table of an eval report: one row per file, then the whole run."""
    from rich.table import Table

    mean = report["mean"]
    rtf = report["realtime_factor"]
    caption = [f"'all': quality is the mean per file, host time pooled over all {report['frames']} "
               f"frames; deadline {report['deadline_ms']:g} ms"]
    if mean["noisy_pesq_wb"] is not None or mean["noisy_stoi"] is not None:
        caption.append(f"unprocessed input: PESQ-WB {_fmt(mean['noisy_pesq_wb'])}, "
                       f"STOI {_fmt(mean['noisy_stoi'])} (mean)")
    if rtf:
        caption.append(f"{_times(rtf)} real time on this host")
    table = Table(title=f"{report['model']['path']}: {report['backend']}, {report['quant']}{_atten(report)}",
                  caption="\n".join(caption))
    table.add_column("file", no_wrap=True,
                     min_width=max([len(e["file"]) for e in report["files"]] + [4]))
    for name in ("PESQ-WB", "STOI", "p50 ms", "p99 ms", "max ms", "misses"):
        table.add_column(name, justify="right", no_wrap=True)

    def cells(name: str, row: dict[str, Any], host: dict[str, Any], misses: int) -> list[str]:
        return [name, _fmt(row["pesq_wb"]), _fmt(row["stoi"]), _fmt(host["p50"]),
                _fmt(host["p99"]), _fmt(host["max"]), str(misses)]

    for entry in report["files"]:
        table.add_row(*cells(entry["file"], entry, entry["host_ms"], entry["host_deadline_misses"]))
    table.add_section()
    table.add_row(*cells("all", mean, report["host_ms"], report["host_deadline_misses"]), style="bold")
    return table
