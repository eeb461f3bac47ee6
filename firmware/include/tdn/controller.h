/* controller.h - the controller core: runs the link protocol, keeps the model, orchestrates
 * the cluster for each frame and reports the frame's counters. */
#ifndef TDN_CONTROLLER_H
#define TDN_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "tdn/model.h"
#include "tdn/protocol.h"

#define TDN_COUNTERS_BYTES(n) (8u + 8u * (n) + 12u + 12u + 8u * ((n) + 1u))

typedef struct {
    tdn_model model;
    int loaded;
    /* model upload into the staging region (the L3 region) */
    int uploading;
    uint32_t up_total, up_crc, up_received;
    uint32_t frames;        /* FRAME requests answered with a mask */
    int traced;             /* the model's workspace holds the last frame's intermediates (TRACE) */
    uint16_t last_mask[TDN_BINS];
    tdn_rx rx;
    uint8_t reply[TDN_MAX_PAYLOAD];
    uint8_t out[TDN_MAX_PACKET];
    uint64_t clock_ticks;   /* for the millisecond clock of the receiver */
    uint32_t last_ticks;
} tdn_ctl;

void tdn_ctl_init(tdn_ctl *c);
/* Handle one request (protocol.c); writes the encoded reply packet to out (cap >= TDN_MAX_PACKET) and
 * returns its length (every request gets exactly one reply). */
size_t tdn_ctl_handle(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap);
/* Parse the blob of `total` bytes now in the staging region, plan where its rows live
 * (`placement` TDN_PLACE_AUTO: the planner; TDN_PLACE_L2/MRAM/L3: the whole blob there, if it
 * fits) and copy them there. Returns TDN_OK or an error code with a reason. */
int tdn_ctl_install(tdn_ctl *c, uint32_t total, int placement, const char **why);
/* Staging region for uploads and its capacity. */
uint8_t *tdn_ctl_stage(uint32_t *capacity);
/* Run one frame on the cluster: counters into tdn_cnt (ticks included), the retired
 * instructions per hart (controller first) into instret[TDN_WORKERS + 1]. */
void tdn_ctl_frame(tdn_ctl *c, const uint16_t *mags, uint16_t *mask, uint64_t *instret);
/* Serve the transport until it fails for good. */
void tdn_ctl_run(tdn_ctl *c);
/* Serialise the last frame's counters (TDN_COUNTERS_BYTES(TDN_WORKERS) bytes). */
size_t tdn_ctl_counters(uint8_t *p, const uint64_t *instret_delta);

#endif
