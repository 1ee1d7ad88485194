/* Adam, gradient clipping, plateau scheduler, early stopping (see optim.h). */
#include "optim.h"

#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Loops shorter than this run on one thread. */
#define PARALLEL_MIN 32768
/* The squared norm is summed in this many fixed chunks (depends on n only),
 * so its bits do not depend on the thread count. */
#define SUM_CHUNKS 64

/* ---- Adam -------------------------------------------------------------- */

void evae_adam_init(evae_adam *opt, double lr)
{
    opt->lr = lr;
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    opt->weight_decay = 0.0;
    opt->step = 0;
}

static eelsvae_status check_adam(const evae_adam *opt)
{
    /* Written so that NaN fails every test. */
    if (!(opt->lr >= 0.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Adam: learning rate %g is not >= 0", opt->lr);
    if (!(opt->eps >= 0.0)) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Adam: eps %g is not >= 0", opt->eps);
    if (!(opt->beta1 >= 0.0 && opt->beta1 < 1.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Adam: beta1 %g is outside [0, 1)", opt->beta1);
    if (!(opt->beta2 >= 0.0 && opt->beta2 < 1.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Adam: beta2 %g is outside [0, 1)", opt->beta2);
    if (!(opt->weight_decay >= 0.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Adam: weight decay %g is not >= 0", opt->weight_decay);
    return EELSVAE_OK;
}

eelsvae_status evae_adam_step(evae_adam *opt, float *param, const float *grad, float *m, float *v, size_t n)
{
    if (!opt || !param || !grad || !m || !v) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Adam: NULL argument");
    EVAE_TRY(check_adam(opt));
    opt->step++;
    double t = (double)opt->step;
    /* Scalars as torch forms them: Python doubles, cast to float where the
     * tensor kernels take them. */
    double bias_correction1 = 1.0 - pow(opt->beta1, t);
    double bias_correction2 = 1.0 - pow(opt->beta2, t);
    const float step_size = (float)(opt->lr / bias_correction1);
    const float bc2_sqrt = (float)sqrt(bias_correction2);
    const float b1 = (float)opt->beta1, one_minus_b1 = (float)(1.0 - opt->beta1);
    const float b2 = (float)opt->beta2, one_minus_b2 = (float)(1.0 - opt->beta2);
    const float eps = (float)opt->eps, decay = (float)opt->weight_decay;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (size_t i = 0; i < n; i++) {
        float g = decay != 0.0f ? grad[i] + decay * param[i] : grad[i];
        m[i] = m[i] * b1 + one_minus_b1 * g;
        v[i] = v[i] * b2 + one_minus_b2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        param[i] = param[i] + (-step_size) * m[i] / denom;
    }
    return EELSVAE_OK;
}

/* ---- gradient clipping --------------------------------------------------- */

static double sum_of_squares(const float *x, size_t n)
{
    double partial[SUM_CHUNKS];
    size_t chunk = n / SUM_CHUNKS + (n % SUM_CHUNKS != 0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
    for (int c = 0; c < SUM_CHUNKS; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < SUM_CHUNKS; c++) total += partial[c];
    return total;
}

double evae_clip_grad_norm(float *grad, size_t n, double max_norm)
{
    double norm = sqrt(sum_of_squares(grad, n));
    if (!isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const float scale = (float)coef;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN) num_threads(evae_threads())
#endif
        for (size_t i = 0; i < n; i++) grad[i] *= scale;
    }
    return norm;
}

/* ---- learning rate on plateau ----------------------------------------------- */

void evae_plateau_init(evae_plateau *s, int patience)
{
    s->factor = 0.5;
    s->patience = patience;
    s->threshold = 1e-4;
    s->cooldown = 0;
    s->min_lr = 0.0;
    s->eps = 1e-8;
    s->best = INFINITY;
    s->bad_epochs = 0;
    s->cooldown_left = 0;
    s->epoch = 0;
}

bool evae_plateau_step(evae_plateau *s, double metric, double *lr)
{
    s->epoch++;
    if (metric < s->best * (1.0 - s->threshold)) { /* false for NaN */
        s->best = metric;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left--;
        s->bad_epochs = 0;
    }
    if (s->bad_epochs <= s->patience) return false;
    s->cooldown_left = s->cooldown;
    s->bad_epochs = 0;
    double new_lr = fmax(*lr * s->factor, s->min_lr);
    if (*lr - new_lr <= s->eps) return false;
    *lr = new_lr;
    return true;
}

/* ---- early stopping ---------------------------------------------------------- */

void evae_early_stop_init(evae_early_stop *e, int patience, double min_delta)
{
    e->patience = patience;
    e->min_delta = min_delta;
    e->best = INFINITY;
    e->best_epoch = -1;
    e->epoch = 0;
    e->bad_epochs = 0;
    e->improved = false;
    e->stop = false;
}

bool evae_early_stop_step(evae_early_stop *e, double metric)
{
    e->improved = metric < e->best - e->min_delta; /* false for NaN */
    if (e->improved) {
        e->best = metric;
        e->best_epoch = e->epoch;
        e->bad_epochs = 0;
    } else {
        e->bad_epochs++;
    }
    e->epoch++;
    if (e->bad_epochs >= e->patience && !e->improved) e->stop = true;
    return e->stop;
}
