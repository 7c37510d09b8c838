/*
 * Protobuf wire reading, UTF-8 checks and text output for _otlp_decode.c.
 *
 * Plain C, no Python: everything here runs without the GIL. Every read is bounded by the end of the
 * message it reads; whatever is malformed, or merely unusual, is reported to the caller, which then gives
 * the whole body to the Python decoder (upb), so a bad body always gets upb's verdict and upb's error.
 * That is why the checks here are at least as strict as upb's: accepting less than upb is only slower,
 * accepting more would be wrong.
 */
#ifndef JOURNEYSCOPE_OTLP_WIRE_H
#define JOURNEYSCOPE_OTLP_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- growable buffers and vectors */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

/* Room for `extra` more bytes; -1 when memory runs out. */
static int buf_grow(Buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > (SIZE_MAX / 4) - b->len)
        return -1;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t n)
{
    if (buf_grow(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static void buf_free(Buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* A Buf used as a vector of fixed-size items: a new zeroed item at the end, or NULL without memory.
 * The pointer is valid until the next push onto the same vector: keep indexes across pushes. */
static void *vec_push(Buf *b, size_t size)
{
    if (buf_grow(b, size) < 0)
        return NULL;
    void *item = b->data + b->len;
    memset(item, 0, size);
    b->len += size;
    return item;
}

#define VEC(buf, type) ((type *)(buf).data)
#define VEC_LEN(buf, type) ((buf).len / sizeof(type))

/* ---------------------------------------------------------------- the wire format */

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 }; /* 3 and 4: groups */

typedef struct {
    const uint8_t *p, *end;
} Reader;

/* A varint of at most 10 bytes into *out; -1 if truncated or longer. A 10th byte above 1 (bits past the
 * 64th) is refused too: upb drops those bits, and such a body is not worth reproducing that for. */
static inline int read_varint(Reader *r, uint64_t *out)
{
    const uint8_t *p = r->p;
    if (p < r->end && *p < 0x80) {
        *out = *p;
        r->p = p + 1;
        return 0;
    }
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= r->end)
            return -1;
        uint8_t byte = *p++;
        if (shift == 63 && byte > 1)
            return -1;
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (byte < 0x80) {
            *out = value;
            r->p = p;
            return 0;
        }
    }
    return -1;
}

/* A varint of at most 5 bytes and a value up to `max` (tags and lengths, as upb reads them); else -1. */
static inline int read_varint32(Reader *r, uint64_t max, uint64_t *out)
{
    const uint8_t *start = r->p;
    if (read_varint(r, out) < 0 || r->p - start > 5 || *out > max)
        return -1;
    return 0;
}

static inline uint64_t load_le(const uint8_t *p, int n)
{
    uint64_t value = 0;
    for (int i = n - 1; i >= 0; i--)
        value = (value << 8) | p[i];
    return value;
}

/* The payload of a length-delimited field; -1 if its length runs past the end of the message. */
static inline int read_len(Reader *r, const uint8_t **data, uint32_t *len)
{
    uint64_t n;
    if (read_varint32(r, INT32_MAX, &n) < 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    *data = r->p;
    *len = (uint32_t)n;
    r->p += n;
    return 0;
}

/* Step over a field this decoder does not know (upb keeps it as an unknown field and checks no more);
 * groups (deprecated) and the reserved wire types 6 and 7 are given up on. */
static int skip_field(Reader *r, int wire)
{
    uint64_t ignored;
    const uint8_t *data;
    uint32_t len;
    switch (wire) {
    case WIRE_VARINT:
        return read_varint(r, &ignored);
    case WIRE_FIXED64:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case WIRE_FIXED32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    case WIRE_LEN:
        return read_len(r, &data, &len);
    default:
        return -1;
    }
}

/* ---------------------------------------------------------------- UTF-8 */

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF), as upb checks
 * proto3 string fields and as Python decodes them. */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (n - i >= 8) { /* ASCII runs eight bytes at a time */
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i == n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        }
        else if (c < 0xC2) { /* a continuation byte, or the lead of an overlong 2-byte form */
            return 0;
        }
        else if (c < 0xE0) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
        }
        else if (c < 0xF0) {
            if (n - i < 3 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F)) /* overlong; surrogate */
                return 0;
            i += 3;
        }
        else if (c < 0xF5) {
            if (n - i < 4 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80
                || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)) /* overlong; > U+10FFFF */
                return 0;
            i += 4;
        }
        else {
            return 0;
        }
    }
    return 1;
}

static int is_ascii(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] & 0x80)
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- text output */

static const char HEX_DIGITS[] = "0123456789abcdef";

/* Lowercase hex of n bytes, as bytes.hex(). */
static int put_hex(Buf *b, const uint8_t *s, size_t n)
{
    if (buf_grow(b, 2 * n) < 0)
        return -1;
    char *out = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_DIGITS[s[i] >> 4];
        out[2 * i + 1] = HEX_DIGITS[s[i] & 15];
    }
    b->len += 2 * n;
    return 0;
}

/* A JSON string as Python's json module writes it with ensure_ascii=False (encode_basestring): `"` and `\`
 * escaped, \b \f \n \r \t by name, other bytes below 0x20 as \u00XX in lowercase hex, the rest verbatim
 * (UTF-8 multi-byte sequences only hold bytes >= 0x80, so escaping bytes is escaping characters). */
static int put_json_string(Buf *b, const uint8_t *s, size_t n)
{
    if (buf_grow(b, n + 2) < 0)
        return -1;
    b->data[b->len++] = '"';
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char escape[6] = {'\\', 0, 0, 0, 0, 0};
        size_t size = 2;
        switch (c) {
        case '"': escape[1] = '"'; break;
        case '\\': escape[1] = '\\'; break;
        case '\b': escape[1] = 'b'; break;
        case '\f': escape[1] = 'f'; break;
        case '\n': escape[1] = 'n'; break;
        case '\r': escape[1] = 'r'; break;
        case '\t': escape[1] = 't'; break;
        default:
            memcpy(escape + 1, "u00", 3);
            escape[4] = HEX_DIGITS[c >> 4];
            escape[5] = HEX_DIGITS[c & 15];
            size = 6;
        }
        if (buf_put(b, s + run, i - run) < 0 || buf_put(b, escape, size) < 0)
            return -1;
        run = i + 1;
    }
    if (buf_put(b, s + run, n - run) < 0 || buf_put(b, "\"", 1) < 0)
        return -1;
    return 0;
}

/* A signed 64-bit integer in decimal, as int.__repr__. */
static int put_int(Buf *b, int64_t value)
{
    char digits[24];
    size_t at = sizeof(digits);
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[--at] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        digits[--at] = '-';
    return buf_put(b, digits + at, sizeof(digits) - at);
}

/* A JSON string of the standard base64 of n bytes, as base64.b64encode(...).decode("ascii"). */
static int put_base64_string(Buf *b, const uint8_t *s, size_t n)
{
    static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t size = 4 * ((n + 2) / 3);
    if (buf_grow(b, size + 2) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        *out++ = ALPHABET[v >> 18];
        *out++ = ALPHABET[(v >> 12) & 63];
        *out++ = ALPHABET[(v >> 6) & 63];
        *out++ = ALPHABET[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *out++ = ALPHABET[v >> 18];
        *out++ = ALPHABET[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    }
    else if (n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        *out++ = ALPHABET[v >> 18];
        *out++ = ALPHABET[(v >> 12) & 63];
        *out++ = ALPHABET[(v >> 6) & 63];
        *out++ = '=';
    }
    *out++ = '"';
    b->len += size + 2;
    return 0;
}

#endif /* JOURNEYSCOPE_OTLP_WIRE_H */
