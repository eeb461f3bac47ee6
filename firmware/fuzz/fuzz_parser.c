/* fuzz_parser.c - a standalone, seeded fuzz driver for the link receiver and the request
 * handlers, built with ASan + UBSan (make fuzz). No libFuzzer needed.
 *
 * Part A (receiver): a stream of items, fed in random-sized pieces with a simulated clock:
 *   valid packets (random request type, seq, payload 0..1280, some full of A5 5A) - expected;
 *   damaged packets (random bit flips and/or truncation), garbage, headers with lengths over
 *   1280 or unknown types - each followed, half of the time, by a valid packet right behind
 *   it; then, after truncations always and otherwise half of the time, by a silence, else
 *   straight by the next item, as a real link delivers them (a truncated packet's missing
 *   tail could by chance be supplied by the bytes after it, so those wait for the silence);
 *   a header damaged in one byte (type, seq, length or CRC-8; often a length claiming more
 *   than follows), then a valid packet straight behind it - delivered at once;
 *   garbage without 0xA5 bytes directly before a valid packet (no silence needed).
 * A silence waits exactly RX_STALE_MS - 1 ms after the newest byte (nothing may be given up
 * yet), then exactly RX_STALE_MS (every partial packet must be given up).
 * Invariants: the valid packets are delivered exactly once each, in order, byte-identical
 * (also those right behind damage: found by the byte-by-byte rescan, at the latest when
 * the damaged partial packet is given up; behind a damaged header, at once);
 * no damaged item is ever delivered; damaged, bad-length and unknown-type headers count as
 * bad_header; every feed/next loop terminates (bounded iterations).
 * Part B (handlers): random and mutated requests (INFO, MODEL_* with valid and corrupted
 * blobs, FRAME with NaN/inf/huge inputs, RESET, STATS, TRACE, wrong lengths) straight into
 * tdn_ctl_handle: exactly one well-formed reply per request, with the request's seq.
 *
 *   fuzz-parser [ITEMS]      (default 200000 receiver items; exit 0 = all invariants hold)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tdn/controller.h"
#include "tdn/hal.h"
#include "tdn/model.h"
#include "tdn/protocol.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static uint32_t below(uint32_t n) { return n ? rnd() % n : 0; }

#define FAIL(...) do { fprintf(stderr, "fuzz-parser: FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/* ---- part A ------------------------------------------------------------------------------ */

typedef struct { uint8_t type, seq; uint16_t len; uint8_t payload[TDN_MAX_PAYLOAD]; } expect_t;

#define QMAX 512 /* a damaged header may claim 1280 bytes: ~120 packets wait behind it */
static expect_t queue[QMAX];
static unsigned q_head, q_count;
static tdn_rx rx;
static uint32_t now_ms;
static unsigned long delivered, expected_total, stream_bytes, behind;

static void drain(void)
{
    tdn_packet p;
    unsigned guard = 0;
    while (tdn_rx_next(&rx, &p, now_ms)) {
        expect_t *e;
        if (++guard > 10000) FAIL("receiver does not terminate");
        if (q_count == 0) FAIL("unexpected packet delivered (type %02x len %u)", p.type, p.len);
        e = &queue[q_head];
        if (p.type != e->type || p.seq != e->seq || p.len != e->len || memcmp(p.payload, e->payload, p.len) != 0)
            FAIL("delivered packet differs from the next expected one");
        q_head = (q_head + 1) % QMAX;
        q_count--;
        delivered++;
    }
}

static void feed(const uint8_t *data, size_t n)
{
    size_t off = 0;
    unsigned guard = 0;
    stream_bytes += n;
    while (off < n) {
        size_t piece = 1 + below(below(4) == 0 ? 8 : 700);
        if (piece > n - off) piece = n - off;
        while (piece) {
            size_t took = tdn_rx_feed(&rx, data + off, piece, now_ms);
            off += took;
            piece -= took;
            drain();
            if (++guard > 100000) FAIL("feeding does not terminate");
        }
        now_ms += below(3);
    }
}

static void silence(void)
{
    if (rx.len != 0) { /* the stale rule's boundary: held 1 ms before it, given up at it */
        uint32_t stale = rx.stale;
        unsigned long got = delivered;
        now_ms = rx.last_ms + TDN_RX_STALE_MS - 1u;
        drain();
        if (rx.stale != stale || delivered != got) FAIL("a partial packet was given up %u ms after its last byte", TDN_RX_STALE_MS - 1u);
        now_ms = rx.last_ms + TDN_RX_STALE_MS;
    } else now_ms += TDN_RX_STALE_MS + 50u;
    drain();
    if (rx.len != 0 || q_count != 0) FAIL("bytes or expected packets left after a silence (len %u, q %u)", rx.len, q_count);
}

static size_t make_packet(uint8_t *out, expect_t *e)
{
    uint32_t len = below(3) == 0 ? below(TDN_MAX_PAYLOAD + 1) : below(64);
    e->type = (uint8_t)(1 + below(7));
    e->seq = (uint8_t)rnd();
    e->len = (uint16_t)len;
    if (below(10) == 0) for (uint32_t i = 0; i < len; i++) e->payload[i] = (i & 1) ? TDN_SYNC1 : TDN_SYNC0;
    else for (uint32_t i = 0; i < len; i++) e->payload[i] = (uint8_t)rnd();
    return tdn_packet_encode(out, TDN_MAX_PACKET, e->type, e->seq, e->payload, len);
}

/* A valid packet right behind damaged bytes: it must still be delivered, at the latest when
 * the damaged partial packet in front of it is given up after RX_STALE_MS. */
static void valid_behind(void)
{
    static uint8_t pkt[TDN_MAX_PACKET];
    expect_t e;
    size_t n = make_packet(pkt, &e);
    if (q_count == QMAX) FAIL("queue overflow");
    queue[(q_head + q_count) % QMAX] = e;
    q_count++;
    expected_total++;
    behind++;
    feed(pkt, n);
}

/* A header damaged in one byte, then a valid packet straight behind it, with no silence: the
 * CRC-8 rejects the header at once (bad_header), the rescan finds the valid packet, and it is
 * delivered as soon as its last byte is in - not after the damaged header's claimed length or
 * the stale rule. Nothing older is held (a silence first if needed); the damaged packet holds
 * no other 0xA5, so no other sync can start inside it. */
static unsigned long header_damage(void)
{
    static uint8_t bad[TDN_MAX_PACKET], good[TDN_MAX_PACKET];
    expect_t e, g;
    size_t nb, ng;
    uint32_t before, sync_inside;
    if (rx.len != 0 || q_count != 0) silence();
    before = rx.bad_header;
    ng = make_packet(good, &g);
    do {
        e.type = (uint8_t)(1 + below(7));
        e.seq = (uint8_t)rnd();
        e.len = (uint16_t)below(64);
        for (uint32_t i = 0; i < e.len; i++) e.payload[i] = (uint8_t)rnd();
        nb = tdn_packet_encode(bad, TDN_MAX_PACKET, e.type, e.seq, e.payload, e.len);
        for (size_t i = 7; i < nb; i++) if (bad[i] == TDN_SYNC0) bad[i] = 0;
        if (below(2) && e.len + ng + 1u <= TDN_MAX_PAYLOAD) { /* a length claiming more than follows */
            uint32_t claim = e.len + (uint32_t)ng + 1u + below(TDN_MAX_PAYLOAD - e.len - (uint32_t)ng);
            bad[4] = (uint8_t)claim;
            bad[5] = (uint8_t)(claim >> 8);
        } else { /* one byte of type, seq, length or CRC-8 */
            uint32_t pos = 2 + below(5);
            bad[pos] = (uint8_t)(bad[pos] ^ (1u + below(255)));
        }
        sync_inside = 0;
        for (size_t i = 1; i < nb; i++) sync_inside |= bad[i] == TDN_SYNC0;
    } while (sync_inside || tdn_crc8(bad + 2, 4) == bad[6]);
    feed(bad, nb);
    if (q_count == QMAX) FAIL("queue overflow");
    queue[(q_head + q_count) % QMAX] = g;
    q_count++;
    expected_total++;
    feed(good, ng);
    if (q_count != 0)
        FAIL("the packet right behind a damaged header (length field %u) was not delivered at once",
             (unsigned)(bad[4] | (bad[5] << 8)));
    if (rx.bad_header == before) FAIL("a damaged header was not counted as a bad header");
    return 1;
}

static void part_a(unsigned long items)
{
    static uint8_t pkt[TDN_MAX_PACKET + 64];
    unsigned long damaged = 0, garbage = 0, bad_len = 0, headers = 0, no_silence = 0;
    tdn_rx_init(&rx, tdn_is_request);
    for (unsigned long it = 0; it < items; it++) {
        uint32_t kind = below(100);
        expect_t e;
        size_t n;
        if (kind < 55) { /* valid packet, possibly after garbage free of A5 */
            if (below(4) == 0) {
                uint8_t g[64];
                uint32_t gn = 1 + below(sizeof g);
                for (uint32_t i = 0; i < gn; i++) { g[i] = (uint8_t)rnd(); if (g[i] == TDN_SYNC0) g[i] = 0; }
                feed(g, gn);
            }
            n = make_packet(pkt, &e);
            if (q_count == QMAX) FAIL("queue overflow");
            queue[(q_head + q_count) % QMAX] = e;
            q_count++;
            expected_total++;
            feed(pkt, n);
            if (below(50) == 0) silence();
        } else if (kind < 80) { /* damaged packet: bit flips, truncation or both */
            static uint8_t orig[TDN_MAX_PACKET];
            uint32_t how = below(3);
            n = make_packet(pkt, &e);
            memcpy(orig, pkt, n);
            if (how != 1) {
                uint32_t flips = 1 + below(8);
                for (uint32_t f = 0; f < flips; f++) pkt[below((uint32_t)n)] ^= (uint8_t)(1u << below(8));
                if (memcmp(orig, pkt, n) == 0) pkt[below((uint32_t)n)] ^= 1u; /* flips cancelled out */
            }
            if (how != 0) { /* strictly shorter */
                size_t cut = below((uint32_t)n);
                /* An intact prefix whose first missing byte is 0xA5 would be completed by the
                 * valid packet that may follow (its sync): the packet would be whole again. */
                if (memcmp(orig, pkt, cut) == 0) while (cut > 0 && orig[cut] == TDN_SYNC0) cut--;
                n = cut;
            }
            damaged++;
            feed(pkt, n);
            if (below(2)) valid_behind();
            if (how != 0 || below(2)) silence();
            else no_silence++;
        } else if (kind < 86) { /* a damaged header, a valid packet straight behind it */
            headers += header_damage();
        } else if (kind < 94) { /* garbage */
            uint32_t gn = 1 + below(2000);
            static uint8_t g[2000];
            for (uint32_t i = 0; i < gn; i++) g[i] = (uint8_t)rnd();
            if (below(3) == 0) for (uint32_t i = 0; i + 1 < gn; i += 2 + below(6)) { g[i] = TDN_SYNC0; g[i + 1] = TDN_SYNC1; }
            garbage++;
            feed(g, gn);
            if (below(2)) valid_behind();
            if (below(2)) silence();
            else no_silence++;
        } else { /* a header with a valid CRC-8 but a length over 1280 or an unknown type */
            uint32_t before = rx.bad_header;
            uint16_t len;
            uint8_t type;
            if (below(2)) { len = (uint16_t)(TDN_MAX_PAYLOAD + 1 + below(65535 - TDN_MAX_PAYLOAD)); type = (uint8_t)(1 + below(7)); }
            else {
                len = (uint16_t)below(32);
                do type = (uint8_t)rnd(); while (tdn_is_request(type));
            }
            pkt[0] = TDN_SYNC0; pkt[1] = TDN_SYNC1; pkt[2] = type; pkt[3] = (uint8_t)rnd();
            pkt[4] = (uint8_t)len; pkt[5] = (uint8_t)(len >> 8);
            pkt[6] = tdn_crc8(pkt + 2, 4);
            n = 7 + below(40);
            for (size_t i = 7; i < n; i++) pkt[i] = (uint8_t)rnd();
            if (len <= TDN_MAX_PAYLOAD && below(2)) { /* make it otherwise perfect */
                uint32_t crc;
                for (size_t i = 7; i < 7u + len; i++) pkt[i] = (uint8_t)rnd();
                crc = tdn_crc32(0, pkt + 2, 5u + len);
                memcpy(pkt + 7 + len, &crc, 4);
                n = 11u + len;
            }
            bad_len++;
            if (rx.len != 0) silence(); /* so the header is scanned as soon as it is in */
            feed(pkt, n);
            if (rx.bad_header == before) FAIL("bad header (type %02x len %u) not counted", type, len);
            if (below(2)) valid_behind();
            if (below(2)) silence();
            else no_silence++;
        }
    }
    silence();
    if (delivered != expected_total) FAIL("delivered %lu of %lu valid packets", delivered, expected_total);
    printf("part A: %lu items (%lu valid packets, %lu of them right behind damage; %lu damaged, "
           "%lu damaged headers, %lu garbage, %lu bad headers; %lu without a silence after), "
           "%lu bytes; delivered %lu; counters bad_header %u bad_crc %u stale %u\n",
           items, expected_total, behind, damaged, headers, garbage, bad_len, no_silence, stream_bytes,
           delivered, rx.bad_header, rx.bad_crc, rx.stale);
}

/* ---- part B ------------------------------------------------------------------------------ */

static tdn_ctl ctl;
static uint8_t blob[3u * 1024u * 1024u];

static uint32_t make_blob(void)
{
    static const unsigned hs[] = {1, 2, 3, 7, 8, 16, 33, 64, 128, 256};
    unsigned mode = 1 + below(3), cell = below(2), hidden = hs[below(below(4) ? 7 : 10)];
    uint32_t n = tdn_blob_size(mode, cell, hidden);
    float s = 0.01f;
    for (uint32_t i = 0; i < n; i += 4) { uint32_t v = 0x3c003c00u; memcpy(blob + i, &v, n - i < 4 ? n - i : 4); }
    for (uint32_t i = 36; i < n && below(2); i += 1 + below(n)) blob[i] = (uint8_t)rnd(); /* noise */
    memcpy(blob, "TDNB", 4);
    blob[4] = 1; blob[5] = 0; blob[6] = (uint8_t)mode; blob[7] = (uint8_t)cell;
    blob[8] = (uint8_t)hidden; blob[9] = (uint8_t)(hidden >> 8); blob[10] = 1; blob[11] = 1;
    for (unsigned i = 0; i < 5; i++) {
        float v = (mode == TDN_MODE_FP16 || below(8) == 0) ? 0.0f : s; /* unused scales are 0 */
        memcpy(blob + 12 + 4 * i, &v, 4);
    }
    memcpy(blob + 32, &n, 4);
    if (below(5) == 0) blob[below(36)] ^= (uint8_t)(1u << below(8)); /* damaged header */
    return n;
}

static unsigned long replies, errors_seen, frames_ok, models_ok;

static void request(uint8_t type, const uint8_t *payload, size_t n)
{
    static uint8_t reqbuf[TDN_MAX_PACKET], out[TDN_MAX_PACKET];
    static uint8_t seq;
    tdn_rx host;
    tdn_packet req, rep;
    size_t len, rlen;
    tdn_rx_init(&host, tdn_is_request);
    len = tdn_packet_encode(reqbuf, sizeof reqbuf, type, ++seq, payload, n);
    if (!len) FAIL("encode");
    tdn_rx_feed(&host, reqbuf, len, 0);
    if (!tdn_rx_next(&host, &req, 0)) FAIL("request not parsed");
    rlen = tdn_ctl_handle(&ctl, &req, out, sizeof out);
    if (rlen < TDN_OVERHEAD) FAIL("no reply to type %02x", type);
    tdn_rx_init(&host, tdn_is_reply);
    if (tdn_rx_feed(&host, out, rlen, 0) != rlen || !tdn_rx_next(&host, &rep, 0)) FAIL("reply not parseable");
    if (rep.seq != seq) FAIL("reply seq");
    if (rep.type != TDN_REPLY(type) && rep.type != TDN_MSG_ERROR) FAIL("reply type %02x to %02x", rep.type, type);
    if (rep.type == TDN_MSG_ERROR) {
        errors_seen++;
        if (rep.len < 2 || rep.payload[1] != type || rep.payload[0] < 1 || rep.payload[0] > 8) FAIL("bad ERROR payload");
    } else if (type == TDN_MSG_FRAME) {
        if (rep.len != 4 + 2 * TDN_BINS + TDN_COUNTERS_BYTES(TDN_WORKERS)) FAIL("frame reply length %u", rep.len);
        for (unsigned i = 0; i < TDN_BINS; i++) {
            unsigned h = rep.payload[4 + 2 * i] | (rep.payload[5 + 2 * i] << 8);
            if ((h & 0x7c00u) == 0x7c00u || (h & 0x8000u)) FAIL("mask value %04x not in [0, 1]", h);
        }
        frames_ok++;
    } else if (type == TDN_MSG_MODEL_END) models_ok++;
    if (tdn_rx_next(&host, &rep, 0)) FAIL("more than one reply");
    replies++;
}

static void upload(void)
{
    uint8_t p[4 + TDN_MAX_CHUNK];
    uint32_t n = make_blob(), crc = tdn_crc32(0, blob, n), off = 0;
    uint32_t total = n;
    if (below(10) == 0) crc ^= 1u << below(32);
    if (below(20) == 0) total = n + 1 + below(16u << 20); /* wrong or too large */
    memcpy(p, &total, 4);
    memcpy(p + 4, &crc, 4);
    request(TDN_MSG_MODEL_BEGIN, p, 8);
    while (off < n) {
        uint32_t c = below(8) ? TDN_MAX_CHUNK : below(TDN_MAX_CHUNK + 1);
        uint32_t o = below(200) == 0 ? off + 1 : off;
        if (c > n - off) c = n - off;
        memcpy(p, &o, 4);
        memcpy(p + 4, blob + off, c);
        request(TDN_MSG_MODEL_CHUNK, p, 4 + c);
        if (o != off) break;
        off += c;
    }
    request(TDN_MSG_MODEL_END, p, below(30) == 0 ? 1 : 0);
}

static void part_b(unsigned long requests)
{
    uint8_t p[TDN_MAX_PAYLOAD];
    tdn_ctl_init(&ctl);
    for (unsigned long i = 0; i < requests; i++) {
        uint32_t k = below(100);
        if (k < 10) upload();
        else if (k < 75) {
            size_t n = below(20) == 0 ? below(TDN_MAX_PAYLOAD + 1) : 4 + 2 * TDN_BINS;
            for (size_t j = 0; j < n; j++) p[j] = (uint8_t)rnd();
            if (below(2)) for (size_t j = 5; j < n; j += 2) p[j] &= 0x7f; /* mostly finite, some NaN/inf */
            request(TDN_MSG_FRAME, p, n);
        } else {
            uint8_t type = (uint8_t)(1 + below(8));
            size_t n = below(3) == 0 ? below(40) : type == TDN_MSG_TRACE ? 1 : 0;
            for (size_t j = 0; j < n; j++) p[j] = (uint8_t)rnd();
            if (type == TDN_MSG_TRACE && n == 1) p[0] = (uint8_t)below(9); /* ids 0..6 valid */
            request(type, p, n);
        }
    }
    printf("part B: %lu requests, %lu replies (%lu errors), %lu frames, %lu models loaded\n",
           requests, replies, errors_seen, frames_ok, models_ok);
}

int main(int argc, char **argv)
{
    char *hal_argv[] = {argv[0], "--no-transport", NULL};
    unsigned long items = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000ul;
    clock_t t0 = clock();
    if (hal_init(2, hal_argv) != 0) FAIL("hal_init");
    part_a(items);
    part_b(items / 100 + 100);
    printf("fuzz-parser: OK (%.1f s CPU)\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return 0;
}
