/* Anomaly injection: the disk mask's geometry and the windowed energy shift
 * (exact interpolation values, centroid moves, untouched channels and
 * pixels, clamping at the axis ends, errors). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* ---- energy shift --------------------------------------------------------- */

#define PEAK_E 710.0
#define PEAK_SIGMA 1.5
#define BASELINE 10.0

/* ny × nx spectra on 690 + 0.3·i eV: a Gaussian peak at 710 eV over a
 * baseline, its height different at every pixel. */
static eelsvae_cube *peak_cube(size_t ny, size_t nx, size_t ne)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(ny, nx, ne, &c));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 690.0, 0.3, "eV"));
    float *d = eelsvae_cube_data(c);
    for (size_t p = 0; p < ny * nx; p++)
        for (size_t i = 0; i < ne; i++) {
            double e = 690.0 + 0.3 * (double)i, t = (e - PEAK_E) / PEAK_SIGMA;
            d[p * ne + i] = (float)(BASELINE + (100.0 + (double)p) * exp(-0.5 * t * t));
        }
    return c;
}

/* Centroid (eV) of the spectrum minus its baseline over channels [a, b). */
static double centroid(const float *s, size_t a, size_t b)
{
    double w = 0, we = 0;
    for (size_t i = a; i < b; i++) {
        double v = s[i] - BASELINE;
        w += v;
        we += v * (690.0 + 0.3 * (double)i);
    }
    return we / w;
}

static uint8_t *checker_mask(size_t pixels)
{
    uint8_t *m = malloc(pixels);
    assert_non_null(m);
    for (size_t p = 0; p < pixels; p++) m[p] = (uint8_t)(p % 3 == 1);
    return m;
}

/* Shift by ±0.45 eV (1.5 channels) inside 695–730 eV: in the window every
 * sample is the mean of the two original samples 1 and 2 channels away
 * (linear interpolation at half a channel), the centroid moves by the
 * shift (linear interpolation moves a centroid exactly), and everything
 * else keeps its bits. */
static void check_subchannel_shift(double shift)
{
    const size_t ny = 3, nx = 4, ne = 200;
    eelsvae_cube *c = peak_cube(ny, nx, ne), *orig = NULL;
    assert_ok(eelsvae_cube_copy(c, &orig));
    uint8_t *mask = checker_mask(ny * nx);
    size_t first = 0, count = 0;
    assert_ok(eelsvae_cube_energy_window(c, 695.0, 730.0, &first, &count));
    assert_int_equal(first, 17); /* 695 = 690 + 0.3·16.67 → channel 17 */
    assert_ok(eelsvae_cube_inject_shift(c, mask, ny * nx, 695.0, 730.0, shift));
    int dir = shift > 0 ? 1 : -1;
    for (size_t p = 0; p < ny * nx; p++) {
        const float *s = eelsvae_cube_data_const(c) + p * ne, *o = eelsvae_cube_data_const(orig) + p * ne;
        if (!mask[p]) {
            assert_memory_equal(s, o, ne * sizeof *s);
            continue;
        }
        assert_memory_equal(s, o, first * sizeof *s);
        assert_memory_equal(s + first + count, o + first + count, (ne - first - count) * sizeof *s);
        for (size_t i = first; i < first + count; i++) {
            /* E − shift sits 1.5 channels below (above) channel i */
            double want = dir > 0 ? 0.5 * (o[i - 2] + o[i - 1]) : 0.5 * (o[i + 1] + o[i + 2]);
            assert_close(s[i], want, 0, 1e-6);
        }
        double moved = centroid(s, first, first + count) - centroid(o, first, first + count);
        assert_close(moved, shift, 0.005, 0);
    }
    free(mask);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

static void test_shift_subchannel(void **state)
{
    (void)state;
    check_subchannel_shift(0.45);
    check_subchannel_shift(-0.45);
}

/* A whole number of channels copies samples bit for bit; zero changes nothing. */
static void test_shift_whole_channels(void **state)
{
    (void)state;
    eelsvae_cube *c = peak_cube(2, 2, 120), *orig = NULL;
    assert_ok(eelsvae_cube_copy(c, &orig));
    uint8_t mask[4] = {1, 1, 1, 1};
    assert_ok(eelsvae_cube_inject_shift(c, mask, 4, 690.0, 725.0, 0.0));
    assert_memory_equal(eelsvae_cube_data(c), eelsvae_cube_data(orig), 4 * 120 * sizeof(float));
    assert_ok(eelsvae_cube_inject_shift(c, mask, 4, 700.0, 720.0, 0.6));
    const float *s = eelsvae_cube_data_const(c), *o = eelsvae_cube_data_const(orig);
    for (size_t p = 0; p < 4; p++)
        for (size_t i = 34; i <= 100; i++) assert_true(s[p * 120 + i] == o[p * 120 + i - 2]);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

/* Small spectra s[i] = i² on an axis 0, 1, …, 9 eV, hand-computed. */
static eelsvae_cube *squares_cube(void)
{
    float v[10];
    for (int i = 0; i < 10; i++) v[i] = (float)(i * i);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create_from(v, 1, 1, 10, &c));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0.0, 1.0, "eV")); /* a new cube's axis is uncalibrated */
    return c;
}

static void test_shift_reads_original_and_clamps(void **state)
{
    (void)state;
    uint8_t one = 1;
    /* Window 5–9 eV, shift +2: new[i] = original[i − 2], read from the
     * original even where the window already changed it. */
    eelsvae_cube *c = squares_cube();
    assert_ok(eelsvae_cube_inject_shift(c, &one, 1, 5.0, 9.0, 2.0));
    const float want_a[10] = {0, 1, 4, 9, 16, 9, 16, 25, 36, 49};
    assert_memory_equal(eelsvae_cube_data(c), want_a, sizeof want_a);
    eelsvae_cube_free(c);
    /* Whole axis, +2.5: past the start the first value is held. */
    c = squares_cube();
    assert_ok(eelsvae_cube_inject_shift(c, &one, 1, 0.0, 9.0, 2.5));
    const float want_b[10] = {0, 0, 0, 0.5f, 2.5f, 6.5f, 12.5f, 20.5f, 30.5f, 42.5f};
    for (int i = 0; i < 10; i++) assert_close(eelsvae_cube_data(c)[i], want_b[i], 1e-6, 0);
    eelsvae_cube_free(c);
    /* Whole axis, −2.5: past the end the last value is held. */
    c = squares_cube();
    assert_ok(eelsvae_cube_inject_shift(c, &one, 1, 0.0, 9.0, -2.5));
    const float want_c[10] = {6.5f, 12.5f, 20.5f, 30.5f, 42.5f, 56.5f, 72.5f, 81, 81, 81};
    for (int i = 0; i < 10; i++) assert_close(eelsvae_cube_data(c)[i], want_c[i], 1e-6, 0);
    eelsvae_cube_free(c);
    /* A shift larger than the axis holds the end value everywhere. */
    c = squares_cube();
    assert_ok(eelsvae_cube_inject_shift(c, &one, 1, 0.0, 9.0, 50.0));
    for (int i = 0; i < 10; i++) assert_true(eelsvae_cube_data(c)[i] == 0.0f);
    eelsvae_cube_free(c);
}

/* A descending energy axis: E − shift still means "features move up in E". */
static void test_shift_descending_axis(void **state)
{
    (void)state;
    eelsvae_cube *c = squares_cube();
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 9.0, -1.0, "eV")); /* channel i at 9 − i eV */
    uint8_t one = 1;
    assert_ok(eelsvae_cube_inject_shift(c, &one, 1, 0.0, 9.0, 1.0));
    /* channel i (E = 9 − i) takes the original at E − 1 = 9 − (i + 1): channel i + 1 */
    for (int i = 0; i < 9; i++) assert_true(eelsvae_cube_data(c)[i] == (float)((i + 1) * (i + 1)));
    assert_true(eelsvae_cube_data(c)[9] == 81.0f);
    eelsvae_cube_free(c);
}

static void test_shift_same_with_any_thread_count(void **state)
{
    (void)state;
    eelsvae_cube *a = peak_cube(16, 16, 150), *b = NULL;
    assert_ok(eelsvae_cube_copy(a, &b));
    uint8_t *mask = checker_mask(256);
    assert_ok(eelsvae_set_threads(1));
    assert_ok(eelsvae_cube_inject_shift(a, mask, 256, 700.0, 725.0, 2.4));
    assert_ok(eelsvae_set_threads(2));
    assert_ok(eelsvae_cube_inject_shift(b, mask, 256, 700.0, 725.0, 2.4));
    assert_memory_equal(eelsvae_cube_data(a), eelsvae_cube_data(b), 256 * 150 * sizeof(float));
    free(mask);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

static void test_shift_errors(void **state)
{
    (void)state;
    eelsvae_cube *c = peak_cube(2, 3, 100), *orig = NULL; /* 690 … 719.7 eV */
    assert_ok(eelsvae_cube_copy(c, &orig));
    uint8_t mask[6] = {1, 1, 1, 1, 1, 1};
    assert_status(eelsvae_cube_inject_shift(c, mask, 5, 695.0, 715.0, 1.0), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_cube_inject_shift(c, mask, 7, 695.0, 715.0, 1.0), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_cube_inject_shift(c, mask, 6, 750.0, 790.0, 1.0), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_cube_inject_shift(c, mask, 6, 600.0, 650.0, 1.0), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_cube_inject_shift(c, mask, 6, 690.0, 730.0, 1.0), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_cube_inject_shift(c, mask, 6, 715.0, 695.0, 1.0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_inject_shift(c, mask, 6, 695.0, 715.0, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_inject_shift(c, NULL, 6, 695.0, 715.0, 1.0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_inject_shift(NULL, mask, 6, 695.0, 715.0, 1.0), EELSVAE_ERR_INVALID_ARGUMENT);
    evae_fail_allocation_after(1);
    assert_status(eelsvae_cube_inject_shift(c, mask, 6, 695.0, 715.0, 1.0), EELSVAE_ERR_NOMEM);
    evae_fail_allocation_after(0);
    /* no failure touched a sample */
    assert_memory_equal(eelsvae_cube_data(c), eelsvae_cube_data(orig), 6 * 100 * sizeof(float));
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

/* ---- disk mask ---------------------------------------------------------------- */

/* 4-connected components of a mask (iterative flood fill). */
static size_t components(const uint8_t *mask, size_t ny, size_t nx)
{
    uint8_t *seen = calloc(ny * nx, 1);
    size_t *stack = malloc(ny * nx * sizeof *stack);
    assert_true(seen && stack);
    size_t n = 0;
    for (size_t start = 0; start < ny * nx; start++) {
        if (!mask[start] || seen[start]) continue;
        n++;
        size_t top = 0;
        stack[top++] = start;
        seen[start] = 1;
        while (top) {
            size_t p = stack[--top], y = p / nx, x = p % nx;
            size_t nb[4] = {y > 0 ? p - nx : p, y + 1 < ny ? p + nx : p, x > 0 ? p - 1 : p, x + 1 < nx ? p + 1 : p};
            for (int k = 0; k < 4; k++)
                if (mask[nb[k]] && !seen[nb[k]]) {
                    seen[nb[k]] = 1;
                    stack[top++] = nb[k];
                }
        }
    }
    free(seen);
    free(stack);
    return n;
}

/* Every constraint of one placement, checked from the returned centres:
 * disks inside the scan, separations, the mask equal to the union of the
 * disks, each disk's pixel count within the lattice bounds
 * π(r − √2/2)² … π(r + √2/2)² (a pixel square around a centre inside the
 * disk lies within r + √2/2; the squares cover the disk of r − √2/2). */
static void check_disks(size_t ny, size_t nx, size_t count, double r, double sep, uint64_t seed)
{
    uint8_t *mask = malloc(ny * nx);
    double *cen = malloc(2 * count * sizeof *cen);
    assert_true(mask && cen);
    assert_ok(eelsvae_disk_mask(ny, nx, count, r, sep, seed, mask, cen));
    size_t total = 0;
    for (size_t p = 0; p < ny * nx; p++) {
        assert_true(mask[p] == 0 || mask[p] == 1);
        size_t y = p / nx, x = p % nx;
        int inside = 0;
        for (size_t k = 0; k < count; k++) {
            double dy = (double)y - cen[2 * k], dx = (double)x - cen[2 * k + 1];
            inside |= dy * dy + dx * dx <= r * r;
        }
        assert_int_equal(mask[p], inside);
        total += mask[p];
    }
    double lo = M_PI * (r - M_SQRT1_2) * (r - M_SQRT1_2), hi = M_PI * (r + M_SQRT1_2) * (r + M_SQRT1_2);
    for (size_t k = 0; k < count; k++) {
        double cy = cen[2 * k], cx = cen[2 * k + 1];
        assert_true(cy >= r && cy <= (double)(ny - 1) - r);
        assert_true(cx >= r && cx <= (double)(nx - 1) - r);
        size_t in_disk = 0;
        for (size_t y = 0; y < ny; y++)
            for (size_t x = 0; x < nx; x++) {
                double dy = (double)y - cy, dx = (double)x - cx;
                in_disk += dy * dy + dx * dx <= r * r;
            }
        assert_true((double)in_disk >= lo && (double)in_disk <= hi);
        for (size_t j = 0; j < k; j++)
            assert_true(hypot(cy - cen[2 * j], cx - cen[2 * j + 1]) >= sep);
    }
    if (sep >= 2 * r + 2) { /* disjoint and not adjacent: one component per disk */
        assert_int_equal(components(mask, ny, nx), count);
        assert_true((double)total >= (double)count * lo && (double)total <= (double)count * hi);
    }
    free(mask);
    free(cen);
}

static void test_disk_mask_geometry(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 40; seed++) check_disks(96, 80, 4, 8.0, 19.0, seed);
    check_disks(64, 64, 8, 5.0, 20.0, 3); /* dense: 9 would fill a 3 × 3 grid */
    check_disks(40, 50, 6, 3.5, 0.0, 5);  /* overlaps allowed */
    check_disks(17, 17, 1, 8.0, 0.0, 1);  /* exactly one place: the centre */
    check_disks(3, 3, 1, 1.0, 0.0, 1);    /* a plus sign at (1, 1) */
}

/* The paper's layout: 4 disks of radius 8 in 192 × 192 cover ≈ 2 %. */
static void test_disk_mask_paper_fraction(void **state)
{
    (void)state;
    uint8_t *mask = malloc(192 * 192);
    assert_non_null(mask);
    assert_ok(eelsvae_disk_mask(192, 192, 4, 8.0, 20.0, 42, mask, NULL));
    size_t n = 0;
    for (size_t p = 0; p < 192 * 192; p++) n += mask[p];
    double fraction = (double)n / (192.0 * 192.0);
    assert_true(fraction > 0.018 && fraction < 0.024);
    assert_int_equal(components(mask, 192, 192), 4);
    free(mask);
}

static void test_disk_mask_deterministic(void **state)
{
    (void)state;
    uint8_t a[64 * 64], b[64 * 64], c[64 * 64];
    double ca[6], cb[6], cc[6];
    assert_ok(eelsvae_disk_mask(64, 64, 3, 6.0, 15.0, 7, a, ca));
    assert_ok(eelsvae_disk_mask(64, 64, 3, 6.0, 15.0, 7, b, cb));
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(ca, cb, sizeof ca);
    assert_ok(eelsvae_disk_mask(64, 64, 3, 6.0, 15.0, 7, c, NULL));
    assert_memory_equal(a, c, sizeof a);
    assert_ok(eelsvae_disk_mask(64, 64, 3, 6.0, 15.0, 8, c, cc));
    assert_memory_not_equal(ca, cc, sizeof ca);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_disk_mask_errors(void **state)
{
    (void)state;
    uint8_t mask[32 * 32];
    memset(mask, 0xaa, sizeof mask);
    /* ten disks 30 px apart cannot share a 32 × 32 scan */
    assert_status(eelsvae_disk_mask(32, 32, 10, 8.0, 30.0, 1, mask, NULL), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "cannot place 10 disks of radius 8"));
    assert_non_null(strstr(eelsvae_last_error(), "32 × 32"));
    /* one disk wider than the scan */
    assert_status(eelsvae_disk_mask(10, 32, 1, 5.0, 0.0, 1, mask, NULL), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "cannot place 1 disks of radius 5"));
    /* two disks share the only place but must be 1 px apart */
    assert_status(eelsvae_disk_mask(17, 17, 2, 8.0, 1.0, 1, mask, NULL), EELSVAE_ERR_DIMENSION);
    for (size_t p = 0; p < sizeof mask; p++) assert_int_equal(mask[p], 0xaa); /* untouched */
    assert_status(eelsvae_disk_mask(32, 32, 1, 4.0, 0.0, 1, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(0, 32, 1, 4.0, 0.0, 1, mask, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(32, 0, 1, 4.0, 0.0, 1, mask, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(32, 32, 0, 4.0, 0.0, 1, mask, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(32, 32, 1, 0.0, 0.0, 1, mask, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(32, 32, 1, NAN, 0.0, 1, mask, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(32, 32, 1, 4.0, -1.0, 1, mask, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_disk_mask(SIZE_MAX / 2, 4, 1, 1.0, 0.0, 1, mask, NULL), EELSVAE_ERR_OVERFLOW);
    evae_fail_allocation_after(1);
    assert_status(eelsvae_disk_mask(32, 32, 1, 4.0, 0.0, 1, mask, NULL), EELSVAE_ERR_NOMEM);
    evae_fail_allocation_after(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shift_subchannel),
        cmocka_unit_test(test_shift_whole_channels),
        cmocka_unit_test(test_shift_reads_original_and_clamps),
        cmocka_unit_test(test_shift_descending_axis),
        cmocka_unit_test(test_shift_same_with_any_thread_count),
        cmocka_unit_test(test_shift_errors),
        cmocka_unit_test(test_disk_mask_geometry),
        cmocka_unit_test(test_disk_mask_paper_fraction),
        cmocka_unit_test(test_disk_mask_deterministic),
        cmocka_unit_test(test_disk_mask_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
