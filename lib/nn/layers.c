/* Dense, activations, reparameterisation and losses (see layers.h). */
#include "layers.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Element-wise loops shorter than this run on one thread: below it the
 * fork/join costs more than the loop. */
#define PARALLEL_MIN 32768

/* Loss sums are split into this many fixed chunks, each summed in double and
 * then added in chunk order: the chunking depends on n only, never on the
 * thread count, so the result has the same bits for any thread count. */
#define SUM_CHUNKS 64

/* ---- dense ---------------------------------------------------------------- */

static eelsvae_status check_dense(const char *fn, size_t batch, size_t n_in, size_t n_out)
{
    if (n_in == 0 || n_out == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s: a dense layer needs inputs and outputs (n_in = %zu, n_out = %zu)", fn, n_in, n_out);
    if (batch > INT_MAX || n_in > INT_MAX || n_out > INT_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW,
                         "%s: batch = %zu, n_in = %zu, n_out = %zu: a dimension exceeds BLAS's int (%d)", fn, batch,
                         n_in, n_out, INT_MAX);
    return EELSVAE_OK;
}

eelsvae_status evae_dense_forward(float *out, const float *in, const float *w, const float *bias, size_t batch,
                                  size_t n_in, size_t n_out)
{
    if (!out || !in || !w) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "evae_dense_forward: NULL buffer");
    EVAE_TRY(check_dense("evae_dense_forward", batch, n_in, n_out));
    if (batch == 0) return EELSVAE_OK;
    float beta = 0.0f;
    if (bias) {
        for (size_t b = 0; b < batch; b++) memcpy(out + b * n_out, bias, n_out * sizeof *out); /* out[b] = bias */
        beta = 1.0f;
    }
    /* out[batch][n_out] (+)= in[batch][n_in] · w[n_out][n_in]ᵀ */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)n_out, (int)n_in, 1.0f, in, (int)n_in, w,
                (int)n_in, beta, out, (int)n_out);
    return EELSVAE_OK;
}

eelsvae_status evae_dense_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                                   const float *w, size_t batch, size_t n_in, size_t n_out)
{
    if (!dw || !dout || !in || !w)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "evae_dense_backward: NULL buffer");
    EVAE_TRY(check_dense("evae_dense_backward", batch, n_in, n_out));
    if (batch == 0) return EELSVAE_OK;
    /* dw[n_out][n_in] += dout[batch][n_out]ᵀ · in[batch][n_in] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_out, (int)n_in, (int)batch, 1.0f, dout, (int)n_out, in,
                (int)n_in, 1.0f, dw, (int)n_in);
    /* din[batch][n_in] += dout[batch][n_out] · w[n_out][n_in] */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)batch, (int)n_in, (int)n_out, 1.0f, dout,
                    (int)n_out, w, (int)n_in, 1.0f, din, (int)n_in);
    /* dbias[n_out] += Σ_b dout[b][o], in double: the batch sum decides the step */
    if (dbias) {
        for (size_t o = 0; o < n_out; o++) {
            double sum = 0.0;
            for (size_t b = 0; b < batch; b++) sum += dout[b * n_out + o];
            dbias[o] = (float)((double)dbias[o] + sum);
        }
    }
    return EELSVAE_OK;
}

/* ---- activations ------------------------------------------------------------ */

void evae_relu_forward(float *out, const float *in, size_t n)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (size_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i]; /* NaN passes, as in PyTorch */
}

void evae_relu_backward(float *din, const float *dout, const float *out, size_t n)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0.0f) din[i] += dout[i];
}

void evae_relu_mask_grad(float *grad, const float *out, size_t n)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (size_t i = 0; i < n; i++)
        if (!(out[i] > 0.0f)) grad[i] = 0.0f;
}

/* σ(x) without overflow: exp of a non-positive number only. */
static inline float sigmoid_f(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void evae_sigmoid_forward(float *out, const float *in, size_t n)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (size_t i = 0; i < n; i++) out[i] = sigmoid_f(in[i]);
}

void evae_sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}

/* ---- reparameterisation ------------------------------------------------------ */

void evae_reparam_apply(float *z, const float *eps, const float *mulv, size_t B, size_t L)
{
    for (size_t b = 0; b < B; b++) {
        const float *mu = mulv + b * 2 * L, *logvar = mu + L; /* [L] each */
        for (size_t j = 0; j < L; j++) z[b * L + j] = mu[j] + expf(0.5f * logvar[j]) * eps[b * L + j];
    }
}

void evae_reparam_forward(float *z, float *eps, const float *mulv, size_t B, size_t L, evae_rng *rng)
{
    /* Serial on purpose: B·L is small and the draw order must be fixed. */
    for (size_t k = 0; k < B * L; k++) eps[k] = rng ? (float)evae_rng_normal(rng) : 0.0f;
    evae_reparam_apply(z, eps, mulv, B, L);
}

void evae_reparam_backward(float *dmulv, const float *dz, const float *eps, const float *mulv, size_t B, size_t L)
{
    for (size_t b = 0; b < B; b++) {
        const float *logvar = mulv + b * 2 * L + L; /* [L] */
        float *dmu = dmulv + b * 2 * L, *dlogvar = dmu + L;
        for (size_t j = 0; j < L; j++) {
            float g = dz[b * L + j];
            dmu[j] += g;
            dlogvar[j] += g * eps[b * L + j] * 0.5f * expf(0.5f * logvar[j]);
        }
    }
}

/* ---- losses ---------------------------------------------------------------- */

const char *evae_loss_kind_name(evae_loss_kind kind)
{
    switch (kind) {
    case EVAE_LOSS_BERNOULLI: return "bernoulli";
    case EVAE_LOSS_GAUSSIAN: return "gaussian";
    case EVAE_LOSS_POISSON: return "poisson";
    }
    return "unknown";
}

/* σ(l) and σ(−l) = 1 − σ(l) (without cancellation) from one exp, which is
 * returned too: e = exp(−|l|) ≤ 1, so nothing overflows for any l. */
static inline double logistic_parts(double l, double *s, double *s_neg)
{
    double e = exp(-fabs(l)), big = 1.0 / (1.0 + e), small = e * big;
    *s = l >= 0.0 ? big : small;
    *s_neg = l >= 0.0 ? small : big;
    return e;
}

/* One element's loss, and its derivative w.r.t. the logit in *grad. */
static inline double bernoulli_term(double l, double t, double *grad)
{
    double s = 0.0, s_neg = 0.0, e = logistic_parts(l, &s, &s_neg);
    *grad = s - t;
    return fmax(l, 0.0) - l * t + log1p(e);
}

static inline double gaussian_term(double l, double t, double *grad)
{
    double s = 0.0, s_neg = 0.0;
    logistic_parts(l, &s, &s_neg);
    double d = s - t;
    *grad = d * s * s_neg;
    return 0.5 * d * d;
}

static inline double poisson_term(double l, double t, double *grad)
{
    double s = 0.0, s_neg = 0.0, e = logistic_parts(l, &s, &s_neg);
    *grad = (s - t) * s_neg;
    return s + t * (fmax(-l, 0.0) + log1p(e)); /* s − t·log σ(l); −log σ(l) = softplus(−l) */
}

/* Σ of the loss over [lo, hi), writing the scaled gradient when asked. The
 * switch sits outside the loops so each loop inlines its term. */
#define RECON_LOOP(term)                                                                                         \
    for (size_t i = lo; i < hi; i++) {                                                                           \
        double g = 0.0;                                                                                          \
        sum += term((double)logits[i], (double)target[i], &g);                                                   \
        if (dlogits) dlogits[i] = (float)(grad_scale * g);                                                       \
    }

static double recon_range(evae_loss_kind kind, float *dlogits, const float *logits, const float *target, size_t lo,
                          size_t hi, double grad_scale)
{
    double sum = 0.0;
    switch (kind) {
    case EVAE_LOSS_BERNOULLI: RECON_LOOP(bernoulli_term) break;
    case EVAE_LOSS_GAUSSIAN: RECON_LOOP(gaussian_term) break;
    case EVAE_LOSS_POISSON: RECON_LOOP(poisson_term) break;
    }
    return sum;
}

#undef RECON_LOOP

double evae_recon_loss(evae_loss_kind kind, float *dlogits, const float *logits, const float *target, size_t n,
                       double grad_scale)
{
    if (kind != EVAE_LOSS_BERNOULLI && kind != EVAE_LOSS_GAUSSIAN && kind != EVAE_LOSS_POISSON) return NAN;
    double partial[SUM_CHUNKS];
    size_t chunk = n / SUM_CHUNKS + (n % SUM_CHUNKS != 0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (int c = 0; c < SUM_CHUNKS; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        partial[c] = recon_range(kind, dlogits, logits, target, lo, hi, grad_scale);
    }
    double total = 0.0;
    for (int c = 0; c < SUM_CHUNKS; c++) total += partial[c];
    return total;
}

double evae_recon_loss_masked(evae_loss_kind kind, float *dlogits, const float *logits, const float *target,
                              size_t pixels, size_t channels, const uint8_t *keep, double grad_scale)
{
    if (kind != EVAE_LOSS_BERNOULLI && kind != EVAE_LOSS_GAUSSIAN && kind != EVAE_LOSS_POISSON) return NAN;
    double partial[SUM_CHUNKS];
    size_t chunk = pixels / SUM_CHUNKS + (pixels % SUM_CHUNKS != 0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (pixels * channels >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (int c = 0; c < SUM_CHUNKS; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk;
        if (lo > pixels) lo = pixels;
        if (hi > pixels) hi = pixels;
        double sum = 0.0;
        for (size_t p = lo; p < hi; p++) {
            size_t first = p * channels;
            if (keep[p])
                sum += recon_range(kind, dlogits, logits, target, first, first + channels, grad_scale);
            else if (dlogits)
                memset(dlogits + first, 0, channels * sizeof *dlogits); /* out of the loss: no gradient */
        }
        partial[c] = sum;
    }
    double total = 0.0;
    for (int c = 0; c < SUM_CHUNKS; c++) total += partial[c];
    return total;
}

double evae_kl_loss(float *dmulv, const float *mulv, size_t B, size_t L, double grad_scale)
{
    double total = 0.0;
    for (size_t b = 0; b < B; b++) {
        const float *mu = mulv + b * 2 * L, *logvar = mu + L; /* [L] each */
        for (size_t j = 0; j < L; j++) {
            double m = mu[j], lv = logvar[j], var = exp(lv);
            total += -0.5 * (1.0 + lv - m * m - var);
            if (dmulv) {
                dmulv[b * 2 * L + j] = (float)(grad_scale * m);
                dmulv[b * 2 * L + L + j] = (float)(grad_scale * 0.5 * (var - 1.0));
            }
        }
    }
    return total;
}
