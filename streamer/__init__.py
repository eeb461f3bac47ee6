"""streamer: a real-time STFT speech-enhancement runtime for TinyDenoiser networks on MCUs."""

import os

# One stream steps one frame at a time: its matrix-vector products are far too small for BLAS
# threads, which on a busy machine only add jitter (measured: 0.19 ms per frame single-threaded
# against 1.3-12.7 ms with OpenBLAS threads fighting other processes on 2 cores). Takes effect
# when streamer is imported before numpy, as the `streamer` command does; users may override.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
