/* tdn_run.c - run a TDNB blob over a file of frames, without a link (bit-exactness tests).
 *
 *   tdn-run MODEL.tdnb FRAMES.f16 MASKS.f16 [COUNTERS.txt [TRACE.bin]]
 *
 * FRAMES: frames of 257 little-endian binary16 magnitudes; MASKS: the masks, same layout.
 * The blob is placed exactly as MODEL_END places it (the planner: plan.c) and the frames
 * run from a zero state on the simulated cluster. COUNTERS gets one line per frame:
 * ticks int8_macs fp16_macs l1_from_l2 l1_from_mram l1_from_l3 dma forks barrier_waits
 * (MACs summed over workers), preceded by a line "level L mode M cell C hidden H bytes N".
 * TRACE gets, per frame, the intermediate values a test can compare bit for bit: fc0 output
 * (binary32 [H]); per recurrent layer its pre-activations (binary32 [G*H]; GRU: gi then gh)
 * and its new state (fp16 mode: h then c as binary32 [H]; else int8 h [H], then int16 c [H]
 * for LSTM); fc1 output (binary32 [257]).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdn/controller.h"
#include "tdn/hal.h"
#include "tdn/rt.h"

static tdn_ctl ctl;

static void trace(FILE *f, const tdn_model *m)
{
    unsigned H = m->hidden, G = m->cell == TDN_CELL_LSTM ? 4u : 3u;
    fwrite(m->y0, 4, H, f);
    for (unsigned l = 0; l < 2; l++) {
        fwrite(m->z[l], 4, G * H, f);
        if (m->cell == TDN_CELL_GRU) fwrite(m->gh[l], 4, G * H, f);
        if (m->mode == TDN_MODE_FP16) {
            fwrite(m->h[l], 4, H, f);
            if (m->cell == TDN_CELL_LSTM) fwrite(m->c[l], 4, H, f);
        } else {
            fwrite(m->hq[l], 1, H, f);
            if (m->cell == TDN_CELL_LSTM) fwrite(m->cq[l], 2, H, f);
        }
    }
    fwrite(m->y1, 4, TDN_BINS, f);
}

int main(int argc, char **argv)
{
    char *hal_argv[] = {argv[0], "--no-transport", NULL};
    uint32_t cap;
    uint8_t *stage;
    FILE *fb, *fi, *fo, *fc = NULL, *ft = NULL;
    long size;
    const char *why = "";
    int rc;
    unsigned long frames = 0;
    if (argc < 4) {
        fprintf(stderr, "usage: tdn-run MODEL.tdnb FRAMES.f16 MASKS.f16 [COUNTERS.txt [TRACE.bin]]\n");
        return 2;
    }
    if (hal_init(2, hal_argv) != 0) { fprintf(stderr, "tdn-run: target init failed\n"); return 1; }
    tdn_ctl_init(&ctl);
    stage = tdn_ctl_stage(&cap);
    fb = fopen(argv[1], "rb");
    if (!fb) { perror(argv[1]); return 1; }
    fseek(fb, 0, SEEK_END);
    size = ftell(fb);
    fseek(fb, 0, SEEK_SET);
    if (size <= 0 || (unsigned long)size > cap) { fprintf(stderr, "tdn-run: model too large\n"); return 1; }
    if (fread(stage, 1, (size_t)size, fb) != (size_t)size) { fprintf(stderr, "tdn-run: short read\n"); return 1; }
    fclose(fb);
    rc = tdn_ctl_install(&ctl, (uint32_t)size, TDN_PLACE_AUTO, &why);
    if (rc != TDN_OK) { fprintf(stderr, "tdn-run: model rejected (error %d): %s\n", rc, why); return 3; }
    fi = fopen(argv[2], "rb");
    fo = fopen(argv[3], "wb");
    if (!fi || !fo) { perror("tdn-run"); return 1; }
    if (argc > 4) {
        fc = fopen(argv[4], "w");
        if (!fc) { perror(argv[4]); return 1; }
        fprintf(fc, "level %d mode %u cell %u hidden %u bytes %u\n", ctl.model.level, ctl.model.mode,
                ctl.model.cell, ctl.model.hidden, ctl.model.bytes);
    }
    if (argc > 5) {
        ft = fopen(argv[5], "wb");
        if (!ft) { perror(argv[5]); return 1; }
    }
    for (;;) {
        uint8_t raw[2 * TDN_BINS];
        uint16_t mags[TDN_BINS], mask[TDN_BINS];
        uint64_t instret[TDN_WORKERS + 1];
        size_t got = fread(raw, 1, sizeof raw, fi);
        if (got == 0) break;
        if (got != sizeof raw) { fprintf(stderr, "tdn-run: partial frame at the end\n"); return 1; }
        for (unsigned i = 0; i < TDN_BINS; i++) mags[i] = (uint16_t)(raw[2 * i] | (raw[2 * i + 1] << 8));
        tdn_ctl_frame(&ctl, mags, mask, instret);
        for (unsigned i = 0; i < TDN_BINS; i++) { raw[2 * i] = (uint8_t)mask[i]; raw[2 * i + 1] = (uint8_t)(mask[i] >> 8); }
        fwrite(raw, 1, sizeof raw, fo);
        if (fc) {
            uint32_t i8 = 0, f16 = 0;
            for (unsigned w = 0; w < TDN_WORKERS; w++) { i8 += tdn_cnt.macs_int8[w]; f16 += tdn_cnt.macs_fp16[w]; }
            fprintf(fc, "%u %u %u %u %u %u %u %u %u\n", tdn_cnt.ticks, i8, f16, tdn_cnt.l1_bytes[0],
                    tdn_cnt.l1_bytes[1], tdn_cnt.l1_bytes[2], tdn_cnt.dma_transfers, tdn_cnt.forks,
                    rt_barrier_waits_total());
        }
        if (ft) trace(ft, &ctl.model);
        frames++;
    }
    fclose(fi);
    if (fclose(fo) != 0) { perror(argv[3]); return 1; }
    if (fc) fclose(fc);
    if (ft && fclose(ft) != 0) { perror(argv[5]); return 1; }
    fprintf(stderr, "tdn-run: %lu frames, weights in level %d\n", frames, ctl.model.level);
    return 0;
}
