/* handlers.c - serving the link: the receive loop (tdn_ctl_run) and the message handlers, each
 * request to the controller's state and one reply (docs/protocol.md, "Messages"). The framing
 * is protocol.c's, the state and the frame controller.c's; neither calls back into this file.
 *
 * Handlers (tdn_ctl_handle): every request gets exactly one reply with its seq, or ERROR.
 * MODEL_BEGIN opens an upload into the staging region (the L3 region, the largest) and
 * unloads the current model (its memory may be overwritten). Chunks must come in order.
 * MODEL_END checks the size and CRC-32, then tdn_ctl_install validates the blob and places its
 * rows (the planner, or the whole blob in the level the host asked for); the reply has the plan.
 * FRAME runs the network on the cluster and replies with the mask and the frame's counters.
 * TRACE returns one of the last frame's intermediates, read from the model's frame workspace
 * (the values tdn-run traces), so a host can name the first layer that differs.
 */
#include <string.h>

#include "tdn/config.h"
#include "tdn/controller.h"
#include "tdn/hal.h"
#include "tdn/le.h"
#include "tdn/protocol.h"
#include "tdn/rt.h"

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

size_t tdn_ctl_counters(uint8_t *p, const uint64_t *instret_delta)
{
    uint8_t *q = p;
    q[0] = 1;
    q[1] = TDN_WORKERS;
    q[2] = q[3] = 0;
    tdn_put_u32(q + 4, tdn_cnt.ticks);
    q += 8;
    for (unsigned i = 0; i < TDN_WORKERS; i++, q += 4) tdn_put_u32(q, tdn_cnt.macs_int8[i]);
    for (unsigned i = 0; i < TDN_WORKERS; i++, q += 4) tdn_put_u32(q, tdn_cnt.macs_fp16[i]);
    for (unsigned i = 0; i < TDN_LEVELS; i++, q += 4) tdn_put_u32(q, tdn_cnt.l1_bytes[i]);
    tdn_put_u32(q, tdn_cnt.dma_transfers);
    tdn_put_u32(q + 4, tdn_cnt.forks);
    tdn_put_u32(q + 8, rt_barrier_waits_total());
    q += 12;
    for (unsigned i = 0; i <= TDN_WORKERS; i++, q += 8) tdn_put_u64(q, instret_delta ? instret_delta[i] : 0);
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
    tdn_put_u32(p + 8, TDN_L1_BYTES);
    tdn_put_u32(p + 12, l2);
    tdn_put_u32(p + 16, mram);
    tdn_put_u32(p + 20, l3);
    tdn_put_u32(p + 24, hal_timer_hz());
    memset(p + 28, 0, 16);
    memcpy(p + 28, name, nl > 16 ? 16 : nl);
    return reply(out, cap, req, p, 44);
}

static size_t on_begin(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint32_t total, stage_cap;
    if (req->len != 8) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "MODEL_BEGIN needs u32 size, u32 crc");
    total = tdn_get_u32(req->payload);
    tdn_ctl_stage(&stage_cap);
    c->uploading = 0;
    c->traced = 0;
    c->loaded = 0; /* the upload may overwrite the current model's memory */
    if (total == 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "empty model");
    if (total > stage_cap) return err_reply(c, out, cap, req, TDN_E_MODEL_TOO_LARGE, "model larger than the device's buffer");
    c->uploading = 1;
    c->up_total = total;
    c->up_crc = tdn_get_u32(req->payload + 4);
    c->up_received = 0;
    tdn_put_u32(c->reply, total);
    return reply(out, cap, req, c->reply, 4);
}

static size_t on_chunk(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint32_t off, n, stage_cap;
    uint8_t *stage = tdn_ctl_stage(&stage_cap);
    if (req->len < 4 || req->len > 4 + TDN_MAX_CHUNK)
        return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "MODEL_CHUNK needs u32 offset and 0..1024 bytes");
    if (!c->uploading) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "no MODEL_BEGIN");
    off = tdn_get_u32(req->payload);
    n = req->len - 4u;
    if (off != c->up_received) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "chunk offset out of order");
    if (n > c->up_total - c->up_received)
        return err_reply(c, out, cap, req, TDN_E_MODEL_TOO_LARGE, "chunk beyond the declared model size");
    memcpy(stage + off, req->payload + 4, n);
    c->up_received += n;
    tdn_put_u32(c->reply, c->up_received);
    return reply(out, cap, req, c->reply, 4);
}

/* ModelInfo (docs/protocol.md): the model, its level, the placement asked for and, per layer,
 * the plan: tiles, rows per tile, bytes per level, then each tile's L2 and MRAM row cuts. */
static size_t model_info(const tdn_model *m, uint8_t *p)
{
    uint8_t *q = p + 12;
    p[0] = m->mode;
    p[1] = m->cell;
    tdn_put_u16(p + 2, m->hidden);
    tdn_put_u32(p + 4, m->bytes);
    p[8] = (uint8_t)m->level;
    p[9] = m->placement;
    p[10] = TDN_LAYERS;
    p[11] = 0;
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        const tdn_layer *L = &m->layer[li];
        tdn_put_u16(q, L->tiles);
        tdn_put_u16(q + 2, L->rows_per_tile);
        for (int l = 0; l < TDN_LEVELS; l++) tdn_put_u32(q + 4 + 4 * l, tdn_plan_bytes(L, l));
        q += 16;
        for (unsigned t = 0; t < L->tiles; t++, q += 4) {
            tdn_put_u16(q, L->cut[t][0]);
            tdn_put_u16(q + 2, L->cut[t][1]);
        }
    }
    return (size_t)(q - p);
}

static size_t on_end(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint32_t stage_cap;
    uint8_t *stage = tdn_ctl_stage(&stage_cap);
    const char *why = "";
    int rc, placement = TDN_PLACE_AUTO;
    if (req->len > 1) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "MODEL_END takes at most a u8 placement");
    if (req->len == 1) placement = req->payload[0];
    if (placement > TDN_PLACE_L3) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "unknown placement");
    if (!c->uploading) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "no MODEL_BEGIN");
    if (c->up_received != c->up_total) return err_reply(c, out, cap, req, TDN_E_BAD_SEQUENCE, "model incomplete");
    c->uploading = 0;
    if (tdn_crc32(0, stage, c->up_total) != c->up_crc)
        return err_reply(c, out, cap, req, TDN_E_BAD_CHECKSUM, "model CRC-32 mismatch");
    rc = tdn_ctl_install(c, c->up_total, placement, &why);
    if (rc != TDN_OK) return err_reply(c, out, cap, req, rc, why);
    return reply(out, cap, req, c->reply, model_info(&c->model, c->reply));
}

static size_t on_frame(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    uint16_t mags[TDN_BINS], mask[TDN_BINS];
    uint64_t instret[TDN_WORKERS + 1];
    uint8_t *p = c->reply;
    if (req->len != 4 + 2 * TDN_BINS)
        return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "FRAME needs u32 index and 257 binary16 values");
    if (!c->loaded) return err_reply(c, out, cap, req, TDN_E_NO_MODEL, "no model loaded");
    for (unsigned i = 0; i < TDN_BINS; i++)
        mags[i] = (uint16_t)(req->payload[4 + 2 * i] | (req->payload[5 + 2 * i] << 8));
    tdn_ctl_frame(c, mags, mask, instret);
    memcpy(c->last_mask, mask, sizeof mask);
    c->traced = 1;
    memcpy(p, req->payload, 4);
    for (unsigned i = 0; i < TDN_BINS; i++) tdn_put_u16(p + 4 + 2 * i, mask[i]);
    return reply(out, cap, req, p, 4 + 2 * TDN_BINS + tdn_ctl_counters(p + 4 + 2 * TDN_BINS, instret));
}

/* TRACE: request u8 tensor id; reply u8 id, u8 dtype, u16 count, count values (docs/protocol.md). */
enum { TR_F32 = 1, TR_I8 = 2, TR_I16 = 3, TR_F16 = 4 };

static size_t on_trace(tdn_ctl *c, const tdn_packet *req, uint8_t *out, size_t cap)
{
    const tdn_model *m = &c->model;
    uint8_t *p = c->reply, id, dtype;
    const void *src;
    unsigned n, size, H = m->hidden, l;
    int fp16 = m->mode == TDN_MODE_FP16, lstm = m->cell == TDN_CELL_LSTM;
    if (req->len != 1) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "TRACE needs a u8 tensor id");
    id = req->payload[0];
    if (id > 6) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "unknown TRACE tensor id");
    if (!c->loaded || !c->traced) return err_reply(c, out, cap, req, TDN_E_NO_MODEL, "no frame computed");
    switch (id) {
    case 0: src = m->y0; dtype = TR_F32; n = H; break;
    case 5: src = m->y1; dtype = TR_F32; n = TDN_BINS; break;
    case 6: src = c->last_mask; dtype = TR_F16; n = TDN_BINS; break;
    default: /* 1, 2: rnn1 h, c; 3, 4: rnn2 h, c (c: LSTM only, else 0 values) */
        l = (id - 1u) / 2u;
        if ((id - 1u) % 2u == 0) { src = fp16 ? (const void *)m->h[l] : (const void *)m->hq[l]; dtype = fp16 ? TR_F32 : TR_I8; }
        else { src = fp16 ? (const void *)m->c[l] : (const void *)m->cq[l]; dtype = fp16 ? TR_F32 : TR_I16; }
        n = ((id - 1u) % 2u == 0 || lstm) ? H : 0;
        break;
    }
    size = dtype == TR_F32 ? 4u : dtype == TR_I8 ? 1u : 2u;
    p[0] = id;
    p[1] = dtype;
    tdn_put_u16(p + 2, n);
    /* the targets are little-endian: the workspace's bytes are the wire's */
    memcpy(p + 4, src, (size_t)n * size);
    return reply(out, cap, req, p, 4 + (size_t)n * size);
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
        c->traced = 0;
        return reply(out, cap, req, NULL, 0);
    case TDN_MSG_STATS:
        if (req->len != 0) return err_reply(c, out, cap, req, TDN_E_BAD_REQUEST, "STATS takes no payload");
        tdn_put_u32(c->reply, c->rx.bad_header);
        tdn_put_u32(c->reply + 4, c->rx.bad_crc);
        tdn_put_u32(c->reply + 8, c->rx.stale);
        tdn_put_u32(c->reply + 12, c->frames);
        return reply(out, cap, req, c->reply, 16);
    case TDN_MSG_TRACE: return on_trace(c, req, out, cap);
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
