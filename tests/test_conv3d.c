/*
 * conv3d / transposed conv3d through FFTs, checked against a naive direct
 * convolution written here from PyTorch's definitions (double accumulation),
 * the adjoint identity, finite differences, determinism, bad shapes,
 * allocation failures and, when it is installed, PyTorch itself.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv3d.h"


void evae_fail_allocation_after(unsigned long n); /* core.h's test hook */

/* ---- a small random generator of the test's own -------------------------- */

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rng_range(size_t lo, size_t hi) /* [lo, hi] */
{
    return lo + (size_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

static float *random_floats(size_t n, uint64_t seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    tu_fill_uniform(p, n, -1.0, 1.0, seed);
    return p;
}

/* ---- the naive oracle ------------------------------------------------------- */

/* One strided convolution between a big side (C channels, dims n) and a
 * small side (O channels, dims m), as in PyTorch:
 *   Conv3d:          x is big, y is small, y = fwd(x)
 *   ConvTranspose3d: x is small, y is big, y = adj(x) (its definition:
 *   every input sample scatters w·x onto outputs s·p + k − pad). */
typedef struct geom {
    size_t N, C, O;
    size_t n[3], m[3], k[3], s[3], p[3];
} geom;

static geom geom_of(const evae_conv3d_shape *sh, size_t batch)
{
    geom g;
    g.N = batch;
    g.C = sh->transposed ? sh->out_channels : sh->in_channels;
    g.O = sh->transposed ? sh->in_channels : sh->out_channels;
    for (int a = 0; a < 3; a++) {
        g.k[a] = sh->kernel[a];
        g.s[a] = sh->stride[a];
        g.p[a] = sh->pad[a];
        if (sh->transposed) {
            g.m[a] = sh->in_dims[a];
            g.n[a] = (sh->in_dims[a] - 1) * sh->stride[a] - 2 * sh->pad[a] + sh->kernel[a] + sh->output_padding[a];
        } else {
            g.n[a] = sh->in_dims[a];
            g.m[a] = (sh->in_dims[a] + 2 * sh->pad[a] - sh->kernel[a]) / sh->stride[a] + 1;
        }
    }
    return g;
}

static size_t vol(const size_t d[3])
{
    return d[0] * d[1] * d[2];
}

static size_t wcount(const geom *g)
{
    return g->O * g->C * vol(g->k);
}

/* Calls fn(big index, small index, weight index) for every (n, o, c, p, k)
 * whose big-side sample s·p + k − pad lies inside the big side. */
#define NAIVE_LOOP(g, BODY)                                                                                      \
    for (size_t nn = 0; nn < (g)->N; nn++)                                                                       \
        for (size_t o = 0; o < (g)->O; o++)                                                                      \
            for (size_t c = 0; c < (g)->C; c++)                                                                  \
                for (size_t py = 0; py < (g)->m[0]; py++)                                                        \
                    for (size_t px = 0; px < (g)->m[1]; px++)                                                    \
                        for (size_t pe = 0; pe < (g)->m[2]; pe++)                                                \
                            for (size_t ky = 0; ky < (g)->k[0]; ky++) {                                          \
                                long iy = (long)((g)->s[0] * py + ky) - (long)(g)->p[0];                         \
                                if (iy < 0 || iy >= (long)(g)->n[0]) continue;                                   \
                                for (size_t kx = 0; kx < (g)->k[1]; kx++) {                                      \
                                    long ix = (long)((g)->s[1] * px + kx) - (long)(g)->p[1];                     \
                                    if (ix < 0 || ix >= (long)(g)->n[1]) continue;                               \
                                    for (size_t ke = 0; ke < (g)->k[2]; ke++) {                                  \
                                        long ie = (long)((g)->s[2] * pe + ke) - (long)(g)->p[2];                 \
                                        if (ie < 0 || ie >= (long)(g)->n[2]) continue;                           \
                                        size_t bi =                                                              \
                                            (((nn * (g)->C + c) * (g)->n[0] + (size_t)iy) * (g)->n[1] +          \
                                             (size_t)ix) * (g)->n[2] + (size_t)ie;                               \
                                        size_t si = (((nn * (g)->O + o) * (g)->m[0] + py) * (g)->m[1] + px) *    \
                                                        (g)->m[2] + pe;                                          \
                                        size_t wi = (((o * (g)->C + c) * (g)->k[0] + ky) * (g)->k[1] + kx) *     \
                                                        (g)->k[2] + ke;                                          \
                                        BODY;                                                                    \
                                    }                                                                            \
                                }                                                                                \
                            }

/* small = Σ w · big (a Conv3d without bias). */
static double *naive_fwd(const geom *g, const float *big, const float *w)
{
    double *small = calloc(g->N * g->O * vol(g->m) + 1, sizeof *small);
    assert_non_null(small);
    NAIVE_LOOP(g, small[si] += (double)w[wi] * big[bi])
    return small;
}

/* big = Σ w · small scattered (a ConvTranspose3d without bias). */
static double *naive_adj(const geom *g, const float *small, const float *w)
{
    double *big = calloc(g->N * g->C * vol(g->n) + 1, sizeof *big);
    assert_non_null(big);
    NAIVE_LOOP(g, big[bi] += (double)w[wi] * small[si])
    return big;
}

/* dw = Σ small ⊗ big. */
static double *naive_grad(const geom *g, const float *small, const float *big)
{
    double *dw = calloc(wcount(g) + 1, sizeof *dw);
    assert_non_null(dw);
    NAIVE_LOOP(g, dw[wi] += (double)small[si] * big[bi])
    return dw;
}

static double *channel_sums(const float *t, size_t N, size_t C, size_t volume)
{
    double *s = calloc(C, sizeof *s);
    assert_non_null(s);
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < volume; i++) s[c] += t[(n * C + c) * volume + i];
    return s;
}

/* max |got − base − ref| ≤ 1e-4 · max |ref| (base: what was there before
 * an accumulating call, or NULL). */
static void expect_close(const char *what, const float *got, const float *base, const double *ref, size_t n,
                         const char *case_name)
{
    double scale = 0.0, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (base ? (double)base[i] : 0.0) - ref[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    if (!(worst <= 1e-4 * scale + 1e-7))
        fail_msg("%s, %s: |error| %.3g at %zu (got %.7g, expected %.7g) exceeds 1e-4 × max %.3g", case_name, what,
                 worst, at, (double)got[at] - (base ? base[at] : 0.0), ref[at], scale);
}

/* ---- one layer against the oracle --------------------------------------- */

static void shape_name(const evae_conv3d_shape *sh, size_t batch, char *buf, size_t size)
{
    snprintf(buf, size,
             "%s %zu→%zu in %zux%zux%zu k %zux%zux%zu s %zux%zux%zu p %zux%zux%zu op %zux%zux%zu batch %zu",
             sh->transposed ? "ConvT3d" : "Conv3d", sh->in_channels, sh->out_channels, sh->in_dims[0],
             sh->in_dims[1], sh->in_dims[2], sh->kernel[0], sh->kernel[1], sh->kernel[2], sh->stride[0],
             sh->stride[1], sh->stride[2], sh->pad[0], sh->pad[1], sh->pad[2], sh->output_padding[0],
             sh->output_padding[1], sh->output_padding[2], batch);
}

/* The layer's outputs and accumulated gradients against the oracle's. */
typedef struct oracle {
    double *y, *dx, *dw, *db;
} oracle;

static void check_one_engine(const evae_conv3d_shape *sh, size_t batch, uint64_t seed, const oracle *ref,
                             const char *name)
{
    geom g = geom_of(sh, batch);
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, (int)batch));
    size_t out_dims[3];
    evae_conv3d_out_dims(L, out_dims);
    const size_t *want = sh->transposed ? g.n : g.m;
    for (int a = 0; a < 3; a++) assert_int_equal(out_dims[a], want[a]);

    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
    assert_int_equal(nw, wcount(&g));
    size_t outc = sh->out_channels;
    float *x = random_floats(nin, seed), *w = random_floats(nw, seed + 1), *b = random_floats(outc, seed + 2);
    float *dy = random_floats(nout, seed + 3), *y = random_floats(nout, seed + 4);
    float *dx = random_floats(nin, seed + 5), *dw = random_floats(nw, seed + 6), *db = random_floats(outc, seed + 7);
    float *dx0 = malloc(nin * sizeof *dx0), *dw0 = malloc(nw * sizeof *dw0), *db0 = malloc(outc * sizeof *db0);
    assert_true(dx0 && dw0 && db0);
    memcpy(dx0, dx, nin * sizeof *dx);
    memcpy(dw0, dw, nw * sizeof *dw);
    memcpy(db0, db, outc * sizeof *db);
    for (size_t i = 0; i < nout; i++) y[i] = NAN; /* forward must overwrite */

    assert_ok(evae_conv3d_forward(L, y, x, w, b));
    assert_ok(evae_conv3d_backward(L, dx, dw, db, dy, x, w));
    expect_close("forward y", y, NULL, ref->y, nout, name);
    expect_close("backward dx (accumulated)", dx, dx0, ref->dx, nin, name);
    expect_close("backward dw (accumulated)", dw, dw0, ref->dw, nw, name);
    expect_close("backward db (accumulated)", db, db0, ref->db, outc, name);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(dx0), free(dw0), free(db0);
    evae_conv3d_free(L);
}

/* The layer against the naive oracle, computed once, on each engine of
 * `engines` (see evae_conv3d_test_engine; NULL: the one set now). */
static void check_layer_on(const evae_conv3d_shape *sh, size_t batch, uint64_t seed, const int *engines, size_t count)
{
    char name[256];
    shape_name(sh, batch, name, sizeof name);
    geom g = geom_of(sh, batch);
    size_t nbig = g.N * g.C * vol(g.n), nsmall = g.N * g.O * vol(g.m), nw = wcount(&g);
    size_t nin = sh->transposed ? nsmall : nbig, nout = sh->transposed ? nbig : nsmall;
    size_t outc = sh->out_channels, outvol = vol(sh->transposed ? g.n : g.m);
    float *x = random_floats(nin, seed), *w = random_floats(nw, seed + 1), *b = random_floats(outc, seed + 2);
    float *dy = random_floats(nout, seed + 3);
    oracle ref;
    ref.y = sh->transposed ? naive_adj(&g, x, w) : naive_fwd(&g, x, w);
    for (size_t i = 0; i < nout; i++) ref.y[i] += b[(i / outvol) % outc];
    ref.dx = sh->transposed ? naive_fwd(&g, dy, w) : naive_adj(&g, dy, w);
    ref.dw = sh->transposed ? naive_grad(&g, x, dy) : naive_grad(&g, dy, x);
    ref.db = channel_sums(dy, batch, outc, outvol);
    if (!engines) check_one_engine(sh, batch, seed, &ref, name);
    for (size_t i = 0; engines && i < count; i++) {
        char with_engine[300];
        snprintf(with_engine, sizeof with_engine, "%s, engine %d", name, engines[i]);
        evae_conv3d_test_engine(engines[i]);
        check_one_engine(sh, batch, seed, &ref, with_engine);
    }
    if (engines) evae_conv3d_test_engine(0);
    free(ref.y), free(ref.dx), free(ref.dw), free(ref.db), free(x), free(w), free(b), free(dy);
}

static void check_layer(const evae_conv3d_shape *sh, size_t batch, uint64_t seed)
{
    check_layer_on(sh, batch, seed, NULL, 0);
}

static evae_conv3d_shape make_shape(bool transposed, size_t cin, size_t cout, const size_t in[3], const size_t k[3],
                                    const size_t s[3], const size_t p[3], const size_t op[3])
{
    evae_conv3d_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.transposed = transposed;
    sh.in_channels = cin;
    sh.out_channels = cout;
    for (int a = 0; a < 3; a++) {
        sh.in_dims[a] = in[a];
        sh.kernel[a] = k[a];
        sh.stride[a] = s[a];
        sh.pad[a] = p[a];
        sh.output_padding[a] = op ? op[a] : 0;
    }
    return sh;
}

#define V3(a, b, c) ((const size_t[3]){a, b, c})

/* The eight layer shapes of the model (DESIGN.md), with small channel
 * counts, on a T × T × E tile, on the given engines (NULL: as set now). */
static void check_model_layers(size_t T, size_t E, const size_t c[4], size_t batch, uint64_t seed, const int *engines,
                               size_t count)
{
    evae_conv3d_shape layers[8] = {
        make_shape(false, 1, c[0], V3(T, T, E), V3(1, 1, 7), V3(1, 1, 2), V3(0, 0, 3), NULL),
        make_shape(false, c[0], c[1], V3(T, T, E / 2), V3(3, 3, 5), V3(1, 1, 2), V3(1, 1, 2), NULL),
        make_shape(false, c[1], c[2], V3(T, T, E / 4), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), NULL),
        make_shape(false, c[2], c[3], V3(T / 2, T / 2, E / 8), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), NULL),
        make_shape(true, c[3], c[2], V3(T / 4, T / 4, E / 16), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), V3(1, 1, 1)),
        make_shape(true, c[2], c[1], V3(T / 2, T / 2, E / 8), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), V3(1, 1, 1)),
        make_shape(true, c[1], c[0], V3(T, T, E / 4), V3(3, 3, 5), V3(1, 1, 2), V3(1, 1, 2), V3(0, 0, 1)),
        make_shape(true, c[0], 1, V3(T, T, E / 2), V3(1, 1, 7), V3(1, 1, 2), V3(0, 0, 3), V3(0, 0, 1)),
    };
    for (int i = 0; i < 8; i++) check_layer_on(&layers[i], batch, seed + 100 * (uint64_t)i, engines, count);
}

static void test_model_layers_small(void **state)
{
    (void)state;
    check_model_layers(8, 32, (const size_t[4]){2, 3, 4, 5}, 2, 11, NULL, 0);
}

static void test_model_layers_tile24(void **state)
{
    (void)state;
    /* the preset's tile, on the cost model's choice and on every engine */
    static const int engines[] = {0, 1, 2, 3, 4};
    check_model_layers(24, 64, (const size_t[4]){2, 3, 3, 4}, 1, 23, engines, 5);
}

/* Shapes outside the model: one strided axis, odd sizes, kernel = input,
 * 5 and 1 channels, batch > 1, stride 3, kernel shorter than the stride,
 * padding as large as the kernel. */
static void test_other_shapes(void **state)
{
    (void)state;
    evae_conv3d_shape shapes[] = {
        make_shape(false, 2, 3, V3(7, 5, 6), V3(3, 2, 3), V3(2, 1, 1), V3(1, 0, 1), NULL),
        make_shape(false, 2, 2, V3(3, 4, 5), V3(3, 4, 5), V3(1, 1, 1), V3(0, 0, 0), NULL),
        make_shape(false, 5, 1, V3(4, 5, 9), V3(2, 3, 4), V3(1, 2, 3), V3(0, 1, 2), NULL),
        make_shape(false, 1, 5, V3(1, 1, 50), V3(1, 1, 9), V3(1, 1, 3), V3(0, 0, 4), NULL),
        make_shape(false, 3, 2, V3(5, 6, 7), V3(1, 2, 3), V3(2, 3, 2), V3(0, 0, 1), NULL),
        make_shape(false, 2, 3, V3(5, 5, 5), V3(2, 2, 2), V3(1, 1, 1), V3(2, 2, 2), NULL),
        make_shape(false, 5, 5, V3(9, 3, 17), V3(3, 3, 3), V3(1, 1, 1), V3(1, 1, 1), NULL),
        make_shape(true, 2, 3, V3(3, 4, 5), V3(2, 3, 4), V3(3, 2, 1), V3(0, 1, 1), V3(2, 1, 0)),
        make_shape(true, 5, 1, V3(2, 3, 7), V3(3, 1, 4), V3(2, 1, 3), V3(1, 0, 1), V3(1, 0, 2)),
        make_shape(true, 1, 5, V3(4, 4, 4), V3(3, 3, 3), V3(1, 1, 1), V3(0, 0, 0), NULL),
        make_shape(true, 3, 2, V3(3, 3, 3), V3(1, 2, 1), V3(2, 2, 2), V3(0, 0, 0), V3(1, 0, 1)),
        make_shape(false, 1, 1, V3(1, 1, 1), V3(1, 1, 1), V3(1, 1, 1), V3(0, 0, 0), NULL),
    };
    size_t batches[] = {2, 1, 3, 2, 1, 2, 1, 3, 2, 1, 2, 1};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_layer(&shapes[i], batches[i], 1000 + 10 * i);
}

/* Random shapes: kernels 1–5, strides 1–3, paddings up to the kernel,
 * both kinds of layer, 1–5 channels, batches 1–3. */
static void test_random_shapes(void **state)
{
    (void)state;
    rng_state = 0x2545F4914F6CDD1Dull;
    for (int trial = 0; trial < 40; trial++) {
        bool transposed = rng_next() & 1;
        size_t in[3], k[3], s[3], p[3], op[3];
        for (int a = 0; a < 3; a++) {
            k[a] = rng_range(1, 5);
            s[a] = rng_range(1, 3);
            p[a] = rng_range(0, k[a] - 1);
            op[a] = transposed ? rng_range(0, s[a] - 1) : 0;
            if (transposed) {
                in[a] = rng_range(1, 6);
                while ((in[a] - 1) * s[a] + k[a] + op[a] <= 2 * p[a]) in[a]++;
            } else {
                in[a] = rng_range(1, 12);
                if (in[a] + 2 * p[a] < k[a]) in[a] = k[a];
            }
        }
        evae_conv3d_shape sh = make_shape(transposed, rng_range(1, 5), rng_range(1, 5), in, k, s, p, op);
        check_layer(&sh, rng_range(1, 3), 5000 + (uint64_t)trial);
    }
}

/* Several chunks per call: the weight-gradient sum runs over chunks and the
 * overlap-add crosses chunk boundaries. */
static void test_many_chunks(void **state)
{
    (void)state;
    evae_conv3d_test_chunk_cap(8);
    evae_conv3d_shape shapes[] = {
        make_shape(false, 3, 4, V3(12, 12, 24), V3(3, 3, 5), V3(1, 1, 2), V3(1, 1, 2), NULL),
        make_shape(true, 4, 3, V3(6, 6, 12), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), V3(1, 1, 1)),
        make_shape(true, 2, 1, V3(5, 4, 40), V3(1, 1, 7), V3(1, 1, 2), V3(0, 0, 3), V3(0, 0, 1)),
    };
    for (size_t i = 0; i < 3; i++) check_layer(&shapes[i], 2, 7000 + 10 * i);
}

static int remove_test_settings(void **state)
{
    (void)state;
    evae_conv3d_test_chunk_cap(0);
    evae_conv3d_test_engine(0);
    return 0;
}

/* Each engine (1 FFT, 2 direct, 3 GEMM, 4 GEMM with its vector kernel) on
 * every shape above, whatever the cost model would pick. */
static void test_engines_forced(void **state)
{
    for (int engine = 1; engine <= 4; engine++) {
        evae_conv3d_test_engine(engine);
        test_model_layers_small(state);
        test_other_shapes(state);
        test_random_shapes(state);
        evae_conv3d_test_chunk_cap(8);
        test_many_chunks(state);
        evae_conv3d_test_chunk_cap(0);
    }
}

/* ---- the adjoint identity --------------------------------------------------- */

static double dot(const float *a, const float *b, size_t n, double *abs_sum)
{
    double s = 0.0, t = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        t += fabs((double)a[i] * b[i]);
    }
    *abs_sum = t;
    return s;
}

/* <layer(x), v> = <x, layer_backward_dx(v)> without bias. */
static void check_adjoint(const evae_conv3d_shape *sh, size_t batch, uint64_t seed)
{
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, (int)batch));
    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
    float *x = random_floats(nin, seed), *w = random_floats(nw, seed + 1), *v = random_floats(nout, seed + 2);
    float *y = calloc(nout, sizeof *y), *dx = calloc(nin, sizeof *dx);
    assert_true(y && dx);
    assert_ok(evae_conv3d_forward(L, y, x, w, NULL));
    assert_ok(evae_conv3d_backward(L, dx, NULL, NULL, v, NULL, w));
    double m1 = 0.0, m2 = 0.0;
    double lhs = dot(y, v, nout, &m1), rhs = dot(x, dx, nin, &m2);
    assert_true(m1 > 0.0);
    assert_close(lhs, rhs, 1e-5 * (m1 + m2), 0.0);
    free(x), free(w), free(v), free(y), free(dx);
    evae_conv3d_free(L);
}

static void test_adjoint_identity(void **state)
{
    (void)state;
    check_adjoint(&(evae_conv3d_shape){.in_channels = 4, .out_channels = 6, .in_dims = {10, 9, 40}, .kernel = {3, 3, 5},
                                       .stride = {1, 1, 2}, .pad = {1, 1, 2}},
                  2, 31);
    check_adjoint(&(evae_conv3d_shape){.in_channels = 6, .out_channels = 3, .in_dims = {5, 6, 9}, .kernel = {3, 3, 3},
                                       .stride = {2, 2, 2}, .pad = {1, 1, 1}, .output_padding = {1, 0, 1},
                                       .transposed = true},
                  2, 41);
    check_adjoint(&(evae_conv3d_shape){.in_channels = 1, .out_channels = 5, .in_dims = {4, 3, 64}, .kernel = {1, 1, 7},
                                       .stride = {1, 1, 2}, .pad = {0, 0, 3}},
                  3, 51);
}

/* ---- finite differences ------------------------------------------------------ */

/* loss(x, w, b) = Σ ½ y² + g·y, y = the layer in double (the oracle). */
static double loss_of(const geom *gm, const evae_conv3d_shape *sh, const float *x, const float *w, const float *b,
                      const float *g)
{
    double *y = sh->transposed ? naive_adj(gm, x, w) : naive_fwd(gm, x, w);
    size_t outc = sh->out_channels, outvol = vol(sh->transposed ? gm->n : gm->m), n = gm->N * outc * outvol;
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double yi = y[i] + b[(i / outvol) % outc];
        loss += 0.5 * yi * yi + g[i] * yi;
    }
    free(y);
    return loss;
}

/* Central difference of the loss in one float entry (exact for a quadratic
 * loss up to rounding, so h can be large). */
static double central_difference(const geom *gm, const evae_conv3d_shape *sh, float *x, float *w, float *b,
                                 const float *g, float *entry)
{
    const float h = 0.25f, keep = *entry;
    *entry = keep + h;
    double up = loss_of(gm, sh, x, w, b, g);
    *entry = keep - h;
    double down = loss_of(gm, sh, x, w, b, g);
    *entry = keep;
    return (up - down) / (2.0 * h);
}

static void check_finite_differences(const evae_conv3d_shape *sh, size_t batch, uint64_t seed)
{
    geom gm = geom_of(sh, batch);
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, (int)batch));
    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
    size_t outc = sh->out_channels;
    float *x = random_floats(nin, seed), *w = random_floats(nw, seed + 1), *b = random_floats(outc, seed + 2);
    float *g = random_floats(nout, seed + 3), *y = calloc(nout, sizeof *y), *dy = calloc(nout, sizeof *dy);
    float *dx = calloc(nin, sizeof *dx), *dw = calloc(nw, sizeof *dw), *db = calloc(outc, sizeof *db);
    assert_true(y && dy && dx && dw && db);
    assert_ok(evae_conv3d_forward(L, y, x, w, b));
    for (size_t i = 0; i < nout; i++) dy[i] = y[i] + g[i]; /* ∂loss/∂y */
    assert_ok(evae_conv3d_backward(L, dx, dw, db, dy, x, w));
    double scale = 0.0;
    for (size_t i = 0; i < nw; i++) scale = fmax(scale, fabs(dw[i]));
    for (int t = 0; t < 4; t++) {
        size_t wi = (size_t)(rng_next() % nw), xi = (size_t)(rng_next() % nin), bi = (size_t)(rng_next() % outc);
        assert_close(dw[wi], central_difference(&gm, sh, x, w, b, g, &w[wi]), 1e-4 * scale, 1e-4);
        assert_close(dx[xi], central_difference(&gm, sh, x, w, b, g, &x[xi]), 1e-4 * scale, 1e-4);
        assert_close(db[bi], central_difference(&gm, sh, x, w, b, g, &b[bi]), 1e-4 * scale, 1e-4);
    }
    free(x), free(w), free(b), free(g), free(y), free(dy), free(dx), free(dw), free(db);
    evae_conv3d_free(L);
}

static void test_finite_differences(void **state)
{
    (void)state;
    rng_state = 12345;
    check_finite_differences(&(evae_conv3d_shape){.in_channels = 2, .out_channels = 3, .in_dims = {5, 4, 12},
                                                  .kernel = {3, 3, 5}, .stride = {1, 1, 2}, .pad = {1, 1, 2}},
                             2, 61);
    check_finite_differences(&(evae_conv3d_shape){.in_channels = 3, .out_channels = 2, .in_dims = {3, 2, 4},
                                                  .kernel = {3, 3, 3}, .stride = {2, 2, 2}, .pad = {1, 1, 1},
                                                  .output_padding = {1, 1, 1}, .transposed = true},
                             2, 71);
}

/* ---- determinism ------------------------------------------------------------ */

static void run_once(const evae_conv3d_shape *sh, size_t batch, float **y, float **dx, float **dw, float **db)
{
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, (int)batch));
    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
    size_t outc = sh->out_channels;
    float *x = random_floats(nin, 81), *w = random_floats(nw, 82), *b = random_floats(outc, 83);
    float *g = random_floats(nout, 84);
    *y = calloc(nout, sizeof **y), *dx = calloc(nin, sizeof **dx), *dw = calloc(nw, sizeof **dw);
    *db = calloc(outc, sizeof **db);
    assert_true(*y && *dx && *dw && *db);
    assert_ok(evae_conv3d_forward(L, *y, x, w, b));
    assert_ok(evae_conv3d_backward(L, *dx, *dw, *db, g, x, w));
    free(x), free(w), free(b), free(g);
    evae_conv3d_free(L);
}

static void expect_same_bits(const evae_conv3d_shape *sh, size_t batch, int threads_a, int threads_b)
{
    float *y[2], *dx[2], *dw[2], *db[2];
    assert_ok(eelsvae_set_threads(threads_a));
    run_once(sh, batch, &y[0], &dx[0], &dw[0], &db[0]);
    assert_ok(eelsvae_set_threads(threads_b));
    run_once(sh, batch, &y[1], &dx[1], &dw[1], &db[1]);
    assert_ok(eelsvae_set_threads(0));
    geom g = geom_of(sh, batch);
    size_t nbig = g.N * g.C * vol(g.n), nsmall = g.N * g.O * vol(g.m);
    size_t nout = sh->transposed ? nbig : nsmall, nin = sh->transposed ? nsmall : nbig;
    assert_memory_equal(y[0], y[1], nout * sizeof(float));
    assert_memory_equal(dx[0], dx[1], nin * sizeof(float));
    assert_memory_equal(dw[0], dw[1], wcount(&g) * sizeof(float));
    assert_memory_equal(db[0], db[1], sh->out_channels * sizeof(float));
    for (int i = 0; i < 2; i++) free(y[i]), free(dx[i]), free(dw[i]), free(db[i]);
}

static void test_determinism(void **state)
{
    (void)state;
    evae_conv3d_shape conv = {.in_channels = 4, .out_channels = 6, .in_dims = {12, 12, 32}, .kernel = {3, 3, 3},
                              .stride = {2, 2, 2}, .pad = {1, 1, 1}};
    evae_conv3d_shape convt = {.in_channels = 6, .out_channels = 4, .in_dims = {12, 12, 16}, .kernel = {3, 3, 5},
                               .stride = {1, 1, 2}, .pad = {1, 1, 2}, .output_padding = {0, 0, 1},
                               .transposed = true};
    expect_same_bits(&conv, 3, 2, 2);  /* two runs, same bits */
    expect_same_bits(&convt, 3, 2, 2);
    expect_same_bits(&conv, 3, 1, 2);  /* and the thread count does not matter */
    expect_same_bits(&convt, 3, 1, 2);
    for (int engine = 1; engine <= 4; engine++) { /* on every engine */
        evae_conv3d_test_engine(engine);
        expect_same_bits(&conv, 3, 1, 2);
        expect_same_bits(&convt, 3, 1, 2);
    }
    evae_conv3d_test_engine(0);
}

/* ---- kept input spectra ------------------------------------------------------ */

/* Forward then backward; with keep, the backward reuses the forward's input
 * spectra when it gets the same x (bwd_x == NULL), else recomputes. With
 * `overwrite`, x is overwritten in place between the two (by bwd_x's
 * values): a layer that kept x's spectra still uses them, as documented. */
static void step(const evae_conv3d_shape *sh, bool keep, const float *bwd_x, bool overwrite, float **y, float **dx,
                 float **dw)
{
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, 3));
    assert_ok(evae_conv3d_keep_input_spectra(L, keep));
    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
    float *x = random_floats(nin, 131), *w = random_floats(nw, 132), *g = random_floats(nout, 133);
    *y = calloc(nout, sizeof **y), *dx = calloc(nin, sizeof **dx), *dw = calloc(nw, sizeof **dw);
    assert_true(*y && *dx && *dw);
    assert_ok(evae_conv3d_forward(L, *y, x, w, NULL));
    if (overwrite) memcpy(x, bwd_x, nin * sizeof *x);
    assert_ok(evae_conv3d_backward(L, *dx, *dw, NULL, g, bwd_x && !overwrite ? bwd_x : x, w));
    free(x), free(w), free(g);
    evae_conv3d_free(L);
}

/* On the FFT engine (several chunks) and both GEMM paths (one block). */
static void test_keep_input_spectra(void **state)
{
    (void)state;
    evae_conv3d_shape shapes[] = {
        make_shape(false, 3, 4, V3(10, 9, 24), V3(3, 3, 5), V3(1, 1, 2), V3(1, 1, 2), NULL),
        make_shape(true, 4, 3, V3(5, 5, 6), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), V3(1, 0, 1)),
    };
    static const int engines[] = {1, 3, 4};
    for (int e = 0; e < 3; e++) {
        evae_conv3d_test_engine(engines[e]);
        evae_conv3d_test_chunk_cap(engines[e] == 1 ? 16 : 0);
        for (int i = 0; i < 2; i++) {
            geom g = geom_of(&shapes[i], 3);
            size_t nbig = g.N * g.C * vol(g.n), nsmall = g.N * g.O * vol(g.m);
            size_t nin = shapes[i].transposed ? nsmall : nbig, nout = shapes[i].transposed ? nbig : nsmall;
            float *y[4], *dx[4], *dw[4];
            step(&shapes[i], false, NULL, false, &y[0], &dx[0], &dw[0]);
            step(&shapes[i], true, NULL, false, &y[1], &dx[1], &dw[1]);
            /* same spectra, same arithmetic: the same bits */
            assert_memory_equal(y[0], y[1], nout * sizeof(float));
            assert_memory_equal(dx[0], dx[1], nin * sizeof(float));
            assert_memory_equal(dw[0], dw[1], wcount(&g) * sizeof(float));
            /* another x at the backward: its own dw, not the kept one */
            float *other = random_floats(nin, 999), *x = random_floats(nin, 131);
            step(&shapes[i], true, other, false, &y[2], &dx[2], &dw[2]);
            float *dy = random_floats(nout, 133);
            double *ref = shapes[i].transposed ? naive_grad(&g, other, dy) : naive_grad(&g, dy, other);
            expect_close("dw with another x", dw[2], NULL, ref, wcount(&g), "keep_input_spectra");
            free(ref);
            /* x overwritten in place: the kept spectra (the forward's x) serve */
            step(&shapes[i], true, other, true, &y[3], &dx[3], &dw[3]);
            ref = shapes[i].transposed ? naive_grad(&g, x, dy) : naive_grad(&g, dy, x);
            expect_close("dw from the kept spectra", dw[3], NULL, ref, wcount(&g), "keep_input_spectra");
            free(ref), free(dy), free(other), free(x);
            for (int j = 0; j < 4; j++) free(y[j]), free(dx[j]), free(dw[j]);
        }
    }
}

/* ---- bad input -------------------------------------------------------------- */

static void test_bad_shapes(void **state)
{
    (void)state;
    evae_conv3d *L = NULL;
    size_t dims[3];
    evae_conv3d_shape ok = {.in_channels = 2, .out_channels = 3, .in_dims = {4, 4, 8}, .kernel = {3, 3, 3},
                            .stride = {1, 1, 2}, .pad = {1, 1, 1}};
    evae_conv3d_shape sh = ok;
    sh.in_channels = 0;
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    sh = ok;
    sh.in_dims[2] = 0;
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    sh = ok;
    sh.stride[1] = 0;
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    sh = ok;
    sh.kernel[0] = 7; /* 4 + 2·1 < 7 */
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "kernel 7"));
    sh = ok;
    sh.output_padding[2] = 1; /* only for transposed layers */
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    sh = ok;
    sh.transposed = true;
    sh.output_padding[2] = 2; /* ≥ stride 2 */
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    sh = ok;
    sh.transposed = true;
    sh.in_dims[0] = 1;
    sh.kernel[0] = 1;
    sh.pad[0] = 1; /* output (1 − 1)·1 + 1 − 2 < 1 */
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_DIMENSION);
    sh = ok;
    sh.in_dims[0] = sh.in_dims[1] = sh.in_dims[2] = 1u << 30;
    sh.in_channels = (size_t)1 << 40;
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_OVERFLOW);
    sh = ok;
    sh.in_dims[0] = SIZE_MAX;
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_OVERFLOW);
    assert_status(evae_conv3d_create(&L, &ok, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_create(NULL, &ok, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_create(&L, NULL, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_output_dims(&sh, dims), EELSVAE_ERR_OVERFLOW);
    sh = ok;
    sh.in_dims[2] = sh.kernel[2] = 2100; /* FFT tiles would need 4199 points along E */
    sh.stride[2] = 1;
    assert_status(evae_conv3d_create(&L, &sh, 1), EELSVAE_ERR_UNSUPPORTED);
    assert_null(L);

    assert_ok(evae_conv3d_output_dims(&ok, dims));
    assert_int_equal(dims[0], 4), assert_int_equal(dims[1], 4), assert_int_equal(dims[2], 4);
    assert_ok(evae_conv3d_create(&L, &ok, 2));
    float x[2 * 2 * 128] = {0}, w[3 * 2 * 27] = {0}, y[2 * 3 * 64] = {0};
    assert_status(evae_conv3d_forward(L, NULL, x, w, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_forward(L, y, x, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_backward(L, NULL, w, NULL, y, NULL, w), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_backward(L, x, NULL, NULL, y, x, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_backward(L, x, NULL, NULL, NULL, x, w), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_set_batch(L, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(evae_conv3d_forward(L, y, x, w, NULL));
    for (size_t i = 0; i < sizeof y / sizeof y[0]; i++) assert_true(y[i] == 0.0f);
    evae_conv3d_free(L);
    evae_conv3d_free(NULL);
}

/* A smaller batch after creation (the last, partial batch of an epoch). */
static void test_set_batch(void **state)
{
    (void)state;
    evae_conv3d_shape sh = {.in_channels = 3, .out_channels = 2, .in_dims = {6, 5, 8}, .kernel = {3, 3, 3},
                            .stride = {2, 2, 2}, .pad = {1, 1, 1}, .output_padding = {1, 0, 1}, .transposed = true};
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, &sh, 4));
    assert_ok(evae_conv3d_set_batch(L, 1));
    geom g = geom_of(&sh, 1);
    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L);
    assert_int_equal(nin, g.O * vol(g.m));
    float *x = random_floats(nin, 91), *w = random_floats(evae_conv3d_weight_count(L), 92);
    float *y = calloc(nout, sizeof *y);
    assert_non_null(y);
    assert_ok(evae_conv3d_forward(L, y, x, w, NULL));
    double *ref = naive_adj(&g, x, w);
    expect_close("forward after set_batch(1)", y, NULL, ref, nout, "set_batch");
    free(ref), free(x), free(w), free(y);
    evae_conv3d_free(L);
}

/* Every allocation of create can fail: NOMEM with a message, nothing leaked
 * (ASan's leak checker watches). */
static void test_allocation_failures(void **state)
{
    (void)state;
    evae_conv3d_shape sh = {.in_channels = 2, .out_channels = 3, .in_dims = {6, 6, 16}, .kernel = {3, 3, 5},
                            .stride = {1, 1, 2}, .pad = {1, 1, 2}};
    for (unsigned long n = 1; n < 100; n++) {
        evae_conv3d *L = NULL;
        evae_fail_allocation_after(n);
        eelsvae_status st = evae_conv3d_create(&L, &sh, 2);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            assert_true(n > 5);
            evae_conv3d_free(L);
            return;
        }
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_true(eelsvae_last_error()[0] != '\0');
        assert_null(L);
    }
    fail_msg("create still failing after 100 allocations");
}

/* ---- the workspace estimate ---------------------------------------------------- */

/* evae_conv3d_workspace_bytes equals, to the byte, what create then
 * allocates (counted at each allocation); where mallinfo2 can watch, the
 * heap grows by that much give or take FFTW's plans, evae_malloc's 64-byte
 * rounding and malloc's headers (64 kB + 1 %). */
static void expect_workspace_exact(const evae_conv3d_shape *sh, int batch, const char *what)
{
    size_t predicted = 0;
    assert_ok(evae_conv3d_workspace_bytes(sh, batch, &predicted));
    size_t before = tu_heap_in_use();
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, batch));
    size_t grown = tu_heap_in_use() - before, allocated = evae_conv3d_allocated_bytes(L);
    evae_conv3d_free(L);
    char name[160];
    shape_name(sh, (size_t)batch, name, sizeof name);
    if (predicted != allocated)
        fail_msg("%s %s: workspace says %zu bytes, create allocated %zu", what, name, predicted, allocated);
    assert_true(predicted > (size_t)(sh->in_channels * sh->out_channels)); /* not a zero from a lost branch */
    if (!tu_heap_measurable()) return;
    double slack = 65536.0 + 0.01 * (double)allocated;
    if (fabs((double)grown - (double)allocated) > slack)
        fail_msg("%s %s: create counted %zu bytes but the heap grew by %zu", what, name, allocated, grown);
}

static void test_workspace_matches_create(void **state)
{
    (void)state;
    const evae_conv3d_shape shapes[] = {
        /* the FAST preset's stride-2 3×3×3 layers (GEMM by the cost model) */
        make_shape(false, 16, 32, V3(24, 24, 80), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), NULL),
        make_shape(true, 32, 16, V3(12, 12, 40), V3(3, 3, 3), V3(2, 2, 2), V3(1, 1, 1), V3(1, 1, 1)),
        /* the paper preset's 3×3×5 layers, one channel on a side, odd strides */
        make_shape(false, 1, 8, V3(12, 12, 64), V3(3, 3, 5), V3(1, 1, 2), V3(1, 1, 2), NULL),
        make_shape(false, 8, 16, V3(12, 12, 32), V3(3, 3, 5), V3(1, 1, 1), V3(1, 1, 2), NULL),
        make_shape(true, 8, 1, V3(6, 6, 32), V3(3, 3, 5), V3(2, 2, 2), V3(1, 1, 2), V3(1, 1, 1)),
        make_shape(true, 3, 5, V3(5, 4, 9), V3(1, 2, 7), V3(1, 3, 2), V3(0, 1, 3), V3(0, 2, 1)),
    };
    const int batches[] = {1, 3};
    char what[48];
    for (int engine = 0; engine <= 4; engine++) {
        evae_conv3d_test_engine(engine);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (size_t b = 0; b < 2; b++) {
                snprintf(what, sizeof what, "engine %d", engine);
                expect_workspace_exact(&shapes[i], batches[b], what);
            }
    }
    /* The test hooks that change the plan: a chunk cap, forced tiles. */
    evae_conv3d_test_engine(1);
    evae_conv3d_test_chunk_cap(8);
    expect_workspace_exact(&shapes[3], 3, "FFT, chunk cap 8");
    evae_conv3d_test_chunk_cap(0);
    evae_conv3d_test_tiles(V3(6, 5, 9));
    expect_workspace_exact(&shapes[3], 2, "FFT, tiles 6×5×9");
    evae_conv3d_test_tiles(NULL);
    /* Per-thread buffers follow the thread count. */
    evae_conv3d_test_engine(0);
    for (int threads = 1; threads <= 3; threads += 2) {
        assert_ok(eelsvae_set_threads(threads));
        snprintf(what, sizeof what, "%d threads", threads);
        expect_workspace_exact(&shapes[0], 2, what);
        expect_workspace_exact(&shapes[3], 2, what);
    }
    assert_ok(eelsvae_set_threads(0));
}

/* Differences worked out by hand on the direct loops (1 → 1 channel, a
 * 1×1×1 kernel: one phase, p = m): one item's phase tensor is 4·4·E floats,
 * each thread's output row E rounded up to 16 floats, the kernels fixed. */
static void test_workspace_by_hand(void **state)
{
    (void)state;
    evae_conv3d_test_engine(2);
    evae_conv3d_shape e8 = make_shape(false, 1, 1, V3(4, 4, 8), V3(1, 1, 1), V3(1, 1, 1), V3(0, 0, 0), NULL);
    evae_conv3d_shape e24 = make_shape(false, 1, 1, V3(4, 4, 24), V3(1, 1, 1), V3(1, 1, 1), V3(0, 0, 0), NULL);
    size_t b8 = 0, b24 = 0, b8_two = 0, b8_threads = 0;
    assert_ok(eelsvae_set_threads(1));
    assert_ok(evae_conv3d_workspace_bytes(&e8, 1, &b8));
    assert_ok(evae_conv3d_workspace_bytes(&e24, 1, &b24));
    assert_ok(evae_conv3d_workspace_bytes(&e8, 2, &b8_two));
    assert_ok(eelsvae_set_threads(3));
    assert_ok(evae_conv3d_workspace_bytes(&e8, 1, &b8_threads));
    assert_ok(eelsvae_set_threads(0));
    evae_conv3d_test_engine(0);
    assert_int_equal(b24 - b8, 4 * 4 * (24 - 8) * sizeof(float) + (32 - 16) * sizeof(float));
    assert_int_equal(b8_two - b8, 4 * 4 * 8 * sizeof(float));         /* a second item's phase tensor */
    assert_int_equal(b8_threads - b8, 2 * 16 * sizeof(float));         /* two more output rows */
}

/* Bad arguments fail as create does, with a message. */
static void test_workspace_rejects_bad_arguments(void **state)
{
    (void)state;
    evae_conv3d_shape ok = make_shape(false, 2, 3, V3(6, 6, 16), V3(3, 3, 5), V3(1, 1, 2), V3(1, 1, 2), NULL);
    evae_conv3d_shape too_big = ok;
    too_big.kernel[2] = 21; /* > 16 + 2·2 */
    size_t bytes = 7;
    assert_status(evae_conv3d_workspace_bytes(&ok, 1, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_workspace_bytes(NULL, 1, &bytes), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_workspace_bytes(&ok, 0, &bytes), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_conv3d_workspace_bytes(&too_big, 1, &bytes), EELSVAE_ERR_DIMENSION);
    evae_conv3d *L = NULL;
    assert_status(evae_conv3d_create(&L, &too_big, 1), EELSVAE_ERR_DIMENSION);
    assert_int_equal(bytes, 7); /* untouched on failure */
    assert_int_equal(evae_conv3d_allocated_bytes(NULL), 0);
}

/* ---- PyTorch, when it is installed ------------------------------------------ */

static void write_floats(const char *path, const float *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, sizeof *p, n, f), n);
    fclose(f);
}

static float *read_floats(const char *path, size_t n)
{
    float *p = malloc(n * sizeof *p);
    FILE *f = fopen(path, "rb");
    assert_true(p && f);
    assert_int_equal(fread(p, sizeof *p, n, f), n);
    fclose(f);
    return p;
}

static const char torch_script[] =
    "import sys, numpy as np, torch\n"
    "d = sys.argv[1]; t = int(sys.argv[2]); N, cin, cout = map(int, sys.argv[3:6])\n"
    "ind, k, s, p, op = [tuple(map(int, sys.argv[i:i+3])) for i in range(6, 21, 3)]\n"
    "r = lambda n, sh: torch.tensor(np.fromfile(d + '/' + n, dtype=np.float32).reshape(sh), dtype=torch.float64)\n"
    "x = r('x', (N, cin) + ind).requires_grad_()\n"
    "wsh = (cin, cout) + k if t else (cout, cin) + k\n"
    "w = r('w', wsh).requires_grad_(); b = r('b', (cout,)).requires_grad_()\n"
    "f = torch.nn.functional\n"
    "y = f.conv_transpose3d(x, w, b, s, p, op) if t else f.conv3d(x, w, b, s, p)\n"
    "dy = r('dy', tuple(y.shape)); y.backward(dy)\n"
    "for n, v in (('y', y), ('dx', x.grad), ('dw', w.grad), ('db', b.grad)):\n"
    "    v.detach().numpy().astype(np.float32).tofile(d + '/' + n + '_torch')\n";

static void check_against_torch(const char *python, const evae_conv3d_shape *sh, size_t batch, uint64_t seed)
{
    char name[256];
    shape_name(sh, batch, name, sizeof name);
    evae_conv3d *L = NULL;
    assert_ok(evae_conv3d_create(&L, sh, (int)batch));
    size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
    size_t outc = sh->out_channels;
    float *x = random_floats(nin, seed), *w = random_floats(nw, seed + 1), *b = random_floats(outc, seed + 2);
    float *dy = random_floats(nout, seed + 3), *y = calloc(nout, sizeof *y), *dx = calloc(nin, sizeof *dx);
    float *dw = calloc(nw, sizeof *dw), *db = calloc(outc, sizeof *db);
    assert_true(y && dx && dw && db);
    assert_ok(evae_conv3d_forward(L, y, x, w, b));
    assert_ok(evae_conv3d_backward(L, dx, dw, db, dy, x, w));
    write_floats(tu_path("x"), x, nin);
    write_floats(tu_path("w"), w, nw);
    write_floats(tu_path("b"), b, outc);
    write_floats(tu_path("dy"), dy, nout);
    FILE *f = fopen(tu_path("conv3d_torch.py"), "w");
    assert_non_null(f);
    fputs(torch_script, f);
    fclose(f);
    const size_t *in = sh->in_dims, *k = sh->kernel, *s = sh->stride, *p = sh->pad, *op = sh->output_padding;
    int rc = tu_system("%s %s %s %d %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu", python,
                       tu_path("conv3d_torch.py"), tu_tmpdir(), sh->transposed ? 1 : 0, batch, sh->in_channels,
                       sh->out_channels, in[0], in[1], in[2], k[0], k[1], k[2], s[0], s[1], s[2], p[0], p[1], p[2],
                       op[0], op[1], op[2]);
    assert_int_equal(rc, 0);
    const char *names[4] = {"y_torch", "dx_torch", "dw_torch", "db_torch"};
    const float *ours[4] = {y, dx, dw, db};
    size_t counts[4] = {nout, nin, nw, outc};
    for (int i = 0; i < 4; i++) {
        float *theirs = read_floats(tu_path(names[i]), counts[i]);
        double *ref = malloc(counts[i] * sizeof *ref);
        assert_non_null(ref);
        for (size_t j = 0; j < counts[i]; j++) ref[j] = theirs[j];
        expect_close(names[i], ours[i], NULL, ref, counts[i], name);
        free(ref), free(theirs);
    }
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    evae_conv3d_free(L);
}

static void test_against_pytorch(void **state)
{
    (void)state;
    const char *python = tu_python();
    if (!python) tu_skip("no Python with NumPy (EELSVAE_PYTHON)");
    if (tu_system("%s -c 'import torch' >/dev/null 2>&1", python) != 0) tu_skip("PyTorch is not installed");
    check_against_torch(python,
                        &(evae_conv3d_shape){.in_channels = 3, .out_channels = 4, .in_dims = {6, 5, 20},
                                             .kernel = {3, 3, 5}, .stride = {1, 1, 2}, .pad = {1, 1, 2}},
                        2, 101);
    check_against_torch(python,
                        &(evae_conv3d_shape){.in_channels = 4, .out_channels = 3, .in_dims = {3, 4, 5},
                                             .kernel = {3, 3, 3}, .stride = {2, 2, 2}, .pad = {1, 1, 1},
                                             .output_padding = {1, 0, 1}, .transposed = true},
                        2, 111);
    check_against_torch(python,
                        &(evae_conv3d_shape){.in_channels = 2, .out_channels = 1, .in_dims = {3, 3, 16},
                                             .kernel = {1, 1, 7}, .stride = {1, 1, 2}, .pad = {0, 0, 3},
                                             .output_padding = {0, 0, 1}, .transposed = true},
                        2, 121);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_layers_small),
        cmocka_unit_test_teardown(test_model_layers_tile24, remove_test_settings),
        cmocka_unit_test(test_other_shapes),
        cmocka_unit_test(test_random_shapes),
        cmocka_unit_test_teardown(test_many_chunks, remove_test_settings),
        cmocka_unit_test_teardown(test_engines_forced, remove_test_settings),
        cmocka_unit_test(test_adjoint_identity),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test_teardown(test_determinism, remove_test_settings),
        cmocka_unit_test_teardown(test_keep_input_spectra, remove_test_settings),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_set_batch),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test_teardown(test_workspace_matches_create, remove_test_settings),
        cmocka_unit_test_teardown(test_workspace_by_hand, remove_test_settings),
        cmocka_unit_test(test_workspace_rejects_bad_arguments),
        cmocka_unit_test(test_against_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
