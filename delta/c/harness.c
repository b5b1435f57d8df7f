/*
 * Test harness for the otadelta applier (not part of the applier). Used by
 * delta/c/ctest: it applies a patch file to an old image, feeding the patch
 * in pseudo-random chunks of 1..4096 bytes, and writes the target file.
 *
 *   harness apply  OLD PATCH OUT SEED WORKBYTES [verify-source|chunk=N]
 *       chunk=N feeds chunks of 1..N bytes instead of 1..4096.
 *   harness resume OLD PATCH OUT SEED WORKBYTES STOPBLOCK
 *       applies until STOPBLOCK blocks are done, throws the context away,
 *       and resumes from the checkpoint with a fresh one.
 *   harness mutate OLD PATCH ITERATIONS SEED
 *       applies ITERATIONS randomly damaged copies of PATCH (bit flips,
 *       byte overwrites, truncation, cut-out and duplicated spans) in
 *       memory, with random work buffer sizes; any crash or sanitizer report
 *       is the failure. Prints how many copies were accepted and refused.
 *   harness truncate OLD PATCH SEED
 *       applies every proper prefix of PATCH; each must be refused
 *       (exit 1 naming the first accepted prefix otherwise).
 *   harness ram
 *       prints sizeof(ota_delta_ctx).
 *
 * Exit status: 0 success, 1 the applier returned an error (its name is
 * printed), 2 usage or I/O trouble in the harness itself.
 */
#include "otadelta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *old;
    uint32_t old_len;
    FILE *out; /* NULL: discard the target */
    uint32_t next; /* next expected target offset */
} dev;

static int rd(void *user, uint32_t off, uint8_t *buf, uint32_t len)
{
    dev *d = user;
    if (len == 0 || off > d->old_len || len > d->old_len - off) {
        fprintf(stderr, "harness: source read out of range: off %u len %u size %u\n",
                (unsigned)off, (unsigned)len, (unsigned)d->old_len);
        abort();
    }
    memcpy(buf, d->old + off, len);
    return 0;
}

static int wr(void *user, uint32_t off, const uint8_t *buf, uint32_t len)
{
    dev *d = user;
    if (off != d->next || len == 0) {
        fprintf(stderr, "harness: write at %u len %u, expected offset %u\n", (unsigned)off,
                (unsigned)len, (unsigned)d->next);
        abort();
    }
    if (d->out && (fseek(d->out, (long)off, SEEK_SET) != 0 || fwrite(buf, 1, len, d->out) != len))
        return -1;
    d->next += len;
    return 0;
}

static uint8_t *slurp(const char *path, uint32_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (uint32_t)n;
    return p;
}

static uint32_t rng;
static uint32_t max_chunk = 4096;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Feeds patch[from, to) in random chunks; stops early after stop_blocks
 * blocks are done (0 = never). Returns the last code; *pos gets the offset
 * reached. */
static int feed_range(ota_delta_ctx *c, const uint8_t *patch, uint32_t from, uint32_t to,
                      uint32_t stop_blocks, uint32_t *blocks, uint32_t *pos)
{
    int rc = OTA_DELTA_OK;
    uint32_t i = from;
    while (i < to) {
        uint32_t n = 1 + next_rand() % max_chunk;
        if (n > to - i)
            n = to - i;
        /* The chunk is copied so ASan sees reads past it. */
        uint8_t *chunk = malloc(n);
        memcpy(chunk, patch + i, n);
        rc = ota_delta_feed(c, chunk, n);
        free(chunk);
        i += n;
        if (rc < 0)
            break;
        if (rc == OTA_DELTA_BLOCK_DONE || rc == OTA_DELTA_DONE) {
            ota_delta_resume r;
            if (ota_delta_checkpoint(c, &r) == OTA_DELTA_OK)
                *blocks = r.next_block;
            if (stop_blocks && *blocks >= stop_blocks && rc != OTA_DELTA_DONE)
                break;
        }
    }
    *pos = i;
    return rc;
}

static int mutate(const uint8_t *old, uint32_t old_len, const uint8_t *patch, uint32_t patch_len,
                  unsigned iters)
{
    unsigned it, accepted = 0, refused = 0;
    uint8_t *buf = malloc((size_t)patch_len * 2 + 64);
    for (it = 0; it < iters; it++) {
        ota_delta_ctx ctx;
        ota_delta_io io;
        dev d;
        uint32_t n = patch_len, k, blocks = 0, pos = 0, work_len;
        unsigned nmut = 1 + next_rand() % 4, m;
        uint8_t *work;
        int rc;
        memcpy(buf, patch, patch_len);
        for (m = 0; m < nmut && n > 0; m++) {
            uint32_t at = next_rand() % n;
            switch (next_rand() % 6) {
            case 0: buf[at] ^= (uint8_t)(1u << (next_rand() % 8)); break;
            case 1: buf[at] = (uint8_t)next_rand(); break;
            case 2: buf[at] = (next_rand() & 1) ? 0xff : 0x00; break;
            case 3: n = at; break; /* truncate */
            case 4: /* cut a span */
                k = 1 + next_rand() % 64;
                if (k > n - at)
                    k = n - at;
                memmove(buf + at, buf + at + k, n - at - k);
                n -= k;
                break;
            default: /* duplicate a span */
                k = 1 + next_rand() % 64;
                if (k > n - at)
                    k = n - at;
                if (n + k <= patch_len * 2 + 64) {
                    memmove(buf + at + k, buf + at, n - at);
                    n += k;
                }
                break;
            }
        }
        work_len = (next_rand() % 4) ? 4096 : next_rand() % 3000;
        work = malloc(work_len ? work_len : 1);
        d.old = old;
        d.old_len = old_len;
        d.out = NULL;
        d.next = 0;
        memset(&io, 0, sizeof io);
        io.read_source = rd;
        io.write_target = wr;
        io.user = &d;
        io.source_size = old_len;
        io.verify_source = (int)(next_rand() & 1);
        ota_delta_init(&ctx, &io, work, work_len);
        rc = feed_range(&ctx, buf, 0, n, 0, &blocks, &pos);
        if (rc >= 0)
            rc = ota_delta_finish(&ctx);
        if (rc == OTA_DELTA_OK)
            accepted++;
        else
            refused++;
        free(work);
    }
    free(buf);
    printf("mutate: %u accepted, %u refused\n", accepted, refused);
    return 0;
}

static int truncated(const uint8_t *old, uint32_t old_len, const uint8_t *patch, uint32_t patch_len)
{
    uint32_t n;
    static uint8_t work[4096];
    for (n = 0; n < patch_len; n++) {
        ota_delta_ctx ctx;
        ota_delta_io io;
        dev d;
        uint32_t blocks = 0, pos = 0;
        int rc;
        d.old = old;
        d.old_len = old_len;
        d.out = NULL;
        d.next = 0;
        memset(&io, 0, sizeof io);
        io.read_source = rd;
        io.write_target = wr;
        io.user = &d;
        io.source_size = old_len;
        ota_delta_init(&ctx, &io, work, sizeof work);
        rc = feed_range(&ctx, patch, 0, n, 0, &blocks, &pos);
        if (rc >= 0)
            rc = ota_delta_finish(&ctx);
        if (rc >= 0) {
            printf("error 0: prefix of %u bytes accepted\n", (unsigned)n);
            return 1;
        }
    }
    printf("truncate: %u prefixes refused\n", (unsigned)patch_len);
    return 0;
}

int main(int argc, char **argv)
{
    ota_delta_ctx ctx;
    ota_delta_io io;
    dev d;
    uint8_t *old, *patch, *work;
    uint32_t old_len, patch_len, work_len, blocks = 0, pos = 0;
    int rc, resume;

    if (argc == 2 && strcmp(argv[1], "ram") == 0) {
        printf("%u\n", (unsigned)sizeof(ota_delta_ctx));
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "mutate") == 0) {
        old = slurp(argv[2], &old_len);
        patch = slurp(argv[3], &patch_len);
        if (!old || !patch)
            return 2;
        rng = (uint32_t)strtoul(argv[5], NULL, 10) | 1u;
        rc = mutate(old, old_len, patch, patch_len, (unsigned)strtoul(argv[4], NULL, 10));
        free(old);
        free(patch);
        return rc;
    }
    if (argc == 5 && strcmp(argv[1], "truncate") == 0) {
        old = slurp(argv[2], &old_len);
        patch = slurp(argv[3], &patch_len);
        if (!old || !patch)
            return 2;
        rng = (uint32_t)strtoul(argv[4], NULL, 10) | 1u;
        rc = truncated(old, old_len, patch, patch_len);
        free(old);
        free(patch);
        return rc;
    }
    if (argc < 7) {
        fprintf(stderr, "usage: harness apply|resume OLD PATCH OUT SEED WORKBYTES [verify-source|STOPBLOCK]\n");
        return 2;
    }
    resume = strcmp(argv[1], "resume") == 0;
    old = slurp(argv[2], &old_len);
    patch = slurp(argv[3], &patch_len);
    if (!old || !patch) {
        fprintf(stderr, "harness: cannot read inputs\n");
        return 2;
    }
    rng = (uint32_t)strtoul(argv[5], NULL, 10) | 1u;
    work_len = (uint32_t)strtoul(argv[6], NULL, 10);
    work = malloc(work_len ? work_len : 1);
    d.old = old;
    d.old_len = old_len;
    d.next = 0;
    d.out = fopen(argv[4], "w+b");
    if (!d.out || !work) {
        fprintf(stderr, "harness: cannot open output\n");
        return 2;
    }
    memset(&io, 0, sizeof io);
    io.read_source = rd;
    io.write_target = wr;
    io.user = &d;
    io.source_size = old_len;
    io.verify_source = argc > 7 && strcmp(argv[7], "verify-source") == 0;
    if (argc > 7 && strncmp(argv[7], "chunk=", 6) == 0)
        max_chunk = (uint32_t)strtoul(argv[7] + 6, NULL, 10);
    if (max_chunk == 0)
        max_chunk = 1;

    ota_delta_init(&ctx, &io, work, work_len);
    if (!resume) {
        rc = feed_range(&ctx, patch, 0, patch_len, 0, &blocks, &pos);
    } else {
        uint32_t stop = (uint32_t)strtoul(argv[7], NULL, 10);
        ota_delta_resume rec;
        rc = feed_range(&ctx, patch, 0, patch_len, stop, &blocks, &pos);
        if (rc >= 0 && rc != OTA_DELTA_DONE) {
            /* Power cut: the record survives; the context and the bytes
             * written after the checkpoint's block are lost. */
            if (ota_delta_checkpoint(&ctx, &rec) != OTA_DELTA_OK) {
                fprintf(stderr, "harness: no checkpoint\n");
                return 2;
            }
            memset(&ctx, 0xa5, sizeof ctx);
            memset(work, 0x5a, work_len);
            d.next = rec.target_offset;
            ota_delta_init(&ctx, &io, work, work_len);
            rc = ota_delta_resume_from(&ctx, &rec);
            if (rc == OTA_DELTA_OK)
                rc = feed_range(&ctx, patch, 0, rec.table_end, 0, &blocks, &pos);
            if (rc >= 0 && rc != OTA_DELTA_DONE)
                rc = feed_range(&ctx, patch, rec.patch_offset, patch_len, 0, &blocks, &pos);
            printf("resumed at block %u\n", (unsigned)rec.next_block);
        }
    }
    if (rc >= 0)
        rc = ota_delta_finish(&ctx);
    fclose(d.out);
    free(old);
    free(patch);
    free(work);
    if (rc != OTA_DELTA_OK) {
        printf("error %d: %s\n", rc, ota_delta_strerror(rc));
        return 1;
    }
    printf("ok ctx=%u\n", (unsigned)sizeof ctx);
    return 0;
}
