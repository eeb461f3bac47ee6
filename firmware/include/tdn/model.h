/* model.h - the TDNB blob parsed in place, and one frame of the network on the cluster.
 *
 * tdn_model_parse validates a blob (docs/protocol.md, "The device model blob") where it was
 * uploaded and records pointers into it; nothing is allocated. tdn_plan decides which rows of
 * each tile live in L2, MRAM or L3 (the blob) and tdn_plan_pack copies them there. tdn_model_frame runs
 * fc0, rnn1, rnn2, fc1, fc2, one fork each: workers split every layer by output rows while
 * worker 0 streams the layer's weights tile by tile into the L1 buffer (double buffered),
 * then split the gate work by hidden unit.
 */
#ifndef TDN_MODEL_H
#define TDN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "tdn/config.h"

/* Status codes: the protocol's error codes (docs/protocol.md). */
#define TDN_OK 0
#define TDN_E_BAD_REQUEST 1
#define TDN_E_NO_MODEL 2
#define TDN_E_MODEL_TOO_LARGE 3
#define TDN_E_BAD_CHECKSUM 4
#define TDN_E_BAD_MODEL 5
#define TDN_E_BAD_SEQUENCE 6
#define TDN_E_UNSUPPORTED 7
#define TDN_E_INTERNAL 8

#define TDN_MODE_FP16 1
#define TDN_MODE_INT8 2
#define TDN_MODE_MIXED 3
#define TDN_CELL_LSTM 0
#define TDN_CELL_GRU 1

#define TDN_BLOB_HEADER 36
#define TDN_MAX_SEGS 6

enum { TDN_FC0 = 0, TDN_RNN1, TDN_RNN2, TDN_FC1, TDN_FC2, TDN_LAYERS };

/* One array that a tile copies rows of: the blob address of row 0 and bytes per row. */
#define TDN_SEG_I8 0  /* int8 weights */
#define TDN_SEG_F16 1 /* binary16 weights or biases */
#define TDN_SEG_F32 2 /* binary32 per-row scales */
typedef struct {
    const uint8_t *src;
    uint32_t row_bytes;
    uint32_t kind;
} tdn_seg;

typedef struct {
    uint8_t recurrent;      /* 0 dense, 1 LSTM/GRU */
    uint8_t int8;           /* storage: int8 weights + per-row scales, else binary16 */
    uint16_t rows;          /* output rows (G*H for recurrent layers) */
    uint16_t cols;          /* input width (W_ih's for recurrent layers) */
    uint16_t rows_per_tile;
    uint16_t tiles;
    uint8_t nseg;
    tdn_seg seg[TDN_MAX_SEGS]; /* dense: w, [scale], bias;  rnn: w_ih, [s_ih], w_hh, [s_hh], b_ih, b_hh */
    /* The placement plan (plan.c): tile t's rows [0, cut[t][0]) lie in L2, [cut[t][0],
     * cut[t][1]) in MRAM, the rest in L3 (the blob itself); off[t][l] is where tile t's rows of
     * level l start in that level's region (its arrays one after another, rows packed). */
    uint16_t cut[TDN_MAX_TILES][2];
    uint32_t off[TDN_MAX_TILES][2];
} tdn_layer;

typedef struct {
    /* from the blob */
    uint8_t mode, cell;
    uint16_t hidden;
    uint32_t bytes;
    int level;                    /* level of the weights (TDN_LEVEL_*), TDN_LEVEL_SPLIT if several */
    uint8_t placement;            /* what the host asked for (TDN_PLACE_*) */
    uint8_t blob_level;           /* where the blob itself lies (tdn_model_parse's level): the
                                     level that labels rows read from it in place */
    const uint8_t *blob;          /* the blob as uploaded (L3): the plan's L3 rows are read here */
    uint8_t *region[2];           /* the L2 and MRAM weight regions the plan packs rows into */
    float s_fc0_in, s_rnn1_in, s_cell[2], s_fc2_in;
    float inv_fc0_in, inv_rnn1_in, inv_cell[2], inv_fc2_in;
    tdn_layer layer[TDN_LAYERS];
    /* recurrent state (binary16 values as binary32 in fp16 mode; int8 h, int16 c otherwise) */
    float h[2][TDN_MAX_HIDDEN], c[2][TDN_MAX_HIDDEN];
    int8_t hq[2][TDN_MAX_HIDDEN];
    int16_t cq[2][TDN_MAX_HIDDEN];
    /* frame workspace */
    uint16_t in[TDN_BINS];
    float x[TDN_BINS];
    int8_t xq[TDN_BINS + 3];
    float y0[TDN_MAX_HIDDEN];
    int8_t y0q[TDN_MAX_HIDDEN];
    float z[2][TDN_MAX_GATES];    /* per recurrent layer: LSTM pre-activations, GRU gi */
    float gh[2][TDN_MAX_GATES];   /* per recurrent layer: GRU gh */
    float fc1_in[TDN_MAX_HIDDEN];
    float y1[TDN_BINS];
    int8_t y1q[TDN_BINS + 3];
    float mask[TDN_BINS];
} tdn_model;

/* Bytes of a blob with this shape (0 if mode/cell unknown or hidden is 0). */
uint32_t tdn_blob_size(unsigned mode, unsigned cell, unsigned hidden);

/* The layers' shape and tiling (segments without addresses): TDN_OK or TDN_E_UNSUPPORTED. */
int tdn_model_shape(unsigned mode, unsigned cell, unsigned hidden, tdn_layer *layers);

/* Validate `blob` (n bytes, 4-byte aligned) and point `m` into it. Returns TDN_OK,
 * TDN_E_BAD_MODEL or TDN_E_UNSUPPORTED, with a reason in `why` (may be NULL). */
int tdn_model_parse(tdn_model *m, const uint8_t *blob, uint32_t n, int level, const char **why);

/* The placement rule (docs/cost-model.md, "Placement"): fill each layer's cut/off from the
 * capacities of L2 and MRAM for weights (cap[0], cap[1]); L3 holds the rest. */
void tdn_plan(tdn_layer *layers, const uint32_t cap[2]);
/* Rows of tile t of L. */
unsigned tdn_tile_rows(const tdn_layer *L, unsigned t);
/* Bytes per row over all of L's arrays. */
uint32_t tdn_row_bytes(const tdn_layer *L);
/* Bytes of layer L the plan put in `level` (TDN_LEVEL_L2, _MRAM, _L3). */
uint32_t tdn_plan_bytes(const tdn_layer *L, int level);
/* Copy the plan's L2 and MRAM rows from the blob into m->region (after tdn_plan). */
void tdn_plan_pack(tdn_model *m);

/* Zero the recurrent state. */
void tdn_model_reset(tdn_model *m);

/* One frame: 257 binary16 magnitudes in, 257 binary16 mask values out; counts into tdn_cnt. */
void tdn_model_frame(tdn_model *m, const uint16_t *mags, uint16_t *mask);

#endif
