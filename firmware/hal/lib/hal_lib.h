/* hal_lib.h - what the library HAL adds to hal.h: the L1 tile buffer of the calling instance. */
#ifndef TDN_HAL_LIB_H
#define TDN_HAL_LIB_H

#include <stdint.h>

/* From now on, on this thread, hal_l1() returns `l1` (TDN_L1_BYTES, 8-byte aligned). */
void hal_lib_bind_l1(uint8_t *l1);

#endif
