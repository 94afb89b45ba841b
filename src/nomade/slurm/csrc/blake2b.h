/* BLAKE2b for the record hash of nomade.slurm._sacct_scan (included by _sacct_scan.c). */
#ifndef NOMADE_SACCT_BLAKE2B_H
#define NOMADE_SACCT_BLAKE2B_H
#include <stdint.h>
#include <string.h>

/* BLAKE2b (RFC 7693), 16-byte digest with a personalization, as hashlib.blake2b(data,
 * digest_size=16, person=...) computes it (sacct_scan.digest; a test compares the two) */
typedef struct { uint64_t h[8], t; unsigned char buf[128]; size_t n; } B2;

static const uint64_t b2_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
static const unsigned char b2_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

static inline uint64_t le64(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
#endif
}

#define ROTR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
#define B2G(a, b, c, d, x, y) do { \
        a = a + b + (x); d = ROTR64(d ^ a, 32); c = c + d; b = ROTR64(b ^ c, 24); \
        a = a + b + (y); d = ROTR64(d ^ a, 16); c = c + d; b = ROTR64(b ^ c, 63); } while (0)

static void b2_compress(B2 *s, const unsigned char *blk, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = le64(blk + 8 * i);
    for (int i = 0; i < 8; i++) { v[i] = s->h[i]; v[i + 8] = b2_iv[i]; }
    v[12] ^= s->t;
    if (last) v[14] = ~v[14];
#define B2ROUND(r) do { const unsigned char *z = b2_sigma[r]; \
        B2G(v[0], v[4], v[8], v[12], m[z[0]], m[z[1]]); B2G(v[1], v[5], v[9], v[13], m[z[2]], m[z[3]]); \
        B2G(v[2], v[6], v[10], v[14], m[z[4]], m[z[5]]); B2G(v[3], v[7], v[11], v[15], m[z[6]], m[z[7]]); \
        B2G(v[0], v[5], v[10], v[15], m[z[8]], m[z[9]]); B2G(v[1], v[6], v[11], v[12], m[z[10]], m[z[11]]); \
        B2G(v[2], v[7], v[8], v[13], m[z[12]], m[z[13]]); B2G(v[3], v[4], v[9], v[14], m[z[14]], m[z[15]]); \
    } while (0)
    /* unrolled: the message schedule's indices become constants */
    B2ROUND(0); B2ROUND(1); B2ROUND(2); B2ROUND(3); B2ROUND(4); B2ROUND(5);
    B2ROUND(6); B2ROUND(7); B2ROUND(8); B2ROUND(9); B2ROUND(10); B2ROUND(11);
    for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
}

static void b2_init(B2 *s, const unsigned char person[16]) {
    for (int i = 0; i < 8; i++) s->h[i] = b2_iv[i];
    s->h[0] ^= 0x01010000ULL ^ 16;          /* fanout 1, depth 1, no key, 16-byte digest */
    s->h[6] ^= le64(person);
    s->h[7] ^= le64(person + 8);
    s->t = 0;
    s->n = 0;
}

static void b2_update_slow(B2 *s, const char *p, Py_ssize_t n) {
    const unsigned char *q = (const unsigned char *)p;
    while (n > 0) {
        if (s->n == 128) {                  /* a full block is compressed once more data follows */
            s->t += 128;
            b2_compress(s, s->buf, 0);
            s->n = 0;
        }
        size_t k = 128 - s->n;
        if ((Py_ssize_t)k > n) k = (size_t)n;
        memcpy(s->buf + s->n, q, k);
        s->n += k;
        q += k;
        n -= (Py_ssize_t)k;
    }
}

static inline void b2_update(B2 *s, const char *p, Py_ssize_t n) {
    if ((Py_ssize_t)s->n + n <= 128 && !(s->n == 128 && n > 0)) {   /* fits in the open block */
        memcpy(s->buf + s->n, p, (size_t)n);
        s->n += (size_t)n;
        return;
    }
    b2_update_slow(s, p, n);
}

static inline void b2_byte(B2 *s, char c) {
    if (s->n < 128) s->buf[s->n++] = (unsigned char)c;
    else b2_update_slow(s, &c, 1);
}

static void b2_hex(B2 *s, char out[32]) {
    static const char hex[] = "0123456789abcdef";
    s->t += s->n;
    memset(s->buf + s->n, 0, 128 - s->n);
    b2_compress(s, s->buf, 1);
    for (int i = 0; i < 16; i++) {
        unsigned char c = (unsigned char)(s->h[i / 8] >> (8 * (i % 8)));
        out[2 * i] = hex[c >> 4];
        out[2 * i + 1] = hex[c & 15];
    }
}

#endif
