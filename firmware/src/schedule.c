/* schedule.c - one frame of the network on the cluster (the blob is blob.c's).
 *
 * One fork per layer. Inside it, every worker:
 *   1. converts its slice of the layer's input (prologue: input stage or requantisation);
 *   2. worker 0 copies tile 0 of the weights into L1 buffer 0 and waits; barrier;
 *   3. for each tile t: worker 0 issues the copy of tile t+1 into the other buffer, every
 *      worker computes its block of tile t's rows (whole dot products), worker 0 waits for
 *      tile t+1, barrier;
 *   4. recurrent layers: every worker does the gate work of its block of hidden units.
 * A tile is a block of rows of the layer: the rows of each of its arrays (weights, per-row
 * scales, biases), packed into one 64 kB half of L1, each array 4-byte aligned. Its rows are
 * read from the levels the placement plan chose for them (plan.c, controller.c).
 */
#include <string.h>

#include "tdn/fp16.h"
#include "tdn/hal.h"
#include "tdn/kernels.h"
#include "tdn/le.h"
#include "tdn/model.h"
#include "tdn/rt.h"

void tdn_model_reset(tdn_model *m)
{
    memset(m->h, 0, sizeof m->h);
    memset(m->c, 0, sizeof m->c);
    memset(m->hq, 0, sizeof m->hq);
    memset(m->cq, 0, sizeof m->cq);
}

/* ---- the parallel layer ------------------------------------------------------------------ */

typedef struct {
    tdn_model *m;
    unsigned li;
} layer_job;

static unsigned part(unsigned n, unsigned core) { return (unsigned)((uint32_t)n * core / TDN_WORKERS); }

#if !TDN_WEIGHTS_IN_PLACE
/* Copy tile t (rows [t*rpt, ...)) of every array of layer L into L1 buffer `dst` (worker 0),
 * each array at a 4-byte aligned slot of rows_per_tile rows. Each array's rows come from the
 * levels the plan put them in (plan.c): one transfer per array and level, the slowest level
 * first so that where two levels have their own DMA channels the slow copy starts first and
 * the fast one runs beside it; the caller waits for the last, which waits for all. */
static hal_dma_id copy_tile(const tdn_model *m, const tdn_layer *L, unsigned t, uint8_t *dst)
{
    unsigned row0 = (unsigned)t * L->rows_per_tile;
    unsigned rows = tdn_tile_rows(L, t);
    unsigned lo[TDN_LEVELS], hi[TDN_LEVELS];
    hal_dma_id id = 0;
    lo[TDN_LEVEL_L2] = 0;
    hi[TDN_LEVEL_L2] = lo[TDN_LEVEL_MRAM] = L->cut[t][0];
    hi[TDN_LEVEL_MRAM] = lo[TDN_LEVEL_L3] = L->cut[t][1];
    hi[TDN_LEVEL_L3] = rows;
    for (int lv = TDN_LEVELS - 1; lv >= 0; lv--) {
        uint32_t off = 0, packed = lv == TDN_LEVEL_L3 ? 0u : L->off[t][lv];
        unsigned n = hi[lv] - lo[lv];
        for (unsigned s = 0; s < L->nseg; s++) {
            uint32_t rb = L->seg[s].row_bytes;
            /* L3: the blob itself (the firmware keeps it in L3; a host library anywhere: its
               level labels the counters); L2, MRAM: the tile's rows of that level, packed */
            const uint8_t *src = lv == TDN_LEVEL_L3 ? L->seg[s].src + (uint32_t)(row0 + lo[lv]) * rb
                                                    : m->region[lv] + packed;
            int label = lv == TDN_LEVEL_L3 ? m->blob_level : lv;
            if (n) id = rt_dma(dst + off + lo[lv] * rb, src, n * rb, label);
            packed += n * rb;
            off = tdn_align4(off + rb * L->rows_per_tile);
        }
    }
    return id;
}

/* Where the arrays of a tile lie in an L1 buffer (same packing as copy_tile). */
static void tile_segs(const tdn_layer *L, uint8_t *buf, uint8_t **seg)
{
    uint32_t off = 0;
    for (unsigned s = 0; s < L->nseg; s++) {
        seg[s] = buf + off;
        off = tdn_align4(off + L->seg[s].row_bytes * L->rows_per_tile);
    }
}
#endif

static void prologue(tdn_model *m, unsigned li, unsigned core)
{
    unsigned H = m->hidden;
    switch (li) {
    case TDN_FC0: {
        unsigned i0 = part(TDN_BINS, core), i1 = part(TDN_BINS, core + 1);
        requant_input(m->in, m->x, i0, i1);
        if (m->layer[TDN_FC0].int8) requant_q8(m->x, m->inv_fc0_in, m->xq, i0, i1);
        break;
    }
    case TDN_RNN1:
        if (m->layer[TDN_RNN1].int8) requant_q8(m->y0, m->inv_rnn1_in, m->y0q, part(H, core), part(H, core + 1));
        break;
    case TDN_FC1:
        if (m->layer[TDN_RNN2].int8 && !m->layer[TDN_FC1].int8)
            requant_state_to_f16(m->hq[1], m->fc1_in, part(H, core), part(H, core + 1));
        break;
    case TDN_FC2:
        if (m->layer[TDN_FC2].int8)
            requant_q8(m->y1, m->inv_fc2_in, m->y1q, part(TDN_BINS, core), part(TDN_BINS, core + 1));
        break;
    default:
        break;
    }
}

/* Rows [lo, hi) (tile-relative) of the tile whose first row is row0; seg = its L1 arrays. */
static void rows(tdn_model *m, unsigned li, uint8_t *const *seg, unsigned row0, unsigned lo,
                 unsigned hi, unsigned core)
{
    const tdn_layer *L = &m->layer[li];
    unsigned H = m->hidden;
    uint32_t macs;
    if (hi <= lo) return;
    if (!L->recurrent) {
        const void *x;
        float s_in = 0.0f;
        float *y = li == TDN_FC0 ? m->y0 : li == TDN_FC1 ? m->y1 : m->mask;
        dense_act act = li == TDN_FC2 ? DENSE_SIGMOID_F16 : L->int8 ? DENSE_RELU_F32 : DENSE_RELU_F16;
        if (li == TDN_FC0) { x = L->int8 ? (const void *)m->xq : (const void *)m->x; s_in = m->s_fc0_in; }
        else if (li == TDN_FC1) {
            x = L->int8 ? (const void *)m->hq[1] : m->layer[TDN_RNN2].int8 ? (const void *)m->fc1_in : (const void *)m->h[1];
            s_in = TDN_S_H;
        } else { x = L->int8 ? (const void *)m->y1q : (const void *)m->y1; s_in = m->s_fc2_in; }
        if (L->int8)
            dense_int8_rows((const int8_t *)seg[0], (const float *)seg[1], (const uint16_t *)seg[2],
                            (const int8_t *)x, s_in, L->cols, lo, hi, act, y + row0);
        else
            dense_fp16_rows((const uint16_t *)seg[0], (const uint16_t *)seg[1], (const float *)x,
                            L->cols, lo, hi, act, y + row0);
        macs = (uint32_t)(hi - lo) * L->cols;
    } else {
        unsigned l = li - TDN_RNN1;
        if (L->int8) {
            const int8_t *xq = l == 0 ? m->y0q : m->hq[0];
            float s_x = l == 0 ? m->s_rnn1_in : TDN_S_H;
            if (m->cell == TDN_CELL_LSTM)
                lstm_int8_rows((const int8_t *)seg[0], (const float *)seg[1], (const int8_t *)seg[2],
                               (const float *)seg[3], (const uint16_t *)seg[4], (const uint16_t *)seg[5],
                               xq, s_x, m->hq[l], L->cols, H, lo, hi, m->z[l] + row0);
            else
                gru_int8_rows((const int8_t *)seg[0], (const float *)seg[1], (const int8_t *)seg[2],
                              (const float *)seg[3], (const uint16_t *)seg[4], (const uint16_t *)seg[5],
                              xq, s_x, m->hq[l], L->cols, H, lo, hi, m->z[l] + row0, m->gh[l] + row0);
        } else {
            const float *x = l == 0 ? m->y0 : m->h[0];
            if (m->cell == TDN_CELL_LSTM)
                lstm_fp16_rows((const uint16_t *)seg[0], (const uint16_t *)seg[1], (const uint16_t *)seg[2],
                               (const uint16_t *)seg[3], x, m->h[l], L->cols, H, lo, hi, m->z[l] + row0);
            else
                gru_fp16_rows((const uint16_t *)seg[0], (const uint16_t *)seg[1], (const uint16_t *)seg[2],
                              (const uint16_t *)seg[3], x, m->h[l], L->cols, H, lo, hi, m->z[l] + row0,
                              m->gh[l] + row0);
        }
        macs = (uint32_t)(hi - lo) * (L->cols + H);
    }
    if (L->int8) tdn_cnt.macs_int8[core] += macs;
    else tdn_cnt.macs_fp16[core] += macs;
}

static void units(tdn_model *m, unsigned li, unsigned core)
{
    unsigned H = m->hidden, l = li - TDN_RNN1;
    unsigned j0 = part(H, core), j1 = part(H, core + 1);
    if (j1 <= j0) return;
    if (m->layer[li].int8) {
        if (m->cell == TDN_CELL_LSTM)
            lstm_int8_units(m->z[l], H, m->s_cell[l], m->inv_cell[l], m->cq[l], m->hq[l], j0, j1);
        else
            gru_int8_units(m->z[l], m->gh[l], H, m->hq[l], j0, j1);
    } else {
        if (m->cell == TDN_CELL_LSTM) lstm_fp16_units(m->z[l], H, m->c[l], m->h[l], j0, j1);
        else gru_fp16_units(m->z[l], m->gh[l], H, m->h[l], j0, j1);
    }
}

#if TDN_WEIGHTS_IN_PLACE
/* No L1 (a single-core Cortex-M): each tile's rows are computed where the plan put them, read
 * as copy_tile would read them (L2 and MRAM rows packed in m->region, L3 rows in the blob) but
 * not copied, so nothing counts as bytes into L1. The packed regions keep no alignment, and the
 * FPU's loads need it: a chunk's binary32 scales, and binary16 arrays at an odd address (int8
 * layers pack odd row sizes), go through an aligned scratch copy (a few bytes per row). */
static _Alignas(8) uint8_t in_place_scratch[TDN_MAX_SEGS][4u * TDN_MAX_GATES];

static void rows_in_place(tdn_model *m, unsigned li, unsigned t, unsigned core)
{
    const tdn_layer *L = &m->layer[li];
    unsigned row0 = t * L->rows_per_tile;
    unsigned lo[TDN_LEVELS], hi[TDN_LEVELS];
    uint8_t *seg[TDN_MAX_SEGS];
    lo[TDN_LEVEL_L2] = 0;
    hi[TDN_LEVEL_L2] = lo[TDN_LEVEL_MRAM] = L->cut[t][0];
    hi[TDN_LEVEL_MRAM] = lo[TDN_LEVEL_L3] = L->cut[t][1];
    hi[TDN_LEVEL_L3] = tdn_tile_rows(L, t);
    for (int lv = 0; lv < TDN_LEVELS; lv++) {
        unsigned n = hi[lv] - lo[lv];
        uint32_t packed = lv == TDN_LEVEL_L3 ? 0u : L->off[t][lv];
        if (n == 0) continue;
        for (unsigned s = 0; s < L->nseg; s++) {
            uint32_t rb = L->seg[s].row_bytes;
            uint8_t *src = lv == TDN_LEVEL_L3 ? (uint8_t *)L->seg[s].src + (uint32_t)(row0 + lo[lv]) * rb
                                              : m->region[lv] + packed;
            uint32_t align = L->seg[s].kind == TDN_SEG_F32 ? 4u : L->seg[s].kind == TDN_SEG_F16 ? 2u : 1u;
            /* never a weight array: binary16 rows have even sizes, so only int8 layers' odd
               rows can leave a small array (scales, biases) misaligned */
            if (((uintptr_t)src & (align - 1u)) != 0 && n * rb <= sizeof in_place_scratch[s]) {
                memcpy(in_place_scratch[s], src, n * rb);
                src = in_place_scratch[s];
            }
            seg[s] = src;
            packed += n * rb;
        }
        rows(m, li, seg, row0 + lo[lv], part(n, core), part(n, core + 1), core);
    }
}
#endif

static void layer_task(unsigned core, void *arg)
{
    layer_job *job = (layer_job *)arg;
    tdn_model *m = job->m;
    const tdn_layer *L = &m->layer[job->li];
    prologue(m, job->li, core);
#if TDN_WEIGHTS_IN_PLACE
    for (unsigned t = 0; t < L->tiles; t++) rows_in_place(m, job->li, t, core);
    /* the gate work reads every row's result: a barrier where there are other workers */
    if (TDN_WORKERS > 1) rt_barrier(core);
#else
    uint8_t *buf[2];
    uint8_t *seg[TDN_MAX_SEGS];
    buf[0] = hal_l1();
    buf[1] = buf[0] + TDN_TILE_BYTES;
    if (core == 0) hal_dma_wait(copy_tile(m, L, 0, buf[0]));
    rt_barrier(core);
    for (unsigned t = 0; t < L->tiles; t++) {
        unsigned row0 = t * L->rows_per_tile;
        unsigned n = tdn_tile_rows(L, t);
        hal_dma_id next = 0;
        int prefetch = core == 0 && t + 1u < L->tiles;
        if (prefetch) next = copy_tile(m, L, t + 1u, buf[(t + 1u) & 1u]);
        tile_segs(L, buf[t & 1u], seg);
        rows(m, job->li, seg, row0, part(n, core), part(n, core + 1), core);
        if (prefetch) hal_dma_wait(next);
        rt_barrier(core);
    }
#endif
    if (L->recurrent) units(m, job->li, core);
}

void tdn_model_frame(tdn_model *m, const uint16_t *mags, uint16_t *mask)
{
    memcpy(m->in, mags, sizeof m->in);
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        layer_job job = {m, li};
        rt_fork(layer_task, &job);
    }
    for (unsigned i = 0; i < TDN_BINS; i++) mask[i] = fp16_from_f32(m->mask[i]);
}
