/* protocol.c - the link protocol's framing (docs/protocol.md): CRC-8 header check, CRC-32,
 * resynchronisation. Pure: no device state; the message handlers are in handlers.c.
 *
 * Receiver rules, applied in tdn_rx_next until a packet is delivered or more bytes are needed:
 *   1. discard bytes until the buffer starts with A5 5A (a trailing A5 is kept);
 *   2. with 7 bytes: bad CRC-8, length > 1280 or unknown type -> drop one byte, bad_header++;
 *   3. with the whole packet: bad CRC-32 -> drop one byte, bad_crc++;
 *   4. deliver; the packet is consumed on the next call.
 * A partial packet with no new byte for 200 ms is given up (stale++): its first byte is
 * dropped and the rest rescanned, as for a bad CRC, until the buffer is empty, so a damaged
 * header that claimed more bytes than ever came cannot hide the intact packets behind it
 * (the same rule as the host's parser, streamer/link/protocol.py).
 */
#include <string.h>

#include "tdn/config.h"
#include "tdn/le.h"
#include "tdn/protocol.h"

uint8_t tdn_crc8(const uint8_t *p, size_t n)
{
    uint8_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (uint8_t)((crc & 0x80u) ? ((unsigned)crc << 1) ^ 0x07u : (unsigned)crc << 1);
    }
    return crc;
}

static uint32_t crc32_table[256];
static int crc32_ready;

static void crc32_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int b = 0; b < 8; b++) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc32_table[i] = c;
    }
    crc32_ready = 1;
}

uint32_t tdn_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    if (!crc32_ready) crc32_init();
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc32_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}


size_t tdn_packet_encode(uint8_t *out, size_t cap, uint8_t type, uint8_t seq,
                         const uint8_t *payload, size_t n)
{
    uint32_t crc;
    if (n > TDN_MAX_PAYLOAD || cap < n + TDN_OVERHEAD) return 0;
    out[0] = TDN_SYNC0;
    out[1] = TDN_SYNC1;
    out[2] = type;
    out[3] = seq;
    tdn_put_u16(out + 4, (uint32_t)n);
    out[6] = tdn_crc8(out + 2, 4);
    if (n) memmove(out + 7, payload, n);
    crc = tdn_crc32(0, out + 2, 5 + n);
    tdn_put_u32(out + 7 + n, crc);
    return n + TDN_OVERHEAD;
}

int tdn_is_request(uint8_t type) { return type >= TDN_MSG_INFO && type <= TDN_MSG_TRACE; }
int tdn_is_reply(uint8_t type)
{
    return type == TDN_MSG_ERROR || (type >= TDN_REPLY(TDN_MSG_INFO) && type <= TDN_REPLY(TDN_MSG_TRACE));
}

void tdn_rx_init(tdn_rx *rx, tdn_type_ok type_ok)
{
    memset(rx, 0, sizeof *rx);
    rx->type_ok = type_ok ? type_ok : tdn_is_request;
}

static void drop(tdn_rx *rx, uint32_t n)
{
    if (n > rx->len) n = rx->len;
    rx->start += n;
    rx->len -= n;
    if (rx->len == 0) rx->start = 0;
}

size_t tdn_rx_feed(tdn_rx *rx, const uint8_t *data, size_t n, uint32_t now_ms)
{
    size_t room;
    if (rx->consume) { drop(rx, rx->consume); rx->consume = 0; }
    if (n == 0) return 0;
    rx->giving_up = 0; /* new bytes: what is left waits for another stale period */
    if (rx->start + rx->len + n > sizeof rx->buf && rx->start) { /* compact */
        memmove(rx->buf, rx->buf + rx->start, rx->len);
        rx->start = 0;
    }
    room = sizeof rx->buf - rx->start - rx->len;
    if (n > room) n = room;
    if (n == 0) return 0;
    memcpy(rx->buf + rx->start + rx->len, data, n);
    rx->len += (uint32_t)n;
    rx->last_ms = now_ms;
    return n;
}

int tdn_rx_next(tdn_rx *rx, tdn_packet *pkt, uint32_t now_ms)
{
    if (rx->consume) { drop(rx, rx->consume); rx->consume = 0; }
    for (;;) {
        const uint8_t *p;
        uint32_t i = 0, n, total, crc;
        /* 1. find the sync word */
        p = rx->buf + rx->start;
        while (i < rx->len && !(p[i] == TDN_SYNC0 && (i + 1 == rx->len || p[i + 1] == TDN_SYNC1))) i++;
        drop(rx, i);
        p = rx->buf + rx->start;
        if (rx->len < TDN_HEADER_BYTES) goto partial;
        /* 2. header */
        n = (uint32_t)p[4] | ((uint32_t)p[5] << 8);
        if (tdn_crc8(p + 2, 4) != p[6] || n > TDN_MAX_PAYLOAD || !rx->type_ok(p[2])) {
            rx->bad_header++;
            drop(rx, 1);
            continue;
        }
        /* 3. whole packet */
        total = n + TDN_OVERHEAD;
        if (rx->len < total) goto partial;
        crc = (uint32_t)p[7 + n] | ((uint32_t)p[8 + n] << 8) | ((uint32_t)p[9 + n] << 16) |
              ((uint32_t)p[10 + n] << 24);
        if (tdn_crc32(0, p + 2, 5 + n) != crc) {
            rx->bad_crc++;
            drop(rx, 1);
            continue;
        }
        /* 4. deliver */
        pkt->type = p[2];
        pkt->seq = p[3];
        pkt->len = (uint16_t)n;
        pkt->payload = p + 7;
        rx->consume = total;
        return 1;
    partial: /* more bytes needed: wait, or give up on a stale partial packet */
        if (rx->len == 0) { rx->giving_up = 0; return 0; }
        if (!rx->giving_up) {
            if ((uint32_t)(now_ms - rx->last_ms) < TDN_RX_STALE_MS) return 0;
            rx->stale++;
            rx->giving_up = 1;
        }
        drop(rx, 1);
    }
}
