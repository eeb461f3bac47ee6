/* tdn_edge.c - the firmware's small helpers on chosen edge values, for tests against the
 * Python side (tests/test_firmware_edges.py). Each command exercises the real objects the
 * firmware is linked from; nothing here re-implements them.
 *
 *   tdn-edge act IN.f32x2 OUT     per (x, inv) pair of binary32: act_q8(x, inv) as i8, a zero
 *                                 byte, act_q16(x, inv) as i16, act_tanh(x) and act_sigmoid(x)
 *                                 as binary32 (12 bytes per pair, little-endian)
 *   tdn-edge input OUT            requant_input of the 65536 binary16 patterns (binary32 each)
 *   tdn-edge state OUT            requant_state_to_f16 of the int8 values -128..127 (binary32)
 *   tdn-edge place PLACEMENT TOTAL...
 *                                 whether MODEL_END (tdn_ctl_install) asked for PLACEMENT (0 auto,
 *                                 1 L2, 2 MRAM, 3 L3) takes a blob of TOTAL bytes: one line
 *                                 "TOTAL FITS" per argument, FITS 1 or 0 (MODEL_TOO_LARGE); first
 *                                 a line "capacity L2 MRAM L3"
 *   tdn-edge plan MODE CELL H L2 MRAM
 *                                 the placement plan (plan.c) of that shape for those L2 and
 *                                 MRAM capacities: per layer one line "TILES ROWS_PER_TILE
 *                                 BYTES_L2 BYTES_MRAM BYTES_L3" then per tile "CUT_L2,CUT_MRAM,OFF_L2"
 *   tdn-edge rx                   the packet receiver, scripted on stdin, one command a line:
 *                                   feed MS HEX   bytes received at MS, then deliver at MS
 *                                   poll MS       deliver at MS (no new bytes)
 *                                   stats         "stats BAD_HEADER BAD_CRC STALE HELD"
 *                                 each delivered packet prints "packet TYPE SEQ LEN"
 *
 * `place` fills the staging region with a marker that fails validation (bad magic): a blob
 * the placement can take is refused as a bad model, one it cannot as too large.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdn/act.h"
#include "tdn/controller.h"
#include "tdn/fp16.h"
#include "tdn/hal.h"
#include "tdn/kernels.h"
#include "tdn/protocol.h"

static int cmd_act(const char *in_path, const char *out_path)
{
    FILE *fi = fopen(in_path, "rb"), *fo = fopen(out_path, "wb");
    float pair[2];
    if (!fi || !fo) { perror("tdn-edge"); return 1; }
    while (fread(pair, 4, 2, fi) == 2) {
        uint8_t rec[12];
        int8_t q8 = act_q8(pair[0], pair[1]);
        int16_t q16 = act_q16(pair[0], pair[1]);
        float t = act_tanh(pair[0]), s = act_sigmoid(pair[0]);
        memcpy(rec, &q8, 1);
        rec[1] = 0;
        memcpy(rec + 2, &q16, 2);
        memcpy(rec + 4, &t, 4);
        memcpy(rec + 8, &s, 4);
        fwrite(rec, 1, sizeof rec, fo);
    }
    fclose(fi);
    return fclose(fo) == 0 ? 0 : 1;
}

static int cmd_input(const char *out_path)
{
    static uint16_t h[65536];
    static float x[65536];
    FILE *fo = fopen(out_path, "wb");
    if (!fo) { perror("tdn-edge"); return 1; }
    for (uint32_t i = 0; i < 65536u; i++) h[i] = (uint16_t)i;
    requant_input(h, x, 0, 65536u);
    fwrite(x, 4, 65536u, fo);
    return fclose(fo) == 0 ? 0 : 1;
}

static int cmd_state(const char *out_path)
{
    int8_t q[256];
    float x[256];
    FILE *fo = fopen(out_path, "wb");
    if (!fo) { perror("tdn-edge"); return 1; }
    for (int i = 0; i < 256; i++) q[i] = (int8_t)(i - 128);
    requant_state_to_f16(q, x, 0, 256u);
    fwrite(x, 4, 256u, fo);
    return fclose(fo) == 0 ? 0 : 1;
}

static tdn_ctl ctl;

static int cmd_place(int argc, char **argv)
{
    uint32_t cap[TDN_LEVELS], stage_cap;
    uint8_t *stage = tdn_ctl_stage(&stage_cap);
    int placement;
    for (int level = 0; level < TDN_LEVELS; level++) hal_mem(level, &cap[level]);
    printf("capacity %u %u %u\n", cap[0], cap[1], cap[2]);
    if (argc < 1) return 2;
    placement = atoi(argv[0]);
    for (int i = 1; i < argc; i++) {
        unsigned long total = strtoul(argv[i], NULL, 10);
        const char *why = "";
        int rc;
        if (total == 0 || total > 0xFFFFFFFFul) { fprintf(stderr, "tdn-edge: bad size %s\n", argv[i]); return 2; }
        memset(stage, 0xEE, total < stage_cap ? total : stage_cap);
        rc = tdn_ctl_install(&ctl, (uint32_t)total, placement, &why);
        if (rc == TDN_OK) { fprintf(stderr, "tdn-edge: the marker blob was accepted\n"); return 1; }
        printf("%lu %d\n", total, rc == TDN_E_MODEL_TOO_LARGE ? 0 : 1);
    }
    return 0;
}

static int cmd_plan(char **argv)
{
    static tdn_layer layers[TDN_LAYERS];
    uint32_t cap[2];
    unsigned mode = (unsigned)atoi(argv[0]), cell = (unsigned)atoi(argv[1]), hidden = (unsigned)atoi(argv[2]);
    cap[0] = (uint32_t)strtoul(argv[3], NULL, 10);
    cap[1] = (uint32_t)strtoul(argv[4], NULL, 10);
    if (tdn_model_shape(mode, cell, hidden, layers) != TDN_OK) { fprintf(stderr, "tdn-edge: bad shape\n"); return 2; }
    tdn_plan(layers, cap);
    for (unsigned li = 0; li < TDN_LAYERS; li++) {
        const tdn_layer *L = &layers[li];
        printf("%u %u %u %u %u", L->tiles, L->rows_per_tile, tdn_plan_bytes(L, TDN_LEVEL_L2),
               tdn_plan_bytes(L, TDN_LEVEL_MRAM), tdn_plan_bytes(L, TDN_LEVEL_L3));
        for (unsigned t = 0; t < L->tiles; t++) printf(" %u,%u,%u", L->cut[t][0], L->cut[t][1], L->off[t][0]);
        printf("\n");
    }
    return 0;
}

static tdn_rx rx;

static void deliver(uint32_t now)
{
    tdn_packet p;
    while (tdn_rx_next(&rx, &p, now)) printf("packet %u %u %u\n", p.type, p.seq, p.len);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int cmd_rx(void)
{
    static char line[65536];
    static uint8_t bytes[32768];
    tdn_rx_init(&rx, tdn_is_request);
    while (fgets(line, sizeof line, stdin)) {
        unsigned long ms;
        char *p;
        if (strncmp(line, "feed ", 5) == 0) {
            size_t n = 0, off = 0;
            ms = strtoul(line + 5, &p, 10);
            while (*p == ' ') p++;
            while (hexval(p[0]) >= 0 && hexval(p[1]) >= 0 && n < sizeof bytes) {
                bytes[n++] = (uint8_t)(hexval(p[0]) * 16 + hexval(p[1]));
                p += 2;
            }
            for (unsigned stuck = 0; off < n;) {
                size_t took = tdn_rx_feed(&rx, bytes + off, n - off, (uint32_t)ms);
                off += took;
                deliver((uint32_t)ms);
                if (!took && ++stuck > 2) { fprintf(stderr, "tdn-edge rx: the receiver takes no bytes\n"); return 1; }
            }
        } else if (strncmp(line, "poll ", 5) == 0) {
            deliver((uint32_t)strtoul(line + 5, NULL, 10));
        } else if (strncmp(line, "stats", 5) == 0) {
            printf("stats %u %u %u %u\n", rx.bad_header, rx.bad_crc, rx.stale, rx.len);
        } else if (line[0] != '\n') {
            fprintf(stderr, "tdn-edge rx: unknown command: %s", line);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "act") == 0) return cmd_act(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "input") == 0) return cmd_input(argv[2]);
    if (argc == 3 && strcmp(argv[1], "state") == 0) return cmd_state(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "place") == 0) return cmd_place(argc - 2, argv + 2);
    if (argc == 7 && strcmp(argv[1], "plan") == 0) return cmd_plan(argv + 2);
    if (argc == 2 && strcmp(argv[1], "rx") == 0) return cmd_rx();
    fprintf(stderr, "usage: tdn-edge act IN OUT | input OUT | state OUT | place PLACEMENT TOTAL... | plan MODE CELL H L2 MRAM | rx < SCRIPT\n");
    return 2;
}
