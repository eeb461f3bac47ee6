"""A standing mutant run: plant each realistic bug of a curated list, one at a time, and check
that the tests covering its file fail.

    python bench/mutants.py                      # the whole list (bench/mutants.toml)
    python bench/mutants.py --only c-header-crc8 py-stale-boundary
    python bench/mutants.py --check              # only: is every target still there, once?

The tree (`git ls-files`: tracked and untracked files that git does not ignore, so no build
outputs) is copied to a temporary directory, with `../shared` linked beside it when it exists.
Every mutant is applied there, never in the checkout: the file is rewritten with the one
change, `python -m pytest -x -q` runs the mutant's covering tests in the copy (its own
`streamer` package first on PYTHONPATH, TDN_SIM_BINARY unset, so the tests build and run the
copy's own firmware with `make -C firmware`), and the file is restored before the next one.
A first unmutated run of every covering test (the baseline) must pass and builds the firmware
once; each C mutant then costs an incremental rebuild of its object.

Each entry of the list names the file, an exact piece of its text (`find`, present exactly
once), the replacement and the covering tests. A target no longer found is reported as
`target-moved` (or `target-ambiguous` if found more than once), never skipped silently.

A mutant must build: a firmware mutant that `make -C firmware` refuses (a warning under
-Werror) or a Python mutant that does not compile is `does-not-build`, not caught: fix the
entry. Prints JSON: per mutant `caught` (a covering test failed: the first failing test id and
its message are given), `survived` (all passed: a test is missing), `target-moved`,
`does-not-build`, `timeout` or `error`; the counts, the kill rate (caught / listed) and the
wall time. Exit status 0 when every mutant was caught.
Not part of the test suite (minutes, not seconds): run it before resolving an issue that
touches the arithmetic, the link or the cost model, and quote the kill rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_LIST = HERE / "mutants.toml"
DEFAULT_TIMEOUT_S = 900
STATUSES = ("caught", "survived", "target-moved", "target-ambiguous", "does-not-build", "timeout", "error")


@dataclass(frozen=True)
class Mutant:
    """One planted bug: in `file`, the text `find` (exactly once) becomes `replace`."""

    id: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    why: str = ""


class MutantListError(ValueError):
    """A list entry that is missing a field or contradicts another."""


def load_mutants(path: Path) -> list[Mutant]:
    """The `[[mutant]]` entries of a TOML list, checked: fields, unique ids, a real change."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    mutants: list[Mutant] = []
    for index, entry in enumerate(data.get("mutant", [])):
        where = f"{path}: mutant #{index + 1}"
        missing = [key for key in ("id", "file", "find", "replace", "tests") if key not in entry]
        if missing:
            raise MutantListError(f"{where} lacks {', '.join(missing)}")
        tests = entry["tests"]
        if not tests or not all(isinstance(t, str) for t in tests):
            raise MutantListError(f"{where} ({entry['id']}): tests must be a non-empty list of test paths")
        if entry["find"] == entry["replace"] or not entry["find"]:
            raise MutantListError(f"{where} ({entry['id']}): find must be non-empty and differ from replace")
        mutants.append(Mutant(entry["id"], entry["file"], entry["find"], entry["replace"], tuple(tests),
                              entry.get("why", "")))
    ids = [m.id for m in mutants]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise MutantListError(f"{path}: duplicate ids {', '.join(duplicates)}")
    if not mutants:
        raise MutantListError(f"{path}: no [[mutant]] entries")
    return mutants


def target_status(text: str, mutant: Mutant) -> str | None:
    """None when `find` occurs exactly once in `text`, else why the mutant cannot be applied."""
    count = text.count(mutant.find)
    if count == 0:
        return "target-moved"
    if count > 1:
        return "target-ambiguous"
    return None


def tree_files(root: Path) -> list[str]:
    """Relative paths of the files a fresh clone plus the uncommitted work would hold."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    names = sorted({name for name in listed.decode().split("\0") if name})
    return [name for name in names if (root / name).is_file() or (root / name).is_symlink()]


def copy_tree(root: Path, dest: Path) -> int:
    """Copy the tree of `root` into `dest` (timestamps kept); link `../shared` beside it."""
    files = tree_files(root)
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = root / name
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    shared = root.parent / "shared"
    if shared.is_dir() and not (dest.parent / "shared").exists():
        (dest.parent / "shared").symlink_to(shared)
    return len(files)


def _environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TDN_SIM_BINARY", None)           # the copy's own build, never another one
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"      # a restored file must never meet a stale .pyc
    env["COLUMNS"] = "400"                    # pytest's short summary keeps the failure's message
    return env


def first_failure(output: str) -> tuple[str | None, str | None]:
    """The first `FAILED`/`ERROR` test id of pytest's short summary (-rfE), and its message."""
    for line in output.splitlines():
        for prefix in ("FAILED ", "ERROR "):
            if line.startswith(prefix):
                test, _, message = line[len(prefix):].partition(" - ")
                return test.strip(), message.strip()[:200] or None
    return None, None


def run_tests(copy: Path, tests: tuple[str, ...] | list[str], timeout_s: float, stop_first: bool = True
              ) -> dict[str, Any]:
    """pytest on `tests` in the copy: its return code, first failing test, tail, seconds."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--no-header",
               *(["-x"] if stop_first else []), *tests]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=copy, env=_environment(copy), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the tests' simulators and makes with it
        output, _ = process.communicate()
        code = None
    test, message = first_failure(output)
    return {"code": code, "first_failure": test, "message": message, "tail": output[-3000:],
            "seconds": round(time.monotonic() - started, 1)}


def classify(result: dict[str, Any]) -> str:
    """pytest's exit status as a mutant's fate: 1 (tests failed) or 2 (collection broke) is caught."""
    if result["code"] is None:
        return "timeout"
    if result["code"] == 0:
        return "survived"
    if result["code"] in (1, 2):
        return "caught"
    return "error"


def build_check(copy: Path, mutant: Mutant, timeout_s: float) -> str | None:
    """Why the mutated tree does not build (a mutant must fail tests, not the compiler), or None.

    Firmware files: `make -C firmware` (the tests run the same first, so it costs nothing);
    Python files: byte-compiling the file.
    """
    if mutant.file.startswith("firmware/"):
        command = ["make", "-C", "firmware", "-j2"]
    elif mutant.file.endswith(".py"):
        command = [sys.executable, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
                   mutant.file]
    else:
        return None
    try:
        result = subprocess.run(command, cwd=copy, env=_environment(copy), capture_output=True, text=True,
                                timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"{' '.join(command)} timed out"
    return None if result.returncode == 0 else (result.stdout + result.stderr)[-1500:]


def run_mutant(copy: Path, mutant: Mutant, timeout_s: float) -> dict[str, Any]:
    """Apply `mutant` in the copy, run its tests, restore the file; the outcome as a dict."""
    path = copy / mutant.file
    entry: dict[str, Any] = {"id": mutant.id, "file": mutant.file}
    if not path.is_file():
        return {**entry, "status": "target-moved", "first_failure": None, "seconds": 0.0,
                "detail": f"{mutant.file} does not exist"}
    original = path.read_bytes()
    text = original.decode()
    moved = target_status(text, mutant)
    if moved:
        return {**entry, "status": moved, "first_failure": None, "seconds": 0.0,
                "detail": f"`find` occurs {text.count(mutant.find)} times in {mutant.file}"}
    started = time.monotonic()
    path.write_text(text.replace(mutant.find, mutant.replace, 1))
    result: dict[str, Any] = {}
    try:
        broken = build_check(copy, mutant, timeout_s)
        if broken is None:
            result = run_tests(copy, mutant.tests, timeout_s)
    finally:
        path.write_bytes(original)  # a new mtime: make rebuilds the object from the original
    if path.read_bytes() != original:
        raise RuntimeError(f"{mutant.file} was not restored after {mutant.id}")
    seconds = round(time.monotonic() - started, 1)   # the build check and the tests
    if broken is not None:
        return {**entry, "status": "does-not-build", "first_failure": None, "seconds": seconds,
                "detail": broken}
    status = classify(result)
    out = {**entry, "status": status, "first_failure": result["first_failure"], "message": result["message"],
           "seconds": seconds}
    if status in ("survived", "error", "timeout"):
        out["detail"] = result["tail"][-1500:]
    return out


def check_targets(root: Path, mutants: list[Mutant]) -> list[dict[str, Any]]:
    """Where each target stands in `root`, without running anything."""
    rows = []
    for mutant in mutants:
        path = root / mutant.file
        status = target_status(path.read_text(), mutant) if path.is_file() else "target-moved"
        rows.append({"id": mutant.id, "file": mutant.file, "status": status or "found"})
    return rows


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {status: sum(1 for r in results if r["status"] == status) for status in STATUSES}
    listed = len(results)
    return {"mutants": listed, "caught": counts["caught"], "survived": counts["survived"],
            "target_moved": counts["target-moved"] + counts["target-ambiguous"],
            "does_not_build": counts["does-not-build"], "timeout": counts["timeout"],
            "error": counts["error"],
            "kill_rate": round(counts["caught"] / listed, 4) if listed else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, default=DEFAULT_LIST, help="the mutant list (TOML)")
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout to copy (default: this one)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per test run")
    parser.add_argument("--check", action="store_true", help="only report whether every target is found")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    mutants = load_mutants(args.list)
    if args.only:
        unknown = sorted(set(args.only) - {m.id for m in mutants})
        if unknown:
            parser.error(f"unknown mutant ids: {', '.join(unknown)}")
        mutants = [m for m in mutants if m.id in args.only]
    root = args.root.resolve()
    if args.check:
        rows = check_targets(root, mutants)
        print(json.dumps({"mutants": len(rows), "found": sum(r["status"] == "found" for r in rows),
                          "results": rows}, indent=2))
        return 0 if all(r["status"] == "found" for r in rows) else 1

    workdir = Path(tempfile.mkdtemp(prefix="streamer-mutants-"))
    copy = workdir / root.name
    try:
        files = copy_tree(root, copy)
        print(f"mutants: {len(mutants)} from {args.list}; copied {files} files to {copy}", file=sys.stderr)
        union = list(dict.fromkeys(t for m in mutants for t in m.tests))
        baseline = run_tests(copy, union, args.timeout, stop_first=False)
        print(f"baseline: {' '.join(union)}: exit {baseline['code']} in {baseline['seconds']} s",
              file=sys.stderr)
        command = " ".join(["python", "bench/mutants.py", *(sys.argv[1:] if argv is None else argv)])
        report: dict[str, Any] = {"command": command, "list": str(args.list),
                                  "baseline_s": baseline["seconds"]}
        if baseline["code"] != 0:
            report.update(baseline="failed", first_failure=baseline["first_failure"],
                          detail=baseline["tail"][-3000:], wall_s=round(time.monotonic() - started, 1))
            print(json.dumps(report, indent=2))
            return 2
        results = []
        for number, mutant in enumerate(mutants, 1):
            outcome = run_mutant(copy, mutant, args.timeout)
            results.append(outcome)
            print(f"[{number}/{len(mutants)}] {mutant.id}: {outcome['status']}"
                  f"{' by ' + outcome['first_failure'] if outcome.get('first_failure') else ''}"
                  f" ({outcome['seconds']} s)", file=sys.stderr)
        report.update(summary(results))
        report["wall_s"] = round(time.monotonic() - started, 1)
        report["results"] = results
        print(json.dumps(report, indent=2))
        return 0 if report["caught"] == report["mutants"] else 1
    finally:
        if args.keep:
            print(f"kept: {copy}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
