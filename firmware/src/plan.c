/* plan.c - where each tile's rows of weights live: the placement rule of docs/cost-model.md
 * ("Placement"), which streamer/costmodel/plan.py mirrors line for line.
 *
 * The unit is a row of a tile (that row of every array of the layer: weights, per-row scales,
 * biases). Levels are filled fastest first, L2 then MRAM; L3 (the blob as uploaded) holds
 * what is left. A level that cannot hold every row still unplaced takes the same share of
 * every tile's unplaced rows (proportional pass, in frame read order, rounded down), then
 * tops up in read order with the whole rows that still fit. Spreading a level over every tile
 * is what lets the schedule read two levels at once (docs/cost-model.md): under the target
 * file every tile is DMA-bound, so each byte promoted saves the same cycles and energy and an
 * even split across the tiles is the best use of the fast level.
 */
#include <string.h>

#include "tdn/model.h"

unsigned tdn_tile_rows(const tdn_layer *L, unsigned t)
{
    unsigned row0 = t * L->rows_per_tile;
    return L->rows - row0 < L->rows_per_tile ? L->rows - row0 : L->rows_per_tile;
}

uint32_t tdn_row_bytes(const tdn_layer *L)
{
    uint32_t p = 0;
    for (unsigned s = 0; s < L->nseg; s++) p += L->seg[s].row_bytes;
    return p;
}

/* Rows of tile t already placed in levels before `level`. */
static unsigned placed_before(const tdn_layer *L, unsigned t, unsigned level)
{
    return level == 0 ? 0u : L->cut[t][level - 1];
}

void tdn_plan(tdn_layer *layers, const uint32_t cap[2])
{
    uint64_t unplaced = 0;
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        tdn_layer *L = &layers[li];
        memset(L->cut, 0, sizeof L->cut);
        memset(L->off, 0, sizeof L->off);
        unplaced += (uint64_t)L->rows * tdn_row_bytes(L);
    }
    for (unsigned lv = 0; lv < 2; lv++) {
        uint64_t room = cap[lv], left = unplaced, used = 0;
        /* the proportional pass: k = floor(u x room / left), at most u */
        for (unsigned li = 0; li < TDN_LAYERS; li++) {
            tdn_layer *L = &layers[li];
            uint64_t p = tdn_row_bytes(L);
            for (unsigned t = 0; t < L->tiles; t++) {
                uint64_t u = tdn_tile_rows(L, t) - placed_before(L, t, lv), k;
                k = left ? u * room / left : 0;
                if (k > u) k = u;
                L->cut[t][lv] = (uint16_t)(placed_before(L, t, lv) + k);
                room -= k * p;
                left -= u * p;
                used += k * p;
            }
        }
        /* the top-up pass: whole rows that still fit, in read order */
        for (unsigned li = 0; li < TDN_LAYERS; li++) {
            tdn_layer *L = &layers[li];
            uint64_t p = tdn_row_bytes(L);
            for (unsigned t = 0; t < L->tiles; t++) {
                uint64_t u = tdn_tile_rows(L, t) - L->cut[t][lv], k = room / p;
                if (k > u) k = u;
                L->cut[t][lv] = (uint16_t)(L->cut[t][lv] + k);
                room -= k * p;
                used += k * p;
            }
        }
        unplaced -= used;
    }
    /* offsets: each level's rows packed tile after tile in read order */
    for (unsigned lv = 0; lv < 2; lv++) {
        uint32_t off = 0;
        for (unsigned li = 0; li < TDN_LAYERS; li++) {
            tdn_layer *L = &layers[li];
            for (unsigned t = 0; t < L->tiles; t++) {
                L->off[t][lv] = off;
                off += (uint32_t)(L->cut[t][lv] - placed_before(L, t, lv)) * tdn_row_bytes(L);
            }
        }
    }
}

uint32_t tdn_plan_bytes(const tdn_layer *L, int level)
{
    uint32_t rows = 0;
    for (unsigned t = 0; t < L->tiles; t++) {
        unsigned n = tdn_tile_rows(L, t);
        if (level == TDN_LEVEL_L2) rows += L->cut[t][0];
        else if (level == TDN_LEVEL_MRAM) rows += (unsigned)(L->cut[t][1] - L->cut[t][0]);
        else rows += n - L->cut[t][1];
    }
    return rows * tdn_row_bytes(L);
}

void tdn_plan_pack(tdn_model *m)
{
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        const tdn_layer *L = &m->layer[li];
        for (unsigned t = 0; t < L->tiles; t++) {
            unsigned row0 = t * L->rows_per_tile;
            for (unsigned lv = 0; lv < 2; lv++) {
                unsigned r0 = placed_before(L, t, lv), r1 = L->cut[t][lv];
                uint8_t *dst = m->region[lv] + L->off[t][lv];
                if (r1 <= r0) continue;
                for (unsigned s = 0; s < L->nseg; s++) {
                    uint32_t rb = L->seg[s].row_bytes;
                    memcpy(dst, L->seg[s].src + (uint32_t)(row0 + r0) * rb, (uint32_t)(r1 - r0) * rb);
                    dst += (uint32_t)(r1 - r0) * rb;
                }
            }
        }
    }
}
