"""The standing mutant run's machinery (`bench/mutants.py`): its list, and one run on a toy tree.

The run itself takes minutes and is not part of the suite (README, Tests); these check that the
list is well formed and that a mutant is planted in a copy, judged and undone there.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import require_tool

REPO = Path(__file__).resolve().parents[1]
THE_SIX = {"py-header-crc8", "c-header-crc8", "c-stale-boundary", "py-host-deadline", "py-l2-placement",
           "py-calib-percentile-per-file"}


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("bench_mutants", REPO / "bench" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_the_list_is_well_formed_and_plants_the_six(tool):
    mutants = tool.load_mutants(tool.DEFAULT_LIST)
    assert len(mutants) >= 30
    assert THE_SIX <= {m.id for m in mutants}
    assert {m.file.split(".")[-1] for m in mutants} >= {"py", "c", "h"}
    for mutant in mutants:
        assert (REPO / mutant.file).is_file(), mutant.id
        for test in mutant.tests:
            assert (REPO / test.split("::")[0]).is_file(), (mutant.id, test)


def test_a_bad_list_is_refused(tool, tmp_path):
    entry = '[[mutant]]\nid = "a"\nfile = "x.py"\nfind = "a > b"\nreplace = "a >= b"\ntests = ["t.py"]\n'
    (tmp_path / "dup.toml").write_text(entry + entry)
    with pytest.raises(tool.MutantListError, match="duplicate ids a"):
        tool.load_mutants(tmp_path / "dup.toml")
    (tmp_path / "same.toml").write_text(entry.replace('"a >= b"', '"a > b"'))
    with pytest.raises(tool.MutantListError, match="differ"):
        tool.load_mutants(tmp_path / "same.toml")
    (tmp_path / "notests.toml").write_text(entry.replace('["t.py"]', "[]"))
    with pytest.raises(tool.MutantListError, match="tests"):
        tool.load_mutants(tmp_path / "notests.toml")


def test_mutants_are_planted_in_a_copy_judged_and_undone(tool, tmp_path):
    require_tool("git")
    root = tmp_path / "tree"
    (root / "tests").mkdir(parents=True)
    source = "def late(ms):\n    return ms > 6.25\n\n\ndef early(ms):\n    return ms > 6.25 - 1\n"
    (root / "calc.py").write_text(source)
    (root / "tests" / "test_calc.py").write_text(
        "from calc import late\n\n\ndef test_edge():\n    assert not late(6.25) and late(6.5)\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "build").mkdir()
    (root / "build" / "stale.o").write_text("an ignored build output")
    subprocess.run(["git", "init", "-q", str(root)], check=True)

    copy = tmp_path / "work" / "tree"
    assert tool.copy_tree(root, copy) == 3          # calc.py, the test, .gitignore: no build/
    assert not (copy / "build").exists()
    tests = ("tests/test_calc.py",)
    mutants = [tool.Mutant("caught", "calc.py", "return ms > 6.25\n", "return ms >= 6.25\n", tests),
               tool.Mutant("survived", "calc.py", "return ms > 6.25 - 1", "return ms >= 6.25 - 1", tests),
               tool.Mutant("moved", "calc.py", "return ms > 7", "return ms >= 7", tests),
               tool.Mutant("ambiguous", "calc.py", "ms > 6.25", "ms >= 6.25", tests)]
    results = [tool.run_mutant(copy, m, timeout_s=120) for m in mutants]
    assert [r["status"] for r in results] == ["caught", "survived", "target-moved", "target-ambiguous"]
    assert results[0]["first_failure"] == "tests/test_calc.py::test_edge"
    assert (copy / "calc.py").read_text() == source and (root / "calc.py").read_text() == source
    assert tool.summary(results)["kill_rate"] == 0.25
