/*
 * Whole-network reference test of lib/nn/cvae.c against PyTorch.
 *
 * tests/reference/make_reference.py built the tiny 3D-CVAE of cvae.h in
 * PyTorch (tests/reference/cvae_reference.py) for each loss kind and wrote
 * tests/reference/cvae_tiny_<kind>.bin: input, ε, initial parameters,
 * logits, mulv, loss terms, the z = μ reconstruction, every gradient, and
 * a 5-step clip_grad_norm_ + Adam run (format: tests/reference/README.md).
 * Here the same network is built with evae_cvae_create, given the same
 * parameters and ε, and everything is compared; once per convolution
 * engine (the cost model's choice, FFT, direct, per-tap GEMM), since the
 * tiny shapes would otherwise exercise only the engine the cost model picks.
 *
 * Tolerances, |C − torch| ≤ tol · max|torch| over each tensor (|torch| for
 * a scalar), against torch's float64 answer rounded to float32:
 *   1e-4  logits, mulv, reconstruction, every gradient. Torch's own float32
 *         run lands within 7e-7 of it; one FFT convolution of these shapes
 *         is within 5e-7 of the direct sum (lib/nn/conv3d.c's engines), so
 *         a correct float32 network sits ≥ 100× inside, while a wrong
 *         index, layout, ReLU or output padding moves values by 1e-2 … 1.
 *   1e-5  the loss terms of the first pass (sums in double of float terms).
 *   1e-4  each step's loss terms and gradient norm, and the parameters after
 *         the 5 steps: the script checks that gradient noise of 1e-6 of each
 *         tensor's max (about 2× what the FFT engine makes) moves them by at
 *         most a quarter of that. The run uses Adam's eps = 1e-4, not 1e-8:
 *         with 1e-8 a first Adam step moves every weight by ≈ lr·sign(g),
 *         also one whose gradient is exactly 0 in PyTorch but 1e-9 of FFT
 *         cancellation residue in C, and the comparison would test rounding.
 * A missing fixture FAILS: fixtures are committed.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv3d.h"
#include "nn/cvae.h"
#include "nn/optim.h"

#define REF_VERSION 1u /* the fixture format this test reads */
#define REF_MAX_RECORDS 256
#define REF_MAX_NAME 63
#define REF_CONV_FIELDS 13 /* channels, kernel[3], stride[3], padding[3], output_padding[3] */

#define TOL_TENSOR 1e-4
#define TOL_LOSS 1e-5
#define TOL_STEP 1e-4
#define TOL_FINAL 1e-4

enum { REF_F32 = 0, REF_F64 = 1 };

typedef struct ref_record {
    char name[REF_MAX_NAME + 1];
    uint32_t dtype;
    size_t ndim;
    size_t dims[5];
    size_t count;
    size_t offset; /* of the data in the file */
} ref_record;

typedef struct ref_fixture {
    uint8_t *bytes;
    size_t size;
    uint32_t version, tile, energy, n_conv;
    uint32_t conv[EELSVAE_MAX_CONV_LAYERS][REF_CONV_FIELDS];
    uint32_t hidden, latent, loss, batch, steps, n_params;
    double beta, lr, beta1, beta2, adam_eps, max_norm;
    uint64_t seed;
    size_t n_records;
    ref_record rec[REF_MAX_RECORDS];
} ref_fixture;

/* ---- what a test owns ------------------------------------------------------------ */

/* Everything a test allocates is registered here and freed by the
 * teardown, so that a failing assertion (cmocka longjmps out) leaks nothing. */
static struct {
    void *blocks[64];
    size_t n;
    evae_cvae *net;
} owned;

static void *own(void *p)
{
    assert_non_null(p);
    assert_true(owned.n < sizeof owned.blocks / sizeof owned.blocks[0]);
    owned.blocks[owned.n++] = p;
    return p;
}

/* Free a block early (and forget it). */
static void disown(void *p)
{
    for (size_t i = 0; i < owned.n; i++)
        if (owned.blocks[i] == p) {
            owned.blocks[i] = owned.blocks[--owned.n];
            free(p);
            return;
        }
    fail_msg("freeing a block the test does not own");
}

static int free_owned(void **state)
{
    (void)state;
    while (owned.n) free(owned.blocks[--owned.n]);
    evae_cvae_free(owned.net);
    owned.net = NULL;
    return 0;
}

/* ---- reading the fixture ------------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static double f64_from(const uint8_t *p)
{
    uint64_t bits = le64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static float f32_from(const uint8_t *p)
{
    uint32_t bits = le32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* A bounds-checked cursor over the file; the first failure is kept. */
typedef struct cursor {
    const ref_fixture *f;
    size_t off;
    char *err;
    size_t err_len;
    int failed;
} cursor;

static int need(cursor *c, size_t bytes, const char *what)
{
    if (c->failed) return 0;
    if (bytes > c->f->size - c->off) {
        snprintf(c->err, c->err_len, "truncated at byte %zu reading %s (%zu bytes left, %zu needed)", c->off, what,
                 c->f->size - c->off, bytes);
        c->failed = 1;
        return 0;
    }
    return 1;
}

static uint32_t take_u32(cursor *c, const char *what)
{
    if (!need(c, 4, what)) return 0;
    c->off += 4;
    return le32(c->f->bytes + c->off - 4);
}

static uint64_t take_u64(cursor *c, const char *what)
{
    if (!need(c, 8, what)) return 0;
    c->off += 8;
    return le64(c->f->bytes + c->off - 8);
}

static double take_f64(cursor *c, const char *what)
{
    if (!need(c, 8, what)) return 0;
    c->off += 8;
    return f64_from(c->f->bytes + c->off - 8);
}

static int parse_error(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int parse_error(cursor *c, const char *fmt, ...)
{
    if (!c->failed) {
        char what[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(c->err, c->err_len, "byte %zu: %s", c->off, what);
        c->failed = 1;
    }
    return -1;
}

static int parse_record(cursor *c, ref_record *r)
{
    size_t name_len = take_u32(c, "a record's name length");
    if (c->failed) return -1;
    if (name_len == 0 || name_len > REF_MAX_NAME)
        return parse_error(c, "record name length %zu (1 … %d)", name_len, REF_MAX_NAME);
    if (!need(c, name_len, "a record name")) return -1;
    memcpy(r->name, c->f->bytes + c->off, name_len);
    r->name[name_len] = '\0';
    c->off += name_len;
    r->dtype = take_u32(c, "a record's dtype");
    r->ndim = take_u32(c, "a record's ndim");
    if (c->failed) return -1;
    if (r->dtype != REF_F32 && r->dtype != REF_F64) return parse_error(c, "dtype %u (0 or 1)", (unsigned)r->dtype);
    if (r->ndim > 5) return parse_error(c, "ndim %zu (at most 5)", r->ndim);
    r->count = 1;
    for (size_t d = 0; d < r->ndim; d++) {
        r->dims[d] = take_u32(c, "a record's dims");
        if (r->dims[d] > 1u << 20) return parse_error(c, "dimension %zu too large", r->dims[d]);
        r->count *= r->dims[d];
    }
    size_t bytes = r->count * (r->dtype == REF_F32 ? 4 : 8);
    if (!need(c, bytes, r->name)) return -1;
    r->offset = c->off;
    c->off += bytes;
    return 0;
}

/* Parse f->bytes; 0 or −1 with a message naming the byte offset. */
static int parse_fixture(ref_fixture *f, char *err, size_t err_len)
{
    cursor c = {f, 0, err, err_len, 0};
    if (!need(&c, 8, "the magic")) return -1;
    if (memcmp(f->bytes, "EVAEREF1", 8) != 0) return parse_error(&c, "not an EVAEREF1 fixture");
    c.off = 8;
    f->version = take_u32(&c, "the version");
    if (!c.failed && f->version != REF_VERSION)
        return parse_error(&c, "format version %u, this test reads version %u", (unsigned)f->version, REF_VERSION);
    f->tile = take_u32(&c, "T");
    f->energy = take_u32(&c, "E");
    f->n_conv = take_u32(&c, "n_conv");
    if (c.failed) return -1;
    if (f->n_conv < 1 || f->n_conv > EELSVAE_MAX_CONV_LAYERS)
        return parse_error(&c, "n_conv %u (1 … %d)", (unsigned)f->n_conv, EELSVAE_MAX_CONV_LAYERS);
    for (size_t i = 0; i < f->n_conv; i++)
        for (size_t k = 0; k < REF_CONV_FIELDS; k++) f->conv[i][k] = take_u32(&c, "a conv spec");
    f->hidden = take_u32(&c, "hidden");
    f->latent = take_u32(&c, "latent");
    f->beta = take_f64(&c, "beta");
    f->loss = take_u32(&c, "the loss kind");
    f->batch = take_u32(&c, "the batch");
    f->seed = take_u64(&c, "the seed");
    f->lr = take_f64(&c, "lr");
    f->beta1 = take_f64(&c, "beta1");
    f->beta2 = take_f64(&c, "beta2");
    f->adam_eps = take_f64(&c, "adam_eps");
    f->max_norm = take_f64(&c, "max_norm");
    f->steps = take_u32(&c, "steps");
    f->n_params = take_u32(&c, "n_params");
    f->n_records = take_u32(&c, "n_records");
    if (c.failed) return -1;
    if (f->n_records > REF_MAX_RECORDS)
        return parse_error(&c, "%zu records (at most %d)", f->n_records, REF_MAX_RECORDS);
    for (size_t i = 0; i < f->n_records; i++)
        if (parse_record(&c, &f->rec[i]) != 0) return -1;
    if (c.off != f->size) return parse_error(&c, "%zu bytes after the last record", f->size - c.off);
    return 0;
}

static void free_fixture(ref_fixture *f)
{
    if (f) free(f->bytes);
    free(f);
}

/* Load and parse a fixture; NULL with a message on any failure. */
static ref_fixture *load_fixture(const char *path, char *err, size_t err_len)
{
    ref_fixture *f = calloc(1, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!f || !fp) {
        snprintf(err, err_len, "cannot open %s", path);
        if (fp) fclose(fp);
        free(f);
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->size = size > 0 ? (size_t)size : 0;
    f->bytes = malloc(f->size + 1);
    int ok = f->bytes && fread(f->bytes, 1, f->size, fp) == f->size;
    fclose(fp);
    if (!ok) {
        snprintf(err, err_len, "cannot read %s", path);
        free_fixture(f);
        return NULL;
    }
    char why[400];
    if (parse_fixture(f, why, sizeof why) != 0) {
        snprintf(err, err_len, "%s: %s", path, why);
        free_fixture(f);
        return NULL;
    }
    return f;
}

static const char *fixture_path(const char *kind)
{
    static char path[1024];
    const char *src = getenv("EELSVAE_SOURCE_DIR");
    if (!src || !*src) fail_msg("EELSVAE_SOURCE_DIR is not set: it locates tests/reference/");
    snprintf(path, sizeof path, "%s/tests/reference/cvae_tiny_%s.bin", src, kind);
    return path;
}

/* The committed fixture of a loss kind; a missing one fails the test. */
static ref_fixture *fixture_or_fail(const char *kind)
{
    char err[600];
    ref_fixture *f = load_fixture(fixture_path(kind), err, sizeof err);
    if (!f) fail_msg("%s (regenerate with tests/reference/make_reference.py)", err);
    own(f->bytes);
    return own(f);
}

static const ref_record *record(const ref_fixture *f, size_t i)
{
    assert_true(i < f->n_records);
    return &f->rec[i];
}

static const ref_record *find(const ref_fixture *f, const char *name)
{
    for (size_t i = 0; i < f->n_records; i++)
        if (strcmp(f->rec[i].name, name) == 0) return &f->rec[i];
    fail_msg("the fixture has no record \"%s\"", name);
    return NULL;
}

/* A float32 record's values (malloc'd), after checking its element count. */
static float *floats(const ref_fixture *f, const char *name, size_t count)
{
    const ref_record *r = find(f, name);
    if (r->dtype != REF_F32 || r->count != count)
        fail_msg("record %s: dtype %u with %zu values, expected float32 with %zu", name, (unsigned)r->dtype, r->count,
                 count);
    float *v = own(malloc(count * sizeof *v));
    for (size_t i = 0; i < count; i++) v[i] = f32_from(f->bytes + r->offset + 4 * i);
    return v;
}

/* Element i of a float64 record of `count` values. */
static double f64_value(const ref_fixture *f, const char *name, size_t count, size_t i)
{
    const ref_record *r = find(f, name);
    if (r->dtype != REF_F64 || r->count != count)
        fail_msg("record %s: dtype %u with %zu values, expected float64 with %zu", name, (unsigned)r->dtype, r->count,
                 count);
    return f64_from(f->bytes + r->offset + 8 * i);
}

static void expect_dims(const ref_record *r, size_t ndim, const size_t *dims)
{
    int same = r->ndim == ndim;
    for (size_t d = 0; same && d < ndim; d++) same = r->dims[d] == dims[d];
    if (!same) {
        char got[96] = "", want[96] = "";
        for (size_t d = 0; d < r->ndim; d++) snprintf(got + strlen(got), sizeof got - strlen(got), "[%zu]", r->dims[d]);
        for (size_t d = 0; d < ndim; d++) snprintf(want + strlen(want), sizeof want - strlen(want), "[%zu]", dims[d]);
        fail_msg("record %s has shape %s, expected %s", r->name, got[0] ? got : "(scalar)",
                 want[0] ? want : "(scalar)");
    }
}

/* The record sequence the format prescribes (README.md), given the
 * parameter names (records 2 … 2+P−1). */
static void check_record_order(const ref_fixture *f)
{
    size_t P = f->n_params;
    if (f->n_records != 3 * P + 15)
        fail_msg("%zu records for %zu parameters, expected %zu", f->n_records, P, 3 * P + 15);
    static const char *const head[] = {"input", "eps"};
    static const char *const mid[] = {
        "logits", "mulv", "loss", "reconstruction", "kl", "recon_mean", "mean.loss", "mean.reconstruction", "mean.kl"};
    static const char *const steps[] = {"step.loss", "step.reconstruction", "step.kl", "step.grad_norm"};
    char want[REF_MAX_NAME + 16];
    size_t i = 0;
    for (size_t k = 0; k < 2; k++, i++) assert_string_equal(record(f, i)->name, head[k]);
    i += P;
    for (size_t k = 0; k < sizeof mid / sizeof mid[0]; k++, i++) assert_string_equal(record(f, i)->name, mid[k]);
    for (size_t k = 0; k < P; k++, i++) {
        snprintf(want, sizeof want, "grad.%s", record(f, 2 + k)->name);
        assert_string_equal(record(f, i)->name, want);
    }
    for (size_t k = 0; k < 4; k++, i++) assert_string_equal(record(f, i)->name, steps[k]);
    for (size_t k = 0; k < P; k++, i++) {
        snprintf(want, sizeof want, "final.%s", record(f, 2 + k)->name);
        assert_string_equal(record(f, i)->name, want);
    }
}

/* ---- comparisons ----------------------------------------------------------------- */

/* Largest |got − ref| over n values, as a fraction of max |ref|; the test
 * fails above tol. worst collects the largest fraction of a group. */
static void check_tensor(const char *what, const float *got, const float *ref, size_t n, double tol, double *worst)
{
    double scale = 0, diff = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)ref[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (isnan(d) || d > diff) {
            diff = d;
            at = i;
            if (isnan(d)) break; /* a NaN is the worst there is */
        }
    }
    double rel = diff / (scale > 0 ? scale : 1.0);
    if (!(rel <= tol))
        fail_msg("%s: max |C − torch| is %.3g of max |torch| = %.6g (tolerance %g); worst at %zu: C %.9g, torch %.9g",
                 what, rel, scale, tol, at, (double)got[at], (double)ref[at]);
    if (rel > *worst) *worst = rel;
}

static void check_scalar(const char *what, double got, double ref, double tol, double *worst)
{
    double rel = fabs(got - ref) / fabs(ref);
    if (!(rel <= tol))
        fail_msg("%s: C %.12g, torch %.12g (relative difference %.3g, tolerance %g)", what, got, ref, rel, tol);
    if (rel > *worst) *worst = rel;
}

/* ---- the network ------------------------------------------------------------------ */

static eelsvae_model_options arch_of(const ref_fixture *f)
{
    eelsvae_model_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.tile = f->tile;
    o.energy_channels = f->energy;
    o.energy_start = 420.0; /* not part of the network */
    o.conv_layers = f->n_conv;
    for (size_t i = 0; i < f->n_conv; i++) {
        o.conv[i].channels = f->conv[i][0];
        for (size_t a = 0; a < 3; a++) {
            o.conv[i].kernel[a] = f->conv[i][1 + a];
            o.conv[i].stride[a] = f->conv[i][4 + a];
            o.conv[i].padding[a] = f->conv[i][7 + a];
        }
    }
    o.hidden = f->hidden;
    o.latent = f->latent;
    o.beta = f->beta;
    o.loss = (eelsvae_loss_kind)f->loss;
    return o;
}

/* The layout's output paddings are the script's (both derive them as cvae.h says). */
static void check_layout(const ref_fixture *f, const evae_cvae_layout *lay)
{
    assert_int_equal(lay->n_conv, f->n_conv);
    for (size_t i = 0; i < f->n_conv; i++)
        for (size_t a = 0; a < 3; a++)
            if (lay->output_padding[i][a] != f->conv[i][10 + a])
                fail_msg("output padding of the convT mirroring enc %zu, axis %zu: C %zu, torch %u", i, a,
                         lay->output_padding[i][a], (unsigned)f->conv[i][10 + a]);
}

/* The net's tensors must be the fixture's parameter records: same names,
 * order and shapes, packed back to back. Copies the initial values in. */
static void check_and_load_params(const ref_fixture *f, evae_cvae *net)
{
    const evae_cvae_layout *lay = evae_cvae_get_layout(net);
    if (lay->tensors != f->n_params)
        fail_msg("the net has %zu tensors, the fixture %u", lay->tensors, (unsigned)f->n_params);
    size_t offset = 0;
    float *params = evae_cvae_params(net);
    for (size_t i = 0; i < lay->tensors; i++) {
        const evae_tensor_info *t = evae_cvae_tensor(net, i);
        const ref_record *r = record(f, 2 + i);
        if (strcmp(t->name, r->name) != 0) fail_msg("tensor %zu: C names it %s, PyTorch %s", i, t->name, r->name);
        expect_dims(r, t->ndim, t->shape);
        assert_int_equal(t->offset, offset);
        assert_int_equal(t->count, r->count);
        float *v = floats(f, r->name, r->count);
        memcpy(params + t->offset, v, t->count * sizeof *v);
        disown(v);
        offset += t->count;
    }
    assert_int_equal(offset, evae_cvae_param_count(net));
    assert_int_equal(offset, lay->parameters);
}

static void load_params(const ref_fixture *f, evae_cvae *net, const char *prefix)
{
    char name[REF_MAX_NAME + 16];
    for (size_t i = 0; i < f->n_params; i++) {
        const evae_tensor_info *t = evae_cvae_tensor(net, i);
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        float *v = floats(f, name, t->count);
        memcpy(evae_cvae_params(net) + t->offset, v, t->count * sizeof *v);
        disown(v);
    }
}

typedef struct worst_diffs {
    double logits, mulv, loss, grads, recon, steps, final;
} worst_diffs;

static void check_single_pass(const ref_fixture *f, evae_cvae *net, const float *x, const float *eps, worst_diffs *w)
{
    size_t B = f->batch, L = f->latent, n_x = (size_t)B * f->tile * f->tile * f->energy;
    evae_cvae_losses got = {0, 0, 0};
    assert_ok(evae_cvae_forward_backward(net, x, B, eps, NULL, &got));

    float *ref = floats(f, "logits", n_x);
    check_tensor("logits", evae_cvae_logits(net), ref, n_x, TOL_TENSOR, &w->logits);
    disown(ref);
    check_scalar("loss", got.loss, f64_value(f, "loss", 1, 0), TOL_LOSS, &w->loss);
    check_scalar("reconstruction", got.reconstruction, f64_value(f, "reconstruction", 1, 0), TOL_LOSS, &w->loss);
    check_scalar("kl", got.kl, f64_value(f, "kl", 1, 0), TOL_LOSS, &w->loss);

    char name[REF_MAX_NAME + 16];
    for (size_t i = 0; i < f->n_params; i++) {
        const evae_tensor_info *t = evae_cvae_tensor(net, i);
        snprintf(name, sizeof name, "grad.%s", t->name);
        ref = floats(f, name, t->count);
        check_tensor(name, evae_cvae_grads(net) + t->offset, ref, t->count, TOL_TENSOR, &w->grads);
        disown(ref);
    }

    /* The same pass without gradients gives the same loss. */
    evae_cvae_losses eval = {0, 0, 0};
    assert_ok(evae_cvae_evaluate(net, x, B, eps, NULL, &eval));
    check_scalar("evaluate: loss", eval.loss, f64_value(f, "loss", 1, 0), TOL_LOSS, &w->loss);
    check_scalar("evaluate: kl", eval.kl, f64_value(f, "kl", 1, 0), TOL_LOSS, &w->loss);

    /* mulv through the encoder alone. */
    float *mulv = own(calloc(B * 2 * L, sizeof *mulv));
    assert_ok(evae_cvae_encode(net, x, B, mulv));
    ref = floats(f, "mulv", B * 2 * L);
    check_tensor("mulv", mulv, ref, B * 2 * L, TOL_TENSOR, &w->mulv);

    /* z = μ: evaluate without ε, reconstruct, and decode(μ). */
    assert_ok(evae_cvae_evaluate(net, x, B, NULL, NULL, &eval));
    check_scalar("mean.loss", eval.loss, f64_value(f, "mean.loss", 1, 0), TOL_LOSS, &w->loss);
    check_scalar("mean.reconstruction", eval.reconstruction, f64_value(f, "mean.reconstruction", 1, 0), TOL_LOSS,
                 &w->loss);
    check_scalar("mean.kl", eval.kl, f64_value(f, "mean.kl", 1, 0), TOL_LOSS, &w->loss);
    float *recon_ref = floats(f, "recon_mean", n_x);
    float *recon = own(calloc(n_x, sizeof *recon));
    assert_ok(evae_cvae_reconstruct(net, x, B, recon));
    check_tensor("reconstruct (z = mu)", recon, recon_ref, n_x, TOL_TENSOR, &w->recon);
    float *mu = own(calloc(B * L, sizeof *mu));
    for (size_t b = 0; b < B; b++) memcpy(mu + b * L, ref + b * 2 * L, L * sizeof *mu);
    memset(recon, 0, n_x * sizeof *recon);
    assert_ok(evae_cvae_decode(net, mu, B, recon));
    check_tensor("decode(mu)", recon, recon_ref, n_x, TOL_TENSOR, &w->recon);
    disown(mu);
    disown(recon);
    disown(recon_ref);
    disown(ref);
    disown(mulv);
}

static void check_training_steps(const ref_fixture *f, evae_cvae *net, const float *x, const float *eps, worst_diffs *w)
{
    size_t n = evae_cvae_param_count(net), S = f->steps;
    load_params(f, net, ""); /* the initial parameters again */
    evae_adam opt;
    evae_adam_init(&opt, f->lr);
    opt.beta1 = f->beta1;
    opt.beta2 = f->beta2;
    opt.eps = f->adam_eps;
    float *m = own(calloc(n, sizeof *m)), *v = own(calloc(n, sizeof *v));
    char what[64];
    size_t clipped = 0;
    for (size_t s = 0; s < S; s++) {
        evae_cvae_losses got = {0, 0, 0};
        assert_ok(evae_cvae_forward_backward(net, x, f->batch, eps, NULL, &got));
        snprintf(what, sizeof what, "step %zu: loss", s);
        check_scalar(what, got.loss, f64_value(f, "step.loss", S, s), TOL_STEP, &w->steps);
        snprintf(what, sizeof what, "step %zu: reconstruction", s);
        check_scalar(what, got.reconstruction, f64_value(f, "step.reconstruction", S, s), TOL_STEP, &w->steps);
        snprintf(what, sizeof what, "step %zu: kl", s);
        check_scalar(what, got.kl, f64_value(f, "step.kl", S, s), TOL_STEP, &w->steps);
        double norm = evae_clip_grad_norm(evae_cvae_grads(net), n, f->max_norm);
        snprintf(what, sizeof what, "step %zu: gradient norm", s);
        check_scalar(what, norm, f64_value(f, "step.grad_norm", S, s), TOL_STEP, &w->steps);
        clipped += norm > f->max_norm;
        assert_ok(evae_adam_step(&opt, evae_cvae_params(net), evae_cvae_grads(net), m, v, n));
    }
    /* The fixture is meant to clip on some steps and not on others. */
    assert_true(clipped > 0 && clipped < S);

    char name[REF_MAX_NAME + 16];
    for (size_t i = 0; i < f->n_params; i++) {
        const evae_tensor_info *t = evae_cvae_tensor(net, i);
        snprintf(name, sizeof name, "final.%s", t->name);
        float *ref = floats(f, name, t->count);
        check_tensor(name, evae_cvae_params(net) + t->offset, ref, t->count, TOL_FINAL, &w->final);
        /* and the steps moved every tensor far more than the tolerance */
        float *init = floats(f, t->name, t->count);
        double moved = 0;
        check_tensor(name, init, ref, t->count, 1e30, &moved);
        if (!(moved > 10 * TOL_FINAL)) fail_msg("%s moved only %.3g of its max in %zu steps", t->name, moved, S);
        disown(init);
        disown(ref);
    }
    disown(m);
    disown(v);
}

/* ---- the cases ----------------------------------------------------------------------- */

typedef struct ref_case {
    const char *kind;
    int engine; /* evae_conv3d_test_engine: 0 cost model, 1 FFT, 2 direct, 3 per-tap GEMM */
    const char *engine_name;
} ref_case;

static void reference_case(void **state)
{
    const ref_case *rc = *state;
    ref_fixture *f = fixture_or_fail(rc->kind);
    static const char *const kinds[] = {"bernoulli", "gaussian", "poisson"};
    assert_true(f->loss < 3);
    assert_string_equal(kinds[f->loss], rc->kind);
    check_record_order(f);

    size_t B = f->batch, T = f->tile, E = f->energy, L = f->latent;
    size_t x_dims[4] = {B, T, T, E}, eps_dims[2] = {B, L}, mulv_dims[2] = {B, 2 * L}, step_dims[1] = {f->steps};
    expect_dims(find(f, "input"), 4, x_dims);
    expect_dims(find(f, "eps"), 2, eps_dims);
    expect_dims(find(f, "logits"), 4, x_dims);
    expect_dims(find(f, "recon_mean"), 4, x_dims);
    expect_dims(find(f, "mulv"), 2, mulv_dims);
    expect_dims(find(f, "loss"), 0, NULL);
    expect_dims(find(f, "step.grad_norm"), 1, step_dims);

    eelsvae_model_options arch = arch_of(f);
    evae_cvae_layout lay;
    assert_ok(evae_cvae_layout_of(&arch, &lay));
    check_layout(f, &lay);

    evae_cvae *net = NULL;
    evae_conv3d_test_engine(rc->engine);
    eelsvae_status st = evae_cvae_create(&arch, B, true, &net);
    evae_conv3d_test_engine(0);
    assert_ok(st);
    owned.net = net;
    assert_int_equal(evae_cvae_max_batch(net), B);
    check_and_load_params(f, net);

    float *x = floats(f, "input", B * T * T * E);
    float *eps = floats(f, "eps", B * L);
    worst_diffs w = {0, 0, 0, 0, 0, 0, 0};
    check_single_pass(f, net, x, eps, &w);
    check_training_steps(f, net, x, eps, &w);
    print_message("%s/%s: max |C − torch| / max |torch|: logits %.2g, mulv %.2g, recon %.2g, grads %.2g; "
                  "relative: loss terms %.2g, steps %.2g; final params %.2g\n",
                  rc->kind, rc->engine_name, w.logits, w.mulv, w.recon, w.grads, w.loss, w.steps, w.final);
}

/* The reader refuses a fixture of another version, a truncated one and
 * trailing bytes, naming the byte offset; a missing file is an error too. */
static void reader_rejects_bad_fixtures(void **state)
{
    (void)state;
    char err[600];
    const ref_fixture *f = fixture_or_fail("bernoulli");
    assert_int_equal(f->version, REF_VERSION);

    FILE *fp = fopen(tu_path("v2.bin"), "wb");
    assert_non_null(fp);
    uint8_t v2[4] = {REF_VERSION + 1, 0, 0, 0};
    assert_int_equal(fwrite(f->bytes, 1, 8, fp), 8);
    assert_int_equal(fwrite(v2, 1, 4, fp), 4);
    assert_int_equal(fwrite(f->bytes + 12, 1, f->size - 12, fp), f->size - 12);
    fclose(fp);
    assert_null(load_fixture(tu_path("v2.bin"), err, sizeof err));
    assert_non_null(strstr(err, "format version 2, this test reads version 1"));

    fp = fopen(tu_path("short.bin"), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f->bytes, 1, f->size - 3, fp), f->size - 3);
    fclose(fp);
    assert_null(load_fixture(tu_path("short.bin"), err, sizeof err));
    assert_non_null(strstr(err, "truncated at byte"));

    fp = fopen(tu_path("long.bin"), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f->bytes, 1, f->size, fp), f->size);
    assert_int_equal(fwrite(v2, 1, 1, fp), 1);
    fclose(fp);
    assert_null(load_fixture(tu_path("long.bin"), err, sizeof err));
    assert_non_null(strstr(err, "1 bytes after the last record"));

    assert_null(load_fixture(tu_path("absent.bin"), err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

/* One test per fixture and engine, named e.g. "poisson/fft". */
#define CASE(kind, engine, engine_name)                                                                          \
    static const ref_case case_##kind##_##engine = {#kind, engine, engine_name};
#define TEST(kind, engine, engine_name)                                                                          \
    {#kind "/" engine_name, reference_case, NULL, free_owned, (void *)&case_##kind##_##engine}
#define ENGINES(X, kind) X(kind, 0, "cost-model") X(kind, 1, "fft") X(kind, 2, "direct") X(kind, 3, "taps")
#define COMMA_TEST(kind, engine, engine_name) TEST(kind, engine, engine_name),
ENGINES(CASE, bernoulli)
ENGINES(CASE, gaussian)
ENGINES(CASE, poisson)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(reader_rejects_bad_fixtures, free_owned),
        ENGINES(COMMA_TEST, bernoulli) ENGINES(COMMA_TEST, gaussian) ENGINES(COMMA_TEST, poisson)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
