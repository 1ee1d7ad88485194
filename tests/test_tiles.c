/* Tiling: every pixel covered, overlapping last tiles, exact reassembly. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void test_tiling_counts(void **state)
{
    (void)state;
    size_t ty = 0, tx = 0;
    assert_ok(eelsvae_tiling(192, 192, 24, 0, &ty, &tx));
    assert_int_equal(ty, 8);
    assert_int_equal(tx, 8);
    assert_ok(eelsvae_tiling(50, 24, 24, 0, &ty, &tx));
    assert_int_equal(ty, 3);
    assert_int_equal(tx, 1);
    assert_status(eelsvae_tiling(20, 30, 24, 0, &ty, &tx), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_tiling(20, 30, 0, 0, &ty, &tx), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* Overlapping tiles: origins 0, s, 2s, … and one flush with the far edge. */
static void test_strided_tiling(void **state)
{
    (void)state;
    size_t ty = 0, tx = 0;
    assert_ok(eelsvae_tiling(10, 11, 4, 3, &ty, &tx));
    assert_int_equal(ty, 3); /* rows 0, 3, 6 (6 = 10 − 4: the steps reach the edge) */
    assert_int_equal(tx, 4); /* columns 0, 3, 6, 7 */
    assert_ok(eelsvae_tiling(192, 192, 24, 12, &ty, &tx));
    assert_int_equal(ty, 15);
    assert_ok(eelsvae_tiling(192, 192, 24, 1, &ty, &tx));
    assert_int_equal(ty, 169);
    assert_status(eelsvae_tiling(10, 11, 4, 5, &ty, &tx), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_true(strstr(eelsvae_last_error(), "stride 5") != NULL);

    eelsvae_cube *c = tu_random_cube(10, 11, 2, 7), *back = NULL;
    size_t n = 3 * 4 * 4 * 4 * 2;
    float *tiles = malloc(n * sizeof *tiles);
    assert_ok(eelsvae_cube_to_tiles(c, 4, 3, tiles, n));
    const size_t oy[3] = {0, 3, 6}, ox[4] = {0, 3, 6, 7};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++)
            for (size_t r = 0; r < 4; r++)
                for (size_t q = 0; q < 4; q++) {
                    const float *s = NULL;
                    assert_ok(eelsvae_cube_spectrum(c, oy[i] + r, ox[j] + q, &s));
                    assert_memory_equal(tiles + (((i * 4 + j) * 4 + r) * 4 + q) * 2, s, 2 * sizeof(float));
                }
    /* every tile constant = its index: pixel (3, 7) lies in tiles 2, 3, 6, 7
     * (rows 0 and 3, columns 6 and 7), at rows 3, 3, 0, 0 and columns 1, 0,
     * 1, 0 of them; weights min(k + 1, 4 − k) give 2, 1, 2, 1, so it reads
     * (2·2 + 3·1 + 6·2 + 7·1) / 6 = 26/6 */
    for (size_t t = 0; t < 12; t++)
        for (size_t k = 0; k < 32; k++) tiles[t * 32 + k] = (float)t;
    assert_ok(eelsvae_cube_create(10, 11, 2, &back));
    assert_ok(eelsvae_cube_from_tiles(back, 4, 3, tiles, n));
    const float *s = NULL;
    assert_ok(eelsvae_cube_spectrum(back, 3, 7, &s));
    assert_close(s[0], 26.0 / 6.0, 1e-6, 0);
    assert_status(eelsvae_cube_from_tiles(back, 4, 2, tiles, n), EELSVAE_ERR_DIMENSION);
    free(tiles);
    eelsvae_cube_free(back);
    eelsvae_cube_free(c);
}

/* Tile (i, j) of a 10 × 7 scan with T = 4 starts at rows {0, 4, 6} and columns {0, 3}. */
static void test_tiles_hold_the_right_pixels(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(10, 7, 3, 5);
    size_t ty = 0, tx = 0;
    assert_ok(eelsvae_tiling(10, 7, 4, 0, &ty, &tx));
    size_t n = ty * tx * 4 * 4 * 3;
    float *tiles = malloc(n * sizeof *tiles);
    assert_ok(eelsvae_cube_to_tiles(c, 4, 0, tiles, n));
    const size_t oy[3] = {0, 4, 6}, ox[2] = {0, 3};
    for (size_t i = 0; i < ty; i++)
        for (size_t j = 0; j < tx; j++)
            for (size_t r = 0; r < 4; r++)
                for (size_t q = 0; q < 4; q++) {
                    const float *s = NULL;
                    assert_ok(eelsvae_cube_spectrum(c, oy[i] + r, ox[j] + q, &s));
                    const float *t = tiles + (((i * tx + j) * 4 + r) * 4 + q) * 3;
                    assert_memory_equal(t, s, 3 * sizeof(float));
                }
    assert_status(eelsvae_cube_to_tiles(c, 4, 0, tiles, n - 1), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_cube_to_tiles(c, 8, 0, tiles, n), EELSVAE_ERR_DIMENSION);
    free(tiles);
    eelsvae_cube_free(c);
}

static void test_reassembly_averages_overlaps(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(10, 7, 3, 9), *back = NULL;
    size_t ty = 0, tx = 0;
    assert_ok(eelsvae_tiling(10, 7, 4, 0, &ty, &tx));
    size_t n = ty * tx * 4 * 4 * 3;
    float *tiles = malloc(n * sizeof *tiles);
    assert_ok(eelsvae_cube_to_tiles(c, 4, 0, tiles, n));
    assert_ok(eelsvae_cube_create(10, 7, 3, &back));
    assert_ok(eelsvae_cube_from_tiles(back, 4, 0, tiles, n));
    const float *a = eelsvae_cube_data(c), *b = eelsvae_cube_data(back);
    for (size_t i = 0; i < 10 * 7 * 3; i++) assert_close(b[i], a[i], 1e-6, 1e-6);

    /* Make every tile constant = its index: a pixel covered by tiles 0 and 2
     * (rows 6–7, columns 0–2) must read their mean, 1. */
    for (size_t t = 0; t < ty * tx; t++)
        for (size_t k = 0; k < 4 * 4 * 3; k++) tiles[t * 48 + k] = (float)t;
    assert_ok(eelsvae_cube_from_tiles(back, 4, 0, tiles, n));
    const float *s = NULL;
    assert_ok(eelsvae_cube_spectrum(back, 7, 0, &s)); /* tiles (1,0)=2 and (2,0)=4 */
    assert_close(s[0], 3.0, 1e-6, 0);
    assert_ok(eelsvae_cube_spectrum(back, 7, 3, &s)); /* tiles 2, 3, 4, 5 */
    assert_close(s[1], 3.5, 1e-6, 0);
    assert_ok(eelsvae_cube_spectrum(back, 0, 0, &s)); /* tile 0 only */
    assert_close(s[2], 0.0, 0, 0);
    free(tiles);
    eelsvae_cube_free(back);
    eelsvae_cube_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiling_counts),
        cmocka_unit_test(test_strided_tiling),
        cmocka_unit_test(test_tiles_hold_the_right_pixels),
        cmocka_unit_test(test_reassembly_averages_overlaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
