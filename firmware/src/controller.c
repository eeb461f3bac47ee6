/* controller.c - the controller core's request handlers and loop (docs/protocol.md).
 *
 * MODEL_BEGIN opens an upload into the staging region (the L3 region, the largest) and
 * unloads the current model (its memory may be overwritten). Chunks must come in order.
 * MODEL_END checks the size and CRC-32, moves the blob to the smallest level it fits
 * (L2, else MRAM, else L3) and validates it there. FRAME runs the network on the cluster
 * and replies with the mask and the frame's counters.
 */
#include <string.h>

#include "tdn/config.h"
#include "tdn/controller.h"
#include "tdn/hal.h"
#include "tdn/rt.h"

static void put_u16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static void put_u64(uint8_t *p, uint64_t v) { put_u32(p, (uint32_t)v); put_u32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void tdn_ctl_init(tdn_ctl *c)
{
    memset(c, 0, sizeof *c);
    tdn_rx_init(&c->rx, tdn_is_request);
    c->last_ticks = hal_timer_ticks();
}

uint8_t *tdn_ctl_stage(uint32_t *capacity) { return hal_mem(TDN_LEVEL_L3, capacity); }

static size_t reply(uint8_t *out, size_t cap, const tdn_packet *req, const uint8_t *payload, size_t n)
{
    return tdn_packet_encode(out, cap, TDN_REPLY(req->type), req->seq, payload, n);
}

static size_t err_reply(tdn_ctl *c, uint8_t *out, size_t cap, const tdn_packet *req, int code, const char *text)
{
    size_t n = strlen(text);
    if (n > TDN_MAX_ERROR_TEXT) n = TDN_MAX_ERROR_TEXT;
    c->reply[0] = (uint8_t)code;
    c->reply[1] = req->type;
    memcpy(c->reply + 2, text, n);
    return tdn_packet_encode(out, cap, TDN_MSG_ERROR, req->seq, c->reply, n + 2);
}

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

size_t tdn_ctl_counters(uint8_t *p, const uint64_t *instret_delta)
{
    uint8_t *q = p;
    q[0] = 1;
    q[1] = TDN_WORKERS;
    q[2] = q[3] = 0;
    put_u32(q + 4, tdn_cnt.ticks);
    q += 8;
    for (unsigned i = 0; i < TDN_WORKERS; i++, q += 4) put_u32(q, tdn_cnt.macs_int8[i]);
    for (unsigned i = 0; i < TDN_WORKERS; i++, q += 4) put_u32(q, tdn_cnt.macs_fp16[i]);
    for (unsigned i = 0; i < TDN_LEVELS; i++, q += 4) put_u32(q, tdn_cnt.l1_bytes[i]);
    put_u32(q, tdn_cnt.dma_transfers);
    put_u32(q + 4, tdn_cnt.forks);
    put_u32(q + 8, rt_barrier_waits_total());
    q += 12;
    for (unsigned i = 0; i <= TDN_WORKERS; i++, q += 8) put_u64(q, instret_delta ? instret_delta[i] : 0);
    return (size_t)(q - p);
}

static size_t on_info(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint8_t *p = c->reply;
    uint32_t l2, mram, l3;
    const char *name = hal_target_name();
    size_t nl = strlen(name);
    hal_mem(TDN_LEVEL_L2, &l2);
    hal_mem(TDN_LEVEL_MRAM, &mram);
    hal_mem(TDN_LEVEL_L3, &l3);
    p[0] = TDN_FW_MAJOR; p[1] = TDN_FW_MINOR; p[2] = TDN_FW_PATCH;
    p[3] = TDN_PROTOCOL_VERSION;
    p[4] = TDN_WORKERS;
    p[5] = 0x7;  /* fp16, int8, mixed */
    p[6] = 0x3;  /* LSTM, GRU */
    p[7] = 0;
    put_u32(p + 8, TDN_L1_BYTES);
    put_u32(p + 12, l2);
    put_u32(p + 16, mram);
    put_u32(p + 20, l3);
    put_u32(p + 24, hal_timer_hz());
    memset(p + 28, 0, 16);
    memcpy(p + 28, name, nl > 16 ? 16 : nl);
    return reply(out, cap, req, p, 44);
}

static size_t on_begin(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint32_t total, stage_cap;
    if (req->len != 8) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "MODEL_BEGIN needs u32 size, u32 crc");
    total = get_u32(req->payload);
    tdn_ctl_stage(&stage_cap);
    c->uploading = 0;
    c->loaded = 0; /* the upload may overwrite the current model's memory */
    if (total == 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "empty model");
    if (total > stage_cap) return err_reply(c, out, cap, req, TDN_E_MODEL_TOO_LARGE, "model larger than the device's buffer");
    c->uploading = 1;
    c->up_total = total;
    c->up_crc = get_u32(req->payload + 4);
    c->up_received = 0;
    put_u32(c->reply, total);
    return reply(out, cap, req, c->reply, 4);
}

static size_t on_chunk(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint32_t off, n, stage_cap;
    uint8_t *stage = tdn_ctl_stage(&stage_cap);
    if (req->len < 4 || req->len > 4 + TDN_MAX_CHUNK)
        return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "MODEL_CHUNK needs u32 offset and 0..1024 bytes");
    if (!c->uploading) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "no MODEL_BEGIN");
    off = get_u32(req->payload);
    n = req->len - 4u;
    if (off != c->up_received) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "chunk offset out of order");
    if (n > c->up_total - c->up_received)
        return err_reply(c, out, cap, req, TDN_E_MODEL_TOO_LARGE, "chunk beyond the declared model size");
    memcpy(stage + off, req->payload + 4, n);
    c->up_received += n;
    put_u32(c->reply, c->up_received);
    return reply(out, cap, req, c->reply, 4);
}

static size_t on_end(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint32_t stage_cap;
    uint8_t *stage = tdn_ctl_stage(&stage_cap);
    const char *why = "";
    int rc;
    if (req->len != 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "MODEL_END takes no payload");
    if (!c->uploading) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "no MODEL_BEGIN");
    if (c->up_received != c->up_total) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "model incomplete");
    c->uploading = 0;
    if (tdn_crc32(0, stage, c->up_total) != c->up_crc)
        return err_reply(c, out, cap, req, TDN_E_BAD_CHECKSUM, "model CRC-32 mismatch");
    rc = tdn_ctl_install(c, c->up_total, &why);
    if (rc != TDN_OK) return err_reply(c, out, cap, req, rc, why);
    {
        uint8_t *p = c->reply;
        p[0] = c->model.mode;
        p[1] = c->model.cell;
        put_u16(p + 2, c->model.hidden);
        put_u32(p + 4, c->model.bytes);
        p[8] = (uint8_t)c->model.level;
        p[9] = p[10] = p[11] = 0;
        return reply(out, cap, req, p, 12);
    }
}

static size_t on_frame(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint16_t mags[TDN_BINS], mask[TDN_BINS];
    uint64_t before[TDN_WORKERS + 1], delta[TDN_WORKERS + 1];
    uint32_t t0;
    uint8_t *p = c->reply;
    if (req->len != 4 + 2 * TDN_BINS)
        return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "FRAME needs u32 index and 257 binary16 values");
    if (!c->loaded) return err_reply(c, out, cap, req, TDN_E_NO_MODEL, "no model loaded");
    for (unsigned i = 0; i < TDN_BINS; i++)
        mags[i] = (uint16_t)(req->payload[4 + 2 * i] | (req->payload[5 + 2 * i] << 8));
    memcpy(p, req->payload, 4);
    rt_counters_reset();
    for (unsigned i = 0; i <= TDN_WORKERS; i++) before[i] = hal_instret(i);
    t0 = hal_timer_ticks();
    tdn_model_frame(&c->model, mags, mask);
    tdn_cnt.ticks = hal_timer_ticks() - t0;
    for (unsigned i = 0; i <= TDN_WORKERS; i++) delta[i] = hal_instret(i) - before[i];
    for (unsigned i = 0; i < TDN_BINS; i++) put_u16(p + 4 + 2 * i, mask[i]);
    c->frames++;
    return reply(out, cap, req, p, 4 + 2 * TDN_BINS + tdn_ctl_counters(p + 4 + 2 * TDN_BINS, delta));
}

size_t tdn_ctl_handle(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    switch (req->type) {
    case TDN_MSG_INFO:
        if (req->len != 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "INFO takes no payload");
        return on_info(c, req, out, cap);
    case TDN_MSG_MODEL_BEGIN: return on_begin(c, req, out, cap);
    case TDN_MSG_MODEL_CHUNK: return on_chunk(c, req, out, cap);
    case TDN_MSG_MODEL_END: return on_end(c, req, out, cap);
    case TDN_MSG_FRAME: return on_frame(c, req, out, cap);
    case TDN_MSG_RESET:
        if (req->len != 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "RESET takes no payload");
        tdn_model_reset(&c->model);
        return reply(out, cap, req, NULL, 0);
    case TDN_MSG_STATS:
        if (req->len != 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "STATS takes no payload");
        put_u32(c->reply, c->rx.bad_header);
        put_u32(c->reply + 4, c->rx.bad_crc);
        put_u32(c->reply + 8, c->rx.stale);
        put_u32(c->reply + 12, c->frames);
        return reply(out, cap, req, c->reply, 16);
    default:
        return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "unknown request");
    }
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
