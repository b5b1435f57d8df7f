/*
 * otadelta — applier for otakit native delta patches (docs/delta-format.md),
 * for microcontrollers. C99, no malloc, no global state; uses only memcpy and
 * memset from libc.
 *
 * Supports layout 0 ("stream") with codec 0 (none) or 5 (heatshrink,
 * docs/heatshrink.md). The patch is pushed in chunks of any size as it
 * arrives; the source is read at random and the target written strictly in
 * order through caller callbacks. Every block's CRC-32 and the target's
 * SHA-256 are verified; optionally the source's SHA-256 before anything is
 * written.
 *
 * RAM
 *   sizeof(ota_delta_ctx)          fixed state: 1108 bytes on 32-bit targets,
 *                                  1144 on x86-64; 2 * OTA_DELTA_IOBUF of it
 *                                  are I/O staging buffers
 * + work buffer, supplied by the caller, at least OTA_DELTA_WORK_SIZE(n, W):
 *       12 * nblocks               the block table
 *     + 2^W                        heatshrink window (0 for codec none)
 * + stack                          at most 928 bytes (gcc -O2 -fstack-usage,
 *                                  x86-64; no recursion)
 *   nblocks = ceil(target_size / block_size). otakit writes W = 11 and
 *   64 KiB blocks, so a 1 MiB target needs 192 + 2048 bytes of work buffer:
 *   about 4.2 KiB in all, against a 16 KiB budget (the largest corpus image,
 *   1.3 MB, needs 4372 bytes; `go test -v -run TestRAM ./delta/c/ctest/`).
 *   A patch that needs more than the work buffer holds (by its header's
 *   applier_ram, its block count, or a block's window) is refused with
 *   OTA_DELTA_E_NOMEM before anything is written.
 *
 * Use
 *   ota_delta_init(&ctx, &io, work, sizeof work);
 *   while (radio has data)
 *       rc = ota_delta_feed(&ctx, chunk, len);   // < 0: error, stop
 *   rc = ota_delta_finish(&ctx);                 // OTA_DELTA_OK: target verified
 *
 * Resuming after a power cut
 *   Every block is a restart point. When ota_delta_feed returns
 *   OTA_DELTA_BLOCK_DONE, the block's target bytes have been written and
 *   their CRC-32 checked; the device makes its written flash durable, then
 *   calls ota_delta_checkpoint() and stores the ota_delta_resume record
 *   (about 150 bytes) in persistent storage, e.g. two alternating flash
 *   slots so that a cut during that write leaves the previous record intact.
 *   After a reset it calls ota_delta_init(), then ota_delta_resume() with the
 *   stored record, and feeds the patch bytes [0, rec.table_end) (header and
 *   block table) followed by the bytes from rec.patch_offset on. Blocks
 *   before rec.next_block are not applied again, and the SHA-256 of the
 *   target continues from the saved state. The record carries the patch's
 *   target hash, so a record from another patch is refused.
 */
#ifndef OTADELTA_H
#define OTADELTA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of each of the two staging buffers in the context (output and
 * source). Larger values mean fewer, larger callback calls. */
#ifndef OTA_DELTA_IOBUF
#define OTA_DELTA_IOBUF 256
#endif

/* Largest heatshrink window accepted (bits). 2^W bytes come from the work
 * buffer. */
#define OTA_DELTA_MAX_WINDOW_BITS 15

/* Work buffer bytes for a patch of nblocks blocks whose heatshrink window is
 * 2^wbits (pass wbits 0 for codec none). */
#define OTA_DELTA_WORK_SIZE(nblocks, wbits) \
    (12u * (uint32_t)(nblocks) + ((wbits) ? (1u << (wbits)) : 0u))

/* Return codes. Positive values are progress, negative ones errors; after an
 * error every further call returns the same error. */
enum {
    OTA_DELTA_OK = 0,          /* chunk consumed, more patch expected */
    OTA_DELTA_BLOCK_DONE = 1,  /* chunk consumed; one or more blocks completed */
    OTA_DELTA_DONE = 2,        /* patch complete, target SHA-256 verified */

    OTA_DELTA_E_MAGIC = -1,       /* not an otakit patch (bad magic) */
    OTA_DELTA_E_VERSION = -2,     /* unsupported format version */
    OTA_DELTA_E_UNSUPPORTED = -3, /* layout/codec/flags this applier lacks */
    OTA_DELTA_E_NOMEM = -4,       /* work buffer too small for this patch */
    OTA_DELTA_E_HEADER = -5,      /* inconsistent header or block table */
    OTA_DELTA_E_CODEC = -6,       /* corrupt heatshrink stream */
    OTA_DELTA_E_INSTR = -7,       /* bad instruction: reserved op, len 0, varint overflow */
    OTA_DELTA_E_RANGE = -8,       /* source read outside the source image */
    OTA_DELTA_E_BLOCK = -9,       /* block data does not match its target span or packed size */
    OTA_DELTA_E_CRC = -10,        /* a block's CRC-32 does not match */
    OTA_DELTA_E_TARGET_HASH = -11, /* target SHA-256 mismatch */
    OTA_DELTA_E_SOURCE_HASH = -12, /* source SHA-256 mismatch (wrong old image) */
    OTA_DELTA_E_SOURCE_SIZE = -13, /* source image size differs from the header */
    OTA_DELTA_E_TRAILING = -14,   /* bytes after the end of the patch */
    OTA_DELTA_E_TRUNCATED = -15,  /* ota_delta_finish before the patch ended */
    OTA_DELTA_E_IO = -16,         /* a callback reported failure */
    OTA_DELTA_E_RESUME = -17,     /* resume record invalid or for another patch */
    OTA_DELTA_E_ARG = -18         /* bad argument (NULL pointer, call out of order) */
};

/* Caller callbacks. Each returns 0 on success, non-zero on failure (which
 * aborts the apply with OTA_DELTA_E_IO). */
typedef struct {
    /* Read len bytes of the source image at offset off into buf. */
    int (*read_source)(void *user, uint32_t off, uint8_t *buf, uint32_t len);
    /* Write len bytes of the target image at offset off. Offsets are
     * strictly increasing and contiguous. */
    int (*write_target)(void *user, uint32_t off, const uint8_t *buf, uint32_t len);
    void *user;
    /* Size of the source image the device has; the header's source_size
     * must match. */
    uint32_t source_size;
    /* Non-zero: hash the whole source through read_source and compare with
     * the header before writing anything. Costs one pass over the source. */
    int verify_source;
} ota_delta_io;

/* SHA-256 state (FIPS 180-4). */
typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes hashed */
    uint8_t buf[64];
} ota_sha256;

void ota_sha256_init(ota_sha256 *s);
void ota_sha256_update(ota_sha256 *s, const uint8_t *p, size_t n);
void ota_sha256_final(ota_sha256 *s, uint8_t out[32]);

/* What a device persists to resume (see the top of this file). Plain data;
 * store it byte for byte. */
typedef struct {
    uint32_t magic;         /* OTA_DELTA_RESUME_MAGIC when valid */
    uint32_t next_block;    /* first block not yet applied */
    uint32_t table_end;     /* patch bytes of header + block table */
    uint32_t patch_offset;  /* patch offset of block next_block */
    uint32_t target_offset; /* target bytes already written and verified */
    uint8_t target_sha256[32]; /* identifies the patch */
    ota_sha256 sha;         /* SHA-256 state over target[0, target_offset) */
} ota_delta_resume;

#define OTA_DELTA_RESUME_MAGIC 0x4f544152u /* "OTAR" */

/* Applier state. Treat as opaque. */
typedef struct {
    ota_delta_io io;
    uint8_t *work;
    uint32_t work_len;
    int err;  /* sticky error */
    int phase;

    /* header */
    uint8_t hdr[90];
    uint32_t hdr_fill;
    uint32_t skip; /* version string bytes still to skip */
    uint8_t layout, codec;
    uint32_t source_size, target_size, block_size, applier_ram;
    uint32_t nblocks;
    uint8_t source_sha256[32], target_sha256[32];

    /* position */
    uint32_t patch_pos; /* patch offset of the next byte fed */
    uint32_t table_end;
    uint32_t table_fill;

    /* current block */
    uint32_t block;       /* index */
    uint32_t block_start; /* patch offset of the block */
    uint32_t packed_left; /* patch bytes of the block still to come */
    uint32_t tgt_left;    /* target bytes of the block still to produce */
    uint32_t crc;
    int64_t sp;           /* source pointer */

    /* instruction parser */
    int ist;          /* parser state */
    uint32_t vacc;    /* varint accumulator */
    unsigned vshift;
    uint32_t op, ilen;

    /* heatshrink decoder */
    uint8_t hs_state;
    uint8_t hs_w, hs_l, hs_min;
    uint32_t hs_bits;
    unsigned hs_nbits;
    uint32_t hs_pos;   /* window index of the next output byte */
    uint32_t hs_count; /* output bytes so far, saturating at 2^W + 1 */
    uint8_t *window;

    /* target and hashing */
    uint32_t tgt_pos;
    ota_sha256 sha;
    uint32_t ofill;
    uint8_t obuf[OTA_DELTA_IOBUF];
    uint32_t sbuf_off, sbuf_len, sbuf_idx; /* cached source bytes for ADD */
    uint8_t sbuf[OTA_DELTA_IOBUF];

    /* resume */
    int resuming;
    ota_delta_resume res;
    int blocks_done_flag;
} ota_delta_ctx;

/* Prepares ctx. work is the caller's work buffer (see RAM above); it must
 * stay valid until the apply ends. */
int ota_delta_init(ota_delta_ctx *ctx, const ota_delta_io *io, uint8_t *work, uint32_t work_len);

/* Makes the next apply continue from a stored record. Call after
 * ota_delta_init and before the first ota_delta_feed. */
int ota_delta_resume_from(ota_delta_ctx *ctx, const ota_delta_resume *rec);

/* Pushes len patch bytes (any len, 0 included). Returns OTA_DELTA_OK,
 * OTA_DELTA_BLOCK_DONE, OTA_DELTA_DONE or a negative error. */
int ota_delta_feed(ota_delta_ctx *ctx, const uint8_t *buf, size_t len);

/* Ends the apply: OTA_DELTA_OK if the patch was complete and the target
 * verified, otherwise an error (OTA_DELTA_E_TRUNCATED if bytes are missing). */
int ota_delta_finish(ota_delta_ctx *ctx);

/* Fills rec with the resume point after the last completed block. Valid
 * after the header and table were read; returns OTA_DELTA_E_ARG before. */
int ota_delta_checkpoint(const ota_delta_ctx *ctx, ota_delta_resume *rec);

/* Header facts, valid once the header has been fed (0 before). */
uint32_t ota_delta_target_size(const ota_delta_ctx *ctx);
/* Work buffer bytes this patch needs for its table alone; add 2^W for a
 * heatshrink patch (W = 11 from otakit's writer). */
uint32_t ota_delta_table_bytes(const ota_delta_ctx *ctx);

/* A short English name for a return code. */
const char *ota_delta_strerror(int rc);

#ifdef __cplusplus
}
#endif
#endif
