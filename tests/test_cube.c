/* Cube handle: creation, calibration, energy windows, crops, summaries. */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* A 3 × 4 × 5 cube with sample (y, x, e) = 100y + 10x + e. */
static eelsvae_cube *indexed_cube(void)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(3, 4, 5, &c));
    float *d = eelsvae_cube_data(c);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            for (int e = 0; e < 5; e++) d[(y * 4 + x) * 5 + e] = (float)(100 * y + 10 * x + e);
    return c;
}

static void test_create_and_shape(void **state)
{
    (void)state;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(2, 3, 4, &c));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_int_equal(ny, 2);
    assert_int_equal(nx, 3);
    assert_int_equal(ne, 4);
    for (size_t i = 0; i < 24; i++) assert_true(eelsvae_cube_data(c)[i] == 0.0f);
    assert_int_equal((uintptr_t)eelsvae_cube_data(c) % 64, 0);
    const char *units = NULL;
    double off = -1, scale = -1;
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_E, &off, &scale, &units));
    assert_true(off == 0.0 && scale == 1.0);
    assert_string_equal(units, "eV");
    eelsvae_cube_free(c);
    eelsvae_cube_free(NULL);
}

static void test_create_rejects_bad_dimensions(void **state)
{
    (void)state;
    eelsvae_cube *c = NULL;
    assert_status(eelsvae_cube_create(0, 3, 4, &c), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_create(3, 4, 0, &c), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_create(SIZE_MAX / 2, 4, 3, &c), EELSVAE_ERR_OVERFLOW);
    assert_status(eelsvae_cube_create(1, 1, 1, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(c);
    assert_status(eelsvae_cube_create_from(NULL, 1, 1, 1, &c), EELSVAE_ERR_INVALID_ARGUMENT);
}

static void test_create_from_copies(void **state)
{
    (void)state;
    float src[6] = {1, 2, 3, 4, 5, 6};
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create_from(src, 1, 2, 3, &c));
    src[0] = 99;
    assert_true(eelsvae_cube_data(c)[0] == 1.0f);
    const float *s = NULL;
    assert_ok(eelsvae_cube_spectrum(c, 0, 1, &s));
    assert_true(s[0] == 4.0f && s[2] == 6.0f);
    assert_status(eelsvae_cube_spectrum(c, 1, 0, &s), EELSVAE_ERR_RANGE);
    eelsvae_cube_free(c);
}

static void test_axis_calibration(void **state)
{
    (void)state;
    eelsvae_cube *c = indexed_cube();
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 1.5, 0.25, "nm"));
    double off = 0, scale = 0;
    const char *units = NULL;
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_X, &off, &scale, &units));
    assert_true(off == 1.5 && scale == 0.25);
    assert_string_equal(units, "nm");
    assert_status(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0, 0, "eV"), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, NAN, 1, "eV"), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0, 1, "a-units-string-too-long"),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_set_axis(c, (eelsvae_axis)3, 0, 1, ""), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(c);
}

static void test_energy_window(void **state)
{
    (void)state;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(1, 1, 1334, &c));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 420.0, 0.3, "eV"));
    size_t first = 0, count = 0;
    /* 690 eV is channel 900 exactly; 730 eV is channel 1033.33, so 1033 is the last. */
    assert_ok(eelsvae_cube_energy_window(c, 690, 730, &first, &count));
    assert_int_equal(first, 900);
    assert_int_equal(count, 134);
    /* The axis ends at 819.9 eV: 420:820 sticks out by a third of a channel and is accepted. */
    assert_ok(eelsvae_cube_energy_window(c, 420, 820, &first, &count));
    assert_int_equal(first, 0);
    assert_int_equal(count, 1334);
    assert_status(eelsvae_cube_energy_window(c, 400, 500, &first, &count), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "400"));
    assert_status(eelsvae_cube_energy_window(c, 700, 900, &first, &count), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_cube_energy_window(c, 700.05, 700.1, &first, &count), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_cube_energy_window(c, 730, 690, &first, &count), EELSVAE_ERR_INVALID_ARGUMENT);
    /* A descending axis covers the same window. */
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 819.9, -0.3, "eV"));
    assert_ok(eelsvae_cube_energy_window(c, 690, 730, &first, &count));
    assert_int_equal(first, 1334 - 1 - 1033);
    assert_int_equal(count, 134);
    eelsvae_cube_free(c);
}

static void test_crop_energy_keeps_channels(void **state)
{
    (void)state;
    eelsvae_cube *c = indexed_cube(), *e = NULL;
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 100.0, 2.0, "eV"));
    assert_ok(eelsvae_cube_crop_energy(c, 101.0, 106.0, &e)); /* channels 1, 2, 3 (102, 104, 106 eV) */
    size_t ne = 0;
    eelsvae_cube_shape(e, NULL, NULL, &ne);
    assert_int_equal(ne, 3);
    double off = 0;
    assert_ok(eelsvae_cube_axis(e, EELSVAE_AXIS_E, &off, NULL, NULL));
    assert_true(off == 102.0);
    const float *s = NULL;
    assert_ok(eelsvae_cube_spectrum(e, 2, 3, &s));
    assert_true(s[0] == 231.0f && s[2] == 233.0f);
    eelsvae_cube_free(e);
    eelsvae_cube_free(c);
}

/* A new cube's energy axis counts channels: the eV windows refuse it, naming
 * the function and the way out, until eelsvae_cube_set_axis calibrates it. */
static void assert_uncalibrated(const eelsvae_cube *c)
{
    size_t first = 99, count = 99;
    eelsvae_cube *out = NULL;
    assert_status(eelsvae_cube_energy_window(c, 1.0, 3.0, &first, &count), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_energy_window"));
    assert_non_null(strstr(eelsvae_last_error(), "uncalibrated"));
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E"));
    assert_true(first == 99 && count == 99);
    assert_status(eelsvae_cube_crop_energy(c, 1.0, 3.0, &out), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_crop_energy"));
    assert_non_null(strstr(eelsvae_last_error(), "uncalibrated"));
    assert_null(out);
}

static void test_uncalibrated_energy_axis(void **state)
{
    (void)state;
    eelsvae_cube *c = indexed_cube(), *k = NULL;
    assert_uncalibrated(c);
    /* A bad window is still reported as such. */
    size_t first = 0, count = 0;
    assert_status(eelsvae_cube_energy_window(c, 3.0, 1.0, &first, &count), EELSVAE_ERR_INVALID_ARGUMENT);
    /* Spatial crops and copies stay uncalibrated. */
    assert_ok(eelsvae_cube_crop(c, 1, 1, 2, 2, &k));
    assert_uncalibrated(k);
    eelsvae_cube_free(k);
    assert_ok(eelsvae_cube_copy(c, &k));
    assert_uncalibrated(k);
    eelsvae_cube_free(k);
    /* Calibrated, even as 0 eV + 1 eV per channel (the values of a new cube). */
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0.0, 1.0, "eV"));
    assert_ok(eelsvae_cube_energy_window(c, 1.0, 3.0, &first, &count));
    assert_true(first == 1 && count == 3);
    assert_ok(eelsvae_cube_crop_energy(c, 1.0, 3.0, &k));
    assert_ok(eelsvae_cube_energy_window(k, 1.0, 3.0, &first, &count)); /* the crop keeps the calibration */
    assert_true(first == 0 && count == 3);
    eelsvae_cube_free(k);
    assert_ok(eelsvae_cube_copy(c, &k));
    assert_ok(eelsvae_cube_energy_window(k, 1.0, 3.0, &first, &count));
    eelsvae_cube_free(k);
    /* Only the energy axis counts. */
    eelsvae_cube *fresh = indexed_cube();
    assert_ok(eelsvae_cube_set_axis(fresh, EELSVAE_AXIS_X, 0.0, 2.0, "nm"));
    assert_uncalibrated(fresh);
    eelsvae_cube_free(fresh);
    /* Offset 0, scale 1 and no units: channel numbers again. */
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0.0, 1.0, ""));
    assert_uncalibrated(c);
    /* Any other calibration, units or not, is one. */
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0.0, 2.0, ""));
    assert_ok(eelsvae_cube_energy_window(c, 2.0, 6.0, &first, &count));
    assert_true(first == 1 && count == 3);
    eelsvae_cube_free(c);
}

static void test_spatial_crop_and_copy(void **state)
{
    (void)state;
    eelsvae_cube *c = indexed_cube(), *k = NULL, *copy = NULL;
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, 10.0, 0.5, "nm"));
    assert_ok(eelsvae_cube_crop(c, 1, 2, 2, 2, &k));
    const float *s = NULL;
    assert_ok(eelsvae_cube_spectrum(k, 1, 1, &s));
    assert_true(s[4] == 234.0f);
    double off = 0;
    assert_ok(eelsvae_cube_axis(k, EELSVAE_AXIS_Y, &off, NULL, NULL));
    assert_true(off == 10.5);
    assert_status(eelsvae_cube_crop(c, 2, 0, 2, 1, &copy), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_cube_crop(c, 0, 0, 0, 1, &copy), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(eelsvae_cube_copy(c, &copy));
    assert_memory_equal(eelsvae_cube_data(copy), eelsvae_cube_data(c), 60 * sizeof(float));
    eelsvae_cube_free(copy);
    eelsvae_cube_free(k);
    eelsvae_cube_free(c);
}

static void test_sum_image_and_mean_spectrum(void **state)
{
    (void)state;
    eelsvae_cube *c = indexed_cube();
    float img[12], spec[5];
    assert_ok(eelsvae_cube_sum_image(c, img, 12));
    /* Σ_e (100y + 10x + e) = 500y + 50x + 10 */
    assert_true(img[1 * 4 + 2] == 500.0f + 100.0f + 10.0f);
    assert_ok(eelsvae_cube_mean_spectrum(c, spec, 5));
    /* mean over y of 100y = 100, over x of 10x = 15 */
    for (int e = 0; e < 5; e++) assert_close(spec[e], 115.0 + e, 1e-4, 0);
    assert_status(eelsvae_cube_sum_image(c, img, 11), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_cube_mean_spectrum(c, spec, 4), EELSVAE_ERR_DIMENSION);
    eelsvae_cube_free(c);
}

static void test_check_finite_names_pixel(void **state)
{
    (void)state;
    eelsvae_cube *c = indexed_cube();
    assert_ok(eelsvae_cube_check_finite(c));
    eelsvae_cube_data(c)[(2 * 4 + 1) * 5 + 3] = INFINITY;
    assert_status(eelsvae_cube_check_finite(c), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "y 2, x 1"));
    assert_non_null(strstr(eelsvae_last_error(), "channel 3"));
    eelsvae_cube_free(c);
}

/* eelsvae_cube_bin_energy: channel k is the sum of channels k·bin … k·bin + bin − 1
 * (a naive double loop is the oracle), the ne mod bin channels at the top are
 * dropped, the energy axis moves to the first bin's centre with bin·scale per
 * channel, and the spatial axes are kept. */
static void check_binned(const eelsvae_cube *c, size_t bin)
{
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    eelsvae_cube *b = NULL;
    assert_ok(eelsvae_cube_bin_energy(c, bin, &b));
    assert_non_null(b);
    assert_true(b != c);
    size_t by = 0, bx = 0, be = 0;
    eelsvae_cube_shape(b, &by, &bx, &be);
    assert_int_equal(by, ny);
    assert_int_equal(bx, nx);
    assert_int_equal(be, ne / bin);
    const float *src = eelsvae_cube_data_const(c), *dst = eelsvae_cube_data_const(b);
    for (size_t p = 0; p < ny * nx; p++)
        for (size_t k = 0; k < be; k++) {
            double sum = 0.0;
            for (size_t j = 0; j < bin; j++) sum += src[p * ne + k * bin + j];
            assert_close(dst[p * be + k], sum, 1e-6, 1e-6);
        }
    double off = 0, scale = 0, boff = 0, bscale = 0;
    const char *units = NULL, *bunits = NULL;
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_E, &off, &scale, &units));
    assert_ok(eelsvae_cube_axis(b, EELSVAE_AXIS_E, &boff, &bscale, &bunits));
    assert_close(boff, off + (double)(bin - 1) * scale / 2.0, 1e-12, 1e-12);
    assert_close(bscale, (double)bin * scale, 0, 1e-12);
    assert_string_equal(bunits, units);
    for (int a = EELSVAE_AXIS_Y; a <= EELSVAE_AXIS_X; a++) {
        assert_ok(eelsvae_cube_axis(c, (eelsvae_axis)a, &off, &scale, &units));
        assert_ok(eelsvae_cube_axis(b, (eelsvae_axis)a, &boff, &bscale, &bunits));
        assert_true(boff == off && bscale == scale);
        assert_string_equal(bunits, units);
    }
    eelsvae_cube_free(b);
}

static void test_bin_energy(void **state)
{
    (void)state;
    /* 23 channels: bin 5 gives 4 channels and drops 3, bin 4 gives 5 and drops 3 */
    eelsvae_cube *c = tu_random_cube(3, 4, 23, 77);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 400.0, 0.25, "eV"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, -2.0, 0.5, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 3.0, 0.75, "um"));
    const size_t bins[] = {1, 2, 4, 5, 7, 22, 23};
    for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) check_binned(c, bins[i]);

    /* hand-checked: bin 5 of spectrum (1, 2), channel 3 sums channels 15 … 19; axis 400.5 eV, 1.25 eV */
    eelsvae_cube *b = NULL;
    assert_ok(eelsvae_cube_bin_energy(c, 5, &b));
    const float *s = NULL, *bs = NULL;
    assert_ok(eelsvae_cube_spectrum(c, 1, 2, &s));
    assert_ok(eelsvae_cube_spectrum(b, 1, 2, &bs));
    assert_close(bs[3], (double)s[15] + s[16] + s[17] + s[18] + s[19], 1e-6, 1e-6);
    double off = 0, scale = 0;
    assert_ok(eelsvae_cube_axis(b, EELSVAE_AXIS_E, &off, &scale, NULL));
    assert_close(off, 400.5, 1e-12, 0);
    assert_close(scale, 1.25, 1e-12, 0);
    /* the binned cube keeps the calibration: a window in eV works on it */
    size_t first = 0, count = 0;
    assert_ok(eelsvae_cube_energy_window(b, 401.5, 404.0, &first, &count));
    assert_true(first == 1 && count == 2); /* 401.75 and 403.0 eV */
    eelsvae_cube_free(b);

    /* bin 1 is a copy: same samples, same axes, a new cube */
    assert_ok(eelsvae_cube_bin_energy(c, 1, &b));
    assert_memory_equal(eelsvae_cube_data(b), eelsvae_cube_data(c), 3 * 4 * 23 * sizeof(float));
    eelsvae_cube_data(b)[0] += 1.0f;
    assert_true(eelsvae_cube_data(b)[0] != eelsvae_cube_data(c)[0]);
    eelsvae_cube_free(b);

    /* bin 0 and bin > ne: INVALID_ARGUMENT naming the function; the output untouched */
    b = NULL;
    assert_status(eelsvae_cube_bin_energy(c, 0, &b), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_bin_energy"));
    assert_null(b);
    assert_status(eelsvae_cube_bin_energy(c, 24, &b), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_bin_energy"));
    assert_non_null(strstr(eelsvae_last_error(), "23"));
    assert_null(b);
    assert_status(eelsvae_cube_bin_energy(c, SIZE_MAX, &b), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(b);
    assert_status(eelsvae_cube_bin_energy(NULL, 2, &b), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_bin_energy"));
    assert_null(b);
    assert_status(eelsvae_cube_bin_energy(c, 2, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(c);

    /* an uncalibrated axis stays uncalibrated (a derived cube keeps the state) */
    eelsvae_cube *u = indexed_cube();
    assert_ok(eelsvae_cube_bin_energy(u, 2, &b));
    assert_uncalibrated(b);
    const float *us = NULL;
    assert_ok(eelsvae_cube_spectrum(b, 2, 3, &us)); /* (230 + 231), (232 + 233); 234 dropped */
    assert_true(us[0] == 461.0f && us[1] == 465.0f);
    eelsvae_cube_free(b);
    eelsvae_cube_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_shape),
        cmocka_unit_test(test_create_rejects_bad_dimensions),
        cmocka_unit_test(test_create_from_copies),
        cmocka_unit_test(test_axis_calibration),
        cmocka_unit_test(test_energy_window),
        cmocka_unit_test(test_crop_energy_keeps_channels),
        cmocka_unit_test(test_uncalibrated_energy_axis),
        cmocka_unit_test(test_spatial_crop_and_copy),
        cmocka_unit_test(test_sum_image_and_mean_spectrum),
        cmocka_unit_test(test_check_finite_names_pixel),
        cmocka_unit_test(test_bin_energy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
