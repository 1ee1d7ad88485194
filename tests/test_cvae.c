/*
 * The 3D-CVAE network (lib/nn/cvae.h): every gradient against central
 * finite differences of the float network's loss, the tensor layout of a
 * tiny net and of the paper preset checked by hand, derived output
 * paddings, architecture validation, PyTorch's initialisation bounds,
 * determinism, the consistency of encode/decode/reconstruct/evaluate with
 * the training pass, the memory estimate against what create allocates,
 * and one step of the FAST preset.
 */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include <eelsvae/model.h>

#include "nn/conv3d.h"
#include "nn/cvae.h"


/* ---- helpers ----------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_floats(size_t n, double lo, double hi, uint64_t seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    tu_fill_uniform(p, n, lo, hi, seed);
    return p;
}

/* Standard normal ε from the library's generator (Box–Muller would do too;
 * only "fixed" matters here). */
static float *normal_floats(size_t n, uint64_t seed)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    evae_rng rng;
    evae_rng_seed(&rng, seed, 0);
    for (size_t i = 0; i < n; i++) p[i] = (float)evae_rng_normal(&rng);
    return p;
}

static void set_conv(eelsvae_conv_spec *c, size_t ch, size_t ky, size_t kx, size_t ke, size_t sy, size_t sx,
                     size_t se, size_t py, size_t px, size_t pe)
{
    c->channels = ch;
    c->kernel[0] = ky, c->kernel[1] = kx, c->kernel[2] = ke;
    c->stride[0] = sy, c->stride[1] = sx, c->stride[2] = se;
    c->padding[0] = py, c->padding[1] = px, c->padding[2] = pe;
}

/* The tiny net: T 4, E 16; a spectral-only conv 1→2 (k 1×1×3, s 1×1×2,
 * p 0,0,1), then a cubic one 2→3 (k 3, s 2, p 1): the paper's pattern
 * scaled down. Stages 4×4×16 → 4×4×8 → 2×2×4, flat 3·2·2·4 = 48. */
static eelsvae_model_options tiny_arch(eelsvae_loss_kind loss)
{
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_PAPER));
    o.tile = 4;
    o.energy_channels = 16;
    o.conv_layers = 2;
    set_conv(&o.conv[0], 2, 1, 1, 3, 1, 1, 2, 0, 0, 1);
    set_conv(&o.conv[1], 3, 3, 3, 3, 2, 2, 2, 1, 1, 1);
    o.hidden = 5;
    o.latent = 3;
    o.beta = 1.2;
    o.loss = loss;
    return o;
}

#define TINY_BATCH 2
#define TINY_TILE (4 * 4 * 16)

/* ---- gradients against finite differences --------------------------------------- */

/*
 * The loss as the float network computes it (the reconstruction summed in
 * double), with parameter k set to `value`; returns the value of the
 * parameter actually used (value rounded to float).
 */
static double loss_at(evae_cvae *net, size_t k, double value, const float *x, const uint8_t *keep, const float *eps,
                      double *used)
{
    float *p = evae_cvae_params(net);
    float saved = p[k];
    p[k] = (float)value;
    *used = p[k];
    evae_cvae_losses l;
    assert_ok(evae_cvae_evaluate_masked(net, x, keep, TINY_BATCH, eps, NULL, &l));
    p[k] = saved;
    return l.loss;
}

/*
 * Step and tolerance. The loss is a sum in double of per-element terms of
 * float logits; moving one parameter by h changes it by g·h, and the float
 * rounding of the network (≈ 1e-7 relative per value) adds noise of order
 * 1e-8 to that change (measured on this net: the slope over steps of 1e-5
 * wanders by ±2e-3). A central difference over 2h = 2e-4 thus carries noise
 * near 1e-4, and its truncation error h²·|L‴|/6 is smaller still; a wrong
 * factor, term or index shows as an O(1) relative error. Accepted:
 * |fd − g| ≤ FD_ATOL + FD_RTOL·(|g| + the tensor's largest |g|), FD_ATOL
 * ten times the noise.
 *
 * The network is only piecewise smooth: a step that straddles a ReLU kink
 * measures a mix of two slopes (a first-layer weight or a bias moves every
 * unit of its channel at once, so on this tiny net a kink lies within
 * ±1e-3 of many of them). A parameter that fails at h is tried again at
 * h/2, where a kink is half as likely and the noise still a fifth of the
 * tolerance; at most one parameter in eight may need that.
 */
#define FD_STEP 1e-4
#define FD_RTOL 2e-3
#define FD_ATOL 1e-3

typedef struct fd_stats {
    size_t checked, kinks;
    double worst; /* largest |fd − g| / allowed */
    char worst_name[48];
} fd_stats;

static double central_difference(evae_cvae *net, size_t k, double h, const float *x, const uint8_t *keep,
                                 const float *eps)
{
    double theta = evae_cvae_params(net)[k], up = 0.0, down = 0.0;
    double lp = loss_at(net, k, theta + h, x, keep, eps, &up);
    double lm = loss_at(net, k, theta - h, x, keep, eps, &down);
    return (lp - lm) / (up - down); /* over the steps float represents */
}

static void check_parameter(evae_cvae *net, size_t k, double scale, const float *grad, const float *x,
                            const uint8_t *keep, const float *eps, fd_stats *st, const char *name)
{
    double g = grad[k], allowed = FD_ATOL + FD_RTOL * (fabs(g) + scale);
    double fd = central_difference(net, k, FD_STEP, x, keep, eps);
    st->checked++;
    if (fabs(fd - g) <= allowed) {
        if (fabs(fd - g) / allowed > st->worst) {
            st->worst = fabs(fd - g) / allowed;
            snprintf(st->worst_name, sizeof st->worst_name, "%s[%zu]", name, k);
        }
        return;
    }
    double fine = central_difference(net, k, FD_STEP / 2, x, keep, eps);
    if (fabs(fine - g) <= allowed) {
        st->kinks++;
        st->worst = fmax(st->worst, fabs(fine - g) / allowed);
        return;
    }
    fail_msg("%s[%zu]: backward %.8g, finite differences %.8g (h = %g) and %.8g (h = %g), allowed error %.3g", name,
             k, g, fd, FD_STEP, fine, FD_STEP / 2, allowed);
}

/* Up to `samples` parameters of every tensor: its first and last, the rest
 * spread evenly; only the pixels keep [TINY_BATCH][4][4] marks in the
 * reconstruction term (NULL: all). */
static void check_gradients_masked(const eelsvae_model_options *arch, uint64_t seed, size_t samples,
                                   const uint8_t *keep)
{
    evae_cvae *net = NULL;
    assert_ok(evae_cvae_create(arch, TINY_BATCH, true, &net));
    evae_cvae_init_params(net, seed);
    size_t L = arch->latent;
    float *x = random_floats(TINY_BATCH * TINY_TILE, 0.0, 1.0, seed + 1);
    float *eps = normal_floats(TINY_BATCH * L, seed + 2);
    evae_cvae_losses losses;
    assert_ok(evae_cvae_forward_backward_masked(net, x, keep, TINY_BATCH, eps, NULL, &losses));
    size_t n = evae_cvae_param_count(net);
    float *grad = malloc(n * sizeof *grad);
    assert_non_null(grad);
    memcpy(grad, evae_cvae_grads(net), n * sizeof *grad);
    double unused = 0.0;
    double base = loss_at(net, 0, evae_cvae_params(net)[0], x, keep, eps, &unused);
    assert_close(base, losses.loss, 0.0, 0.0); /* evaluate = the training pass, bit for bit */

    fd_stats st = {0, 0, 0.0, ""};
    for (size_t t = 0; t < evae_cvae_get_layout(net)->tensors; t++) {
        const evae_tensor_info *info = evae_cvae_tensor(net, t);
        double scale = 0.0;
        for (size_t i = 0; i < info->count; i++) scale = fmax(scale, fabs(grad[info->offset + i]));
        if (scale == 0.0) fail_msg("the gradient of %s is zero everywhere: the check would be empty", info->name);
        size_t m = info->count < samples ? info->count : samples;
        for (size_t s = 0; s < m; s++) {
            size_t i = m == 1 ? 0 : s * (info->count - 1) / (m - 1);
            check_parameter(net, info->offset + i, scale, grad, x, keep, eps, &st, info->name);
        }
    }
    print_message("loss %s: %zu parameters checked, %zu across a kink at h, worst error %.2f of the tolerance (%s)\n",
                  arch->loss == EELSVAE_LOSS_BERNOULLI ? "bernoulli"
                  : arch->loss == EELSVAE_LOSS_GAUSSIAN ? "gaussian"
                                                        : "poisson",
                  st.checked, st.kinks, st.worst, st.worst_name);
    assert_true(st.kinks * 8 <= st.checked);
    free(grad);
    free(eps);
    free(x);
    evae_cvae_free(net);
}

static void check_gradients(const eelsvae_model_options *arch, uint64_t seed, size_t samples)
{
    check_gradients_masked(arch, seed, samples, NULL);
}

static void gradients_bernoulli(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    check_gradients(&o, 11, 12);
}

static void gradients_gaussian(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_GAUSSIAN);
    check_gradients(&o, 12, 12);
}

static void gradients_poisson(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_POISSON);
    check_gradients(&o, 13, 12);
}

/* ---- pixels left out of the reconstruction term (outlier mode) ------------------------ */

#define TINY_PIXELS (TINY_BATCH * 4 * 4)

/* Every third pixel of the batch left out (both items, corners and inside). */
static void every_third_out(uint8_t keep[TINY_PIXELS])
{
    for (size_t p = 0; p < TINY_PIXELS; p++) keep[p] = p % 3 != 0;
}

/* The masked loss's gradient is the gradient of the masked loss: finite
 * differences of evaluate_masked, as for the whole loss above. */
static void gradients_masked(void **state)
{
    (void)state;
    uint8_t keep[TINY_PIXELS];
    every_third_out(keep);
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    check_gradients_masked(&o, 41, 8, keep);
    o = tiny_arch(EELSVAE_LOSS_GAUSSIAN);
    check_gradients_masked(&o, 12, 8, keep);
}

typedef struct pass {
    evae_cvae_losses losses;
    float *grad;
} pass;

static pass masked_pass(evae_cvae *net, const float *x, const uint8_t *keep, const float *eps)
{
    pass p;
    assert_ok(evae_cvae_forward_backward_masked(net, x, keep, TINY_BATCH, eps, NULL, &p.losses));
    size_t n = evae_cvae_param_count(net);
    p.grad = malloc(n * sizeof *p.grad);
    assert_non_null(p.grad);
    memcpy(p.grad, evae_cvae_grads(net), n * sizeof *p.grad);
    return p;
}

/*
 * A left-out pixel contributes nothing: the reconstruction term splits
 * exactly over a mask and its complement, rec(keep) + rec(¬keep) = rec(all),
 * and so do the gradients once the KL part, counted in both, is taken off
 * once: g(keep) + g(¬keep) − g(none) = g(all), where g(none), with every
 * pixel out, is the KL term's alone (its reconstruction is exactly 0).
 * The sums are of float gradients, so they agree to float rounding: 1e-5 of
 * the largest |g|. And the mask matters: g(keep) differs from g(all) by far
 * more than that.
 */
static void left_out_pixels_add_nothing(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    evae_cvae *net = NULL;
    assert_ok(evae_cvae_create(&o, TINY_BATCH, true, &net));
    evae_cvae_init_params(net, 43);
    float *x = random_floats(TINY_BATCH * TINY_TILE, 0, 1, 44);
    float *eps = normal_floats(TINY_BATCH * o.latent, 45);
    uint8_t keep[TINY_PIXELS], drop[TINY_PIXELS], none[TINY_PIXELS], all[TINY_PIXELS];
    every_third_out(keep);
    for (size_t p = 0; p < TINY_PIXELS; p++) drop[p] = !keep[p], none[p] = 0, all[p] = 1;
    pass k = masked_pass(net, x, keep, eps), d = masked_pass(net, x, drop, eps);
    pass z = masked_pass(net, x, none, eps), a = masked_pass(net, x, all, eps), u = masked_pass(net, x, NULL, eps);

    assert_true(z.losses.reconstruction == 0.0);
    assert_close(z.losses.kl, u.losses.kl, 0.0, 0.0); /* the KL term is untouched */
    assert_close(k.losses.reconstruction + d.losses.reconstruction, u.losses.reconstruction, 0.0, 1e-12);
    assert_close(a.losses.loss, u.losses.loss, 0.0, 1e-12);
    assert_true(k.losses.reconstruction > 0.5 * u.losses.reconstruction); /* two thirds of the pixels */
    assert_true(k.losses.reconstruction < 0.8 * u.losses.reconstruction);

    size_t n = evae_cvae_param_count(net);
    double scale = 0.0, split = 0.0, moved = 0.0, same = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(u.grad[i]));
    for (size_t i = 0; i < n; i++) {
        split = fmax(split, fabs((double)k.grad[i] + d.grad[i] - z.grad[i] - u.grad[i]));
        moved = fmax(moved, fabs((double)k.grad[i] - u.grad[i]));
        same = fmax(same, fabs((double)a.grad[i] - u.grad[i]));
    }
    print_message("masked gradients: largest |g| %.3g, split error %.3g, all-kept error %.3g, mask effect %.3g\n",
                  scale, split, same, moved);
    assert_true(split <= 1e-5 * scale);
    assert_true(same <= 1e-5 * scale);
    assert_true(moved >= 1e-2 * scale);
    free(k.grad), free(d.grad), free(z.grad), free(a.grad), free(u.grad);
    free(eps);
    free(x);
    evae_cvae_free(net);
}

/* The same with every conv layer forced onto the FFT engine, then onto the
 * direct loops, then onto the per-tap GEMMs, whatever the cost model picks. */
static void gradients_each_conv_engine(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    for (int engine = 1; engine <= 3; engine++) {
        evae_conv3d_test_engine(engine);
        check_gradients(&o, 20 + (uint64_t)engine, 6);
    }
}

/* Back to the cost model's choice, also after a failure. */
static int reset_conv_engine(void **state)
{
    (void)state;
    evae_conv3d_test_engine(0);
    return 0;
}

/* Three conv layers, latent 1, hidden 1, β = 0: the edges of the sizes. */
static void gradients_other_shapes(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_GAUSSIAN);
    o.conv_layers = 3;
    set_conv(&o.conv[0], 2, 1, 1, 3, 1, 1, 2, 0, 0, 1);
    set_conv(&o.conv[1], 2, 3, 3, 5, 1, 1, 2, 1, 1, 2);
    set_conv(&o.conv[2], 3, 3, 3, 3, 2, 2, 2, 1, 1, 1);
    o.hidden = 4;
    o.latent = 1;
    o.beta = 0.0;
    check_gradients(&o, 31, 8);
}

/* ---- layout ------------------------------------------------------------------ */

typedef struct expected_tensor {
    const char *name;
    size_t ndim, shape[5];
} expected_tensor;

static void check_tensors(evae_cvae *net, const expected_tensor *exp, size_t count)
{
    assert_int_equal(evae_cvae_get_layout(net)->tensors, count);
    size_t offset = 0;
    for (size_t t = 0; t < count; t++) {
        const evae_tensor_info *info = evae_cvae_tensor(net, t);
        assert_non_null(info);
        assert_string_equal(info->name, exp[t].name);
        assert_int_equal(info->ndim, exp[t].ndim);
        size_t c = 1;
        for (size_t d = 0; d < exp[t].ndim; d++) {
            assert_int_equal(info->shape[d], exp[t].shape[d]);
            c *= exp[t].shape[d];
        }
        assert_int_equal(info->count, c);
        assert_int_equal(info->offset, offset);
        offset += c;
    }
    assert_null(evae_cvae_tensor(net, count));
    assert_int_equal(evae_cvae_param_count(net), offset);
    assert_int_equal(evae_cvae_get_layout(net)->parameters, offset);
}

static void tiny_layout_by_hand(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    evae_cvae_layout lay;
    assert_ok(evae_cvae_layout_of(&o, &lay));
    assert_int_equal(lay.n_conv, 2);
    /* E: 16 → (16 + 2 − 3)/2 + 1 = 8 → (8 + 2 − 3)/2 + 1 = 4; y, x: 4 → 4 → (4 + 2 − 3)/2 + 1 = 2. */
    static const size_t dims[3][3] = {{4, 4, 16}, {4, 4, 8}, {2, 2, 4}};
    static const size_t channels[3] = {1, 2, 3};
    /* op = in − ((out − 1)·s − 2p + k): E 16 − (7·2 − 2 + 3) = 1; y 4 − (2·1 − 0 + 1) = 1 … */
    static const size_t op[2][3] = {{0, 0, 1}, {1, 1, 1}};
    for (size_t s = 0; s < 3; s++) {
        assert_int_equal(lay.stage_channels[s], channels[s]);
        for (int a = 0; a < 3; a++) assert_int_equal(lay.stage_dims[s][a], dims[s][a]);
    }
    for (size_t i = 0; i < 2; i++)
        for (int a = 0; a < 3; a++) assert_int_equal(lay.output_padding[i][a], op[i][a]);
    assert_int_equal(lay.flat, 48);
    assert_int_equal(lay.tensors, 16);
    /* 2·3 + 2, 3·2·27 + 3, 5·48 + 5, 6·5 + 6, 5·3 + 5, 48·5 + 48, 3·2·27 + 2, 2·1·3 + 1 */
    assert_int_equal(lay.parameters, 8 + 165 + 245 + 36 + 20 + 288 + 164 + 7);

    evae_cvae *net = NULL;
    assert_ok(evae_cvae_create(&o, 1, false, &net));
    static const expected_tensor exp[] = {
        {"enc.0.weight", 5, {2, 1, 1, 1, 3}}, {"enc.0.bias", 1, {2}},
        {"enc.2.weight", 5, {3, 2, 3, 3, 3}}, {"enc.2.bias", 1, {3}},
        {"fc_enc.weight", 2, {5, 48}},        {"fc_enc.bias", 1, {5}},
        {"fc_mulv.weight", 2, {6, 5}},        {"fc_mulv.bias", 1, {6}},
        {"fc_dec.weight", 2, {5, 3}},         {"fc_dec.bias", 1, {5}},
        {"fc_unflat.weight", 2, {48, 5}},     {"fc_unflat.bias", 1, {48}},
        {"dec.0.weight", 5, {3, 2, 3, 3, 3}}, {"dec.0.bias", 1, {2}},
        {"dec.2.weight", 5, {2, 1, 1, 1, 3}}, {"dec.2.bias", 1, {1}},
    };
    check_tensors(net, exp, sizeof exp / sizeof exp[0]);
    assert_null(evae_cvae_grads(net)); /* not a training net */
    assert_int_equal(evae_cvae_max_batch(net), 1);
    assert_int_equal(evae_cvae_arch(net)->hidden, 5);
    assert_int_equal(evae_cvae_get_layout(net)->flat, 48);
    evae_cvae_free(net);
}

/* PyTorch's ConvTranspose3d output size, written out independently. */
static size_t convt_out(size_t in, size_t k, size_t s, size_t p, size_t op)
{
    return (in - 1) * s - 2 * p + k + op;
}

/* Every transposed conv maps stage i+1 back onto stage i exactly, with an
 * output padding below its stride. */
static void check_mirrors(const eelsvae_model_options *o, const evae_cvae_layout *lay)
{
    for (size_t i = 0; i < lay->n_conv; i++)
        for (int a = 0; a < 3; a++) {
            const eelsvae_conv_spec *c = &o->conv[i];
            assert_true(lay->output_padding[i][a] < c->stride[a]);
            assert_int_equal(convt_out(lay->stage_dims[i + 1][a], c->kernel[a], c->stride[a], c->padding[a],
                                       lay->output_padding[i][a]),
                             lay->stage_dims[i][a]);
        }
}

static void paper_preset_layout(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_PAPER));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.tile, 24);
    assert_int_equal(o.energy_channels, 1312);
    assert_close(o.energy_start, 420.0, 0, 0);
    assert_int_equal(o.conv_layers, 4);
    assert_int_equal(o.hidden, 512);
    assert_int_equal(o.latent, 40);
    assert_close(o.beta, 1.2, 0, 0);
    assert_int_equal(o.loss, EELSVAE_LOSS_BERNOULLI);
    static const size_t ch[4] = {32, 64, 128, 256}, k[4][3] = {{1, 1, 7}, {3, 3, 5}, {3, 3, 3}, {3, 3, 3}},
                        s[4][3] = {{1, 1, 2}, {1, 1, 2}, {2, 2, 2}, {2, 2, 2}},
                        p[4][3] = {{0, 0, 3}, {1, 1, 2}, {1, 1, 1}, {1, 1, 1}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(o.conv[i].channels, ch[i]);
        for (int a = 0; a < 3; a++) {
            assert_int_equal(o.conv[i].kernel[a], k[i][a]);
            assert_int_equal(o.conv[i].stride[a], s[i][a]);
            assert_int_equal(o.conv[i].padding[a], p[i][a]);
        }
    }
    evae_cvae_layout lay;
    assert_ok(evae_cvae_layout_of(&o, &lay));
    /* E: 1312 → 656 → 328 → 164 → 82; y, x: 24 → 24 → 24 → 12 → 6 (DESIGN.md). */
    static const size_t dims[5][3] = {{24, 24, 1312}, {24, 24, 656}, {24, 24, 328}, {12, 12, 164}, {6, 6, 82}};
    for (size_t st = 0; st < 5; st++)
        for (int a = 0; a < 3; a++) assert_int_equal(lay.stage_dims[st][a], dims[st][a]);
    /* DESIGN.md's decoder: op (0,0,1), (0,0,1), 1, 1 from the input side. */
    static const size_t op[4][3] = {{0, 0, 1}, {0, 0, 1}, {1, 1, 1}, {1, 1, 1}};
    for (size_t i = 0; i < 4; i++)
        for (int a = 0; a < 3; a++) assert_int_equal(lay.output_padding[i][a], op[i][a]);
    check_mirrors(&o, &lay);
    size_t flat = 256 * 6 * 6 * 82;
    assert_int_equal(lay.flat, flat);
    assert_int_equal(flat, 755712);
    /* Parameters from the formula: convs c_out·c_in·Πk + c_out, their
     * mirrors c_in·c_out·Πk + c_in, the four dense layers. */
    size_t conv_w = 32 * 1 * 7 + 64 * 32 * 45 + 128 * 64 * 27 + 256 * 128 * 27;
    size_t enc_b = 32 + 64 + 128 + 256, dec_b = 128 + 64 + 32 + 1;
    size_t dense = (flat * 512 + 512) + (512 * 80 + 80) + (40 * 512 + 512) + (512 * flat + flat);
    size_t total = 2 * conv_w + enc_b + dec_b + dense;
    assert_int_equal(lay.parameters, total);
    assert_int_equal(lay.tensors, 24);
    print_message("paper preset: %zu parameters (%.1f M)\n", total, (double)total / 1e6);

    eelsvae_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    assert_ok(eelsvae_model_estimate_memory(&o, 4, &e));
    assert_int_equal(e.struct_size, sizeof e);
    assert_int_equal(e.parameters, total);
    assert_int_equal(e.parameter_bytes, 4 * total);
    assert_int_equal(e.gradient_bytes, 4 * total);
    assert_int_equal(e.optimizer_bytes, 8 * total);
    /* Activations: at least the forward outputs of every layer for 4 tiles. */
    size_t per_item = 32 * 24 * 24 * 656 + 64 * 24 * 24 * 328 + 128 * 12 * 12 * 164 + 256 * 6 * 6 * 82;
    assert_true(e.activation_bytes >= 4 * sizeof(float) * 2 * per_item);
    assert_true(e.workspace_bytes > 0);
    assert_int_equal(e.total_bytes, e.parameter_bytes + e.gradient_bytes + e.optimizer_bytes + e.activation_bytes +
                                        e.workspace_bytes);
    print_message("paper preset, batch 4: parameters %.2f GB, activations %.2f GB, workspace %.2f GB, total %.2f GB\n",
                  (double)e.parameter_bytes / 1e9, (double)e.activation_bytes / 1e9, (double)e.workspace_bytes / 1e9,
                  (double)e.total_bytes / 1e9);
}

static void fast_preset_layout(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    assert_int_equal(o.tile, 24);
    assert_int_equal(o.energy_channels, 160);
    /* 686 eV + 159 · 0.3 eV = 733.7 eV: the 690–730 eV window is inside. */
    assert_true(o.energy_start <= 690.0 && o.energy_start + 159 * 0.3 >= 730.0);
    assert_int_equal(o.hidden, 256);
    assert_int_equal(o.latent, 16);
    assert_close(o.beta, 1.2, 0, 0);
    static const size_t ch[4] = {8, 16, 32, 64};
    for (size_t i = 0; i < 4; i++) assert_int_equal(o.conv[i].channels, ch[i]);
    evae_cvae_layout lay;
    assert_ok(evae_cvae_layout_of(&o, &lay));
    static const size_t dims[5][3] = {{24, 24, 160}, {24, 24, 80}, {24, 24, 40}, {12, 12, 20}, {6, 6, 10}};
    for (size_t st = 0; st < 5; st++)
        for (int a = 0; a < 3; a++) assert_int_equal(lay.stage_dims[st][a], dims[st][a]);
    check_mirrors(&o, &lay);
    size_t flat = 64 * 6 * 6 * 10;
    assert_int_equal(lay.flat, flat);
    size_t conv_w = 8 * 7 + 16 * 8 * 45 + 32 * 16 * 27 + 64 * 32 * 27;
    size_t total = 2 * conv_w + (8 + 16 + 32 + 64) + (32 + 16 + 8 + 1) + (flat * 256 + 256) + (256 * 32 + 32) +
                   (16 * 256 + 256) + (256 * flat + flat);
    assert_int_equal(lay.parameters, total);
    print_message("fast preset: %zu parameters (%.2f M)\n", total, (double)total / 1e6);
    eelsvae_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    assert_ok(eelsvae_model_estimate_memory(&o, 8, &e));
    print_message("fast preset, batch 8: parameters %.1f MB, activations %.1f MB, workspace %.1f MB, total %.1f MB\n",
                  (double)e.parameter_bytes / 1e6, (double)e.activation_bytes / 1e6, (double)e.workspace_bytes / 1e6,
                  (double)e.total_bytes / 1e6);
}

static void options_init_rejects_bad_arguments(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_status(eelsvae_model_options_init_sized(NULL, EELSVAE_PRESET_PAPER, sizeof(eelsvae_model_options)),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_options_init(&o, (eelsvae_preset)7), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* An older caller's shorter estimate struct is filled only as far as it
 * reaches; its struct_size is kept. */
static void estimate_fills_what_fits(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    eelsvae_memory_estimate e;
    memset(&e, 0xAB, sizeof e);
    e.struct_size = offsetof(eelsvae_memory_estimate, parameter_bytes);
    assert_ok(eelsvae_model_estimate_memory(&o, 2, &e));
    assert_int_equal(e.struct_size, offsetof(eelsvae_memory_estimate, parameter_bytes));
    evae_cvae_layout lay;
    assert_ok(evae_cvae_layout_of(&o, &lay));
    assert_int_equal(e.parameters, lay.parameters);
    const unsigned char *tail = (const unsigned char *)&e + offsetof(eelsvae_memory_estimate, parameter_bytes);
    for (size_t i = 0; i < sizeof e - offsetof(eelsvae_memory_estimate, parameter_bytes); i++)
        assert_int_equal(tail[i], 0xAB);

    e.struct_size = 0;
    assert_status(eelsvae_model_estimate_memory(&o, 2, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    e.struct_size = sizeof e;
    assert_status(eelsvae_model_estimate_memory(&o, 0, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_estimate_memory(NULL, 2, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_estimate_memory(&o, 2, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    o.struct_size = 0;
    assert_status(eelsvae_model_estimate_memory(&o, 2, &e), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* ---- validation ------------------------------------------------------------------ */

/* layout_of, create (with every allocation failing: the check comes first)
 * and the public estimate all reject `o` with `status`, naming `needle`. */
static void expect_rejected(const eelsvae_model_options *o, eelsvae_status status, const char *needle)
{
    evae_cvae_layout lay;
    assert_status(evae_cvae_layout_of(o, &lay), status);
    if (!strstr(eelsvae_last_error(), needle))
        fail_msg("message \"%s\" does not name \"%s\"", eelsvae_last_error(), needle);
    evae_cvae *net = NULL;
    evae_fail_allocation_after(1);
    eelsvae_status st = evae_cvae_create(o, 2, true, &net);
    evae_fail_allocation_after(0);
    assert_int_equal(st, status);
    assert_null(net);
    if (!strstr(eelsvae_last_error(), needle))
        fail_msg("create's message \"%s\" does not name \"%s\"", eelsvae_last_error(), needle);
    eelsvae_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    assert_status(eelsvae_model_estimate_memory(o, 2, &e), status);
    if (!strstr(eelsvae_last_error(), needle))
        fail_msg("estimate's message \"%s\" does not name \"%s\"", eelsvae_last_error(), needle);
}

static void invalid_architectures_rejected(void **state)
{
    (void)state;
    eelsvae_model_options base, o;
    assert_ok(eelsvae_model_options_init(&base, EELSVAE_PRESET_PAPER));

#define REJECT(change, status, needle)                                                                           \
    do {                                                                                                         \
        o = base;                                                                                                \
        change;                                                                                                  \
        expect_rejected(&o, status, needle);                                                                     \
    } while (0)
    REJECT(o.tile = 0, EELSVAE_ERR_INVALID_ARGUMENT, "tile = 0");
    REJECT(o.energy_channels = 0, EELSVAE_ERR_INVALID_ARGUMENT, "energy_channels = 0");
    REJECT(o.energy_start = NAN, EELSVAE_ERR_INVALID_ARGUMENT, "energy_start");
    REJECT(o.conv_layers = 0, EELSVAE_ERR_INVALID_ARGUMENT, "conv_layers = 0");
    REJECT(o.conv_layers = EELSVAE_MAX_CONV_LAYERS + 1, EELSVAE_ERR_INVALID_ARGUMENT, "conv_layers = 7");
    REJECT(o.conv[1].channels = 0, EELSVAE_ERR_INVALID_ARGUMENT, "conv[1].channels = 0");
    REJECT(o.conv[2].stride[0] = 0, EELSVAE_ERR_INVALID_ARGUMENT, "conv[2].stride[0] = 0");
    REJECT(o.conv[3].kernel[2] = 0, EELSVAE_ERR_INVALID_ARGUMENT, "conv[3].kernel[2] = 0");
    REJECT(o.hidden = 0, EELSVAE_ERR_INVALID_ARGUMENT, "hidden = 0");
    REJECT(o.latent = 0, EELSVAE_ERR_INVALID_ARGUMENT, "latent = 0");
    REJECT(o.beta = -0.5, EELSVAE_ERR_INVALID_ARGUMENT, "beta");
    REJECT(o.beta = NAN, EELSVAE_ERR_INVALID_ARGUMENT, "beta");
    REJECT(o.beta = INFINITY, EELSVAE_ERR_INVALID_ARGUMENT, "beta");
    REJECT(o.loss = (eelsvae_loss_kind)3, EELSVAE_ERR_INVALID_ARGUMENT, "loss = 3");
    /* A stride product the input is not a multiple of. */
    REJECT(o.tile = 25, EELSVAE_ERR_DIMENSION, "tile 25 is not divisible by the total y stride");
    REJECT(o.energy_channels = 1300, EELSVAE_ERR_DIMENSION, "energy_channels 1300 is not divisible by the total E");
    REJECT(o.conv[0].stride[1] = 5, EELSVAE_ERR_DIMENSION, "total x stride");
    /* A kernel wider than its padded input: the stage shrinks to nothing. */
    REJECT((o.tile = 4, o.conv[1].kernel[0] = 7), EELSVAE_ERR_DIMENSION, "conv[1].kernel[0] = 7");
    /* Sizes beyond what the layers take, or whose products overflow. */
    REJECT(o.tile = (size_t)INT_MAX + 1, EELSVAE_ERR_OVERFLOW, "tile");
    REJECT(o.conv[0].padding[1] = (size_t)INT_MAX + 1, EELSVAE_ERR_OVERFLOW, "conv[0].padding[1]");
    REJECT(o.conv[3].channels = (size_t)1 << 30, EELSVAE_ERR_OVERFLOW, "flattens");
    REJECT(o.latent = (size_t)INT_MAX / 2 + 1, EELSVAE_ERR_OVERFLOW, "latent");
#undef REJECT

    evae_cvae_layout lay;
    evae_cvae *net = NULL;
    assert_status(evae_cvae_layout_of(NULL, &lay), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_layout_of(&base, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    assert_status(evae_cvae_create(&o, 0, true, &net), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_create(&o, (size_t)INT_MAX + 1, true, &net), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_create(&o, 1, true, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(net);
    size_t a = 0, w = 0;
    assert_status(evae_cvae_memory(&o, 0, true, &a, &w), EELSVAE_ERR_INVALID_ARGUMENT);
    evae_cvae_free(NULL);
}

/* Every allocation of create may fail: NOMEM, nothing leaked (ASan). */
static void allocation_failures(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    unsigned long failures = 0;
    for (unsigned long k = 1; k < 1000; k++) {
        evae_cvae *net = NULL;
        evae_fail_allocation_after(k);
        eelsvae_status st = evae_cvae_create(&o, 2, true, &net);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            assert_non_null(net);
            evae_cvae_free(net);
            break;
        }
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_null(net);
        failures++;
    }
    assert_true(failures >= 5); /* tensor table, parameters, gradients, both activation blocks, … */
}

/* ---- calls ------------------------------------------------------------------------ */

static void bad_calls_rejected(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    evae_cvae *infer = NULL, *train = NULL;
    assert_ok(evae_cvae_create(&o, 2, false, &infer));
    assert_ok(evae_cvae_create(&o, 2, true, &train));
    float x[3 * TINY_TILE], out[3 * TINY_TILE], mulv[3 * 6];
    tu_fill_uniform(x, 3 * TINY_TILE, 0, 1, 5);
    evae_cvae_losses l;
    assert_status(evae_cvae_forward_backward(infer, x, 1, NULL, NULL, &l), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_forward_backward(train, x, 3, NULL, NULL, &l), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_forward_backward(train, x, 0, NULL, NULL, &l), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_forward_backward(train, NULL, 1, NULL, NULL, &l), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_forward_backward(train, x, 1, NULL, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_evaluate(infer, x, 3, NULL, NULL, &l), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_encode(infer, x, 3, mulv), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_encode(infer, x, 1, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_decode(infer, NULL, 1, out), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_cvae_reconstruct(infer, x, 0, out), EELSVAE_ERR_INVALID_ARGUMENT);
    /* A non-finite loss is NUMERIC, with the gradient block zeroed. */
    evae_cvae_init_params(train, 3);
    x[7] = NAN;
    float *g = evae_cvae_grads(train);
    g[0] = 1.0f;
    assert_status(evae_cvae_forward_backward(train, x, 2, NULL, NULL, &l), EELSVAE_ERR_NUMERIC);
    for (size_t i = 0; i < evae_cvae_param_count(train); i++) assert_true(g[i] == 0.0f);
    evae_cvae_free(infer);
    evae_cvae_free(train);
}

/* ---- initialisation --------------------------------------------------------------- */

static void init_follows_pytorch_bounds(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    evae_cvae *net = NULL;
    assert_ok(evae_cvae_create(&o, 1, false, &net));
    const float *p = evae_cvae_params(net);
    for (size_t i = 0; i < evae_cvae_param_count(net); i++) assert_true(p[i] == 0.0f); /* zero until initialised */
    evae_cvae_init_params(net, 42);
    /* fan_in by hand, per (weight, bias) pair: Conv3d c_in·Πk, Linear in,
     * ConvTranspose3d weight.size(1)·Πk = its output channels·Πk. */
    static const size_t fan_in[12] = {1 * 7,    8 * 45,     16 * 27, 32 * 27, 23040, 256,
                                      16,       256,        32 * 27, 16 * 27, 8 * 45, 1 * 7};
    assert_int_equal(evae_cvae_get_layout(net)->tensors, 24);
    for (size_t t = 0; t < 24; t++) {
        const evae_tensor_info *info = evae_cvae_tensor(net, t);
        double bound = 1.0 / sqrt((double)fan_in[t / 2]), sum = 0.0, sq = 0.0, top = 0.0;
        for (size_t i = 0; i < info->count; i++) {
            double v = p[info->offset + i];
            if (fabs(v) > bound) fail_msg("%s[%zu] = %g beyond the bound %g", info->name, i, v, bound);
            sum += v;
            sq += v * v;
            top = fmax(top, fabs(v));
        }
        double n = (double)info->count, mean = sum / n;
        /* U(−b, b): mean 0 with standard error b/√(3n), variance b²/3. */
        if (fabs(mean) > 5.0 * bound / sqrt(3.0 * n))
            fail_msg("%s: mean %g, more than 5 standard errors from 0", info->name, mean);
        if (n >= 1000) {
            assert_close(sq / n, bound * bound / 3.0, 0.0, 0.1);
            assert_true(top > 0.99 * bound);
        }
    }
    /* Same seed, same bits; another seed, other values. */
    size_t n = evae_cvae_param_count(net);
    float *first = malloc(n * sizeof *first);
    assert_non_null(first);
    memcpy(first, p, n * sizeof *first);
    evae_cvae_init_params(net, 42);
    assert_memory_equal(first, p, n * sizeof *first);
    evae_cvae_init_params(net, 43);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += first[i] == p[i];
    assert_true(same < n / 100);
    free(first);
    evae_cvae_free(net);
}

/* ---- determinism and consistency ---------------------------------------------------- */

static void forward_backward_is_deterministic(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    evae_cvae *a = NULL, *b = NULL;
    assert_ok(evae_cvae_create(&o, TINY_BATCH, true, &a));
    assert_ok(evae_cvae_create(&o, TINY_BATCH, true, &b));
    evae_cvae_init_params(a, 7);
    evae_cvae_init_params(b, 7);
    float *x = random_floats(TINY_BATCH * TINY_TILE, 0, 1, 8);
    size_t n = evae_cvae_param_count(a);
    float *g1 = malloc(n * sizeof *g1);
    assert_non_null(g1);
    evae_cvae_losses l1, l2, l3;
    evae_rng r1, r2;
    evae_rng_seed(&r1, 99, 0);
    evae_rng_seed(&r2, 99, 0);
    assert_ok(evae_cvae_forward_backward(a, x, TINY_BATCH, NULL, &r1, &l1));
    memcpy(g1, evae_cvae_grads(a), n * sizeof *g1);
    assert_ok(evae_cvae_forward_backward(b, x, TINY_BATCH, NULL, &r2, &l2));
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, evae_cvae_grads(b), n * sizeof *g1);
    /* The same net again, with ε drawn by hand from the same stream (row-major). */
    evae_rng r3;
    evae_rng_seed(&r3, 99, 0);
    float eps[TINY_BATCH * 3];
    for (size_t i = 0; i < TINY_BATCH * 3; i++) eps[i] = (float)evae_rng_normal(&r3);
    assert_ok(evae_cvae_forward_backward(a, x, TINY_BATCH, eps, NULL, &l3));
    assert_memory_equal(&l1, &l3, sizeof l1);
    assert_memory_equal(g1, evae_cvae_grads(a), n * sizeof *g1);
    assert_true(l1.kl > 0.0 && l1.reconstruction > 0.0);
    assert_close(l1.loss, l1.reconstruction + 1.2 * l1.kl, 1e-12, 1e-12);
    free(g1);
    free(x);
    evae_cvae_free(a);
    evae_cvae_free(b);
}

/* The loss terms and logits of evaluate are those of forward_backward for
 * the same ε; the loss is the mean over items. */
static void evaluate_matches_training_pass(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_POISSON);
    evae_cvae *net = NULL, *one = NULL;
    assert_ok(evae_cvae_create(&o, TINY_BATCH, true, &net));
    assert_ok(evae_cvae_create(&o, 1, false, &one));
    evae_cvae_init_params(net, 17);
    memcpy(evae_cvae_params(one), evae_cvae_params(net), evae_cvae_param_count(net) * sizeof(float));
    float *x = random_floats(TINY_BATCH * TINY_TILE, 0, 1, 18);
    float *eps = normal_floats(TINY_BATCH * 3, 19);
    float logits[TINY_BATCH * TINY_TILE];
    evae_cvae_losses train, eval, item[2];
    assert_ok(evae_cvae_forward_backward(net, x, TINY_BATCH, eps, NULL, &train));
    memcpy(logits, evae_cvae_logits(net), sizeof logits);
    assert_ok(evae_cvae_evaluate(net, x, TINY_BATCH, eps, NULL, &eval));
    assert_memory_equal(&train, &eval, sizeof train);
    assert_memory_equal(logits, evae_cvae_logits(net), sizeof logits);
    /* Item by item on a net of batch 1: the batch loss is their mean. */
    for (size_t b = 0; b < 2; b++)
        assert_ok(evae_cvae_evaluate(one, x + b * TINY_TILE, 1, eps + b * 3, NULL, &item[b]));
    assert_close(eval.reconstruction, 0.5 * (item[0].reconstruction + item[1].reconstruction), 0, 1e-5);
    assert_close(eval.kl, 0.5 * (item[0].kl + item[1].kl), 0, 1e-5);
    assert_close(eval.loss, 0.5 * (item[0].loss + item[1].loss), 0, 1e-5);
    free(eps);
    free(x);
    evae_cvae_free(net);
    evae_cvae_free(one);
}

static void encode_decode_reconstruct_consistent(void **state)
{
    (void)state;
    eelsvae_model_options o = tiny_arch(EELSVAE_LOSS_BERNOULLI);
    evae_cvae *net = NULL;
    assert_ok(evae_cvae_create(&o, 3, true, &net));
    evae_cvae_init_params(net, 23);
    size_t L = 3, B = 3;
    float *x = random_floats(B * TINY_TILE, 0, 1, 24);
    float mulv[3 * 6], z[3 * 3], zero_eps[3 * 3] = {0};
    float rec[3 * TINY_TILE + 1], dec[3 * TINY_TILE + 1], eval_rec[3 * TINY_TILE];
    rec[B * TINY_TILE] = dec[B * TINY_TILE] = -7.0f; /* guards: nothing written past the tiles */
    assert_ok(evae_cvae_encode(net, x, B, mulv));
    for (size_t b = 0; b < B; b++) memcpy(z + b * L, mulv + b * 2 * L, L * sizeof *z);
    assert_ok(evae_cvae_decode(net, z, B, dec));
    assert_ok(evae_cvae_reconstruct(net, x, B, rec));
    assert_memory_equal(rec, dec, B * TINY_TILE * sizeof *rec);
    assert_true(rec[B * TINY_TILE] == -7.0f && dec[B * TINY_TILE] == -7.0f);
    for (size_t i = 0; i < B * TINY_TILE; i++) assert_true(rec[i] > 0.0f && rec[i] < 1.0f);
    /* evaluate with ε = 0 (both NULL) and forward_backward with ε = 0 give
     * the same logits: σ of them is the reconstruction. */
    evae_cvae_losses l0, l1;
    assert_ok(evae_cvae_evaluate(net, x, B, NULL, NULL, &l0));
    for (size_t i = 0; i < B * TINY_TILE; i++) eval_rec[i] = 1.0f / (1.0f + expf(-evae_cvae_logits(net)[i]));
    for (size_t i = 0; i < B * TINY_TILE; i++) assert_close(eval_rec[i], rec[i], 1e-7, 0);
    assert_ok(evae_cvae_forward_backward(net, x, B, zero_eps, NULL, &l1));
    assert_memory_equal(&l0, &l1, sizeof l0);
    /* A smaller batch on the same net gives each item the same result,
     * up to the conv engine's rounding (its chunking may differ). */
    float rec1[TINY_TILE];
    assert_ok(evae_cvae_reconstruct(net, x + TINY_TILE, 1, rec1));
    for (size_t i = 0; i < TINY_TILE; i++) assert_close(rec1[i], rec[TINY_TILE + i], 1e-6, 1e-5);
    free(x);
    evae_cvae_free(net);
}

/* ---- memory ------------------------------------------------------------------------- */

/* What create allocates is what evae_cvae_memory says, plus the blocks. */
static void memory_estimate_matches_allocation(void **state)
{
    (void)state;
    if (!tu_heap_measurable())
        tu_skip("the heap cannot be measured here (AddressSanitizer's malloc, or no mallinfo2 before glibc 2.33)");
    static const eelsvae_preset presets[2] = {EELSVAE_PRESET_FAST, EELSVAE_PRESET_FAST};
    static const size_t batches[2] = {2, 5};
    for (int c = 0; c < 3; c++) {
        eelsvae_model_options o;
        if (c < 2) {
            assert_ok(eelsvae_model_options_init(&o, presets[c]));
        } else {
            o = tiny_arch(EELSVAE_LOSS_GAUSSIAN);
        }
        size_t batch = c < 2 ? batches[c] : 2;
        for (int training = 0; training <= 1; training++) {
            size_t act = 0, ws = 0;
            assert_ok(evae_cvae_memory(&o, batch, training, &act, &ws));
            evae_cvae_layout lay;
            assert_ok(evae_cvae_layout_of(&o, &lay));
            size_t expected = act + ws + (training ? 2 : 1) * lay.parameters * sizeof(float);
            size_t before = tu_heap_in_use();
            evae_cvae *net = NULL;
            assert_ok(evae_cvae_create(&o, batch, training, &net));
            size_t used = tu_heap_in_use() - before;
            evae_cvae_free(net);
            print_message("case %d, training %d: estimated %.3f MB, allocated %.3f MB\n", c, training,
                          (double)expected / 1e6, (double)used / 1e6);
            /* FFTW's plans, small tables and malloc's headers are not
             * counted: allow 3 % and 512 kB either way. */
            double slack = 0.03 * (double)expected + 512.0 * 1024.0;
            assert_true(fabs((double)used - (double)expected) <= slack);
        }
    }
}

/* ---- the FAST preset ------------------------------------------------------------------ */

static void fast_preset_trains_one_step(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    size_t B = 2, tile = 24 * 24 * 160;
    evae_cvae *net = NULL;
    double t0 = now_seconds();
    assert_ok(evae_cvae_create(&o, B, true, &net));
    double t1 = now_seconds();
    evae_cvae_init_params(net, 1);
    float *x = random_floats(B * tile, 0, 1, 2);
    evae_rng rng;
    evae_rng_seed(&rng, 3, 0);
    evae_cvae_losses l;
    double t2 = now_seconds();
    assert_ok(evae_cvae_forward_backward(net, x, B, NULL, &rng, &l));
    double t3 = now_seconds();
    print_message("fast preset, batch 2: create %.3f s, one forward_backward %.3f s; loss %.3f (rec %.3f, KL %.4f)\n",
                  t1 - t0, t3 - t2, l.loss, l.reconstruction, l.kl);
    /* A fresh net's logits are small (|l| ≲ 0.3); over targets uniform in
     * [0, 1) the mean Bernoulli term softplus(l) − l/2 ≈ log 2 + l²/8 is
     * then within 0.02 of log 2 per element. The KL of a fresh encoder is
     * small but positive. */
    assert_close(l.reconstruction / (double)tile, log(2.0), 0.02, 0);
    assert_true(l.kl > 0.0 && l.kl < 10.0);
    double norm = 0.0;
    const float *g = evae_cvae_grads(net);
    for (size_t i = 0; i < evae_cvae_param_count(net); i++) norm += (double)g[i] * g[i];
    assert_true(isfinite(norm) && norm > 0.0);
    /* The decoder gives T × T × E per item, nothing more. */
    float *rec = malloc((B * tile + 1) * sizeof *rec);
    assert_non_null(rec);
    rec[B * tile] = -3.0f;
    float z[2 * 16] = {0};
    assert_ok(evae_cvae_decode(net, z, B, rec));
    assert_true(rec[B * tile] == -3.0f);
    for (size_t i = 0; i < B * tile; i++) assert_true(rec[i] > 0.0f && rec[i] < 1.0f);
    free(rec);
    free(x);
    evae_cvae_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiny_layout_by_hand),
        cmocka_unit_test(paper_preset_layout),
        cmocka_unit_test(fast_preset_layout),
        cmocka_unit_test(options_init_rejects_bad_arguments),
        cmocka_unit_test(estimate_fills_what_fits),
        cmocka_unit_test(invalid_architectures_rejected),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(bad_calls_rejected),
        cmocka_unit_test(gradients_bernoulli),
        cmocka_unit_test(gradients_gaussian),
        cmocka_unit_test(gradients_poisson),
        cmocka_unit_test(gradients_masked),
        cmocka_unit_test(left_out_pixels_add_nothing),
        cmocka_unit_test_teardown(gradients_each_conv_engine, reset_conv_engine),
        cmocka_unit_test(gradients_other_shapes),
        cmocka_unit_test(init_follows_pytorch_bounds),
        cmocka_unit_test(forward_backward_is_deterministic),
        cmocka_unit_test(evaluate_matches_training_pass),
        cmocka_unit_test(encode_decode_reconstruct_consistent),
        cmocka_unit_test(memory_estimate_matches_allocation),
        cmocka_unit_test(fast_preset_trains_one_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
