/* libtdn.h - the firmware's exact arithmetic as a host library: 16 kHz audio in, denoised
 * audio out, with no Python in the path. The one header of libtdn (build: `make -C firmware
 * lib` -> build/lib/libtdn.so; docs/native.md).
 *
 * Framing (the same as the Python engine, streamer/engine.py and streamer/pipeline.py):
 * 16 kHz mono; 400-sample periodic Hann analysis window, 100-sample hop, 512-point real FFT
 * (257 bins), frame t centred on sample t*100; the network (the firmware's kernels, blob
 * loader and schedule, unchanged) turns the frame's magnitudes into a mask; the masked
 * spectrum is inverse-transformed, windowed, overlap-added and divided by the overlap-added
 * squared window. The output lags the input by TDN_LIB_LATENCY = 300 samples (18.75 ms).
 * The STFT runs in binary64; the network exactly as on the MCU (docs/arithmetic-contract.md):
 * the same masks, bit for bit, as the emulator and the firmware.
 *
 * Life cycle: tdn_lib_create (allocates: call it outside any real-time thread), then any
 * number of tdn_lib_process calls (allocate nothing, take no lock, make no system call:
 * real-time safe), tdn_lib_reset between streams, tdn_lib_destroy. One instance is one
 * stream with its recurrent state: use it from one thread at a time; separate instances may
 * run on separate threads at the same time.
 */
#ifndef LIBTDN_H
#define LIBTDN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TDN_LIB_API __attribute__((visibility("default")))
#else
#define TDN_LIB_API
#endif

#define TDN_LIB_SAMPLE_RATE 16000 /* Hz: the only rate (resample outside) */
#define TDN_LIB_HOP 100           /* samples per tdn_lib_process call */
#define TDN_LIB_LATENCY 300       /* samples: output sample n is input sample n - 300, enhanced */
#define TDN_LIB_BINS 257          /* STFT bins: network input and mask width */

typedef struct tdn_lib tdn_lib;

typedef struct {
    unsigned mode;       /* 1 fp16, 2 int8, 3 mixed (the blob's wire code) */
    unsigned cell;       /* 0 LSTM, 1 GRU */
    unsigned hidden;     /* hidden units per recurrent layer */
    unsigned blob_bytes; /* size of the model blob */
} tdn_lib_info;

/* A new instance for the TDNB model blob (docs/protocol.md, "The device model blob"; written
 * by streamer.link.blob.encode_blob) of `bytes` bytes; the blob is copied, so the caller's
 * buffer may go. NULL when the blob is invalid or memory is short, with the reason in *why
 * (when why is not NULL; a static string). The recurrent state starts at zero, the
 * attenuation limit off, bypass off. */
TDN_LIB_API tdn_lib *tdn_lib_create(const void *blob, size_t bytes, const char **why);

/* Free the instance (NULL is ignored). */
TDN_LIB_API void tdn_lib_destroy(tdn_lib *lib);

/* Start a new stream: zero the recurrent state and the STFT's buffers. */
TDN_LIB_API void tdn_lib_reset(tdn_lib *lib);

/* Push TDN_LIB_HOP input samples (full scale +-1.0), get TDN_LIB_HOP output samples: the
 * input TDN_LIB_LATENCY samples ago, enhanced. The first TDN_LIB_LATENCY output samples of a
 * stream stand for the time before it and are silence (the Python engine emits there what the
 * mask spreads backwards from the first frames, which replay cuts off). `in` and `out` may be
 * the same buffer. Real-time safe. */
TDN_LIB_API void tdn_lib_process(tdn_lib *lib, const float *in, float *out);

/* The network alone, one STFT frame: TDN_LIB_BINS binary16 magnitudes (bit patterns) in,
 * TDN_LIB_BINS binary16 mask values out; advances the recurrent state (which
 * tdn_lib_process shares: use one or the other on an instance). The firmware's FRAME. */
TDN_LIB_API void tdn_lib_network(tdn_lib *lib, const uint16_t *magnitudes, uint16_t *mask);

/* Limit the suppression to `db` decibels: every mask value is floored at
 * f32(10^(-db/20)) after the network and before it multiplies the spectrum (the Python
 * pipeline's --atten-lim-db, same floor to the bit). INFINITY turns the limit off (the mask
 * as the network gave it), as does creating the instance. Returns 0, or -1 (and changes
 * nothing) for a negative or NaN `db`. */
TDN_LIB_API int tdn_lib_set_atten_lim_db(tdn_lib *lib, double db);

/* Bypass on (nonzero): the network is not run and the mask is 1, so the output is the input
 * delayed by TDN_LIB_LATENCY (to ~1e-16); the recurrent state is kept for when it turns off. */
TDN_LIB_API void tdn_lib_set_bypass(tdn_lib *lib, int on);

/* The model's mode, cell, hidden size and blob size. */
TDN_LIB_API void tdn_lib_get_info(const tdn_lib *lib, tdn_lib_info *info);

#ifdef __cplusplus
}
#endif

#endif
