"""libtdn from Python: the firmware's network (and its STFT around it) in this process, by ctypes.

The library (firmware/lib/libtdn.h) is the portable firmware built for the host with one worker
run inline: the same kernels, blob loader and schedule as the MCU and the simulator, so the
masks are the emulator's to the bit. Nothing is compiled at import: the shared library is
built with `make -C firmware lib` when it is first opened and missing or older than a firmware
source (as the simulator is); TDN_LIB=/path/to/libtdn.so loads another build instead (the
sanitizer build, an installed copy).
"""

from __future__ import annotations

import ctypes
import fcntl
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from streamer.backends.base import BackendError

REPO = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = REPO / "firmware"
LIB_PATH = FIRMWARE_DIR / "build" / "lib" / "libtdn.so"
LIB_ENV = "TDN_LIB"
BUILD_TIMEOUT_S = 600.0
HOP = 100  # TDN_LIB_HOP
LATENCY = 300  # TDN_LIB_LATENCY
BINS = 257  # TDN_LIB_BINS
_SOURCE_SUFFIXES = {".c", ".h"}


class NativeError(BackendError):
    """libtdn could not be built or loaded, or refused a model blob; says why."""


def library_sources(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """Files whose change makes libtdn.so out of date: the portable sources, the headers, the
    library and its HAL, and the Makefile."""
    found = [firmware_dir / "Makefile"]
    for folder in ("src", "include", "hal/lib", "lib"):
        if (firmware_dir / folder).is_dir():
            found += [p for p in (firmware_dir / folder).rglob("*") if p.suffix in _SOURCE_SUFFIXES]
    return [p for p in found if p.is_file()]


def needs_build(library: Path = LIB_PATH, firmware_dir: Path = FIRMWARE_DIR) -> bool:
    if not library.is_file():
        return True
    built = library.stat().st_mtime
    return any(source.stat().st_mtime > built for source in library_sources(firmware_dir))


def make(target: str, *variables: str, firmware_dir: Path = FIRMWARE_DIR,
         timeout: float = BUILD_TIMEOUT_S) -> None:
    """`make -C firmware TARGET VAR=...`, one at a time across processes; NativeError on failure."""
    if not (firmware_dir / "Makefile").is_file():
        raise NativeError(f"no firmware to build: {firmware_dir / 'Makefile'} does not exist")
    lock_path = firmware_dir / "build" / ".lib-build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            result = subprocess.run(["make", "-C", str(firmware_dir), target, *variables],
                                    capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise NativeError(f"`make -C {firmware_dir} {target}` failed: {error}") from error
    if result.returncode != 0:
        raise NativeError(f"`make -C {firmware_dir} {target}` failed ({result.returncode}):\n"
                          f"{(result.stdout + result.stderr)[-4000:]}")


def build_library(library: Path = LIB_PATH) -> Path:
    """Build libtdn.so if it is missing or stale; its path."""
    if needs_build(library):
        make("lib")
    if not library.is_file():
        raise NativeError(f"`make -C {FIRMWARE_DIR} lib` did not produce {library}")
    return library


class _Info(ctypes.Structure):
    _fields_ = [("mode", ctypes.c_uint), ("cell", ctypes.c_uint), ("hidden", ctypes.c_uint),
                ("blob_bytes", ctypes.c_uint)]


_loaded: dict[str, ctypes.CDLL] = {}


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """The libtdn CDLL with its prototypes: `path`, else $TDN_LIB, else the build (made if stale)."""
    if path is None:
        path = os.environ.get(LIB_ENV) or build_library()
    key = str(Path(path).resolve())
    if key in _loaded:
        return _loaded[key]
    try:
        lib = ctypes.CDLL(key)
    except OSError as error:
        raise NativeError(f"cannot load libtdn from {path}: {error}") from None
    p_void, p_f32, p_u16 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint16)
    lib.tdn_lib_create.restype = p_void
    lib.tdn_lib_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p)]
    lib.tdn_lib_destroy.argtypes = [p_void]
    lib.tdn_lib_reset.argtypes = [p_void]
    lib.tdn_lib_process.argtypes = [p_void, p_f32, p_f32]
    lib.tdn_lib_network.argtypes = [p_void, p_u16, p_u16]
    lib.tdn_lib_set_atten_lim_db.argtypes = [p_void, ctypes.c_double]
    lib.tdn_lib_set_atten_lim_db.restype = ctypes.c_int
    lib.tdn_lib_set_bypass.argtypes = [p_void, ctypes.c_int]
    lib.tdn_lib_get_info.argtypes = [p_void, ctypes.POINTER(_Info)]
    _loaded[key] = lib
    return lib


class NativeModel:
    """One libtdn instance: a model blob with its recurrent state and STFT buffers."""

    def __init__(self, blob: bytes, library: str | Path | None = None) -> None:
        self._lib = load_library(library)
        why = ctypes.c_char_p()
        handle = self._lib.tdn_lib_create(blob, len(blob), ctypes.byref(why))
        if not handle:
            reason = why.value.decode("ascii", "replace") if why.value else "unknown reason"
            raise NativeError(f"libtdn refused the model blob: {reason}")
        self._handle: int | None = handle
        self._mask = np.empty(BINS, np.uint16)
        self._out = np.empty(HOP, np.float32)

    def _live(self) -> int:
        if self._handle is None:
            raise NativeError("this libtdn instance is closed")
        return self._handle

    def network(self, magnitude_bits: np.ndarray) -> np.ndarray:
        """One frame of the network: BINS binary16 bit patterns in, the mask's out (uint16)."""
        bits = np.ascontiguousarray(magnitude_bits, np.uint16)
        if bits.shape != (BINS,):
            raise ValueError(f"expected {BINS} magnitudes, got shape {bits.shape}")
        self._lib.tdn_lib_network(self._live(), bits.ctypes.data_as(ctypes.POINTER(ctypes.c_uint16)),
                                  self._mask.ctypes.data_as(ctypes.POINTER(ctypes.c_uint16)))
        return self._mask.copy()

    def process(self, block: np.ndarray) -> np.ndarray:
        """HOP samples in, HOP samples out (the input LATENCY samples ago, enhanced), float32."""
        hop = np.ascontiguousarray(block, np.float32)
        if hop.shape != (HOP,):
            raise ValueError(f"expected {HOP} samples per hop, got shape {hop.shape}")
        self._lib.tdn_lib_process(self._live(), hop.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                  self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        return self._out.copy()

    def reset(self) -> None:
        self._lib.tdn_lib_reset(self._live())

    def set_atten_lim_db(self, db: float | None) -> None:
        """Floor the mask at f32(10^(-db/20)) (pipeline.mask_floor's); None: no limit."""
        value = math.inf if db is None else float(db)
        if self._lib.tdn_lib_set_atten_lim_db(self._live(), value) != 0:
            raise NativeError(f"attenuation limit must be a number of dB >= 0, got {value:g}")

    def set_bypass(self, on: bool) -> None:
        self._lib.tdn_lib_set_bypass(self._live(), int(bool(on)))

    def info(self) -> dict[str, Any]:
        """The blob's mode code, cell code, hidden size and size in bytes."""
        info = _Info()
        self._lib.tdn_lib_get_info(self._live(), ctypes.byref(info))
        return {"mode": info.mode, "cell": info.cell, "hidden": info.hidden, "blob_bytes": info.blob_bytes}

    def close(self) -> None:
        if self._handle is not None:
            self._lib.tdn_lib_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass  # interpreter shutdown

    def __enter__(self) -> NativeModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
