/* protocol.h - the frame link protocol, version 1 (docs/protocol.md): packet framing, CRCs,
 * and a receiver that resynchronises after damage. Pure code: no I/O, no allocation, time is
 * passed in; the controller feeds it transport bytes.
 */
#ifndef TDN_PROTOCOL_H
#define TDN_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define TDN_SYNC0 0xA5u
#define TDN_SYNC1 0x5Au
#define TDN_MAX_PAYLOAD 1280u
#define TDN_HEADER_BYTES 7u
#define TDN_OVERHEAD 11u
#define TDN_MAX_PACKET (TDN_MAX_PAYLOAD + TDN_OVERHEAD)
#define TDN_RX_STALE_MS 200u
#define TDN_MAX_CHUNK 1024u
#define TDN_MAX_ERROR_TEXT 200u

/* message types: requests 0x01..0x3F, replies = request | 0x80, ERROR 0x7F */
#define TDN_MSG_INFO 0x01u
#define TDN_MSG_MODEL_BEGIN 0x02u
#define TDN_MSG_MODEL_CHUNK 0x03u
#define TDN_MSG_MODEL_END 0x04u
#define TDN_MSG_FRAME 0x05u
#define TDN_MSG_RESET 0x06u
#define TDN_MSG_STATS 0x07u
#define TDN_MSG_TRACE 0x08u
#define TDN_MSG_ERROR 0x7Fu
#define TDN_REPLY(t) ((uint8_t)((t) | 0x80u))

uint8_t tdn_crc8(const uint8_t *p, size_t n);
/* zlib-compatible CRC-32; chain with crc = tdn_crc32(crc, p, n) starting from 0. */
uint32_t tdn_crc32(uint32_t crc, const uint8_t *p, size_t n);

/* Encode one packet into out (room for n + 11 bytes). Returns its length, 0 if n too big. */
size_t tdn_packet_encode(uint8_t *out, size_t cap, uint8_t type, uint8_t seq,
                         const uint8_t *payload, size_t n);

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint16_t len;
    const uint8_t *payload; /* inside the receiver's buffer: valid until its next call */
} tdn_packet;

/* A packet type the receiver accepts (others are bad headers). */
typedef int (*tdn_type_ok)(uint8_t type);
int tdn_is_request(uint8_t type); /* 0x01..0x08: what the device receives */
int tdn_is_reply(uint8_t type);   /* 0x81..0x88 and 0x7F: what the host receives */

typedef struct {
    uint8_t buf[2 * TDN_MAX_PACKET];
    uint32_t start, len;      /* unconsumed bytes: buf[start .. start+len) */
    uint32_t consume;         /* bytes of the packet delivered last, consumed on the next call */
    uint32_t last_ms;         /* time of the newest byte */
    uint32_t bad_header, bad_crc, stale;
    uint8_t giving_up;        /* a stale partial packet is being given up, byte by byte */
    tdn_type_ok type_ok;
} tdn_rx;

void tdn_rx_init(tdn_rx *rx, tdn_type_ok type_ok);
/* Append up to n bytes received at now_ms; returns how many were taken (all, unless the
 * buffer is full: call tdn_rx_next until it returns 0, then feed the rest). */
size_t tdn_rx_feed(tdn_rx *rx, const uint8_t *data, size_t n, uint32_t now_ms);
/* Deliver the next complete, valid packet (1) or 0 if none yet. Applies the resync rules
 * and the RX_STALE_MS rule: a partial packet with no new byte for RX_STALE_MS is given up
 * (stale++) by dropping its first byte and rescanning, as for a bad CRC, until the buffer is
 * empty; intact packets found behind it are still delivered. Call until it returns 0. */
int tdn_rx_next(tdn_rx *rx, tdn_packet *pkt, uint32_t now_ms);

#endif
