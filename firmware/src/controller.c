/* controller.c - the controller core's state: keeps the model, places uploaded blobs in a
 * memory level, runs a frame on the cluster with its counters. Serving the link (the receive
 * loop and the request handlers) is handlers.c's.
 *
 * MODEL_END moves the blob from the staging region to the smallest level it fits (L2, else
 * MRAM, else L3) and validates it there.
 */
#include <string.h>

#include "tdn/config.h"
#include "tdn/controller.h"
#include "tdn/hal.h"
#include "tdn/rt.h"

void tdn_ctl_init(tdn_ctl *c)
{
    memset(c, 0, sizeof *c);
    tdn_rx_init(&c->rx, tdn_is_request);
    c->last_ticks = hal_timer_ticks();
}

uint8_t *tdn_ctl_stage(uint32_t *capacity) { return hal_mem(TDN_LEVEL_L3, capacity); }

int tdn_ctl_install(tdn_ctl *c, uint32_t total, const char **why)
{
    uint32_t cap_stage, cap;
    uint8_t *stage = tdn_ctl_stage(&cap_stage);
    int level;
    c->loaded = 0;
    for (level = TDN_LEVEL_L2; level < TDN_LEVELS; level++) {
        hal_mem(level, &cap);
        if (total <= cap) break;
    }
    if (level == TDN_LEVELS || total > cap_stage) {
        if (why) *why = "blob larger than every memory level";
        return TDN_E_MODEL_TOO_LARGE;
    }
    {
        uint8_t *dst = hal_mem(level, &cap);
        int rc;
        if (dst != stage) memcpy(dst, stage, total);
        rc = tdn_model_parse(&c->model, dst, total, level, why);
        if (rc != TDN_OK) return rc;
    }
    c->loaded = 1;
    return TDN_OK;
}

void tdn_ctl_frame(tdn_ctl *c, const uint16_t *mags, uint16_t *mask, uint64_t *instret)
{
    uint64_t before[TDN_WORKERS + 1];
    uint32_t t0;
    rt_counters_reset();
    for (unsigned i = 0; i <= TDN_WORKERS; i++) before[i] = hal_instret(i);
    t0 = hal_timer_ticks();
    tdn_model_frame(&c->model, mags, mask);
    tdn_cnt.ticks = hal_timer_ticks() - t0;
    for (unsigned i = 0; i <= TDN_WORKERS; i++) instret[i] = hal_instret(i) - before[i];
    c->frames++;
}
