/* rfft.h - the 512-point real FFT of libtdn's STFT, in binary64 (double).
 *
 * Written here rather than vendored: the size is fixed (512 = 2^9), a radix-2 complex FFT with
 * a precomputed table is a few dozen lines, the plugin then needs no FFT library at run time,
 * and binary64 keeps the magnitudes the network sees the same as numpy's (pocketfft, binary64)
 * in the Python engine: the two differ by ~1e-16 relative, far below the binary32 and binary16
 * roundings that follow. The table is filled once (rfft_init); the transforms allocate nothing.
 */
#ifndef TDN_RFFT_H
#define TDN_RFFT_H

#define RFFT_N 512
#define RFFT_BINS (RFFT_N / 2 + 1)

typedef struct {
    double cos_[RFFT_N / 2], sin_[RFFT_N / 2]; /* e^{-2 pi i k / N}, k < N/2 */
    unsigned short rev[RFFT_N];                /* bit reversal of 9-bit indices */
    double re[RFFT_N], im[RFFT_N];             /* work buffers */
} rfft_plan;

void rfft_init(rfft_plan *p);
/* X[k] = sum_n x[n] e^{-2 pi i k n / N}, k = 0..N/2 (numpy.fft.rfft). */
void rfft_forward(rfft_plan *p, const double *x, double *re, double *im);
/* x[n] = 1/N sum_k X[k] e^{+2 pi i k n / N} over the Hermitian extension of X[0..N/2]; the
 * imaginary parts of X[0] and X[N/2] are ignored (numpy.fft.irfft with n = N). */
void rfft_inverse(rfft_plan *p, const double *re, const double *im, double *x);

#endif
