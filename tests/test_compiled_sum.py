"""The compiled fp16 dense sum (streamer/quant/kernels/sequential_dot.c, built by
streamer/quant/compiled.py): the contract's sequential order to the bit, the check that
refuses a kernel summing in another order, and what happens without a compiler or with a
broken cache. Real compiles with the system's C compiler, into a folder of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamer.quant import arith, compiled

F32 = np.float32


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> compiled.SumKernel:
    loaded, status = compiled.load("compiled", tmp_path_factory.mktemp("kernel-cache"))
    assert loaded is not None and status.startswith("compiled")
    return loaded


def _order_sensitive(rng, shape, spread=20) -> np.ndarray:
    """binary16 values with both signs over many binades: their binary32 sum depends on the order."""
    return arith.f16(rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread, shape)))


@pytest.mark.parametrize("rows", [1, 31, 32, 33, 70, 257])
@pytest.mark.parametrize("streams", [1, 2, 3, 7])
@pytest.mark.parametrize("leading", [1, 2])
def test_compiled_sum_is_the_contracts_sequential_sum(kernel, rows: int, streams: int, leading: int) -> None:
    """Full and partial tiles (32 rows, 2 streams per tile), one or two bias terms: every row
    of every stream equals dot_f32_sequential bit for bit, and numpy's SequentialDot too."""
    rng = np.random.default_rng(rows * 100 + streams * 10 + leading)
    width = 257
    weights = _order_sensitive(rng, (rows, width))
    start = arith.f16(rng.standard_normal((rows, leading)) * 100)
    x = _order_sensitive(rng, (streams, width), spread=10)
    expected = np.stack([arith.dot_f32_sequential(weights, row, start) for row in x])
    fast = arith.SequentialDot(weights, start, kernel=kernel)
    assert np.array_equal(fast(x).view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(fast(x[0]).view(np.uint32), expected[0].view(np.uint32))
    slow = arith.SequentialDot(weights, start, kernel=None)
    assert np.array_equal(slow(x).view(np.uint32), expected.view(np.uint32))
    # The data is order-sensitive: a pairwise sum of the same terms differs somewhere.
    if rows >= 32:
        terms = np.concatenate([np.broadcast_to(start, (streams, rows, leading)),
                                weights[None] * x[:, None, :]], axis=2)
        assert not np.array_equal(np.sum(terms, axis=2, dtype=F32), expected)


def test_a_sum_of_negative_zeros_stays_negative_zero(kernel) -> None:
    """The sum starts from its first term, as the definition does, not from +0.0."""
    weights = np.full((40, 10), -0.0, F32)
    start = np.full((40, 1), -0.0, F32)
    x = np.ones((3, 10), F32)
    got = arith.SequentialDot(weights, start, kernel=kernel)(x)
    assert np.all(np.signbit(got))
    assert np.array_equal(got.view(np.uint32), np.stack([arith.dot_f32_sequential(weights, r, start)
                                                         for r in x]).view(np.uint32))


def test_the_check_accepts_the_kernel_and_rejects_other_orders(kernel) -> None:
    def pairwise(terms_t, inputs, out):
        out[...] = np.sum(terms_t[None, :, :] * inputs[:, :, None], axis=1, dtype=F32)

    def from_plus_zero(terms_t, inputs, out):
        out[...] = F32(0.0) + compiled.definition(terms_t, inputs)

    def in_float64(terms_t, inputs, out):
        out[...] = np.cumsum(terms_t[None, :, :].astype(np.float64) * inputs[:, :, None], axis=1)[:, -1]

    assert compiled.matches_definition(kernel)
    for wrong in (pairwise, from_plus_zero, in_float64):
        assert not compiled.matches_definition(wrong), wrong.__name__


BACKWARDS = r"""
#include <stddef.h>
/* Sums the terms last to first: the right values in the wrong order. */
void sequential_dot(const float *terms_t, size_t terms, size_t rows, const float *inputs,
                    size_t streams, float *out)
{
    for (size_t b = 0; b < streams; b++)
        for (size_t r = 0; r < rows; r++) {
            float acc = terms_t[(terms - 1) * rows + r] * inputs[b * terms + terms - 1];
            for (size_t k = terms - 1; k-- > 0;)
                acc = acc + terms_t[k * rows + r] * inputs[b * terms + k];
            out[b * rows + r] = acc;
        }
}
"""


def test_a_kernel_summing_in_another_order_is_never_used(tmp_path: Path) -> None:
    source = tmp_path / "backwards.c"
    source.write_text(BACKWARDS)
    loaded, status = compiled.load("auto", tmp_path / "cache", source)
    assert loaded is None and status.startswith("numpy") and "does not sum in the contract's order" in status
    with pytest.raises(compiled.KernelError, match="does not sum in the contract's order"):
        compiled.load("compiled", tmp_path / "cache", source)


def test_without_a_compiler_auto_falls_back_and_compiled_says_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    loaded, status = compiled.load("auto", tmp_path / "cache")
    assert loaded is None and status.startswith("numpy (compiled sum unavailable: cannot compile")
    with pytest.raises(compiled.KernelError, match="cannot compile sequential_dot.c") as caught:
        compiled.load("compiled", tmp_path / "cache")
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-built left behind


def test_a_compile_error_is_reported_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "broken.c"
    source.write_text("void sequential_dot(void) { this is not C }\n")
    with pytest.raises(compiled.KernelError, match="cannot compile broken.c") as caught:
        compiled.load("compiled", tmp_path / "cache", source)
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "cache").glob("*"))


def test_the_build_is_cached_and_a_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = compiled.build(directory=cache)
    built = first.stat().st_mtime_ns
    assert compiled.build(directory=cache) == first and first.stat().st_mtime_ns == built
    first.write_bytes(b"not a shared library")
    loaded, status = compiled.load("compiled", cache)
    assert loaded is not None and compiled.matches_definition(loaded)
    assert first.read_bytes()[:4] == b"\x7fELF"


def test_a_changed_source_gets_its_own_build(tmp_path: Path) -> None:
    source = tmp_path / "sequential_dot.c"
    source.write_text(compiled.SOURCE.read_text())
    before = compiled.library_path(source, tmp_path)
    source.write_text(compiled.SOURCE.read_text() + "\n/* changed */\n")
    assert compiled.library_path(source, tmp_path) != before


def test_the_choice_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(compiled.KERNEL_ENV, "numpy")
    assert compiled.load() == (None, f"numpy ({compiled.KERNEL_ENV}=numpy)")
    monkeypatch.setenv(compiled.KERNEL_ENV, "fortran")
    with pytest.raises(compiled.KernelError, match="choose one of auto, compiled, numpy"):
        compiled.load()


def test_the_kernel_refuses_arrays_it_would_misread(kernel) -> None:
    """The C reads raw memory: wrong dtype, a strided view or disagreeing shapes are refused."""
    terms_t, inputs, out = np.ones((5, 4), F32), np.ones((2, 5), F32), np.empty((2, 4), F32)
    kernel(terms_t, inputs, out)
    assert np.all(out == 5)
    for bad in ((terms_t.astype(np.float64), inputs, out), (terms_t, np.ones((2, 10), F32)[:, ::2], out),
                (terms_t, np.ones((2, 6), F32), out), (terms_t, inputs, np.empty((3, 4), F32))):
        with pytest.raises(ValueError):
            kernel(*bad)


def test_this_process_uses_the_compiled_sum_where_there_is_a_compiler() -> None:
    """So that the bit-exactness tests of the emulator (tests/test_batch.py, the --verify runs
    against the firmware) exercise the compiled sum, not only numpy's."""
    choice = os.environ.get(compiled.KERNEL_ENV, "auto")
    if choice == "numpy":
        assert compiled.sum_kernel() is None
    else:
        assert compiled.sum_kernel() is not None, compiled.sum_kernel_status()


@pytest.mark.parametrize("setting, message", [
    ({compiled.KERNEL_ENV: "fortran"}, "choose one of auto, compiled, numpy"),
    ({compiled.KERNEL_ENV: "compiled", "CC": "/no/such/cc"},
     "cannot compile sequential_dot.c with /no/such/cc"),
])
def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path, setting: dict, message: str) -> None:
    env = {**os.environ, compiled.CACHE_ENV: str(tmp_path / "cache"), **setting}
    out = tmp_path / "out.wav"
    run = subprocess.run([sys.executable, "-m", "streamer", "replay", "--quant", "fp16", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("streamer: error: ") and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not out.exists()


def test_without_a_compiler_a_command_runs_says_so_once_and_gives_the_same_bits(tmp_path: Path) -> None:
    """`auto` without a compiler: numpy does the sums, the output is the same file, and one
    warning line says why it is slower; the report names the sum that ran."""
    outputs = {}
    for name, setting in (("compiled", {}), ("numpy", {"CC": str(tmp_path / "no-such-cc")})):
        env = {**os.environ, compiled.CACHE_ENV: str(tmp_path / f"cache-{name}"), **setting}
        env.pop(compiled.KERNEL_ENV, None)
        out, report = tmp_path / f"{name}.wav", tmp_path / f"{name}.json"
        command = [sys.executable, "-m", "streamer", "replay", "--quant", "mixed", "--out", str(out),
                   "--report", str(report)]
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        warnings = [line for line in run.stderr.splitlines() if "fp16 sums run in numpy" in line]
        assert len(warnings) == (1 if name == "numpy" else 0), run.stderr
        fp16_sum = json.loads(report.read_text())["backend_info"]["fp16_sum"]
        assert fp16_sum.startswith(name), fp16_sum
        outputs[name] = out.read_bytes()
    assert outputs["compiled"] == outputs["numpy"]
