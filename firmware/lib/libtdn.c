/* libtdn.c - the STFT around the firmware's network, one 100-sample hop at a time (libtdn.h).
 *
 * Analysis and synthesis follow streamer/engine.py operation for operation, in binary64, so
 * that the output equals the Python engine's to ~1e-16; the network is the firmware's own
 * tdn_model_frame over hal/lib (one worker, inline). The magnitudes reach the network as the
 * contract's input stage, f16(sanitize(f32(|X|))), exactly as the link backend sends them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hal_lib.h"
#include "libtdn.h"
#include "rfft.h"
#include "tdn/config.h"
#include "tdn/fp16.h"
#include "tdn/model.h"

#define FRAME 400
#define HOP TDN_LIB_HOP
#define WIN_OFFSET ((RFFT_N - FRAME) / 2)

#if TDN_LIB_BINS != TDN_BINS || RFFT_BINS != TDN_BINS
#error "the library's bins, the FFT's and the firmware's must agree"
#endif

struct tdn_lib {
    tdn_model model;                 /* the firmware's state and workspace */
    uint8_t *l1;                     /* this instance's tile buffer (TDN_L1_BYTES) */
    uint8_t *blob;                   /* this instance's copy of the blob, 8-byte aligned */
    uint32_t blob_bytes;
    rfft_plan fft;
    double window[FRAME], window_sq[FRAME];
    double input[FRAME], output[FRAME], weight[FRAME];
    double fft_in[RFFT_N], re[RFFT_BINS], im[RFFT_BINS], frame[RFFT_N];
    int primed;                      /* a hop has been pushed since the reset: frames exist */
    unsigned early_hops;             /* output hops still before the stream began (LATENCY / HOP) */
    int bypass;
    float floor;                     /* mask floor; 0 = no attenuation limit */
};

static void *zalloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63u) & ~(size_t)63u);
    if (p) memset(p, 0, bytes);
    return p;
}

tdn_lib *tdn_lib_create(const void *blob, size_t bytes, const char **why)
{
    tdn_lib *lib;
    const char *reason = "ok";
    int rc;
    if (why) *why = "ok";
    if (blob == NULL || bytes < TDN_BLOB_HEADER || bytes > 0xffffffffu) {
        if (why) *why = "no model blob, or shorter than its header";
        return NULL;
    }
    lib = zalloc(sizeof *lib);
    if (lib) lib->l1 = zalloc(TDN_L1_BYTES);
    if (lib) lib->blob = zalloc(bytes);
    if (!lib || !lib->l1 || !lib->blob) {
        tdn_lib_destroy(lib);
        if (why) *why = "out of memory";
        return NULL;
    }
    memcpy(lib->blob, blob, bytes);
    lib->blob_bytes = (uint32_t)bytes;
    /* The level only labels the DMA counters: the blob lies in host memory. */
    rc = tdn_model_parse(&lib->model, lib->blob, lib->blob_bytes, TDN_LEVEL_L2, &reason);
    if (rc != TDN_OK) {
        tdn_lib_destroy(lib);
        if (why) *why = reason;
        return NULL;
    }
    rfft_init(&lib->fft);
    for (unsigned n = 0; n < FRAME; n++) {
        /* the periodic Hann window, as engine.analysis_window computes it */
        lib->window[n] = 0.5 - 0.5 * cos(2.0 * 3.141592653589793 * n / FRAME);
        lib->window_sq[n] = lib->window[n] * lib->window[n];
    }
    tdn_lib_reset(lib);
    return lib;
}

void tdn_lib_destroy(tdn_lib *lib)
{
    if (!lib) return;
    free(lib->blob);
    free(lib->l1);
    free(lib);
}

void tdn_lib_reset(tdn_lib *lib)
{
    tdn_model_reset(&lib->model);
    memset(lib->input, 0, sizeof lib->input);
    memset(lib->output, 0, sizeof lib->output);
    memset(lib->weight, 0, sizeof lib->weight);
    memset(lib->fft_in, 0, sizeof lib->fft_in);
    lib->primed = 0;
    lib->early_hops = TDN_LIB_LATENCY / HOP;
}

void tdn_lib_network(tdn_lib *lib, const uint16_t *magnitudes, uint16_t *mask)
{
    hal_lib_bind_l1(lib->l1);
    tdn_model_frame(&lib->model, magnitudes, mask);
}

int tdn_lib_set_atten_lim_db(tdn_lib *lib, double db)
{
    if (isnan(db) || db < 0.0) return -1;
    /* pipeline.mask_floor: f32(10 ** (-db / 20)); +inf gives 0, and max(mask, 0) is the mask */
    lib->floor = (float)pow(10.0, -db / 20.0);
    return 0;
}

void tdn_lib_set_bypass(tdn_lib *lib, int on) { lib->bypass = on != 0; }

void tdn_lib_get_info(const tdn_lib *lib, tdn_lib_info *info)
{
    info->mode = lib->model.mode;
    info->cell = lib->model.cell;
    info->hidden = lib->model.hidden;
    info->blob_bytes = lib->blob_bytes;
}

/* The network's mask for the spectrum in lib->re/im, floored, as binary32 values. */
static void frame_mask(tdn_lib *lib, float *mask)
{
    uint16_t mags[TDN_BINS], bits[TDN_BINS];
    if (lib->bypass) {
        for (unsigned k = 0; k < TDN_BINS; k++) mask[k] = 1.0f;
        return;
    }
    for (unsigned k = 0; k < TDN_BINS; k++) {
        /* np.abs(spectrum).astype(float32), then the contract's sanitize and f16 */
        float m = (float)hypot(lib->re[k], lib->im[k]);
        if (isnan(m)) m = 0.0f;
        mags[k] = fp16_sat(m);
    }
    tdn_lib_network(lib, mags, bits);
    for (unsigned k = 0; k < TDN_BINS; k++) {
        float v = fp16_to_f32(bits[k]);
        mask[k] = v < lib->floor ? lib->floor : v;
    }
}

void tdn_lib_process(tdn_lib *lib, const float *in, float *out)
{
    double block[HOP];
    for (unsigned i = 0; i < HOP; i++) block[i] = in[i]; /* `in` may be `out` */
    /* analyse: slide the input by a hop */
    memmove(lib->input, lib->input + HOP, (FRAME - HOP) * sizeof(double));
    memcpy(lib->input + FRAME - HOP, block, sizeof block);
    /* synthesise: slide the output and its weight by a hop */
    memmove(lib->output, lib->output + HOP, (FRAME - HOP) * sizeof(double));
    memmove(lib->weight, lib->weight + HOP, (FRAME - HOP) * sizeof(double));
    memset(lib->output + FRAME - HOP, 0, HOP * sizeof(double));
    memset(lib->weight + FRAME - HOP, 0, HOP * sizeof(double));
    if (lib->primed) {
        /* The newest frame; on a stream's first hop it would be centred before the stream
           began, and the offline convention has no such frame (engine.StreamingStft). */
        float mask[TDN_BINS];
        for (unsigned n = 0; n < FRAME; n++) lib->fft_in[WIN_OFFSET + n] = lib->input[n] * lib->window[n];
        rfft_forward(&lib->fft, lib->fft_in, lib->re, lib->im);
        frame_mask(lib, mask);
        for (unsigned k = 0; k < TDN_BINS; k++) {
            lib->re[k] *= (double)mask[k];
            lib->im[k] *= (double)mask[k];
        }
        rfft_inverse(&lib->fft, lib->re, lib->im, lib->frame);
        for (unsigned n = 0; n < FRAME; n++) {
            lib->output[n] += lib->frame[WIN_OFFSET + n] * lib->window[n];
            lib->weight[n] += lib->window_sq[n];
        }
    }
    lib->primed = 1;
    if (lib->early_hops) {
        /* These output samples stand for the time before the first input sample: silence. The
           overlap-add holds there what the mask spread out of the first frames, divided by a
           small window weight (up to ~50x full scale): Python's replay cuts these samples off,
           a plugin must not play them as a click. */
        lib->early_hops--;
        memset(out, 0, HOP * sizeof *out);
        return;
    }
    for (unsigned i = 0; i < HOP; i++) {
        /* where no window overlaps yet (stream start) there is no signal: silence */
        double w = lib->weight[i];
        out[i] = (float)(w > 1e-10 ? lib->output[i] / w : 0.0);
    }
}
