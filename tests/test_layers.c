/*
 * Tests for lib/nn/layers.c: dense, ReLU, sigmoid, reparameterisation and
 * the losses, against hand-computed values and against central finite
 * differences of double-precision reference forwards written here.
 *
 * Gradient tolerance. The analytic gradients are float32 (unit roundoff
 * 6e-8) sums of at most a few dozen O(1) terms, so their error is below
 * ~1e-6 of the gradient's scale. The numeric gradients are central
 * differences in double with h = 1e-5: truncation error ~h²·|f'''| ~ 1e-10,
 * cancellation ~1e-16·|J|/h ~ 1e-10. We accept
 *     |analytic − numeric| ≤ 1e-3 · (|numeric| + 0.01 · max|numeric|)
 * i.e. 1e-3 relative, with a floor at 1e-5 of the largest component so
 * that entries that are nearly zero are not judged on their own digits. A
 * wrong formula (a missing ½, a transposed weight, a sign) is off by O(1).
 */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"

#define FD_STEP 1e-5
#define GRAD_RTOL 1e-3

/* ---- helpers ------------------------------------------------------------------ */

static float *new_floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static double *new_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static double *to_doubles(const float *x, size_t n)
{
    double *d = new_doubles(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static void assert_grad_close(const float *analytic, const double *numeric, size_t n, const char *what)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(numeric[i]));
    assert_true(scale > 0.0); /* a gradient that is all zeros checks nothing */
    for (size_t i = 0; i < n; i++) {
        double tol = GRAD_RTOL * (fabs(numeric[i]) + 0.01 * scale);
        if (!(fabs(analytic[i] - numeric[i]) <= tol))
            fail_msg("%s[%zu]: analytic %.9g, numeric %.9g (tol %.3g)", what, i, (double)analytic[i], numeric[i],
                     tol);
    }
}

/* A scalar objective of some double arrays, for central differences. */
typedef double (*objective_fn)(void *ctx);

/* numeric[i] = ∂J/∂x[i] by central differences, perturbing x in place. */
static void numeric_gradient(double *numeric, double *x, size_t n, objective_fn J, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        double saved = x[i];
        x[i] = saved + FD_STEP;
        double up = J(ctx);
        x[i] = saved - FD_STEP;
        double down = J(ctx);
        x[i] = saved;
        numeric[i] = (up - down) / (2.0 * FD_STEP);
    }
}

static double sigmoid_ref(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* ---- dense --------------------------------------------------------------------- */

static void dense_hand_example(void **state)
{
    (void)state;
    /* in [2][3], w [2][3], bias [2]:
     * out[0] = (1·1 + 2·0 + 3·(−1) + 0.1, 0.5·(1+2+3) − 0.2) = (−1.9, 2.8)
     * out[1] = (4 − 6 + 0.1, 0.5·15 − 0.2)                  = (−1.9, 7.3) */
    const float in[6] = {1, 2, 3, 4, 5, 6};
    const float w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    const float bias[2] = {0.1f, -0.2f};
    const double expect[4] = {-1.9, 2.8, -1.9, 7.3};
    float out[4] = {99, 99, 99, 99};
    assert_ok(evae_dense_forward(out, in, w, bias, 2, 3, 2));
    for (int k = 0; k < 4; k++) assert_close(out[k], expect[k], 1e-6, 1e-6);

    /* No bias: the same minus the bias. */
    assert_ok(evae_dense_forward(out, in, w, NULL, 2, 3, 2));
    for (int k = 0; k < 4; k++) assert_close(out[k], expect[k] - bias[k % 2], 1e-6, 1e-6);

    /* dout = identity: dw = doutᵀ·in = in, dbias = (1, 1), din = dout·w = w. */
    const float dout[4] = {1, 0, 0, 1};
    float din[6] = {0}, dw[6] = {0}, dbias[2] = {0};
    assert_ok(evae_dense_backward(din, dw, dbias, dout, in, w, 2, 3, 2));
    for (int k = 0; k < 6; k++) {
        assert_close(dw[k], in[k], 1e-6, 1e-6);
        assert_close(din[k], w[k], 1e-6, 1e-6);
    }
    assert_close(dbias[0], 1.0, 1e-6, 0);
    assert_close(dbias[1], 1.0, 1e-6, 0);
}

typedef struct {
    size_t batch, n_in, n_out;
    double *in, *w, *bias, *proj; /* proj [batch][n_out]: J = Σ proj · out */
} dense_ctx;

static double dense_objective(void *p)
{
    dense_ctx *c = p;
    double J = 0.0;
    for (size_t b = 0; b < c->batch; b++)
        for (size_t o = 0; o < c->n_out; o++) {
            double y = c->bias[o];
            for (size_t i = 0; i < c->n_in; i++) y += c->w[o * c->n_in + i] * c->in[b * c->n_in + i];
            J += c->proj[b * c->n_out + o] * y;
        }
    return J;
}

static void dense_gradients_match_finite_differences(void **state)
{
    (void)state;
    enum { BATCH = 3, NI = 5, NO = 4 };
    float in[BATCH * NI], w[NO * NI], bias[NO], proj[BATCH * NO];
    tu_fill_uniform(in, BATCH * NI, -1, 1, 1);
    tu_fill_uniform(w, NO * NI, -1, 1, 2);
    tu_fill_uniform(bias, NO, -1, 1, 3);
    tu_fill_uniform(proj, BATCH * NO, -1, 1, 4);

    float out[BATCH * NO];
    assert_ok(evae_dense_forward(out, in, w, bias, BATCH, NI, NO));
    dense_ctx c = {BATCH, NI, NO, to_doubles(in, BATCH * NI), to_doubles(w, NO * NI), to_doubles(bias, NO),
                   to_doubles(proj, BATCH * NO)};
    /* forward against the double reference, output by output */
    for (size_t b = 0; b < BATCH; b++)
        for (size_t o = 0; o < NO; o++) {
            double y = c.bias[o];
            for (size_t i = 0; i < NI; i++) y += c.w[o * NI + i] * c.in[b * NI + i];
            assert_close(out[b * NO + o], y, 1e-6, 1e-6);
        }

    float din[BATCH * NI] = {0}, dw[NO * NI] = {0}, dbias[NO] = {0};
    assert_ok(evae_dense_backward(din, dw, dbias, proj, in, w, BATCH, NI, NO));
    double num_in[BATCH * NI], num_w[NO * NI], num_b[NO];
    numeric_gradient(num_in, c.in, BATCH * NI, dense_objective, &c);
    numeric_gradient(num_w, c.w, NO * NI, dense_objective, &c);
    numeric_gradient(num_b, c.bias, NO, dense_objective, &c);
    assert_grad_close(din, num_in, BATCH * NI, "dense din");
    assert_grad_close(dw, num_w, NO * NI, "dense dw");
    assert_grad_close(dbias, num_b, NO, "dense dbias");

    /* Backward accumulates: a second call doubles every gradient; din = NULL
     * and dbias = NULL leave them out. */
    float dw2[NO * NI], dbias2[NO];
    memcpy(dw2, dw, sizeof dw);
    memcpy(dbias2, dbias, sizeof dbias);
    assert_ok(evae_dense_backward(din, dw2, dbias2, proj, in, w, BATCH, NI, NO));
    for (size_t k = 0; k < NO * NI; k++) assert_close(dw2[k], 2.0 * dw[k], 1e-6, 1e-6);
    for (size_t k = 0; k < NO; k++) assert_close(dbias2[k], 2.0 * dbias[k], 1e-6, 1e-6);
    for (size_t k = 0; k < BATCH * NI; k++) assert_close(din[k], 2.0 * num_in[k], 1e-5, 1e-5);
    assert_ok(evae_dense_backward(NULL, dw2, NULL, proj, in, w, BATCH, NI, NO));
    for (size_t k = 0; k < NO * NI; k++) assert_close(dw2[k], 3.0 * dw[k], 1e-6, 1e-6);
    for (size_t k = 0; k < NO; k++) assert_close(dbias2[k], 2.0 * dbias[k], 1e-6, 1e-6);

    free(c.in);
    free(c.w);
    free(c.bias);
    free(c.proj);
}

static void dense_rejects_bad_dimensions(void **state)
{
    (void)state;
    float a[4] = {0}, b[4] = {0}, c[4] = {0}, d[4] = {0};
    assert_status(evae_dense_forward(a, b, c, NULL, 1, 0, 2), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_dense_forward(a, b, c, NULL, 1, 2, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_dense_forward(NULL, b, c, NULL, 1, 2, 2), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_dense_backward(a, NULL, d, b, c, d, 1, 2, 2), EELSVAE_ERR_INVALID_ARGUMENT);
    /* Dimensions beyond BLAS's int are refused before any buffer is read. */
    size_t huge = (size_t)INT_MAX + 1;
    assert_status(evae_dense_forward(a, b, c, NULL, 1, huge, 2), EELSVAE_ERR_OVERFLOW);
    assert_status(evae_dense_forward(a, b, c, NULL, huge, 2, 2), EELSVAE_ERR_OVERFLOW);
    assert_status(evae_dense_backward(a, b, c, d, a, b, 1, 2, huge), EELSVAE_ERR_OVERFLOW);
    /* An empty batch is a no-op. */
    a[0] = 42;
    assert_ok(evae_dense_forward(a, b, c, d, 0, 2, 2));
    assert_true(a[0] == 42);
}

/* ---- activations ------------------------------------------------------------------ */

static void relu_forward_backward(void **state)
{
    (void)state;
    enum { N = 64 };
    float x[N], out[N], dout[N];
    tu_fill_uniform(x, N, -1, 1, 5);
    tu_fill_uniform(dout, N, -1, 1, 6);
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) < 0.05f) x[i] = x[i] < 0 ? -0.05f : 0.05f; /* no kink within the FD step */
    x[0] = 0.0f; /* at the kink PyTorch's gradient is 0 */
    evae_relu_forward(out, x, N);
    for (int i = 0; i < N; i++) assert_true(out[i] == (x[i] > 0 ? x[i] : 0.0f));

    /* J = Σ dout · relu(x): ∂J/∂x = dout where x > 0, else 0. */
    float din[N];
    for (int i = 0; i < N; i++) din[i] = 1.0f; /* accumulates onto 1 */
    evae_relu_backward(din, dout, out, N);
    double *xd = to_doubles(x, N), num[N];
    for (int i = 1; i < N; i++) {
        double up = fmax(xd[i] + FD_STEP, 0.0), down = fmax(xd[i] - FD_STEP, 0.0);
        num[i] = dout[i] * (up - down) / (2 * FD_STEP);
        assert_close(din[i] - 1.0f, num[i], 1e-7, 1e-6);
    }
    assert_true(din[0] == 1.0f);

    /* In place: forward over its input, and the gradient mask. */
    float y[N], g[N];
    memcpy(y, x, sizeof y);
    memcpy(g, dout, sizeof g);
    evae_relu_forward(y, y, N);
    assert_memory_equal(y, out, sizeof y);
    float nan_in = NAN, nan_out = 0.0f;
    evae_relu_forward(&nan_out, &nan_in, 1);
    assert_true(isnan(nan_out));
    evae_relu_mask_grad(g, out, N);
    for (int i = 0; i < N; i++) assert_true(g[i] == (x[i] > 0 ? dout[i] : 0.0f));
    free(xd);
}

typedef struct {
    size_t n;
    double *x, *proj;
} sigmoid_ctx;

static double sigmoid_objective(void *p)
{
    sigmoid_ctx *c = p;
    double J = 0.0;
    for (size_t i = 0; i < c->n; i++) J += c->proj[i] * sigmoid_ref(c->x[i]);
    return J;
}

static void sigmoid_forward_backward(void **state)
{
    (void)state;
    enum { N = 40 };
    float x[N], out[N], dout[N], din[N] = {0};
    tu_fill_uniform(x, N, -6, 6, 7);
    tu_fill_uniform(dout, N, -1, 1, 8);
    evae_sigmoid_forward(out, x, N);
    for (int i = 0; i < N; i++) assert_close(out[i], sigmoid_ref(x[i]), 0, 2e-7);
    evae_sigmoid_backward(din, dout, out, N);
    sigmoid_ctx c = {N, to_doubles(x, N), to_doubles(dout, N)};
    double num[N];
    numeric_gradient(num, c.x, N, sigmoid_objective, &c);
    assert_grad_close(din, num, N, "sigmoid din");
    free(c.x);
    free(c.proj);

    /* No overflow far out: exactly 0 or 1 within float, never NaN. */
    float far[4] = {-1000.0f, -88.0f, 88.0f, 1000.0f}, s[4];
    evae_sigmoid_forward(s, far, 4);
    assert_true(s[0] >= 0.0f && s[0] < 1e-30f);
    assert_true(s[1] >= 0.0f && s[1] < 1e-30f);
    assert_true(s[2] == 1.0f && s[3] == 1.0f);
    evae_sigmoid_forward(far, far, 4); /* in place */
    assert_memory_equal(far, s, sizeof s);
}

/* ---- reparameterisation ---------------------------------------------------------- */

typedef struct {
    size_t batch, latent;
    double *mulv, *eps, *proj; /* J = Σ proj · z */
} reparam_ctx;

static double reparam_objective(void *p)
{
    reparam_ctx *c = p;
    double J = 0.0;
    for (size_t b = 0; b < c->batch; b++)
        for (size_t j = 0; j < c->latent; j++) {
            double mu = c->mulv[b * 2 * c->latent + j], lv = c->mulv[b * 2 * c->latent + c->latent + j];
            J += c->proj[b * c->latent + j] * (mu + exp(0.5 * lv) * c->eps[b * c->latent + j]);
        }
    return J;
}

static void reparam_gradients_with_fixed_eps(void **state)
{
    (void)state;
    enum { BATCH = 3, L = 4 };
    float mulv[BATCH * 2 * L], eps[BATCH * L], dz[BATCH * L], z[BATCH * L];
    tu_fill_uniform(mulv, BATCH * 2 * L, -2, 2, 9);
    tu_fill_uniform(eps, BATCH * L, -2, 2, 10);
    tu_fill_uniform(dz, BATCH * L, -1, 1, 11);
    evae_reparam_apply(z, eps, mulv, BATCH, L);
    for (size_t b = 0; b < BATCH; b++)
        for (size_t j = 0; j < L; j++) {
            double mu = mulv[b * 2 * L + j], lv = mulv[b * 2 * L + L + j];
            assert_close(z[b * L + j], mu + sqrt(exp(lv)) * eps[b * L + j], 1e-6, 1e-6);
        }

    float dmulv[BATCH * 2 * L];
    for (size_t k = 0; k < BATCH * 2 * L; k++) dmulv[k] = 0.5f; /* accumulates onto 0.5 */
    evae_reparam_backward(dmulv, dz, eps, mulv, BATCH, L);
    for (size_t k = 0; k < BATCH * 2 * L; k++) dmulv[k] -= 0.5f;
    reparam_ctx c = {BATCH, L, to_doubles(mulv, BATCH * 2 * L), to_doubles(eps, BATCH * L),
                     to_doubles(dz, BATCH * L)};
    double num[BATCH * 2 * L];
    numeric_gradient(num, c.mulv, BATCH * 2 * L, reparam_objective, &c);
    assert_grad_close(dmulv, num, BATCH * 2 * L, "reparam dmulv");
    free(c.mulv);
    free(c.eps);
    free(c.proj);
}

static void reparam_draws_from_the_rng(void **state)
{
    (void)state;
    /* μ = 1, logvar = log 4: z ~ N(1, 2²). 20000 draws put the sample mean
     * within 4σ/√n = 0.057 of 1 and the sample s.d. within 0.04 of 2; a
     * mistaken exp(logvar) would give s.d. 4, a missing ε s.d. 0. */
    enum { BATCH = 1000, L = 20 };
    float *mulv = new_floats(BATCH * 2 * L), *z = new_floats(BATCH * L), *eps = new_floats(BATCH * L);
    for (size_t b = 0; b < BATCH; b++)
        for (size_t j = 0; j < L; j++) {
            mulv[b * 2 * L + j] = 1.0f;
            mulv[b * 2 * L + L + j] = logf(4.0f);
        }
    evae_rng rng, again;
    evae_rng_seed(&rng, 123, 7);
    evae_rng_seed(&again, 123, 7);
    evae_reparam_forward(z, eps, mulv, BATCH, L, &rng);
    double sum = 0.0, sum2 = 0.0;
    for (size_t k = 0; k < BATCH * L; k++) {
        /* ε is the rng's normal sequence in row-major order */
        assert_true(eps[k] == (float)evae_rng_normal(&again));
        sum += z[k];
        sum2 += (double)z[k] * z[k];
    }
    double n = BATCH * L, mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    assert_close(mean, 1.0, 0.057, 0);
    assert_close(sd, 2.0, 0.04, 0);

    /* rng = NULL: ε = 0, z = μ. */
    evae_reparam_forward(z, eps, mulv, BATCH, L, NULL);
    for (size_t k = 0; k < BATCH * L; k++) assert_true(z[k] == 1.0f && eps[k] == 0.0f);
    free(mulv);
    free(z);
    free(eps);
}

/* ---- losses ----------------------------------------------------------------------- */

static void bce_hand_values(void **state)
{
    (void)state;
    /* Textbook BCE −[t·log σ(l) + (1−t)·log(1 − σ(l))], worked by hand:
     *   (0, ½):   log 2
     *   (2, 1):   log(1 + e⁻²)
     *   (−3, 0):  log(1 + e⁻³)
     *   (1, ¼):   ¼·log(1 + e⁻¹) + ¾·(1 + log(1 + e⁻¹))  = 1 − ¼ + log(1 + e⁻¹)
     * gradients σ(l) − t: 0, σ(2) − 1, σ(−3), σ(1) − ¼. */
    const float l[4] = {0, 2, -3, 1}, t[4] = {0.5f, 1, 0, 0.25f};
    const double loss[4] = {log(2.0), log(1 + exp(-2.0)), log(1 + exp(-3.0)), 0.75 + log(1 + exp(-1.0))};
    const double grad[4] = {0.0, 1 / (1 + exp(-2.0)) - 1, 1 / (1 + exp(3.0)), 1 / (1 + exp(-1.0)) - 0.25};
    float g[4];
    for (int k = 0; k < 4; k++) {
        double v = evae_recon_loss(EVAE_LOSS_BERNOULLI, g, l + k, t + k, 1, 1.0);
        assert_close(v, loss[k], 1e-12, 1e-12);
        assert_close(g[0], grad[k], 1e-7, 1e-6);
    }
    /* All four at once: the sum; grad_scale scales the gradient only. */
    double total = evae_recon_loss(EVAE_LOSS_BERNOULLI, g, l, t, 4, 0.25);
    assert_close(total, loss[0] + loss[1] + loss[2] + loss[3], 1e-12, 1e-12);
    for (int k = 0; k < 4; k++) assert_close(g[k], 0.25 * grad[k], 1e-7, 1e-6);
    /* Without a gradient buffer the value is the same. */
    assert_close(evae_recon_loss(EVAE_LOSS_BERNOULLI, NULL, l, t, 4, 1.0), total, 0, 0);
}

static void bce_extreme_logits(void **state)
{
    (void)state;
    /* l = ±50 (and ±1e4): exp(50) would overflow a naive float formula. The
     * loss is l·(1−t) for large positive l and −l·t for large negative l,
     * plus log1p(e^{−|l|}) ≤ 2e-22; the gradient is σ(l) − t = 1−t or −t. */
    const float l[8] = {50, 50, 50, -50, -50, -50, 1e4f, -1e4f};
    const float t[8] = {0, 0.3f, 1, 0, 0.3f, 1, 0.5f, 0.5f};
    float g[8];
    for (int k = 0; k < 8; k++) {
        double v = evae_recon_loss(EVAE_LOSS_BERNOULLI, g, l + k, t + k, 1, 1.0);
        double expect = l[k] > 0 ? (double)l[k] * (1.0 - t[k]) : -(double)l[k] * t[k];
        assert_true(isfinite(v) && isfinite(g[0]));
        assert_close(v, expect, 1e-15, 1e-12);
        assert_close(g[0], (l[k] > 0 ? 1.0 : 0.0) - t[k], 1e-20, 1e-6);
    }
    /* The other kinds stay finite out there too. */
    for (int kind = EVAE_LOSS_GAUSSIAN; kind <= EVAE_LOSS_POISSON; kind++)
        for (int k = 0; k < 8; k++) {
            double v = evae_recon_loss((evae_loss_kind)kind, g, l + k, t + k, 1, 1.0);
            assert_true(isfinite(v) && isfinite(g[0]));
        }
}

static void gaussian_and_poisson_hand_values(void **state)
{
    (void)state;
    /* Gaussian on σ(l): l = 0, t = 0.1: ½(0.5 − 0.1)² = 0.08, ∂/∂l = 0.4·0.25 = 0.1.
     * Poisson with rate σ(l): l = 0, t = 0.5: 0.5 − 0.5·log 0.5 = 0.5 + 0.5·log 2,
     * ∂/∂l = (0.5 − 0.5)·0.5 = 0; t = 0.2: 0.5 + 0.2·log 2, ∂/∂l = 0.3·0.5 = 0.15. */
    float l = 0.0f, g = 0.0f;
    float t = 0.1f;
    assert_close(evae_recon_loss(EVAE_LOSS_GAUSSIAN, &g, &l, &t, 1, 1.0), 0.5 * (0.5 - 0.1) * (0.5 - 0.1), 1e-8,
                 1e-7);
    assert_close(g, 0.4 * 0.25, 1e-7, 1e-6);
    t = 0.5f;
    assert_close(evae_recon_loss(EVAE_LOSS_POISSON, &g, &l, &t, 1, 1.0), 0.5 + 0.5 * log(2.0), 1e-12, 1e-12);
    assert_close(g, 0.0, 1e-12, 0);
    t = 0.2f;
    assert_close(evae_recon_loss(EVAE_LOSS_POISSON, &g, &l, &t, 1, 1.0), 0.5 + 0.2 * log(2.0), 1e-8, 1e-7);
    assert_close(g, 0.3 * 0.5, 1e-7, 1e-6);

    /* Every kind is minimal where σ(l) = t: zero gradient at l = logit(t). */
    t = 0.3f;
    l = (float)log(0.3 / 0.7);
    for (int kind = EVAE_LOSS_BERNOULLI; kind <= EVAE_LOSS_POISSON; kind++) {
        evae_recon_loss((evae_loss_kind)kind, &g, &l, &t, 1, 1.0);
        assert_close(g, 0.0, 1e-7, 0);
    }
    assert_string_equal(evae_loss_kind_name(EVAE_LOSS_POISSON), "poisson");
    assert_string_equal(evae_loss_kind_name((evae_loss_kind)7), "unknown");
    assert_true(isnan(evae_recon_loss((evae_loss_kind)7, &g, &l, &t, 1, 1.0)));
}

typedef struct {
    evae_loss_kind kind;
    size_t n;
    double *l, *t;
} recon_ctx;

/* Textbook forms, not the library's stable ones (fine for |l| < 8). */
static double recon_objective(void *p)
{
    recon_ctx *c = p;
    double J = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        double s = sigmoid_ref(c->l[i]), t = c->t[i];
        switch (c->kind) {
        case EVAE_LOSS_BERNOULLI: J += -(t * log(s) + (1 - t) * log(1 - s)); break;
        case EVAE_LOSS_GAUSSIAN: J += 0.5 * (s - t) * (s - t); break;
        case EVAE_LOSS_POISSON: J += s - t * log(s); break;
        }
    }
    return J;
}

static void recon_gradients_match_finite_differences(void **state)
{
    (void)state;
    enum { N = 48 };
    float l[N], t[N], g[N];
    tu_fill_uniform(l, N, -6, 6, 12);
    tu_fill_uniform(t, N, 0, 1, 13);
    t[0] = 0.0f;
    t[1] = 1.0f;
    for (int kind = EVAE_LOSS_BERNOULLI; kind <= EVAE_LOSS_POISSON; kind++) {
        recon_ctx c = {(evae_loss_kind)kind, N, to_doubles(l, N), to_doubles(t, N)};
        double v = evae_recon_loss(c.kind, g, l, t, N, 1.0);
        assert_close(v, recon_objective(&c), 0, 1e-12);
        double num[N];
        numeric_gradient(num, c.l, N, recon_objective, &c);
        assert_grad_close(g, num, N, evae_loss_kind_name(c.kind));
        free(c.l);
        free(c.t);
    }
}

static void recon_loss_independent_of_thread_count(void **state)
{
    (void)state;
    /* Large enough to run in parallel; the chunked double sum must give the
     * same bits on 1 and 2 threads, and agree with a serial long double sum. */
    size_t n = 300001;
    float *l = new_floats(n), *t = new_floats(n), *g1 = new_floats(n), *g2 = new_floats(n);
    tu_fill_uniform(l, n, -10, 10, 14);
    tu_fill_uniform(t, n, 0, 1, 15);
    long double serial = 0.0L;
    for (size_t i = 0; i < n; i++) {
        double x = l[i];
        serial += fmax(x, 0.0) - x * t[i] + log1p(exp(-fabs(x)));
    }
    for (int kind = EVAE_LOSS_BERNOULLI; kind <= EVAE_LOSS_POISSON; kind++) {
        assert_ok(eelsvae_set_threads(1));
        double one = evae_recon_loss((evae_loss_kind)kind, g1, l, t, n, 1e-3);
        assert_ok(eelsvae_set_threads(2));
        double two = evae_recon_loss((evae_loss_kind)kind, g2, l, t, n, 1e-3);
        assert_memory_equal(&one, &two, sizeof one);
        assert_memory_equal(g1, g2, n * sizeof *g1);
        if (kind == EVAE_LOSS_BERNOULLI) assert_close(one, (double)serial, 0, 1e-12);
    }
    assert_ok(eelsvae_set_threads(0));
    free(l);
    free(t);
    free(g1);
    free(g2);
}

/* ---- KL ----------------------------------------------------------------------------- */

static void kl_hand_values(void **state)
{
    (void)state;
    /* KL(N(μ, σ²) ‖ N(0, 1)) = ½(σ² + μ² − 1 − log σ²) per latent:
     *   μ = 1,   log σ² = 0:      ½(1 + 1 − 1 − 0)        = ½
     *   μ = 0,   log σ² = log 2:  ½(2 − 1 − log 2)        = ½(1 − log 2)
     *   μ = 0.5, log σ² = −1:     ½(e⁻¹ + ¼ − 1 + 1)      = ½(¼ + e⁻¹)
     * and a second sample at the prior (μ = 0, log σ² = 0) adds 0.
     * Gradients (scale s): dμ = s·μ, dlogvar = s·½(σ² − 1). */
    const float mulv[12] = {1, 0, 0.5f, 0, (float)log(2.0), -1, /* sample 0: μ[3], logvar[3] */
                            0, 0, 0, 0, 0, 0};                  /* sample 1 */
    const double expect = 0.5 + 0.5 * (1 - log(2.0)) + 0.5 * (0.25 + exp(-1.0));
    float d[12];
    double kl = evae_kl_loss(d, mulv, 2, 3, 0.5);
    assert_close(kl, expect, 1e-7, 1e-7);
    const double dmu[3] = {1, 0, 0.5}, dlv[3] = {0, 0.5, 0.5 * (exp(-1.0) - 1)};
    for (int j = 0; j < 3; j++) {
        assert_close(d[j], 0.5 * dmu[j], 1e-7, 1e-6);
        assert_close(d[3 + j], 0.5 * dlv[j], 1e-7, 1e-6);
        assert_true(d[6 + j] == 0.0f && d[9 + j] == 0.0f);
    }
    assert_close(evae_kl_loss(NULL, mulv, 2, 3, 1.0), kl, 0, 0);
}

typedef struct {
    size_t batch, latent;
    double *mulv;
} kl_ctx;

static double kl_objective(void *p)
{
    kl_ctx *c = p;
    double J = 0.0;
    for (size_t b = 0; b < c->batch; b++)
        for (size_t j = 0; j < c->latent; j++) {
            double mu = c->mulv[b * 2 * c->latent + j], lv = c->mulv[b * 2 * c->latent + c->latent + j];
            J += 0.5 * (exp(lv) + mu * mu - 1.0 - lv);
        }
    return J;
}

static void kl_gradients_match_finite_differences(void **state)
{
    (void)state;
    enum { BATCH = 3, L = 5 };
    float mulv[BATCH * 2 * L], d[BATCH * 2 * L];
    tu_fill_uniform(mulv, BATCH * 2 * L, -3, 3, 16);
    kl_ctx c = {BATCH, L, to_doubles(mulv, BATCH * 2 * L)};
    assert_close(evae_kl_loss(d, mulv, BATCH, L, 1.0), kl_objective(&c), 0, 1e-12);
    double num[BATCH * 2 * L];
    numeric_gradient(num, c.mulv, BATCH * 2 * L, kl_objective, &c);
    assert_grad_close(d, num, BATCH * 2 * L, "kl dmulv");
    free(c.mulv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_hand_example),
        cmocka_unit_test(dense_gradients_match_finite_differences),
        cmocka_unit_test(dense_rejects_bad_dimensions),
        cmocka_unit_test(relu_forward_backward),
        cmocka_unit_test(sigmoid_forward_backward),
        cmocka_unit_test(reparam_gradients_with_fixed_eps),
        cmocka_unit_test(reparam_draws_from_the_rng),
        cmocka_unit_test(bce_hand_values),
        cmocka_unit_test(bce_extreme_logits),
        cmocka_unit_test(gaussian_and_poisson_hand_values),
        cmocka_unit_test(recon_gradients_match_finite_differences),
        cmocka_unit_test(recon_loss_independent_of_thread_count),
        cmocka_unit_test(kl_hand_values),
        cmocka_unit_test(kl_gradients_match_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
