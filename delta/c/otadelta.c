/*
 * otadelta — see otadelta.h. C99; the only libc calls are memcpy and memset.
 */
#include "otadelta.h"

#include <string.h>

/* ---------------------------------------------------------------- SHA-256 */

static const uint32_t sha_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const uint8_t p[64])
{
    uint32_t w[64], a, b, c, d, e, f, g, hh;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
    for (i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void ota_sha256_init(ota_sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    memset(s->buf, 0, sizeof s->buf);
}

void ota_sha256_update(ota_sha256 *s, const uint8_t *p, size_t n)
{
    size_t fill = (size_t)(s->len & 63);
    s->len += n;
    if (fill) {
        size_t take = 64 - fill < n ? 64 - fill : n;
        memcpy(s->buf + fill, p, take);
        p += take;
        n -= take;
        if (fill + take < 64)
            return;
        sha_block(s->h, s->buf);
    }
    for (; n >= 64; n -= 64, p += 64)
        sha_block(s->h, p);
    if (n)
        memcpy(s->buf, p, n);
}

void ota_sha256_final(ota_sha256 *s, uint8_t out[32])
{
    size_t fill = (size_t)(s->len & 63);
    uint64_t bits = s->len * 8;
    int i;
    s->buf[fill++] = 0x80;
    if (fill > 56) {
        memset(s->buf + fill, 0, 64 - fill);
        sha_block(s->h, s->buf);
        fill = 0;
    }
    memset(s->buf + fill, 0, 56 - fill);
    for (i = 0; i < 8; i++)
        s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_block(s->h, s->buf);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* ------------------------------------------------------------------ CRC-32 */

/* IEEE CRC-32 (zlib's crc32), a nibble at a time: a 64-byte table. */
static const uint32_t crc_tab[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu, 0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
};

static uint32_t crc_update(uint32_t crc, const uint8_t *p, uint32_t n)
{
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_tab[crc & 15];
        crc = (crc >> 4) ^ crc_tab[crc & 15];
    }
    return crc;
}

/* ----------------------------------------------------------------- helpers */

enum { PH_HDR, PH_SKIP_SV, PH_TVLEN, PH_SKIP_TV, PH_TABLE, PH_BLOCKS, PH_END };
enum { I_IDLE, I_V, I_D, I_DATA };
enum { HS_HDR, HS_ITEMS, HS_DONE };

#define OP_COPY 0u
#define OP_ADD 1u
#define OP_INSERT 2u
#define HDR_FIXED 89u /* header bytes up to and including source_version_len */
#define ENTRY 12u

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Non-zero if the 32-byte digests differ (libc use is limited to memcpy and
 * memset). */
static int digest_differs(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    while (n--)
        d |= (uint8_t)(*a++ ^ *b++);
    return d != 0;
}

static int fail(ota_delta_ctx *c, int rc)
{
    c->err = rc;
    return rc;
}

static const uint8_t *entry(const ota_delta_ctx *c, uint32_t i)
{
    return c->work + (size_t)i * ENTRY;
}

static uint32_t block_target_len(const ota_delta_ctx *c, uint32_t i)
{
    uint32_t start = i * c->block_size; /* < target_size, so no overflow */
    uint32_t rest = c->target_size - start;
    return rest < c->block_size ? rest : c->block_size;
}

static int flush(ota_delta_ctx *c)
{
    if (c->ofill == 0)
        return 0;
    if (c->io.write_target(c->io.user, c->tgt_pos, c->obuf, c->ofill) != 0)
        return fail(c, OTA_DELTA_E_IO);
    c->crc = crc_update(c->crc, c->obuf, c->ofill);
    ota_sha256_update(&c->sha, c->obuf, c->ofill);
    c->tgt_pos += c->ofill;
    c->ofill = 0;
    return 0;
}

static int out_byte(ota_delta_ctx *c, uint8_t b)
{
    c->obuf[c->ofill++] = b;
    if (c->ofill == OTA_DELTA_IOBUF)
        return flush(c);
    return 0;
}

/* Source-pointer move and range check for COPY and ADD. */
static int seek_source(ota_delta_ctx *c, uint32_t zz)
{
    int64_t d = (int64_t)(zz >> 1);
    if (zz & 1)
        d = -d - 1;
    c->sp += d;
    if (c->sp < 0 || c->sp + (int64_t)c->ilen > (int64_t)c->source_size)
        return fail(c, OTA_DELTA_E_RANGE);
    return 0;
}

static int do_copy(ota_delta_ctx *c)
{
    uint32_t left = c->ilen;
    while (left) {
        uint32_t n = OTA_DELTA_IOBUF - c->ofill;
        if (n > left)
            n = left;
        if (c->io.read_source(c->io.user, (uint32_t)c->sp, c->obuf + c->ofill, n) != 0)
            return fail(c, OTA_DELTA_E_IO);
        c->ofill += n;
        c->sp += n;
        left -= n;
        if (c->ofill == OTA_DELTA_IOBUF && flush(c) != 0)
            return c->err;
    }
    c->tgt_left -= c->ilen;
    return 0;
}

/* Instruction parser: takes one decoded byte of the block. */
static int parse_byte(ota_delta_ctx *c, uint8_t b)
{
    switch (c->ist) {
    case I_IDLE:
        if (c->tgt_left == 0)
            return fail(c, OTA_DELTA_E_BLOCK); /* data after the block's last byte */
        c->vacc = 0;
        c->vshift = 0;
        c->ist = I_V;
        /* fall through */
    case I_V:
    case I_D:
        if (c->vshift == 28 && b > 0x0f)
            return fail(c, OTA_DELTA_E_INSTR); /* varint past 32 bits */
        c->vacc |= (uint32_t)(b & 0x7f) << c->vshift;
        if (b & 0x80) {
            c->vshift += 7;
            return 0;
        }
        if (c->ist == I_V) {
            c->op = c->vacc & 3;
            c->ilen = c->vacc >> 2;
            if (c->ilen == 0 || c->op == 3)
                return fail(c, OTA_DELTA_E_INSTR);
            if (c->ilen > c->tgt_left)
                return fail(c, OTA_DELTA_E_BLOCK);
            if (c->op == OP_INSERT) {
                c->ist = I_DATA;
                return 0;
            }
            c->vacc = 0;
            c->vshift = 0;
            c->ist = I_D;
            return 0;
        }
        if (seek_source(c, c->vacc) != 0)
            return c->err;
        if (c->op == OP_COPY) {
            c->ist = I_IDLE;
            return do_copy(c);
        }
        c->sbuf_len = c->sbuf_idx = 0;
        c->ist = I_DATA;
        return 0;
    default: /* I_DATA */
        if (c->op == OP_ADD) {
            if (c->sbuf_idx == c->sbuf_len) {
                uint32_t n = c->ilen < OTA_DELTA_IOBUF ? c->ilen : OTA_DELTA_IOBUF;
                if (c->io.read_source(c->io.user, (uint32_t)c->sp, c->sbuf, n) != 0)
                    return fail(c, OTA_DELTA_E_IO);
                c->sbuf_len = n;
                c->sbuf_idx = 0;
            }
            b = (uint8_t)(b + c->sbuf[c->sbuf_idx++]);
            c->sp++;
        }
        c->ilen--;
        c->tgt_left--;
        if (c->ilen == 0)
            c->ist = I_IDLE;
        return out_byte(c, b);
    }
}

/* Heatshrink decoder (docs/heatshrink.md): takes one patch byte of the block
 * and passes what it decodes to the parser. Each item is at least 9 bits, so
 * one input byte completes at most one item. */
static int hs_byte(ota_delta_ctx *c, uint8_t b)
{
    uint32_t need, v, d, n, mask;
    if (c->hs_state == HS_HDR) {
        unsigned w = b >> 4, l = b & 15u;
        if (w < 8 || w > OTA_DELTA_MAX_WINDOW_BITS || l < 3 || l > 8 || l >= w)
            return fail(c, OTA_DELTA_E_CODEC);
        if ((uint64_t)c->nblocks * ENTRY + ((uint64_t)1 << w) > c->work_len)
            return fail(c, OTA_DELTA_E_NOMEM);
        c->hs_w = (uint8_t)w;
        c->hs_l = (uint8_t)l;
        c->hs_min = (uint8_t)((1 + w + l) / 9 + 1);
        c->window = c->work + (size_t)c->nblocks * ENTRY;
        c->hs_bits = 0;
        c->hs_nbits = 0;
        c->hs_pos = 0;
        c->hs_count = 0;
        c->hs_state = HS_ITEMS;
        return 0;
    }
    if (c->hs_state == HS_DONE)
        return fail(c, OTA_DELTA_E_BLOCK); /* bytes after the end item */
    c->hs_bits = c->hs_bits << 8 | b;
    c->hs_nbits += 8;
    mask = ((uint32_t)1 << c->hs_w) - 1;
    if (c->hs_bits >> (c->hs_nbits - 1) & 1) { /* literal */
        if (c->hs_nbits < 9)
            return 0;
        c->hs_nbits -= 9;
        v = c->hs_bits >> c->hs_nbits & 0xff;
        c->hs_bits &= ((uint32_t)1 << c->hs_nbits) - 1;
        c->window[c->hs_pos] = (uint8_t)v;
        c->hs_pos = (c->hs_pos + 1) & mask;
        if (c->hs_count <= mask)
            c->hs_count++;
        return parse_byte(c, (uint8_t)v);
    }
    need = 1u + c->hs_w + c->hs_l;
    if (c->hs_nbits < need)
        return 0;
    c->hs_nbits -= need;
    v = c->hs_bits >> c->hs_nbits & (((uint32_t)1 << (c->hs_w + c->hs_l)) - 1);
    c->hs_bits &= ((uint32_t)1 << c->hs_nbits) - 1;
    d = v >> c->hs_l;
    n = (v & (((uint32_t)1 << c->hs_l) - 1)) + c->hs_min;
    if (d == 0) {
        if (n != c->hs_min || c->hs_bits != 0) /* count or padding not zero */
            return fail(c, OTA_DELTA_E_CODEC);
        c->hs_state = HS_DONE;
        return 0;
    }
    if (d > c->hs_count)
        return fail(c, OTA_DELTA_E_CODEC); /* reaches before the stream start */
    while (n--) {
        uint8_t x = c->window[(c->hs_pos - d) & mask];
        c->window[c->hs_pos] = x;
        c->hs_pos = (c->hs_pos + 1) & mask;
        if (c->hs_count <= mask)
            c->hs_count++;
        if (parse_byte(c, x) != 0)
            return c->err;
    }
    return 0;
}

static void begin_block(ota_delta_ctx *c)
{
    const uint8_t *e = entry(c, c->block);
    c->block_start = c->patch_pos;
    c->packed_left = le32(e);
    c->sp = (int64_t)le32(e + 4);
    c->tgt_left = block_target_len(c, c->block);
    c->crc = 0xffffffffu;
    c->ist = I_IDLE;
    c->hs_state = HS_HDR;
}

static void snapshot(ota_delta_ctx *c)
{
    ota_delta_resume *r = &c->res;
    r->magic = OTA_DELTA_RESUME_MAGIC;
    r->next_block = c->block;
    r->table_end = c->table_end;
    r->patch_offset = c->patch_pos;
    r->target_offset = c->tgt_pos;
    memcpy(r->target_sha256, c->target_sha256, 32);
    r->sha = c->sha;
}

static int finish_target(ota_delta_ctx *c)
{
    uint8_t sum[32];
    ota_sha256 s = c->sha;
    c->phase = PH_END;
    ota_sha256_final(&s, sum);
    if (digest_differs(sum, c->target_sha256, 32) != 0)
        return fail(c, OTA_DELTA_E_TARGET_HASH);
    return OTA_DELTA_DONE;
}

static int end_block(ota_delta_ctx *c)
{
    if (c->ist != I_IDLE || c->tgt_left != 0)
        return fail(c, OTA_DELTA_E_BLOCK);
    if (c->codec == 5 && c->hs_state != HS_DONE)
        return fail(c, OTA_DELTA_E_BLOCK);
    if (flush(c) != 0)
        return c->err;
    if ((c->crc ^ 0xffffffffu) != le32(entry(c, c->block) + 8))
        return fail(c, OTA_DELTA_E_CRC);
    c->block++;
    c->blocks_done_flag = 1;
    snapshot(c);
    if (c->block == c->nblocks)
        return finish_target(c);
    begin_block(c);
    return 0;
}

static int verify_source(ota_delta_ctx *c)
{
    ota_sha256 s;
    uint8_t sum[32];
    uint32_t off = 0;
    ota_sha256_init(&s);
    while (off < c->source_size) {
        uint32_t n = c->source_size - off;
        if (n > OTA_DELTA_IOBUF)
            n = OTA_DELTA_IOBUF;
        if (c->io.read_source(c->io.user, off, c->obuf, n) != 0)
            return fail(c, OTA_DELTA_E_IO);
        ota_sha256_update(&s, c->obuf, n);
        off += n;
    }
    ota_sha256_final(&s, sum);
    if (digest_differs(sum, c->source_sha256, 32) != 0)
        return fail(c, OTA_DELTA_E_SOURCE_HASH);
    return 0;
}

/* Checks a resume record against the parsed table and adopts it. */
static int apply_resume(ota_delta_ctx *c)
{
    const ota_delta_resume *r = &c->res;
    uint64_t off = c->table_end, want;
    uint32_t i;
    if (digest_differs(r->target_sha256, c->target_sha256, 32) != 0 || r->table_end != c->table_end ||
        r->next_block > c->nblocks)
        return fail(c, OTA_DELTA_E_RESUME);
    for (i = 0; i < r->next_block; i++)
        off += le32(entry(c, i));
    if (off != r->patch_offset)
        return fail(c, OTA_DELTA_E_RESUME);
    want = (uint64_t)r->next_block * c->block_size;
    if (want > c->target_size)
        want = c->target_size;
    if (r->target_offset != want)
        return fail(c, OTA_DELTA_E_RESUME);
    if (r->sha.len != r->target_offset)
        return fail(c, OTA_DELTA_E_RESUME);
    c->block = r->next_block;
    c->patch_pos = r->patch_offset;
    c->tgt_pos = r->target_offset;
    c->sha = r->sha;
    return 0;
}

/* Called when the block table is complete. */
static int end_table(ota_delta_ctx *c)
{
    uint64_t sum = c->table_end;
    uint32_t i;
    for (i = 0; i < c->nblocks; i++) {
        const uint8_t *e = entry(c, i);
        if (le32(e) == 0 || le32(e + 4) > c->source_size)
            return fail(c, OTA_DELTA_E_HEADER);
        sum += le32(e);
    }
    if (sum > 0xffffffffu)
        return fail(c, OTA_DELTA_E_HEADER);
    if (c->io.verify_source && verify_source(c) != 0)
        return c->err;
    c->block = 0;
    if (c->resuming && apply_resume(c) != 0)
        return c->err;
    c->phase = PH_BLOCKS;
    snapshot(c);
    if (c->block == c->nblocks)
        return finish_target(c);
    begin_block(c);
    return 0;
}

static int parse_header(ota_delta_ctx *c)
{
    const uint8_t *h = c->hdr;
    uint64_t nb, table;
    if (h[0] != 'O' || h[1] != 'T' || h[2] != 'A' || h[3] != 'D')
        return fail(c, OTA_DELTA_E_MAGIC);
    if (h[4] != 1)
        return fail(c, OTA_DELTA_E_VERSION);
    c->layout = h[5];
    c->codec = h[6];
    if (c->layout != 0 || (c->codec != 0 && c->codec != 5) || h[7] != 0)
        return fail(c, OTA_DELTA_E_UNSUPPORTED);
    c->source_size = le32(h + 8);
    c->target_size = le32(h + 12);
    memcpy(c->source_sha256, h + 16, 32);
    memcpy(c->target_sha256, h + 48, 32);
    c->block_size = le32(h + 80);
    c->applier_ram = le32(h + 84);
    if (c->block_size == 0)
        return fail(c, OTA_DELTA_E_HEADER);
    if (c->source_size != c->io.source_size)
        return fail(c, OTA_DELTA_E_SOURCE_SIZE);
    nb = ((uint64_t)c->target_size + c->block_size - 1) / c->block_size;
    table = nb * ENTRY;
    /* applier_ram is the writer's statement of table + window: refusing
     * here spares downloading a patch this device cannot apply. The window
     * is checked again when each block names it. */
    if (table > c->work_len || c->applier_ram > c->work_len)
        return fail(c, OTA_DELTA_E_NOMEM);
    c->nblocks = (uint32_t)nb;
    c->skip = h[88];
    c->phase = PH_SKIP_SV;
    return 0;
}

/* ------------------------------------------------------------------ public */

int ota_delta_init(ota_delta_ctx *c, const ota_delta_io *io, uint8_t *work, uint32_t work_len)
{
    if (c == NULL)
        return OTA_DELTA_E_ARG;
    memset(c, 0, sizeof *c);
    if (io == NULL || io->read_source == NULL || io->write_target == NULL ||
        (work == NULL && work_len != 0)) {
        c->err = OTA_DELTA_E_ARG;
        return OTA_DELTA_E_ARG;
    }
    c->io = *io;
    c->work = work;
    c->work_len = work_len;
    c->phase = PH_HDR;
    ota_sha256_init(&c->sha);
    return OTA_DELTA_OK;
}

int ota_delta_resume_from(ota_delta_ctx *c, const ota_delta_resume *rec)
{
    if (c == NULL || rec == NULL)
        return OTA_DELTA_E_ARG;
    if (c->err)
        return c->err;
    if (c->phase != PH_HDR || c->hdr_fill != 0)
        return fail(c, OTA_DELTA_E_ARG);
    if (rec->magic != OTA_DELTA_RESUME_MAGIC)
        return fail(c, OTA_DELTA_E_RESUME);
    c->res = *rec;
    c->resuming = 1;
    return OTA_DELTA_OK;
}

int ota_delta_feed(ota_delta_ctx *c, const uint8_t *buf, size_t len)
{
    size_t i = 0;
    int rc;
    if (c == NULL || (buf == NULL && len != 0))
        return OTA_DELTA_E_ARG;
    if (c->err)
        return c->err;
    c->blocks_done_flag = 0;
    while (i < len) {
        switch (c->phase) {
        case PH_HDR: {
            size_t n = HDR_FIXED - c->hdr_fill;
            if (n > len - i)
                n = len - i;
            memcpy(c->hdr + c->hdr_fill, buf + i, n);
            c->hdr_fill += (uint32_t)n;
            c->patch_pos += (uint32_t)n;
            i += n;
            if (c->hdr_fill == HDR_FIXED && parse_header(c) != 0)
                return c->err;
            continue;
        }
        case PH_SKIP_SV:
        case PH_SKIP_TV: {
            size_t n = c->skip;
            if (n > len - i)
                n = len - i;
            c->skip -= (uint32_t)n;
            c->patch_pos += (uint32_t)n;
            i += n;
            if (c->skip == 0) {
                if (c->phase == PH_SKIP_SV) {
                    c->phase = PH_TVLEN;
                } else {
                    c->phase = PH_TABLE;
                    c->table_end = c->patch_pos + c->nblocks * ENTRY;
                    if (c->nblocks == 0 && (rc = end_table(c)) < 0)
                        return rc;
                }
            }
            continue;
        }
        case PH_TVLEN:
            c->skip = buf[i++];
            c->patch_pos++;
            c->phase = PH_SKIP_TV;
            if (c->skip == 0) {
                c->phase = PH_TABLE;
                c->table_end = c->patch_pos + c->nblocks * ENTRY;
                if (c->nblocks == 0 && (rc = end_table(c)) < 0)
                    return rc;
            }
            continue;
        case PH_TABLE: {
            size_t n = c->nblocks * ENTRY - c->table_fill;
            if (n > len - i)
                n = len - i;
            memcpy(c->work + c->table_fill, buf + i, n);
            c->table_fill += (uint32_t)n;
            c->patch_pos += (uint32_t)n;
            i += n;
            if (c->table_fill == c->nblocks * ENTRY && (rc = end_table(c)) < 0)
                return rc;
            continue;
        }
        case PH_BLOCKS: {
            uint8_t b = buf[i++];
            c->patch_pos++;
            c->packed_left--;
            rc = c->codec == 5 ? hs_byte(c, b) : parse_byte(c, b);
            if (rc != 0)
                return rc;
            if (c->packed_left == 0 && (rc = end_block(c)) < 0)
                return rc;
            continue;
        }
        default: /* PH_END */
            return fail(c, OTA_DELTA_E_TRAILING);
        }
    }
    if (c->phase == PH_END)
        return OTA_DELTA_DONE;
    return c->blocks_done_flag ? OTA_DELTA_BLOCK_DONE : OTA_DELTA_OK;
}

int ota_delta_finish(ota_delta_ctx *c)
{
    if (c == NULL)
        return OTA_DELTA_E_ARG;
    if (c->err)
        return c->err;
    if (c->phase != PH_END)
        return fail(c, OTA_DELTA_E_TRUNCATED);
    return OTA_DELTA_OK;
}

int ota_delta_checkpoint(const ota_delta_ctx *c, ota_delta_resume *rec)
{
    if (c == NULL || rec == NULL || c->res.magic != OTA_DELTA_RESUME_MAGIC || c->phase < PH_BLOCKS)
        return OTA_DELTA_E_ARG;
    *rec = c->res;
    return OTA_DELTA_OK;
}

uint32_t ota_delta_target_size(const ota_delta_ctx *c)
{
    return c->phase > PH_HDR ? c->target_size : 0;
}

uint32_t ota_delta_table_bytes(const ota_delta_ctx *c)
{
    return c->phase > PH_HDR ? c->nblocks * ENTRY : 0;
}

const char *ota_delta_strerror(int rc)
{
    switch (rc) {
    case OTA_DELTA_OK: return "ok";
    case OTA_DELTA_BLOCK_DONE: return "block done";
    case OTA_DELTA_DONE: return "done";
    case OTA_DELTA_E_MAGIC: return "not an otakit delta patch";
    case OTA_DELTA_E_VERSION: return "unsupported patch version";
    case OTA_DELTA_E_UNSUPPORTED: return "unsupported layout, codec or flags";
    case OTA_DELTA_E_NOMEM: return "work buffer too small";
    case OTA_DELTA_E_HEADER: return "bad header or block table";
    case OTA_DELTA_E_CODEC: return "corrupt heatshrink stream";
    case OTA_DELTA_E_INSTR: return "bad instruction";
    case OTA_DELTA_E_RANGE: return "source read out of range";
    case OTA_DELTA_E_BLOCK: return "block data does not match its target span";
    case OTA_DELTA_E_CRC: return "block CRC-32 mismatch";
    case OTA_DELTA_E_TARGET_HASH: return "target SHA-256 mismatch";
    case OTA_DELTA_E_SOURCE_HASH: return "source SHA-256 mismatch";
    case OTA_DELTA_E_SOURCE_SIZE: return "source size mismatch";
    case OTA_DELTA_E_TRAILING: return "trailing bytes after the patch";
    case OTA_DELTA_E_TRUNCATED: return "patch truncated";
    case OTA_DELTA_E_IO: return "callback failed";
    case OTA_DELTA_E_RESUME: return "resume record does not fit this patch";
    case OTA_DELTA_E_ARG: return "bad argument";
    default: return "unknown error";
    }
}
