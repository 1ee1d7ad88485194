/*
 * Tests for lib/nn/optim.c: Adam against its closed form, clip_grad_norm on
 * known vectors, the plateau scheduler and early stopping epoch by epoch,
 * and (when PyTorch imports) five training steps of a miniature VAE built
 * from lib/nn/layers.c against torch (tests/data/layers_torch_oracle.py).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "nn/optim.h"

/* ---- Adam ------------------------------------------------------------------------- */

static void adam_two_steps_by_hand(void **state)
{
    (void)state;
    /* lr 0.1, β = (0.9, 0.999), eps 1e-8; p = (1, −2); g1 = (0.5, −1), g2 = (0.25, 2).
     * Step 1: m = 0.1·g1, v = 0.001·g1²; m̂ = g1, v̂ = g1², so each parameter
     *   moves by lr·|g|/(|g| + eps) ≈ lr against its gradient: p1 ≈ (0.9, −1.9).
     * Step 2: m = 0.9·m + 0.1·g2 = (0.07, 0.11),
     *         v = 0.999·v + 0.001·g2² = (0.00031225, 0.004999),
     *   m̂ = m/(1 − 0.9²) = m/0.19, v̂ = v/(1 − 0.999²) = v/0.001999,
     *   p2 = p1 − 0.1·m̂/(√v̂ + eps) ≈ (0.9 − 0.0932180, −1.9 − 0.0366104). */
    evae_adam opt;
    evae_adam_init(&opt, 0.1);
    float p[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0};
    const float g1[2] = {0.5f, -1.0f}, g2[2] = {0.25f, 2.0f};

    assert_ok(evae_adam_step(&opt, p, g1, m, v, 2));
    assert_int_equal(opt.step, 1);
    assert_close(m[0], 0.05, 1e-9, 1e-6);
    assert_close(m[1], -0.1, 1e-9, 1e-6);
    assert_close(v[0], 0.00025, 1e-12, 1e-6);
    assert_close(v[1], 0.001, 1e-12, 1e-6);
    assert_close(p[0], 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-7, 0);
    assert_close(p[1], -2.0 + 0.1 * 1.0 / (1.0 + 1e-8), 1e-7, 0);

    assert_ok(evae_adam_step(&opt, p, g2, m, v, 2));
    assert_int_equal(opt.step, 2);
    assert_close(m[0], 0.07, 1e-9, 1e-6);
    assert_close(m[1], 0.11, 1e-9, 1e-6);
    assert_close(v[0], 0.00031225, 1e-12, 1e-6);
    assert_close(v[1], 0.004999, 1e-12, 1e-6);
    double p1[2] = {1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 / (1.0 + 1e-8)};
    double mhat[2] = {0.07 / 0.19, 0.11 / 0.19}, vhat[2] = {0.00031225 / 0.001999, 0.004999 / 0.001999};
    for (int i = 0; i < 2; i++) assert_close(p[i], p1[i] - 0.1 * mhat[i] / (sqrt(vhat[i]) + 1e-8), 1e-6, 0);
    assert_close(p[0], 0.9 - 0.0932180, 2e-6, 0);
    assert_close(p[1], -1.9 - 0.0366104, 2e-6, 0);
}

static void adam_weight_decay_is_l2_on_the_gradient(void **state)
{
    (void)state;
    /* p = 2, g = −0.1, weight decay 0.1: g' = g + 0.1·p = +0.1, so the first
     * step moves p DOWN by ≈ lr although the raw gradient points up; the
     * gradient buffer itself is left alone (torch's Adam, not AdamW, whose
     * decoupled decay would give 2 − lr·0.1·2 + lr). */
    evae_adam opt;
    evae_adam_init(&opt, 0.01);
    opt.weight_decay = 0.1;
    float p = 2.0f, m = 0.0f, v = 0.0f;
    const float g = -0.1f;
    assert_ok(evae_adam_step(&opt, &p, &g, &m, &v, 1));
    assert_close(p, 2.0 - 0.01 * 0.1 / (0.1 + 1e-8), 1e-6, 0);
    assert_close(m, 0.1 * 0.1, 1e-9, 1e-5);
    assert_close(v, 0.001 * 0.01, 1e-12, 1e-5);
    assert_true(g == -0.1f);
}

static void adam_first_step_moves_by_lr(void **state)
{
    (void)state;
    /* Bias correction makes the first step exactly lr·g/(|g| + eps), whatever
     * the gradient's size: ≈ lr for |g| ≫ eps. */
    enum { N = 1000 };
    float p[N], g[N], m[N] = {0}, v[N] = {0}, p0[N];
    tu_fill_uniform(p, N, -1, 1, 21);
    tu_fill_uniform(g, N, -1, 1, 22);
    for (int i = 0; i < N; i++) g[i] = g[i] < 0 ? g[i] - 1e-3f : g[i] + 1e-3f; /* |g| ≥ 1e-3 */
    memcpy(p0, p, sizeof p);
    evae_adam opt;
    evae_adam_init(&opt, 1e-3);
    assert_ok(evae_adam_step(&opt, p, g, m, v, N));
    for (int i = 0; i < N; i++) assert_close((double)p0[i] - p[i], g[i] > 0 ? 1e-3 : -1e-3, 1e-8, 2e-3);
}

static void adam_rejects_bad_hyperparameters(void **state)
{
    (void)state;
    float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
    evae_adam opt;
    double *fields[] = {&opt.lr, &opt.beta1, &opt.beta2, &opt.eps, &opt.weight_decay};
    const double bad[] = {-1e-3, 1.0, -0.5, NAN, -1.0};
    for (int k = 0; k < 5; k++) {
        evae_adam_init(&opt, 1e-3);
        *fields[k] = bad[k];
        assert_status(evae_adam_step(&opt, &p, &g, &m, &v, 1), EELSVAE_ERR_INVALID_ARGUMENT);
        assert_true(p == 1.0f && m == 0.0f && v == 0.0f && opt.step == 0);
    }
    evae_adam_init(&opt, 1e-3);
    assert_status(evae_adam_step(&opt, NULL, &g, &m, &v, 1), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* ---- clipping ---------------------------------------------------------------------- */

static void clip_grad_norm_known_vector(void **state)
{
    (void)state;
    /* (3, 4) has norm 5. max_norm 1: scaled by 1/(5 + 1e-6) → ≈ (0.6, 0.8).
     * max_norm 10: untouched. max_norm 5: torch's coef 5/(5 + 1e-6) < 1 still
     * scales, by 1 − 2e-7. */
    float g[2] = {3, 4};
    assert_close(evae_clip_grad_norm(g, 2, 1.0), 5.0, 1e-12, 0);
    assert_close(g[0], 3.0 / (5.0 + 1e-6), 1e-7, 1e-6);
    assert_close(g[1], 4.0 / (5.0 + 1e-6), 1e-7, 1e-6);
    assert_close(sqrt((double)g[0] * g[0] + (double)g[1] * g[1]), 1.0, 1e-6, 0);

    float h[2] = {3, 4};
    assert_close(evae_clip_grad_norm(h, 2, 10.0), 5.0, 1e-12, 0);
    assert_true(h[0] == 3.0f && h[1] == 4.0f);
    assert_close(evae_clip_grad_norm(h, 2, 5.0), 5.0, 1e-12, 0);
    assert_true(h[0] < 3.0f && h[1] < 4.0f);

    /* A NaN gradient: the norm says so and nothing is scaled. */
    float bad[3] = {1, NAN, 2};
    assert_true(isnan(evae_clip_grad_norm(bad, 3, 1.0)));
    assert_true(bad[0] == 1.0f && bad[2] == 2.0f);
    /* An empty block has norm 0. */
    assert_close(evae_clip_grad_norm(g, 0, 1.0), 0.0, 0, 0);
}

static void clip_grad_norm_large_and_thread_independent(void **state)
{
    (void)state;
    size_t n = 500003;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    tu_fill_uniform(a, n, -1, 1, 23);
    memcpy(b, a, n * sizeof *a);
    long double sum = 0.0L;
    for (size_t i = 0; i < n; i++) sum += (long double)a[i] * a[i];
    assert_ok(eelsvae_set_threads(1));
    double one = evae_clip_grad_norm(a, n, 1.0);
    assert_ok(eelsvae_set_threads(2));
    double two = evae_clip_grad_norm(b, n, 1.0);
    assert_ok(eelsvae_set_threads(0));
    assert_close(one, sqrtl(sum), 0, 1e-12);
    assert_memory_equal(&one, &two, sizeof one);
    assert_memory_equal(a, b, n * sizeof *a);
    free(a);
    free(b);
}

/* ---- plateau scheduler ------------------------------------------------------------- */

static void plateau_halves_after_patience_bad_epochs(void **state)
{
    (void)state;
    /* patience 2, torch semantics: the 3rd bad epoch in a row reduces.
     * 0.9 → 0.89995 is not an improvement: it needs < 0.9·(1 − 1e-4) = 0.89991. */
    const double metric[] = {1.0, 0.9, 0.95, 0.9, 0.89995, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85};
    const bool reduces[] = {false, false, false, false, true, false, false, false, false, false, true, false};
    const double lr_after[] = {1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4};
    evae_plateau s;
    evae_plateau_init(&s, 2);
    double lr = 1e-3;
    for (int e = 0; e < 12; e++) {
        bool r = evae_plateau_step(&s, metric[e], &lr);
        if (r != reduces[e]) fail_msg("epoch %d: reduced = %d, expected %d", e, r, reduces[e]);
        assert_close(lr, lr_after[e], 1e-18, 1e-15);
    }
    assert_close(s.best, 0.8, 0, 0);
    assert_int_equal(s.epoch, 12);
}

static void plateau_min_lr_cooldown_and_nan(void **state)
{
    (void)state;
    /* patience 0: every bad epoch reduces, down to min_lr, then no more. */
    evae_plateau s;
    evae_plateau_init(&s, 0);
    s.min_lr = 3e-4;
    double lr = 1e-3;
    assert_false(evae_plateau_step(&s, 1.0, &lr));
    assert_true(evae_plateau_step(&s, 1.0, &lr));
    assert_close(lr, 5e-4, 0, 1e-15);
    assert_true(evae_plateau_step(&s, NAN, &lr)); /* NaN is a bad epoch */
    assert_close(lr, 3e-4, 0, 1e-15);
    assert_false(evae_plateau_step(&s, 1.0, &lr)); /* at min_lr: no change */
    assert_close(lr, 3e-4, 0, 1e-15);

    /* cooldown 1: the bad epoch right after a reduction is not counted. */
    evae_plateau_init(&s, 0);
    s.cooldown = 1;
    lr = 1.0;
    assert_false(evae_plateau_step(&s, 1.0, &lr));
    assert_true(evae_plateau_step(&s, 2.0, &lr));
    assert_false(evae_plateau_step(&s, 2.0, &lr));
    assert_true(evae_plateau_step(&s, 2.0, &lr));
    assert_close(lr, 0.25, 0, 0);

    /* The threshold is relative: from 1000, 999.95 is no improvement (it
     * needs < 999.9; an absolute 1e-4 would accept it), 999.8 is one. */
    evae_plateau_init(&s, 0);
    lr = 1.0;
    assert_false(evae_plateau_step(&s, 1000.0, &lr));
    assert_true(evae_plateau_step(&s, 999.95, &lr));
    assert_false(evae_plateau_step(&s, 999.8, &lr));
    assert_close(s.best, 999.8, 0, 0);
}

/* ---- early stopping ---------------------------------------------------------------- */

static void early_stop_fires_at_the_right_epoch(void **state)
{
    (void)state;
    /* patience 3, min_delta 0.01:
     *   e0 1.0 best · e1 0.995 (not < 0.99) bad 1 · e2 0.98 best · e3 0.975
     *   (not < 0.97) bad 1 · e4 0.99 bad 2 · e5 NaN bad 3 → stop, best e2. */
    const double metric[] = {1.0, 0.995, 0.98, 0.975, 0.99, NAN};
    const bool improved[] = {true, false, true, false, false, false};
    evae_early_stop e;
    evae_early_stop_init(&e, 3, 0.01);
    assert_int_equal(e.best_epoch, -1);
    for (int k = 0; k < 6; k++) {
        bool stop = evae_early_stop_step(&e, metric[k]);
        if (stop != (k == 5)) fail_msg("epoch %d: stop = %d", k, stop);
        if (e.improved != improved[k]) fail_msg("epoch %d: improved = %d", k, e.improved);
    }
    assert_int_equal(e.best_epoch, 2);
    assert_close(e.best, 0.98, 0, 0);
    assert_true(evae_early_stop_step(&e, 0.1)); /* stop stays set */

    /* patience 0 stops at the first epoch that does not improve. */
    evae_early_stop_init(&e, 0, 0.0);
    assert_false(evae_early_stop_step(&e, 2.0));
    assert_false(evae_early_stop_step(&e, 1.0));
    assert_true(evae_early_stop_step(&e, 1.0));
    assert_int_equal(e.best_epoch, 1);
}

/* ---- PyTorch oracle: a miniature VAE trained five steps ------------------------------ */

enum { MB = 4, MD = 16, MH = 8, ML = 3, MSTEPS = 5 };
#define MLR 1e-2
#define MBETA 1.2
#define MMAX_NORM 1.0

/* Flat parameter block, layer by layer, weight [out][in] then bias. */
enum {
    ENC1_W = 0,
    ENC1_B = ENC1_W + MH * MD,
    ENC2_W = ENC1_B + MH,
    ENC2_B = ENC2_W + 2 * ML * MH,
    DEC1_W = ENC2_B + 2 * ML,
    DEC1_B = DEC1_W + MH * ML,
    DEC2_W = DEC1_B + MH,
    DEC2_B = DEC2_W + MD * MH,
    NPARAM = DEC2_B + MD
};

typedef struct {
    float h1[MB * MH], mulv[MB * 2 * ML], z[MB * ML], h2[MB * MH], logits[MB * MD]; /* activations */
    float dh1[MB * MH], dmulv[MB * 2 * ML], dz[MB * ML], dh2[MB * MH], dlogits[MB * MD];
} mini_acts;

/* One training step as the trainer will compose it; returns bce, kl, norm. */
static void mini_train_step(float *p, float *grad, float *m, float *v, evae_adam *opt, const float *x,
                            const float *eps, mini_acts *a, double out[3])
{
    /* forward */
    assert_ok(evae_dense_forward(a->h1, x, p + ENC1_W, p + ENC1_B, MB, MD, MH));
    evae_relu_forward(a->h1, a->h1, MB * MH);
    assert_ok(evae_dense_forward(a->mulv, a->h1, p + ENC2_W, p + ENC2_B, MB, MH, 2 * ML));
    evae_reparam_apply(a->z, eps, a->mulv, MB, ML);
    assert_ok(evae_dense_forward(a->h2, a->z, p + DEC1_W, p + DEC1_B, MB, ML, MH));
    evae_relu_forward(a->h2, a->h2, MB * MH);
    assert_ok(evae_dense_forward(a->logits, a->h2, p + DEC2_W, p + DEC2_B, MB, MH, MD));

    /* losses start the gradients (written); layers accumulate into zeroed buffers */
    out[0] = evae_recon_loss(EVAE_LOSS_BERNOULLI, a->dlogits, a->logits, x, MB * MD, 1.0 / MB);
    out[1] = evae_kl_loss(a->dmulv, a->mulv, MB, ML, MBETA / MB);
    memset(grad, 0, NPARAM * sizeof *grad);
    memset(a->dh2, 0, sizeof a->dh2);
    memset(a->dz, 0, sizeof a->dz);
    memset(a->dh1, 0, sizeof a->dh1);

    assert_ok(evae_dense_backward(a->dh2, grad + DEC2_W, grad + DEC2_B, a->dlogits, a->h2, p + DEC2_W, MB, MH, MD));
    evae_relu_mask_grad(a->dh2, a->h2, MB * MH);
    assert_ok(evae_dense_backward(a->dz, grad + DEC1_W, grad + DEC1_B, a->dh2, a->z, p + DEC1_W, MB, ML, MH));
    evae_reparam_backward(a->dmulv, a->dz, eps, a->mulv, MB, ML);
    assert_ok(
        evae_dense_backward(a->dh1, grad + ENC2_W, grad + ENC2_B, a->dmulv, a->h1, p + ENC2_W, MB, MH, 2 * ML));
    evae_relu_mask_grad(a->dh1, a->h1, MB * MH);
    assert_ok(evae_dense_backward(NULL, grad + ENC1_W, grad + ENC1_B, a->dh1, x, p + ENC1_W, MB, MD, MH));

    out[2] = evae_clip_grad_norm(grad, NPARAM, MMAX_NORM);
    assert_ok(evae_adam_step(opt, p, grad, m, v, NPARAM));
}

static void write_f32(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(x, sizeof *x, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static const char *data_dir(void)
{
    const char *d = getenv("EELSVAE_TEST_DATA");
    return d && *d ? d : "tests/data";
}

/* nn.Linear's default initialisation range, U(−1/√fan_in, 1/√fan_in). */
static void init_linear(float *p, size_t w_off, size_t b_off, size_t n_in, size_t n_out, uint64_t seed)
{
    double r = 1.0 / sqrt((double)n_in);
    tu_fill_uniform(p + w_off, n_out * n_in, -r, r, seed);
    tu_fill_uniform(p + b_off, n_out, -r, r, seed + 100);
}

static void torch_oracle_training_steps(void **state)
{
    (void)state;
    const char *py = tu_python();
    if (!py) tu_skip("no /usr/bin/python3 with NumPy");
    if (tu_system("%s -c 'import torch' >/dev/null 2>&1", py) != 0) tu_skip("PyTorch does not import");

    static float p[NPARAM], grad[NPARAM], m[NPARAM], v[NPARAM];
    static float x[MB * MD], eps[MSTEPS * MB * ML], torch_out[MSTEPS * (3 + NPARAM)];
    static mini_acts acts;
    init_linear(p, ENC1_W, ENC1_B, MD, MH, 31);
    init_linear(p, ENC2_W, ENC2_B, MH, 2 * ML, 32);
    init_linear(p, DEC1_W, DEC1_B, ML, MH, 33);
    init_linear(p, DEC2_W, DEC2_B, MH, MD, 34);
    tu_fill_uniform(x, MB * MD, 0, 1, 35);
    evae_rng rng;
    evae_rng_seed(&rng, 36, 0);
    for (size_t k = 0; k < MSTEPS * MB * ML; k++) eps[k] = (float)evae_rng_normal(&rng);
    write_f32(tu_path("params0.f32"), p, NPARAM);
    write_f32(tu_path("x.f32"), x, MB * MD);
    write_f32(tu_path("eps.f32"), eps, MSTEPS * MB * ML);

    int rc = tu_system("%s %s/layers_torch_oracle.py %s %d %d %d %d %d %.17g %.17g %.17g", py, data_dir(),
                       tu_tmpdir(), MB, MD, MH, ML, MSTEPS, MLR, MBETA, MMAX_NORM);
    assert_int_equal(rc, 0);
    FILE *f = fopen(tu_path("torch_out.f32"), "rb");
    assert_non_null(f);
    assert_int_equal(fread(torch_out, sizeof(float), MSTEPS * (3 + NPARAM), f), MSTEPS * (3 + NPARAM));
    fclose(f);

    evae_adam opt;
    evae_adam_init(&opt, MLR);
    int clipped = 0;
    for (int s = 0; s < MSTEPS; s++) {
        double got[3];
        mini_train_step(p, grad, m, v, &opt, x, eps + s * MB * ML, &acts, got);
        const float *want = torch_out + s * (3 + NPARAM);
        print_message("step %d: bce %.7g / %.7g, kl %.7g / %.7g, norm %.7g / %.7g\n", s, got[0], (double)want[0],
                      got[1], (double)want[1], got[2], (double)want[2]);
        assert_close(got[0], want[0], 0, 1e-5);
        assert_close(got[1], want[1], 0, 1e-5);
        assert_close(got[2], want[2], 0, 1e-5);
        clipped += got[2] > MMAX_NORM;
        for (size_t k = 0; k < NPARAM; k++) {
            if (!(fabs(p[k] - want[3 + k]) <= 1e-5 * fabs(want[3 + k]) + 1e-7))
                fail_msg("step %d, parameter %zu: %.9g, torch %.9g", s, k, (double)p[k], (double)want[3 + k]);
        }
    }
    assert_true(clipped > 0); /* the run exercised clipping */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adam_two_steps_by_hand),
        cmocka_unit_test(adam_weight_decay_is_l2_on_the_gradient),
        cmocka_unit_test(adam_first_step_moves_by_lr),
        cmocka_unit_test(adam_rejects_bad_hyperparameters),
        cmocka_unit_test(clip_grad_norm_known_vector),
        cmocka_unit_test(clip_grad_norm_large_and_thread_independent),
        cmocka_unit_test(plateau_halves_after_patience_bad_epochs),
        cmocka_unit_test(plateau_min_lr_cooldown_and_nan),
        cmocka_unit_test(early_stop_fires_at_the_right_epoch),
        cmocka_unit_test(torch_oracle_training_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
