/* controller.c - the controller core's state: keeps the model, places uploaded blobs in a
 * memory level, runs a frame on the cluster with its counters. Serving the link (the receive
 * loop and the request handlers) is handlers.c's.
 *
 * MODEL_END validates the blob where it was uploaded (the staging region, L3), plans where
 * each tile's rows live (plan.c: L2, then MRAM, the rest stays in L3) and copies them there;
 * a host may instead ask for the whole blob in one level (TDN_PLACE_*).
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

int tdn_ctl_install(tdn_ctl *c, uint32_t total, int placement, const char **why)
{
    uint32_t cap_stage, cap[2], whole;
    uint8_t *stage = tdn_ctl_stage(&cap_stage);
    int rc, level = -1;
    c->loaded = 0;
    if (placement < TDN_PLACE_AUTO || placement > TDN_PLACE_L3) {
        if (why) *why = "unknown placement";
        return TDN_E_BAD_REQUEST;
    }
    if (total > cap_stage) {
        if (why) *why = "blob larger than every memory level";
        return TDN_E_MODEL_TOO_LARGE;
    }
    if (placement != TDN_PLACE_AUTO) {
        /* the whole blob in the level asked for, as before the planner */
        level = placement - 1;
        hal_mem(level, &whole);
        if (total > whole) {
            if (why) *why = "blob larger than the placement level asked for";
            return TDN_E_MODEL_TOO_LARGE;
        }
    }
    /* validated where it was uploaded (the L3 region), which keeps it: the plan's L3 rows */
    rc = tdn_model_parse(&c->model, stage, total, TDN_LEVEL_L3, why);
    if (rc != TDN_OK) return rc;
    c->model.region[0] = hal_mem(TDN_LEVEL_L2, &cap[0]);
    c->model.region[1] = hal_mem(TDN_LEVEL_MRAM, &cap[1]);
    if (level >= 0) {
        cap[0] = level == TDN_LEVEL_L2 ? cap[0] : 0u;
        cap[1] = level == TDN_LEVEL_MRAM ? cap[1] : 0u;
    }
    tdn_plan(c->model.layer, cap);
    tdn_plan_pack(&c->model);
    c->model.placement = (uint8_t)placement;
    c->model.level = TDN_LEVEL_SPLIT;
    for (int l = TDN_LEVEL_L2; l < TDN_LEVELS; l++) {
        uint32_t bytes = 0, all = 0;
        for (unsigned li = 0; li < TDN_LAYERS; li++) {
            bytes += tdn_plan_bytes(&c->model.layer[li], l);
            all += (uint32_t)c->model.layer[li].rows * tdn_row_bytes(&c->model.layer[li]);
        }
        if (bytes == all) c->model.level = l;
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
