/* config.h - sizes shared by every target. Capacities of the memory levels come from the HAL. */
#ifndef TDN_CONFIG_H
#define TDN_CONFIG_H

#define TDN_FW_MAJOR 1
#define TDN_FW_MINOR 0
#define TDN_FW_PATCH 0
#define TDN_PROTOCOL_VERSION 1

#define TDN_BINS 257          /* STFT bins: network input and mask width */
#define TDN_MAX_HIDDEN 256    /* largest H the frame workspace is sized for */
#define TDN_MAX_GATES (4 * TDN_MAX_HIDDEN)
/* worker cores of the cluster (hart 0 is the controller); a build may choose another count
 * (the host library libtdn builds with 1; a single-core Cortex-M builds with 1, its one core
 * the controller and worker 0): every layer is split by whole output rows, so the results are
 * the same bits whatever the count. */
#ifndef TDN_WORKERS
#define TDN_WORKERS 8
#endif
/* 1: the kernels read the weights where they lie (flash or SRAM), no L1 tiles, no DMA; for
 * targets without a scratchpad (Cortex-M: -DTDN_WEIGHTS_IN_PLACE=1). */
#ifndef TDN_WEIGHTS_IN_PLACE
#define TDN_WEIGHTS_IN_PLACE 0
#endif

#define TDN_L1_BYTES 131072u  /* the cluster's tile buffer */
#define TDN_TILE_BYTES (TDN_L1_BYTES / 2u) /* double buffering: two tiles of 64 kB */

/* Memory levels that can hold the weights (ModelInfo's "weights memory level"). */
#define TDN_LEVEL_L2 0
#define TDN_LEVEL_MRAM 1
#define TDN_LEVEL_L3 2
#define TDN_LEVELS 3
#define TDN_LEVEL_SPLIT 3  /* ModelInfo: the planner spread the weights over several levels */

/* Placement a host may ask for at MODEL_END: the planner, or the whole blob in one level. */
#define TDN_PLACE_AUTO 0
#define TDN_PLACE_L2 1
#define TDN_PLACE_MRAM 2
#define TDN_PLACE_L3 3

#define TDN_MAX_TILES 32      /* tiles of one layer (H <= 256: at most 19, fp16 LSTM rnn) */

/* The blob and every table are little-endian; both targets (x86-64, RV32) are. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the firmware reads the little-endian TDNB blob in place"
#endif

#endif
