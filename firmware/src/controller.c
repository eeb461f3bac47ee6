/* controller.c - the controller core: keeps the model, places uploaded blobs in a memory
 * level, runs a frame on the cluster with its counters, and serves the link (the request
 * handlers are in protocol.c).
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

static uint32_t now_ms(tdn_ctl *c)
{
    uint32_t t = hal_timer_ticks();
    c->clock_ticks += (uint32_t)(t - c->last_ticks);
    c->last_ticks = t;
    return (uint32_t)(c->clock_ticks * 1000u / hal_timer_hz());
}

void tdn_ctl_run(tdn_ctl *c)
{
    uint8_t in[512];
    tdn_packet pkt;
    for (;;) {
        int n = hal_transport_read(in, sizeof in, 20);
        size_t off = 0;
        uint32_t now;
        if (n < 0) return;
        now = now_ms(c);
        do {
            off += tdn_rx_feed(&c->rx, in + off, (size_t)n - off, now);
            while (tdn_rx_next(&c->rx, &pkt, now)) {
                size_t len = tdn_ctl_handle(c, &pkt, c->out, sizeof c->out);
                if (len) hal_transport_write(c->out, len);
            }
        } while (off < (size_t)n);
    }
}
