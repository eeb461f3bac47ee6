/* rfft.c - radix-2 decimation-in-time FFT of 512 points, used for real signals (rfft.h). */
#include <math.h>

#include "rfft.h"

void rfft_init(rfft_plan *p)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (unsigned k = 0; k < RFFT_N / 2; k++) {
        p->cos_[k] = cos(two_pi * k / RFFT_N);
        p->sin_[k] = -sin(two_pi * k / RFFT_N);
    }
    for (unsigned i = 0; i < RFFT_N; i++) {
        unsigned r = 0;
        for (unsigned b = 1, v = i; b < RFFT_N; b <<= 1, v >>= 1) r = (r << 1) | (v & 1u);
        p->rev[i] = (unsigned short)r;
    }
}

/* In place on p->re, p->im (already in bit-reversed order); sign +1 conjugates the twiddles. */
static void butterflies(rfft_plan *p, int inverse)
{
    double *re = p->re, *im = p->im;
    for (unsigned len = 2; len <= RFFT_N; len <<= 1) {
        unsigned half = len / 2, step = RFFT_N / len;
        for (unsigned s = 0; s < RFFT_N; s += len) {
            for (unsigned j = 0; j < half; j++) {
                double wr = p->cos_[j * step], wi = inverse ? -p->sin_[j * step] : p->sin_[j * step];
                unsigned a = s + j, b = a + half;
                double tr = re[b] * wr - im[b] * wi;
                double ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
    }
}

void rfft_forward(rfft_plan *p, const double *x, double *re, double *im)
{
    for (unsigned i = 0; i < RFFT_N; i++) {
        p->re[p->rev[i]] = x[i];
        p->im[p->rev[i]] = 0.0;
    }
    butterflies(p, 0);
    for (unsigned k = 0; k < RFFT_BINS; k++) {
        re[k] = p->re[k];
        im[k] = p->im[k];
    }
}

void rfft_inverse(rfft_plan *p, const double *re, const double *im, double *x)
{
    for (unsigned k = 0; k < RFFT_N; k++) {
        double r, i;
        if (k < RFFT_BINS) { r = re[k]; i = (k == 0 || k == RFFT_N / 2) ? 0.0 : im[k]; }
        else { r = re[RFFT_N - k]; i = -im[RFFT_N - k]; }
        p->re[p->rev[k]] = r;
        p->im[p->rev[k]] = i;
    }
    butterflies(p, 1);
    for (unsigned n = 0; n < RFFT_N; n++) x[n] = p->re[n] / RFFT_N;
}
