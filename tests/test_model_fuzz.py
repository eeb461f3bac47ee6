"""Model files are untrusted input: fuzzed .tdn and hostile ONNX files, loaded under a memory
limit, each either load or fail with a one-line ModelError (tests/fuzz_models.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEMORY_MB = 1536  # the limit the whole fuzzing process runs under (address space)


def test_fuzzed_model_files_never_crash_or_exhaust_memory(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(REPO / "tests" / "fuzz_models.py"), str(tmp_path), "240",
                             "20261201", str(MEMORY_MB)], capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["cases"] >= 300
    assert outcome["other"] == [], json.dumps(outcome["other"], indent=1)[:4000]
    assert outcome["refused"] > outcome["cases"] // 2  # most mutations must be caught, not loaded
