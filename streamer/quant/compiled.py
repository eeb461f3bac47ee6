"""The emulator's compiled sum: kernels/sequential_dot.c, built for this host on first use.

The fp16 dense sums are the emulator's hot loop, and numpy cannot fuse a multiply with the
add that follows it. The C kernel does the same sums in the same order (one sequential
binary32 sum per row, vectorised across rows and streams only), several times faster.

It is built with the system's C compiler ($CC, else `cc`, `gcc` or `clang`) into a cache folder
($STREAMER_CACHE, else $XDG_CACHE_HOME/streamer, else ~/.cache/streamer) under a name that
hashes its source and flags, so a changed kernel is rebuilt and concurrent processes share one
build. Before a process uses it, it is run once on terms whose sum depends on the order and
compared bit for bit with the plain definition; a kernel that differs is never used.

$STREAMER_SUM_KERNEL chooses: `auto` (default: the compiled kernel, else numpy with the reason
kept in `sum_kernel_status()`), `compiled` (an error if it cannot be built or fails the check)
or `numpy`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

F32 = np.float32
SOURCE = Path(__file__).with_name("kernels") / "sequential_dot.c"
KERNEL_ENV = "STREAMER_SUM_KERNEL"
CACHE_ENV = "STREAMER_CACHE"
CHOICES = ("auto", "compiled", "numpy")
# No -ffast-math (it would allow reassociation) and no contraction into fused multiply-adds:
# each operation rounds once, as the contract writes it.
FLAGS = ("-O3", "-fno-fast-math", "-ffp-contract=off", "-fPIC", "-shared")
# A compiler or C library without target_clones (load-time dispatch to AVX2) gets the baseline.
FALLBACK_FLAGS = ("-DSEQUENTIAL_DOT_NO_CLONES",)
COMPILE_TIMEOUT_S = 120.0

# (terms_t (terms, rows), inputs (streams, terms), out (streams, rows)), all float32 C order.
SumKernel = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


class KernelError(RuntimeError):
    """The compiled sum was asked for and cannot be had; says why in one line."""


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamer"


def _compiler() -> list[str]:
    """$CC, else the first of cc, gcc, clang on the PATH (named even when none is, for the error)."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    return [next((name for name in ("cc", "gcc", "clang") if shutil.which(name)), "cc")]


def library_path(source: Path = SOURCE, directory: Path | None = None) -> Path:
    """Where the build of `source` for this host lives: its name hashes source, flags,
    compiler and machine."""
    key = hashlib.sha256()
    for part in (source.read_bytes(), " ".join(FLAGS).encode(), " ".join(_compiler()).encode(),
                 platform.machine().encode()):
        key.update(part + b"\0")
    return (directory or cache_dir()) / f"{source.stem}-{key.hexdigest()[:16]}.so"


def build(source: Path = SOURCE, directory: Path | None = None) -> Path:
    """The shared library of `source`, compiled if not already cached; KernelError if it cannot be."""
    target = library_path(source, directory)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KernelError(f"cannot create the kernel cache {target.parent}: {error.strerror}") from None
    # Each process compiles to its own temporary name and renames: a racing build is harmless.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    why = ""
    try:
        for extra in ((), FALLBACK_FLAGS):
            command = [*_compiler(), *FLAGS, *extra, str(source), "-o", str(partial)]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as error:
                raise KernelError(f"cannot compile {source.name} with {command[0]}: {error}") from None
            if result.returncode == 0 and partial.is_file():
                os.replace(partial, target)
                return target
            lines = (result.stderr or result.stdout).strip().splitlines()
            why = lines[0] if lines else f"exit status {result.returncode}"
    finally:
        partial.unlink(missing_ok=True)
    raise KernelError(f"cannot compile {source.name} with {' '.join(_compiler())}: {why}")


def _open(path: Path) -> SumKernel:
    lib = ctypes.CDLL(str(path))
    function = lib.sequential_dot
    p_f32, size = ctypes.POINTER(ctypes.c_float), ctypes.c_size_t
    function.argtypes = [p_f32, size, size, p_f32, size, p_f32]
    function.restype = None

    def sequential_dot(terms_t: np.ndarray, inputs: np.ndarray, out: np.ndarray) -> None:
        terms, rows = terms_t.shape
        streams = inputs.shape[0]
        # The C reads raw memory: shapes, dtype and layout are checked here, every call.
        for array in (terms_t, inputs, out):
            if array.dtype != F32 or not array.flags.c_contiguous:
                raise ValueError("sequential_dot takes C-contiguous float32 arrays")
        if inputs.shape != (streams, terms) or out.shape != (streams, rows) or not out.flags.writeable:
            raise ValueError(f"sequential_dot: terms_t {terms_t.shape}, inputs {inputs.shape} and "
                             f"out {out.shape} do not agree")
        function(terms_t.ctypes.data_as(p_f32), terms, rows, inputs.ctypes.data_as(p_f32), streams,
                 out.ctypes.data_as(p_f32))

    sequential_dot.library = lib  # keeps the library loaded as long as the function lives
    return sequential_dot


def definition(terms_t: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """The contract's sum written plainly: for each stream, acc = first product, then each
    further product added in order, every operation rounded to binary32. (The same sum as
    `arith.dot_f32_sequential`, written here because arith imports this module; the tests
    hold the kernel equal to both.)"""
    acc = terms_t[0][None, :] * inputs[:, :1]
    for k in range(1, terms_t.shape[0]):
        acc = acc + terms_t[k][None, :] * inputs[:, k:k + 1]
    return acc.astype(F32)


def matches_definition(kernel: SumKernel) -> bool:
    """Whether `kernel` sums exactly as `definition` does, on terms whose sum depends on the
    order (random signs and magnitudes over 24 binades), in full and partial tiles (70 rows:
    two tiles of 32 and one of 6; 5 streams: two pairs and one alone), and keeps a sum that
    is -0.0 as -0.0."""
    rng = np.random.default_rng(20261202)
    terms, rows, streams = 300, 70, 5

    def order_sensitive(shape: tuple[int, ...]) -> np.ndarray:
        exponents = rng.integers(-12, 12, size=shape)
        signs = rng.choice([-1.0, 1.0], size=shape)
        return (signs * np.ldexp(1.0 + rng.random(shape), exponents)).astype(F32)

    terms_t, inputs = order_sensitive((terms, rows)), order_sensitive((streams, terms))
    terms_t[:, 3] = -0.0  # stream 0's row 3 is a sum of -0.0 terms: -0.0, not the +0.0 of 0 + ...
    inputs[0] = np.abs(inputs[0])
    out = np.full((streams, rows), np.nan, F32)
    kernel(terms_t, inputs, out)
    return bool(np.array_equal(out.view(np.uint32), definition(terms_t, inputs).view(np.uint32)))


def _choice() -> str:
    return os.environ.get(KERNEL_ENV) or "auto"


def load(choice: str | None = None, directory: Path | None = None,
         source: Path = SOURCE) -> tuple[SumKernel | None, str]:
    """(kernel or None, a line saying which sum is used and why) for `choice` (default: the
    environment's). `compiled` raises KernelError where `auto` falls back to numpy."""
    choice = choice or _choice()
    if choice not in CHOICES:
        raise KernelError(f"{KERNEL_ENV}={choice!r}: choose one of {', '.join(CHOICES)}")
    if choice == "numpy":
        return None, f"numpy ({KERNEL_ENV}=numpy)"
    try:
        path = build(source, directory)
        try:
            kernel = _open(path)
        except OSError:
            # A cached file that does not load (truncated, another machine's): build it again.
            path.unlink(missing_ok=True)
            kernel = _open(build(source, directory))
        if not matches_definition(kernel):
            raise KernelError(f"{path} does not sum in the contract's order; not used")
    except (KernelError, OSError) as error:
        if choice == "compiled":
            raise KernelError(str(error)) from None
        return None, f"numpy (compiled sum unavailable: {error})"
    return kernel, f"compiled ({path})"


_loaded: tuple[SumKernel | None, str] | None = None


def sum_kernel() -> SumKernel | None:
    """This process's sum kernel (loaded and checked once), or None for numpy. Where `auto`
    had to fall back to numpy, one line on stderr says so and why (the work is several times
    slower, and nothing else would tell)."""
    global _loaded
    if _loaded is None:
        _loaded = load()
        if _loaded[0] is None and _choice() == "auto":
            print(f"streamer: warning: the fp16 sums run in {_loaded[1]}, several times slower "
                  f"({KERNEL_ENV}=numpy silences this)", file=sys.stderr, flush=True)
    return _loaded[0]


def sum_kernel_status() -> str:
    """Which sum this process uses, and why: for reports and benchmarks."""
    sum_kernel()
    assert _loaded is not None
    return _loaded[1]
