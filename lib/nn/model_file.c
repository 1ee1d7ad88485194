/* The model file. All numbers little-endian:
 *
 *   offset  size        field
 *        0  8           magic "EELSVMDL"
 *        8  u32         format version (2; version 1 had no energy_bin)
 *       12  u32         header bytes (64)
 *       16  u64         file bytes, CRC included
 *       24  u64         P, parameters
 *       32  u32         flags: bit 0 input transform recorded, bit 1 training state present
 *       36  u32         architecture bytes (552)
 *       40  u32         input-transform bytes (112)
 *       44  u32         training-state bytes (264 with flag bit 1, else 0)
 *       48  16          reserved, zero
 *       64  552         architecture: tile, energy_channels u64; energy_start f64;
 *                       conv_layers u64; 6 × (channels, kernel[3], stride[3],
 *                       padding[3]) u64; hidden, latent u64; beta f64; loss u64;
 *                       energy_bin u64
 *      616  112         input transform: energy_offset, dispersion, scale_lo,
 *                       scale_hi, sigma[3], percentile_lo, percentile_hi f64;
 *                       use_fixed_scaling u64; fixed scale_lo, scale_hi f64;
 *                       mean_filter, median_filter u64
 *      728  4·P         f32 parameters, in cvae.h's block order
 *                       with flag bit 1:
 *           264         training state: seed, epochs_done, batches_done, batch,
 *                       tiles_train, tiles_val u64; the epoch's loss sums f64 ×3;
 *                       Adam lr, β1, β2, eps, weight_decay f64, step i64;
 *                       plateau factor f64, patience i64, threshold f64,
 *                       cooldown i64, min_lr, eps, best f64, bad_epochs,
 *                       cooldown_left, epoch i64; early stop patience i64,
 *                       min_delta, best f64, best_epoch, epoch, bad_epochs i64,
 *                       improved, stop u64
 *           4·P         f32 Adam first moments
 *           4·P         f32 Adam second moments
 *           u32         CRC-32 of every byte before it
 *
 * The parameter block of the paper preset is about 3 GB, so both directions
 * stream it through a small buffer, computing the CRC on the way; no second
 * copy is made. Every size is checked against the file's length before
 * anything is allocated, so a corrupt header cannot ask for a huge buffer. */
#include "model_private.h"

#include "../core/bytes.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#define MODEL_MAGIC "EELSVMDL"
#define MODEL_FORMAT_VERSION 2u
#define HEADER_BYTES 64u
#define ARCH_BYTES 552u
#define TRANSFORM_BYTES 112u
#define STATE_BYTES 264u
#define PREFIX_BYTES (HEADER_BYTES + ARCH_BYTES + TRANSFORM_BYTES)
#define FLAG_TRANSFORM 1u
#define FLAG_STATE 2u
#define CHUNK_FLOATS 16384u /* 64 KiB of encoded floats at a time */

/* ---- little-endian encoding ------------------------------------------------------ */

/* Sequential fields in a byte buffer. */
typedef struct cursor {
    uint8_t *p;
    size_t at;
} cursor;

static void put_u64(cursor *c, uint64_t v)
{
    evae_put_u64(c->p + c->at, v);
    c->at += 8;
}

static void put_f64(cursor *c, double d)
{
    uint64_t v = 0;
    memcpy(&v, &d, sizeof v);
    put_u64(c, v);
}

static void put_i64(cursor *c, int64_t v)
{
    put_u64(c, (uint64_t)v);
}

static uint64_t take_u64(cursor *c)
{
    uint64_t v = evae_get_u64(c->p + c->at);
    c->at += 8;
    return v;
}

static double take_f64(cursor *c)
{
    uint64_t v = take_u64(c);
    double d = 0;
    memcpy(&d, &v, sizeof d);
    return d;
}

static int64_t take_i64(cursor *c)
{
    uint64_t v = take_u64(c);
    int64_t s = 0;
    memcpy(&s, &v, sizeof s);
    return s;
}

/* ---- sections ----------------------------------------------------------------------- */

static void encode_arch(cursor *c, const eelsvae_model_options *a)
{
    put_u64(c, a->tile);
    put_u64(c, a->energy_channels);
    put_f64(c, a->energy_start);
    put_u64(c, a->conv_layers);
    for (size_t i = 0; i < EELSVAE_MAX_CONV_LAYERS; i++) {
        const eelsvae_conv_spec *s = &a->conv[i];
        put_u64(c, s->channels);
        for (int k = 0; k < 3; k++) put_u64(c, s->kernel[k]);
        for (int k = 0; k < 3; k++) put_u64(c, s->stride[k]);
        for (int k = 0; k < 3; k++) put_u64(c, s->padding[k]);
    }
    put_u64(c, a->hidden);
    put_u64(c, a->latent);
    put_f64(c, a->beta);
    put_u64(c, (uint64_t)a->loss);
    put_u64(c, a->energy_bin);
}

/* Sizes beyond size_t (or the enum's range) are clamped to values the
 * architecture check rejects, so they are reported, not truncated. */
static size_t take_size(cursor *c)
{
    uint64_t v = take_u64(c);
    return v > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)v;
}

static void decode_arch(cursor *c, eelsvae_model_options *a)
{
    memset(a, 0, sizeof *a);
    a->struct_size = sizeof *a;
    a->tile = take_size(c);
    a->energy_channels = take_size(c);
    a->energy_start = take_f64(c);
    a->conv_layers = take_size(c);
    for (size_t i = 0; i < EELSVAE_MAX_CONV_LAYERS; i++) {
        eelsvae_conv_spec *s = &a->conv[i];
        s->channels = take_size(c);
        for (int k = 0; k < 3; k++) s->kernel[k] = take_size(c);
        for (int k = 0; k < 3; k++) s->stride[k] = take_size(c);
        for (int k = 0; k < 3; k++) s->padding[k] = take_size(c);
    }
    a->hidden = take_size(c);
    a->latent = take_size(c);
    a->beta = take_f64(c);
    uint64_t loss = take_u64(c);
    a->loss = loss > 1000 ? (eelsvae_loss_kind)1000 : (eelsvae_loss_kind)loss;
    a->energy_bin = take_size(c);
}

static void encode_transform(cursor *c, const evae_model_transform *t)
{
    const eelsvae_preprocess_options *p = &t->preprocess;
    put_f64(c, t->energy_offset);
    put_f64(c, t->dispersion);
    put_f64(c, t->scale_lo);
    put_f64(c, t->scale_hi);
    for (int a = 0; a < 3; a++) put_f64(c, p->sigma[a]);
    put_f64(c, p->percentile_lo);
    put_f64(c, p->percentile_hi);
    put_u64(c, p->use_fixed_scaling ? 1u : 0u);
    put_f64(c, p->scale_lo);
    put_f64(c, p->scale_hi);
    put_u64(c, p->mean_filter);
    put_u64(c, p->median_filter);
}

static void decode_transform(cursor *c, evae_model_transform *t)
{
    eelsvae_preprocess_options *p = &t->preprocess;
    eelsvae_preprocess_options_init(p, EELSVAE_PRESET_PAPER);
    t->energy_offset = take_f64(c);
    t->dispersion = take_f64(c);
    t->scale_lo = take_f64(c);
    t->scale_hi = take_f64(c);
    for (int a = 0; a < 3; a++) p->sigma[a] = take_f64(c);
    p->percentile_lo = take_f64(c);
    p->percentile_hi = take_f64(c);
    p->use_fixed_scaling = take_u64(c) != 0;
    p->scale_lo = take_f64(c);
    p->scale_hi = take_f64(c);
    p->mean_filter = take_size(c);
    p->median_filter = take_size(c);
}

static void encode_state(cursor *c, const evae_train_state *s)
{
    put_u64(c, s->seed);
    put_u64(c, s->epochs_done);
    put_u64(c, s->batches_done);
    put_u64(c, s->batch);
    put_u64(c, s->tiles_train);
    put_u64(c, s->tiles_val);
    put_f64(c, s->sum_loss);
    put_f64(c, s->sum_rec);
    put_f64(c, s->sum_kl);
    const evae_adam *a = &s->adam;
    put_f64(c, a->lr);
    put_f64(c, a->beta1);
    put_f64(c, a->beta2);
    put_f64(c, a->eps);
    put_f64(c, a->weight_decay);
    put_i64(c, a->step);
    const evae_plateau *p = &s->plateau;
    put_f64(c, p->factor);
    put_i64(c, p->patience);
    put_f64(c, p->threshold);
    put_i64(c, p->cooldown);
    put_f64(c, p->min_lr);
    put_f64(c, p->eps);
    put_f64(c, p->best);
    put_i64(c, p->bad_epochs);
    put_i64(c, p->cooldown_left);
    put_i64(c, p->epoch);
    const evae_early_stop *e = &s->early;
    put_i64(c, e->patience);
    put_f64(c, e->min_delta);
    put_f64(c, e->best);
    put_i64(c, e->best_epoch);
    put_i64(c, e->epoch);
    put_i64(c, e->bad_epochs);
    put_u64(c, e->improved ? 1u : 0u);
    put_u64(c, e->stop ? 1u : 0u);
}

/* int fields of the scheduler are stored as i64; out-of-range ones clamp
 * to −1, which the state check rejects. */
static int take_int(cursor *c)
{
    int64_t v = take_i64(c);
    return v < 0 || v > INT32_MAX ? -1 : (int)v;
}

static void decode_state(cursor *c, evae_train_state *s)
{
    s->seed = take_u64(c);
    s->epochs_done = take_u64(c);
    s->batches_done = take_u64(c);
    s->batch = take_u64(c);
    s->tiles_train = take_u64(c);
    s->tiles_val = take_u64(c);
    s->sum_loss = take_f64(c);
    s->sum_rec = take_f64(c);
    s->sum_kl = take_f64(c);
    evae_adam *a = &s->adam;
    a->lr = take_f64(c);
    a->beta1 = take_f64(c);
    a->beta2 = take_f64(c);
    a->eps = take_f64(c);
    a->weight_decay = take_f64(c);
    a->step = take_i64(c);
    evae_plateau *p = &s->plateau;
    p->factor = take_f64(c);
    p->patience = take_int(c);
    p->threshold = take_f64(c);
    p->cooldown = take_int(c);
    p->min_lr = take_f64(c);
    p->eps = take_f64(c);
    p->best = take_f64(c);
    p->bad_epochs = take_int(c);
    p->cooldown_left = take_int(c);
    p->epoch = take_i64(c);
    evae_early_stop *e = &s->early;
    e->patience = take_int(c);
    e->min_delta = take_f64(c);
    e->best = take_f64(c);
    e->best_epoch = take_i64(c);
    e->epoch = take_i64(c);
    e->bad_epochs = take_int(c);
    e->improved = take_u64(c) != 0;
    e->stop = take_u64(c) != 0;
    s->started = true;
}

/* Bytes of a file with P parameters, with or without the training state. */
static eelsvae_status file_bytes(size_t params, bool state, size_t *out)
{
    size_t block = 0;
    EVAE_TRY(evae_mul(params, 4, &block, "model file parameter block"));
    size_t blocks = state ? 3 : 1;
    if (block > (SIZE_MAX - PREFIX_BYTES - STATE_BYTES - 4) / blocks)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "model file: %zu parameters overflow the file size", params);
    *out = PREFIX_BYTES + blocks * block + (state ? STATE_BYTES : 0) + 4;
    return EELSVAE_OK;
}

/* ---- save ----------------------------------------------------------------------------- */

/* An atomic file that keeps the CRC of what went through it. */
typedef struct crc_writer {
    evae_atomic_file f;
    uint32_t crc;
    uint8_t *chunk; /* CHUNK_FLOATS · 4 bytes */
} crc_writer;

static eelsvae_status write_bytes(crc_writer *w, const void *data, size_t bytes)
{
    w->crc = evae_crc32(w->crc, data, bytes);
    return evae_atomic_write(&w->f, data, bytes);
}

static eelsvae_status write_floats(crc_writer *w, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += CHUNK_FLOATS) {
        size_t k = n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS;
        for (size_t j = 0; j < k; j++) {
            uint32_t v = 0;
            memcpy(&v, &x[i + j], sizeof v);
            evae_put_u32(w->chunk + 4 * j, v);
        }
        EVAE_TRY(write_bytes(w, w->chunk, 4 * k));
    }
    return EELSVAE_OK;
}

static void encode_prefix(const eelsvae_model *m, bool state, size_t total, uint8_t *buf)
{
    memset(buf, 0, PREFIX_BYTES);
    memcpy(buf, MODEL_MAGIC, 8);
    evae_put_u32(buf + 8, MODEL_FORMAT_VERSION);
    evae_put_u32(buf + 12, HEADER_BYTES);
    cursor c = {buf, 16};
    put_u64(&c, total);
    put_u64(&c, m->layout.parameters);
    evae_put_u32(buf + 32, (m->transform.recorded ? FLAG_TRANSFORM : 0u) | (state ? FLAG_STATE : 0u));
    evae_put_u32(buf + 36, ARCH_BYTES);
    evae_put_u32(buf + 40, TRANSFORM_BYTES);
    evae_put_u32(buf + 44, state ? STATE_BYTES : 0u);
    c.at = HEADER_BYTES;
    encode_arch(&c, &m->arch);
    encode_transform(&c, &m->transform);
}

static eelsvae_status write_model(crc_writer *w, const eelsvae_model *m, bool state, size_t total)
{
    uint8_t prefix[PREFIX_BYTES];
    encode_prefix(m, state, total, prefix);
    EVAE_TRY(write_bytes(w, prefix, PREFIX_BYTES));
    size_t n = m->layout.parameters;
    EVAE_TRY(write_floats(w, evae_cvae_params(m->net), n));
    if (state) {
        uint8_t fixed[STATE_BYTES];
        cursor c = {fixed, 0};
        encode_state(&c, &m->state);
        EVAE_TRY(write_bytes(w, fixed, STATE_BYTES));
        EVAE_TRY(write_floats(w, m->state.m, n));
        EVAE_TRY(write_floats(w, m->state.v, n));
    }
    uint8_t crc[4];
    evae_put_u32(crc, w->crc);
    return evae_atomic_write(&w->f, crc, 4);
}

eelsvae_status eelsvae_model_save(const eelsvae_model *model, const char *path, int with_training_state)
{
    if (!model || !path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model save: NULL argument");
    /* A model that never trained has no state to keep: a checkpoint of it
     * is the plain model, from which training starts afresh anyway. */
    bool state = with_training_state && model->state.started && model->state.m && model->state.v;
    size_t total = 0;
    EVAE_TRY(file_bytes(model->layout.parameters, state, &total));
    crc_writer w;
    memset(&w, 0, sizeof w);
    EVAE_TRY(evae_alloc_array(CHUNK_FLOATS, 4, (void **)&w.chunk, "model file buffer"));
    eelsvae_status st = evae_atomic_open(&w.f, path);
    if (st == EELSVAE_OK) {
        st = write_model(&w, model, state, total);
        if (st == EELSVAE_OK)
            st = evae_atomic_commit(&w.f);
        else
            evae_atomic_abort(&w.f);
    }
    evae_free(w.chunk);
    return st;
}

/* ---- load ------------------------------------------------------------------------------ */

typedef struct crc_reader {
    FILE *fp;
    const char *path;
    size_t at; /* offset of the next byte */
    uint32_t crc;
    uint8_t *chunk;
} crc_reader;

static eelsvae_status read_bytes(crc_reader *r, void *data, size_t bytes)
{
    if (fread(data, 1, bytes, r->fp) != bytes)
        return evae_fail(EELSVAE_ERR_IO, "%s: read failed at offset %zu: %s", r->path, r->at,
                         ferror(r->fp) ? strerror(errno) : "the file shrank while being read");
    r->crc = evae_crc32(r->crc, data, bytes);
    r->at += bytes;
    return EELSVAE_OK;
}

static eelsvae_status read_floats(crc_reader *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i += CHUNK_FLOATS) {
        size_t k = n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS;
        EVAE_TRY(read_bytes(r, r->chunk, 4 * k));
        for (size_t j = 0; j < k; j++) {
            uint32_t v = evae_get_u32(r->chunk + 4 * j);
            memcpy(&x[i + j], &v, sizeof v);
        }
    }
    return EELSVAE_OK;
}

/* What the prefix says, once checked. */
typedef struct file_plan {
    eelsvae_model_options arch;
    evae_cvae_layout layout;
    evae_model_transform transform;
    bool state;
} file_plan;

/* Magic, version and the fixed section sizes of the first `got` bytes. */
static eelsvae_status check_header(const char *path, const uint8_t *d, size_t got)
{
    if (got < 8 || memcmp(d, MODEL_MAGIC, 8) != 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: not a model file (no \"%s\" magic at offset 0)", path, MODEL_MAGIC);
    if (got < 12) return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated at offset %zu inside the header", path, got);
    uint32_t version = evae_get_u32(d + 8);
    if (version != MODEL_FORMAT_VERSION)
        return evae_fail(EELSVAE_ERR_VERSION, "%s: format version %u at offset 8; this library reads version %u", path,
                         version, MODEL_FORMAT_VERSION);
    if (got < PREFIX_BYTES)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated at offset %zu, inside the first %u bytes (header, "
                         "architecture, input transform)", path, got, PREFIX_BYTES);
    static const struct {
        size_t offset;
        uint32_t expect;
        const char *what;
    } sizes[] = {{12, HEADER_BYTES, "header"}, {36, ARCH_BYTES, "architecture"}, {40, TRANSFORM_BYTES, "transform"}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t v = evae_get_u32(d + sizes[i].offset);
        if (v != sizes[i].expect)
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: %s size %u at offset %zu, expected %u", path, sizes[i].what, v,
                             sizes[i].offset, sizes[i].expect);
    }
    uint32_t flags = evae_get_u32(d + 32);
    if (flags & ~(FLAG_TRANSFORM | FLAG_STATE))
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: unknown flags 0x%x at offset 32", path, flags);
    uint32_t state = evae_get_u32(d + 44), want = (flags & FLAG_STATE) ? STATE_BYTES : 0u;
    if (state != want)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: training-state size %u at offset 44, expected %u for flags 0x%x",
                         path, state, want, flags);
    return EELSVAE_OK;
}

/* The architecture (and so P) against the header and the file's length. */
static eelsvae_status check_sizes(const char *path, const uint8_t *d, size_t size, file_plan *plan)
{
    cursor c = {(uint8_t *)d, HEADER_BYTES};
    decode_arch(&c, &plan->arch);
    if (evae_model_check_arch(&plan->arch, &plan->layout) != EELSVAE_OK) {
        char detail[400];
        snprintf(detail, sizeof detail, "%s", eelsvae_last_error());
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: the architecture at offset %u is invalid: %s", path, HEADER_BYTES,
                         detail);
    }
    uint64_t params = evae_get_u64(d + 24);
    if (params != plan->layout.parameters)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %llu parameters at offset 24, the architecture at offset %u has %zu",
                         path, (unsigned long long)params, HEADER_BYTES, plan->layout.parameters);
    plan->state = (evae_get_u32(d + 32) & FLAG_STATE) != 0;
    size_t expect = 0;
    if (file_bytes(plan->layout.parameters, plan->state, &expect) != EELSVAE_OK)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %zu parameters at offset 24 overflow the file size", path,
                         plan->layout.parameters);
    uint64_t claimed = evae_get_u64(d + 16);
    if (claimed != expect)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: file size %llu at offset 16 does not match the %zu bytes its sections need", path,
                         (unsigned long long)claimed, expect);
    if (size != expect)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: %zu bytes, the header (offset 16) says %zu%s", path, size, expect,
                         size < expect ? ": truncated" : ": trailing bytes");
    return EELSVAE_OK;
}

/* Loading builds the network, whose activations and work buffers for one
 * tile follow from the architecture alone, not from the file's length.
 * Real models need from 0.4 (the paper's) to about 700 (1-channel
 * convolutions, 1-wide dense layers) times their file's size; a file that
 * asks for more than WORK_PER_FILE_BYTE times its size, and more than
 * WORK_FLOOR, can only have been crafted to make the loader allocate
 * without bound (a 780-byte file can ask for 16 GiB), and is refused. */
#define WORK_PER_FILE_BYTE 4096u
#define WORK_FLOOR ((size_t)1 << 30)

static eelsvae_status check_working_memory(const char *path, size_t size, const file_plan *plan)
{
    size_t activations = 0, workspace = 0;
    bool known = evae_cvae_memory(&plan->arch, 1, false, &activations, &workspace) == EELSVAE_OK &&
                 activations <= SIZE_MAX - workspace;
    size_t limit = size > SIZE_MAX / WORK_PER_FILE_BYTE ? SIZE_MAX : size * WORK_PER_FILE_BYTE;
    if (limit < WORK_FLOOR) limit = WORK_FLOOR;
    if (!known)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: the architecture at offset %u needs more working memory than "
                         "size_t can count", path, HEADER_BYTES);
    if (activations + workspace > limit)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: the architecture at offset %u needs %zu bytes of working memory per tile, more than "
                         "the %zu allowed for a %zu-byte model file",
                         path, HEADER_BYTES, activations + workspace, limit, size);
    return EELSVAE_OK;
}

/* The transform holds values a training run can have written. */
static eelsvae_status check_transform(const char *path, const uint8_t *d, file_plan *plan)
{
    cursor c = {(uint8_t *)d, HEADER_BYTES + ARCH_BYTES};
    decode_transform(&c, &plan->transform);
    evae_model_transform *t = &plan->transform;
    t->recorded = (evae_get_u32(d + 32) & FLAG_TRANSFORM) != 0;
    if (!t->recorded) {
        memset(t, 0, sizeof *t);
        return eelsvae_preprocess_options_init(&t->preprocess, EELSVAE_PRESET_PAPER);
    }
    bool ok = isfinite(t->energy_offset) && isfinite(t->dispersion) && t->dispersion > 0.0 && isfinite(t->scale_lo) &&
              isfinite(t->scale_hi) && isfinite(t->scale_hi - t->scale_lo) && t->scale_hi > t->scale_lo;
    if (!ok || evae_model_check_preprocess(&t->preprocess) != EELSVAE_OK)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: the input transform at offset %u holds invalid values", path,
                         HEADER_BYTES + ARCH_BYTES);
    return EELSVAE_OK;
}

/* Read and check everything before the parameters; nothing is allocated. */
static eelsvae_status read_prefix(crc_reader *r, size_t size, file_plan *plan)
{
    uint8_t prefix[PREFIX_BYTES];
    size_t got = fread(prefix, 1, size < PREFIX_BYTES ? size : PREFIX_BYTES, r->fp);
    EVAE_TRY(check_header(r->path, prefix, got));
    EVAE_TRY(check_sizes(r->path, prefix, size, plan));
    EVAE_TRY(check_working_memory(r->path, size, plan));
    EVAE_TRY(check_transform(r->path, prefix, plan));
    r->crc = evae_crc32(0, prefix, PREFIX_BYTES);
    r->at = PREFIX_BYTES;
    return EELSVAE_OK;
}

/* Values only a corrupt (but CRC-consistent) file could hold. */
static eelsvae_status check_values(const char *path, const eelsvae_model *m, size_t state_offset)
{
    const float *p = evae_cvae_params(m->net);
    for (size_t i = 0; i < m->layout.parameters; i++)
        if (!isfinite(p[i]))
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: non-finite parameter at offset %zu", path,
                             (size_t)PREFIX_BYTES + 4 * i);
    if (!m->state.started) return EELSVAE_OK;
    const evae_train_state *s = &m->state;
    bool ok = isfinite(s->adam.lr) && s->adam.lr >= 0.0 && s->adam.step >= 0 && s->plateau.patience >= 0 &&
              s->plateau.cooldown >= 0 && s->plateau.bad_epochs >= 0 && s->plateau.cooldown_left >= 0 &&
              s->early.patience >= 0 && s->early.bad_epochs >= 0 && s->batch >= 1;
    if (!ok)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: the training state at offset %zu holds invalid values", path,
                         state_offset);
    return EELSVAE_OK;
}

/* Stream the blocks into a new model and compare the CRC. */
static eelsvae_status read_model(crc_reader *r, const file_plan *plan, eelsvae_model **out)
{
    eelsvae_model *m = NULL;
    EVAE_TRY(evae_model_alloc(&plan->arch, &plan->layout, &m));
    m->transform = plan->transform;
    size_t n = plan->layout.parameters, state_offset = 0;
    eelsvae_status st = read_floats(r, evae_cvae_params(m->net), n);
    if (st == EELSVAE_OK && plan->state) {
        uint8_t fixed[STATE_BYTES];
        state_offset = r->at;
        st = read_bytes(r, fixed, STATE_BYTES);
        if (st == EELSVAE_OK) {
            cursor c = {fixed, 0};
            decode_state(&c, &m->state);
            st = evae_model_alloc_moments(m);
        }
        if (st == EELSVAE_OK) st = read_floats(r, m->state.m, n);
        if (st == EELSVAE_OK) st = read_floats(r, m->state.v, n);
    }
    uint8_t crc[4];
    size_t body = r->at;
    if (st == EELSVAE_OK && fread(crc, 1, 4, r->fp) != 4)
        st = evae_fail(EELSVAE_ERR_IO, "%s: read failed at offset %zu", r->path, body);
    if (st == EELSVAE_OK && evae_get_u32(crc) != r->crc)
        st = evae_fail(EELSVAE_ERR_CHECKSUM, "%s: CRC-32 0x%08x at offset %zu, the contents give 0x%08x", r->path,
                       evae_get_u32(crc), body, r->crc);
    if (st == EELSVAE_OK) st = check_values(r->path, m, state_offset);
    if (st != EELSVAE_OK) {
        eelsvae_model_free(m);
        return st;
    }
    *out = m;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_model_load(const char *path, eelsvae_model **out)
{
    if (!path || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model load: NULL argument");
    crc_reader r;
    memset(&r, 0, sizeof r);
    r.path = path;
    size_t size = 0;
    EVAE_TRY(evae_open_sized(path, "a model file", &r.fp, &size));
    file_plan plan;
    eelsvae_status st = read_prefix(&r, size, &plan);
    if (st == EELSVAE_OK) st = evae_alloc_array(CHUNK_FLOATS, 4, (void **)&r.chunk, "model file buffer");
    eelsvae_model *m = NULL;
    if (st == EELSVAE_OK) st = read_model(&r, &plan, &m);
    fclose(r.fp);
    evae_free(r.chunk);
    if (st != EELSVAE_OK) return st;
    *out = m;
    return EELSVAE_OK;
}
