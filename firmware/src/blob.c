/* blob.c - the TDNB model blob (docs/protocol.md, "Model blob"): its layout, read and checked.
 *
 * tdn_model_parse walks the layout model.py and link/blob.py share (each array 4-byte
 * aligned, in the order fc0, rnn1, rnn2, fc1, fc2), checks sizes, scales and binary16 biases,
 * and points each layer's segments into the blob where it lies (the memory level it was
 * uploaded to); nothing is copied. tdn_blob_size gives its size; tdn_model_shape the layers'
 * tiling alone (plan.c plans from it).
 */
#include <string.h>

#include "tdn/fp16.h"
#include "tdn/hal.h"
#include "tdn/kernels.h"
#include "tdn/le.h"
#include "tdn/model.h"
#include "tdn/rt.h"

static int layer_int8(unsigned mode, unsigned li)
{
    if (mode == TDN_MODE_INT8) return 1;
    if (mode == TDN_MODE_MIXED) return li == TDN_RNN1 || li == TDN_RNN2;
    return 0;
}

/* Walk the blob layout: fill each layer's segments (when blob != NULL) and return the size. */
static uint32_t layout(unsigned mode, unsigned cell, unsigned hidden, const uint8_t *blob,
                       tdn_layer *layers)
{
    static const uint16_t dense_rows[3] = {0, TDN_BINS, TDN_BINS};
    uint32_t off = TDN_BLOB_HEADER;
    unsigned gates = cell == TDN_CELL_LSTM ? 4u : 3u;
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        tdn_layer L;
        unsigned wsize;
        memset(&L, 0, sizeof L);
        L.int8 = (uint8_t)layer_int8(mode, li);
        wsize = L.int8 ? 1u : 2u;
        if (li == TDN_RNN1 || li == TDN_RNN2) {
            L.recurrent = 1;
            L.rows = (uint16_t)(gates * hidden);
            L.cols = (uint16_t)hidden;
            for (unsigned w = 0; w < 2; w++) {
                off = tdn_align4(off);
                L.seg[L.nseg++] = (tdn_seg){blob ? blob + off : NULL, hidden * wsize, L.int8 ? TDN_SEG_I8 : TDN_SEG_F16};
                off += (uint32_t)L.rows * hidden * wsize;
                if (L.int8) {
                    off = tdn_align4(off);
                    L.seg[L.nseg++] = (tdn_seg){blob ? blob + off : NULL, 4, TDN_SEG_F32};
                    off += (uint32_t)L.rows * 4u;
                }
            }
            for (unsigned b = 0; b < 2; b++) {
                off = tdn_align4(off);
                L.seg[L.nseg++] = (tdn_seg){blob ? blob + off : NULL, 2, TDN_SEG_F16};
                off += (uint32_t)L.rows * 2u;
            }
        } else {
            unsigned d = li == TDN_FC0 ? 0u : li == TDN_FC1 ? 1u : 2u;
            L.rows = d == 0 ? (uint16_t)hidden : dense_rows[d];
            L.cols = d == 1 ? (uint16_t)hidden : (uint16_t)TDN_BINS;
            off = tdn_align4(off);
            L.seg[L.nseg++] = (tdn_seg){blob ? blob + off : NULL, (uint32_t)L.cols * wsize, L.int8 ? TDN_SEG_I8 : TDN_SEG_F16};
            off += (uint32_t)L.rows * L.cols * wsize;
            if (L.int8) {
                off = tdn_align4(off);
                L.seg[L.nseg++] = (tdn_seg){blob ? blob + off : NULL, 4, TDN_SEG_F32};
                off += (uint32_t)L.rows * 4u;
            }
            off = tdn_align4(off);
            L.seg[L.nseg++] = (tdn_seg){blob ? blob + off : NULL, 2, TDN_SEG_F16};
            off += (uint32_t)L.rows * 2u;
        }
        {   /* rows per tile: as many as fit one L1 half (with alignment slack), rounded to a
               multiple of the worker count when the layer needs several tiles */
            uint32_t per_row = 0, n;
            for (unsigned s = 0; s < L.nseg; s++) per_row += L.seg[s].row_bytes;
            n = (TDN_TILE_BYTES - 4u * L.nseg) / per_row;
            if (n >= L.rows) n = L.rows;
            else if (n >= TDN_WORKERS) n -= n % TDN_WORKERS;
            L.rows_per_tile = (uint16_t)n;
            L.tiles = (uint16_t)(n ? (L.rows + n - 1u) / n : 0u);
        }
        if (layers) layers[li] = L;
    }
    return off;
}

uint32_t tdn_blob_size(unsigned mode, unsigned cell, unsigned hidden)
{
    if (mode < TDN_MODE_FP16 || mode > TDN_MODE_MIXED || cell > TDN_CELL_GRU) return 0;
    if (hidden == 0 || hidden > TDN_MAX_HIDDEN) return 0;
    return layout(mode, cell, hidden, NULL, NULL);
}

int tdn_model_shape(unsigned mode, unsigned cell, unsigned hidden, tdn_layer *layers)
{
    if (tdn_blob_size(mode, cell, hidden) == 0) return TDN_E_UNSUPPORTED;
    layout(mode, cell, hidden, NULL, layers);
    for (unsigned li = 0; li < TDN_LAYERS; li++)
        if (layers[li].rows_per_tile == 0) return TDN_E_UNSUPPORTED;
    return TDN_OK;
}

static int scale_ok(float s) { return s > 0.0f && s < 3.0e38f && (1.0f / s) < 3.0e38f; }

static int fail(const char **why, const char *msg, int code)
{
    if (why) *why = msg;
    return code;
}

int tdn_model_parse(tdn_model *m, const uint8_t *blob, uint32_t n, int level, const char **why)
{
    unsigned mode, cell, hidden, bins;
    float sc[5];
    uint32_t total;
    if (why) *why = "ok";
    if (n < TDN_BLOB_HEADER) return fail(why, "blob shorter than its header", TDN_E_BAD_MODEL);
    if (((uintptr_t)blob & 3u) != 0) return fail(why, "blob not 4-byte aligned", TDN_E_INTERNAL);
    if (memcmp(blob, "TDNB", 4) != 0) return fail(why, "bad magic (not TDNB)", TDN_E_BAD_MODEL);
    if (tdn_get_u16(blob + 4) != 1) return fail(why, "unsupported blob version", TDN_E_UNSUPPORTED);
    mode = blob[6];
    cell = blob[7];
    hidden = tdn_get_u16(blob + 8);
    bins = tdn_get_u16(blob + 10);
    for (unsigned i = 0; i < 5; i++) sc[i] = tdn_get_f32(blob + 12 + 4 * i);
    total = tdn_get_u32(blob + 32);
    if (mode < TDN_MODE_FP16 || mode > TDN_MODE_MIXED) return fail(why, "unsupported mode", TDN_E_UNSUPPORTED);
    if (cell > TDN_CELL_GRU) return fail(why, "unsupported cell", TDN_E_UNSUPPORTED);
    if (hidden == 0) return fail(why, "hidden size 0", TDN_E_BAD_MODEL);
    if (hidden > TDN_MAX_HIDDEN) return fail(why, "hidden size above 256", TDN_E_UNSUPPORTED);
    if (bins != TDN_BINS) return fail(why, "bins must be 257", TDN_E_BAD_MODEL);
    if (total != n) return fail(why, "header size differs from the blob's", TDN_E_BAD_MODEL);
    if (tdn_blob_size(mode, cell, hidden) != n) return fail(why, "size does not match the layout", TDN_E_BAD_MODEL);
    /* scales the mode uses must be positive, finite, with a finite inverse */
    if (mode == TDN_MODE_INT8 && (!scale_ok(sc[0]) || !scale_ok(sc[4])))
        return fail(why, "bad fc0/fc2 input scale", TDN_E_BAD_MODEL);
    if (mode != TDN_MODE_FP16) {
        if (!scale_ok(sc[1])) return fail(why, "bad rnn1 input scale", TDN_E_BAD_MODEL);
        if (cell == TDN_CELL_LSTM && (!scale_ok(sc[2]) || !scale_ok(sc[3])))
            return fail(why, "bad cell-state scale", TDN_E_BAD_MODEL);
    }

    memset(m, 0, sizeof *m);
    m->mode = (uint8_t)mode;
    m->cell = (uint8_t)cell;
    m->hidden = (uint16_t)hidden;
    m->bytes = n;
    m->level = level;
    m->blob_level = (uint8_t)level;
    m->blob = blob;
    m->s_fc0_in = sc[0];
    m->s_rnn1_in = sc[1];
    m->s_cell[0] = sc[2];
    m->s_cell[1] = sc[3];
    m->s_fc2_in = sc[4];
    /* inv = f32(1 / s), as the contract computes it; unused scales (0) get 0 */
    m->inv_fc0_in = sc[0] > 0.0f ? 1.0f / sc[0] : 0.0f;
    m->inv_rnn1_in = sc[1] > 0.0f ? 1.0f / sc[1] : 0.0f;
    m->inv_cell[0] = sc[2] > 0.0f ? 1.0f / sc[2] : 0.0f;
    m->inv_cell[1] = sc[3] > 0.0f ? 1.0f / sc[3] : 0.0f;
    m->inv_fc2_in = sc[4] > 0.0f ? 1.0f / sc[4] : 0.0f;
    layout(mode, cell, hidden, blob, m->layer);

    /* every stored value must be finite: binary16 arrays without inf/NaN, per-row scales ok */
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        const tdn_layer *L = &m->layer[li];
        if (L->rows_per_tile == 0) return fail(why, "a row does not fit an L1 tile", TDN_E_UNSUPPORTED);
        for (unsigned s = 0; s < L->nseg; s++) {
            const tdn_seg *S = &L->seg[s];
            uint32_t bytes = S->row_bytes * L->rows;
            if (S->kind == TDN_SEG_I8) continue;
            if (S->kind == TDN_SEG_F32) {
                for (uint32_t i = 0; i < bytes; i += 4)
                    if (!scale_ok(tdn_get_f32(S->src + i))) return fail(why, "bad per-row weight scale", TDN_E_BAD_MODEL);
            } else {
                for (uint32_t i = 0; i < bytes; i += 2)
                    if ((tdn_get_u16(S->src + i) & 0x7c00u) == 0x7c00u)
                        return fail(why, "binary16 weight or bias is inf or NaN", TDN_E_BAD_MODEL);
            }
        }
    }
    tdn_model_reset(m);
    return TDN_OK;
}
