"""Installs that cannot lie: every imported package is declared, and CI installs and tests
with the README's own commands."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {_requirement_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        names |= {_requirement_name(r) for r in extra}
    return names


def _imports(folder: Path) -> dict[str, str]:
    """Top-level module -> the first file importing it (absolute imports only)."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_a_declared_dependency() -> None:
    providers = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = []
    for folder in ("streamer", "tests", "bench"):
        # The repository's own modules (bench scripts import the tests' JACK helpers).
        local = {p.stem for p in [*(REPO / folder).glob("*.py"), *(REPO / "tests").glob("*.py")]}
        local.add("streamer")
        for module, where in _imports(REPO / folder).items():
            if module in sys.stdlib_module_names or module in local:
                continue
            distributions = {d.lower().replace("_", "-") for d in providers.get(module, [])}
            if not distributions & declared:
                provided = sorted(distributions) or "nothing installed"
                undeclared.append(f"{module} ({where}; provided by {provided})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_sounddevice_is_a_main_dependency() -> None:
    """`streamer live` is a main command: its audio package is not an extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "sounddevice" in {_requirement_name(r) for r in project["dependencies"]}


def _quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README's Quick start has no ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readmes_commands_word_for_word() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    install, test = commands
    assert install.startswith("pip install torch==2.13.0") and "-e '.[train,test]'" in install
    assert test.startswith("python3 -m pytest")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert install in ci and test in ci
    # In a fresh virtual environment of its own, before the install.
    venv_line = next(i for i, line in enumerate(ci) if line.startswith("python3 -m venv"))
    assert "--system-site-packages" not in ci[venv_line]
    assert venv_line < ci.index(install) < ci.index(test)
