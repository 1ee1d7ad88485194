/* The PCA basis file. All numbers little-endian:
 *
 *   offset  size        field
 *        0  8           magic "EELSVPCA"
 *        8  u32         format version (1)
 *       12  u32         header bytes (64)
 *       16  u64         file bytes, CRC included
 *       24  u64         k, components
 *       32  u64         ne, channels
 *       40  u32         flags: bit 0 centred, bit 1 Poisson-normalised
 *       44  u32         reserved, 0
 *       48  u64         spectra in the fitted cube
 *       56  f64         total sum of squares of the normalised, centred data
 *       64  f32[ne]     mean of the normalised spectra
 *           f32[ne]     sqrt(bH) per channel
 *           f32[k·ne]   components, row-major
 *           f64[k]      singular values
 *           f64[k]      explained-variance ratios
 *           u32         CRC-32 of every byte before it
 *
 * Every size is checked against the file's length before anything is
 * allocated, so a corrupt header cannot ask for a huge buffer. */
#include "pca_private.h"

#include "../core/bytes.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#define PCA_MAGIC "EELSVPCA"
#define PCA_FORMAT_VERSION 1u
#define PCA_HEADER_BYTES 64u
#define PCA_FLAG_CENTER 1u
#define PCA_FLAG_POISSON 2u

/* ---- little-endian encoding -------------------------------------------- */

/* Encode n floats or doubles into a little-endian byte buffer. */
static void put_f32_array(uint8_t *p, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = 0;
        memcpy(&v, &x[i], sizeof v);
        evae_put_u32(p + 4 * i, v);
    }
}

static void get_f32_array(float *x, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = evae_get_u32(p + 4 * i);
        memcpy(&x[i], &v, sizeof v);
    }
}

/* Bytes of the payload after the header, CRC excluded; checked. */
static eelsvae_status payload_bytes(uint64_t k, uint64_t ne, size_t *out)
{
    size_t kne = 0, floats = 0, bytes = 0;
    if (k > SIZE_MAX || ne > SIZE_MAX) return evae_fail(EELSVAE_ERR_OVERFLOW, "PCA file: sizes do not fit in size_t");
    EVAE_TRY(evae_mul((size_t)k, (size_t)ne, &kne, "PCA file components"));
    if (kne > SIZE_MAX - 2 * (size_t)ne) return evae_fail(EELSVAE_ERR_OVERFLOW, "PCA file: sizes overflow");
    floats = kne + 2 * (size_t)ne;
    EVAE_TRY(evae_mul(floats, 4, &bytes, "PCA file payload"));
    if ((size_t)k > (SIZE_MAX - bytes) / 16) return evae_fail(EELSVAE_ERR_OVERFLOW, "PCA file: sizes overflow");
    *out = bytes + 16 * (size_t)k;
    return EELSVAE_OK;
}

/* ---- save ----------------------------------------------------------------- */

static void encode_header(const eelsvae_pca *pca, size_t file_bytes, uint8_t *h)
{
    memset(h, 0, PCA_HEADER_BYTES);
    memcpy(h, PCA_MAGIC, 8);
    evae_put_u32(h + 8, PCA_FORMAT_VERSION);
    evae_put_u32(h + 12, PCA_HEADER_BYTES);
    evae_put_u64(h + 16, file_bytes);
    evae_put_u64(h + 24, pca->k);
    evae_put_u64(h + 32, pca->ne);
    evae_put_u32(h + 40, (pca->center ? PCA_FLAG_CENTER : 0u) | (pca->poisson ? PCA_FLAG_POISSON : 0u));
    evae_put_u64(h + 48, pca->pixels);
    evae_put_f64(h + 56, pca->total_ss);
}

static void encode_payload(const eelsvae_pca *pca, uint8_t *p)
{
    size_t ne = pca->ne, k = pca->k;
    put_f32_array(p, pca->mean, ne);
    p += 4 * ne;
    put_f32_array(p, pca->channel_root, ne);
    p += 4 * ne;
    put_f32_array(p, pca->components, k * ne);
    p += 4 * k * ne;
    for (size_t i = 0; i < k; i++) evae_put_f64(p + 8 * i, pca->singular[i]);
    p += 8 * k;
    for (size_t i = 0; i < k; i++) evae_put_f64(p + 8 * i, pca->ratio[i]);
}

eelsvae_status eelsvae_pca_save(const eelsvae_pca *pca, const char *path)
{
    if (!pca || !path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA save: NULL argument");
    size_t payload = 0;
    EVAE_TRY(payload_bytes(pca->k, pca->ne, &payload));
    size_t body = PCA_HEADER_BYTES + payload;
    uint8_t *buf = NULL;
    EVAE_TRY(evae_alloc_array(body + 4, 1, (void **)&buf, "PCA file buffer"));
    encode_header(pca, body + 4, buf);
    encode_payload(pca, buf + PCA_HEADER_BYTES);
    evae_put_u32(buf + body, evae_crc32(0, buf, body));

    evae_atomic_file f;
    eelsvae_status st = evae_atomic_open(&f, path);
    if (st == EELSVAE_OK) {
        st = evae_atomic_write(&f, buf, body + 4);
        if (st == EELSVAE_OK)
            st = evae_atomic_commit(&f);
        else
            evae_atomic_abort(&f);
    }
    evae_free(buf);
    return st;
}

/* ---- load ----------------------------------------------------------------- */

/* The header (the first `got` bytes of a file of `size` bytes) against the
 * file's length; FORMAT or VERSION naming the offset of the field at fault. */
static eelsvae_status check_header(const char *path, const uint8_t *d, size_t got, size_t size, size_t *payload)
{
    if (got < 8 || memcmp(d, PCA_MAGIC, 8) != 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: not a PCA basis file (no \"%s\" magic at offset 0)", path, PCA_MAGIC);
    if (got < 12) return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated at offset %zu inside the header", path, got);
    uint32_t version = evae_get_u32(d + 8);
    if (version != PCA_FORMAT_VERSION)
        return evae_fail(EELSVAE_ERR_VERSION, "%s: format version %u at offset 8; this library reads version %u", path,
                         version, PCA_FORMAT_VERSION);
    if (got < PCA_HEADER_BYTES)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated at offset %zu inside the %u-byte header", path, got,
                         PCA_HEADER_BYTES);
    uint32_t header = evae_get_u32(d + 12);
    if (header != PCA_HEADER_BYTES)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: header size %u at offset 12, expected %u", path, header,
                         PCA_HEADER_BYTES);
    uint64_t k = evae_get_u64(d + 24), ne = evae_get_u64(d + 32);
    if (k == 0 || ne == 0 || k > ne || ne > (uint64_t)EVAE_PCA_MAX_CHANNELS)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %llu components × %llu channels at offset 24 is not a valid basis",
                         path, (unsigned long long)k, (unsigned long long)ne);
    if (payload_bytes(k, ne, payload) != EELSVAE_OK || *payload > SIZE_MAX - PCA_HEADER_BYTES - 4)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %llu × %llu at offset 24 overflows the file size", path,
                         (unsigned long long)k, (unsigned long long)ne);
    size_t expect = PCA_HEADER_BYTES + *payload + 4;
    uint64_t claimed = evae_get_u64(d + 16);
    if (claimed != expect)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: file size %llu at offset 16 does not match the %zu bytes %llu × %llu need",
                         path, (unsigned long long)claimed, expect, (unsigned long long)k, (unsigned long long)ne);
    if (size != expect)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %zu bytes, the header (offset 16) says %zu%s", path, size, expect,
                         size < expect ? ": truncated" : ": trailing bytes");
    uint32_t flags = evae_get_u32(d + 40);
    if (flags & ~(PCA_FLAG_CENTER | PCA_FLAG_POISSON))
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: unknown flags 0x%x at offset 40", path, flags);
    return EELSVAE_OK;
}

/* Values that cannot come from a fit are FORMAT errors too. */
static eelsvae_status check_values(const char *path, const eelsvae_pca *pca)
{
    size_t ne = pca->ne;
    size_t offset = PCA_HEADER_BYTES;
    for (size_t e = 0; e < ne; e++)
        if (!isfinite(pca->mean[e]))
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: non-finite mean at offset %zu", path, offset + 4 * e);
    offset += 4 * ne;
    for (size_t e = 0; e < ne; e++)
        if (!isfinite(pca->channel_root[e]) || pca->channel_root[e] < 0.0f)
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: invalid channel weight at offset %zu", path, offset + 4 * e);
    offset += 4 * ne;
    for (size_t i = 0; i < pca->k * ne; i++)
        if (!isfinite(pca->components[i]))
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: non-finite component value at offset %zu", path, offset + 4 * i);
    if (!isfinite(pca->total_ss) || pca->total_ss < 0.0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: invalid total sum of squares at offset 56", path);
    return EELSVAE_OK;
}

static void decode(const uint8_t *d, eelsvae_pca *pca)
{
    size_t ne = pca->ne, k = pca->k;
    uint32_t flags = evae_get_u32(d + 40);
    pca->center = (flags & PCA_FLAG_CENTER) != 0;
    pca->poisson = (flags & PCA_FLAG_POISSON) != 0;
    pca->pixels = evae_get_u64(d + 48);
    pca->total_ss = evae_get_f64(d + 56);
    const uint8_t *p = d + PCA_HEADER_BYTES;
    get_f32_array(pca->mean, p, ne);
    p += 4 * ne;
    get_f32_array(pca->channel_root, p, ne);
    p += 4 * ne;
    get_f32_array(pca->components, p, k * ne);
    p += 4 * k * ne;
    for (size_t i = 0; i < k; i++) pca->singular[i] = evae_get_f64(p + 8 * i);
    p += 8 * k;
    for (size_t i = 0; i < k; i++) pca->ratio[i] = evae_get_f64(p + 8 * i);
}

/* Read the header, check it against the file's length, and only then read
 * the whole file (a corrupt header cannot make us allocate). */
static eelsvae_status read_checked(const char *path, uint8_t **data, size_t *payload)
{
    FILE *f = NULL;
    size_t size = 0;
    EVAE_TRY(evae_open_sized(path, "a PCA basis file", &f, &size));
    uint8_t header[PCA_HEADER_BYTES];
    size_t got = fread(header, 1, size < sizeof header ? size : sizeof header, f);
    eelsvae_status st = check_header(path, header, got, size, payload);
    uint8_t *d = NULL;
    if (st == EELSVAE_OK) st = evae_alloc_array(size, 1, (void **)&d, "PCA file");
    if (st == EELSVAE_OK) {
        memcpy(d, header, PCA_HEADER_BYTES);
        if (fread(d + PCA_HEADER_BYTES, 1, size - PCA_HEADER_BYTES, f) != size - PCA_HEADER_BYTES)
            st = evae_fail(EELSVAE_ERR_IO, "%s: read failed after offset %u", path, PCA_HEADER_BYTES);
    }
    fclose(f);
    if (st != EELSVAE_OK) {
        evae_free(d);
        return st;
    }
    *data = d;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_pca_load(const char *path, eelsvae_pca **out)
{
    if (!path || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA load: NULL argument");
    uint8_t *d = NULL;
    size_t payload = 0;
    EVAE_TRY(read_checked(path, &d, &payload));
    size_t body = PCA_HEADER_BYTES + payload;
    uint32_t stored = evae_get_u32(d + body), actual = evae_crc32(0, d, body);
    eelsvae_status st = EELSVAE_OK;
    if (stored != actual)
        st = evae_fail(EELSVAE_ERR_CHECKSUM, "%s: CRC-32 0x%08x at offset %zu, the contents give 0x%08x", path, stored,
                       body, actual);
    eelsvae_pca *pca = NULL;
    if (st == EELSVAE_OK) st = evae_pca_alloc((size_t)evae_get_u64(d + 24), (size_t)evae_get_u64(d + 32), &pca);
    if (st == EELSVAE_OK) {
        decode(d, pca);
        st = check_values(path, pca);
    }
    evae_free(d);
    if (st != EELSVAE_OK) {
        eelsvae_pca_free(pca);
        return st;
    }
    *out = pca;
    return EELSVAE_OK;
}
