/* libFuzzer harness: the PCA basis file (lib/pca/pca_file.c).
 *
 * The input is the file. It is loaded as given; when that fails only on
 * the checksum, the last four bytes are replaced by the right CRC-32 and
 * it is loaded again, so that the fuzzer reaches the checks behind the
 * checksum. A basis that loads must be usable: its shape and variance
 * ratios are read, a small cube is projected and reconstructed, and the
 * basis saved and loaded again gives the same components bits. */
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_library();
    return 0;
}

/* Channels up to which a loaded basis is exercised on a small cube. */
#define MAX_CHANNELS_USED 4096

static void use_basis(const eelsvae_pca *pca)
{
    size_t k = 0, ne = 0;
    eelsvae_pca_shape(pca, &k, &ne);
    FUZZ_CHECK(k >= 1 && k <= ne);
    const float *comp = eelsvae_pca_components(pca);
    float sum = 0;
    for (size_t i = 0; i < k * ne; i++) sum += comp[i];
    volatile float keep = sum;
    (void)keep;
    double *ratios = malloc(k * sizeof *ratios);
    FUZZ_CHECK(ratios != NULL);
    FUZZ_CHECK(eelsvae_pca_explained_variance_ratio(pca, ratios, k) == EELSVAE_OK);
    free(ratios);
    if (ne > MAX_CHANNELS_USED) return;

    /* two spectra of positive counts: valid under every normalisation */
    eelsvae_cube *cube = NULL;
    FUZZ_CHECK(eelsvae_cube_create(1, 2, ne, &cube) == EELSVAE_OK);
    float *x = eelsvae_cube_data(cube);
    for (size_t i = 0; i < 2 * ne; i++) x[i] = 1.0f + (float)(i % 7);
    float *scores = malloc(2 * k * sizeof *scores);
    FUZZ_CHECK(scores != NULL);
    eelsvae_status st = eelsvae_pca_project(pca, cube, scores, 2 * k);
    if (st != EELSVAE_OK) fuzz_check_failure(st);
    free(scores);
    eelsvae_cube *rec = NULL;
    st = eelsvae_pca_reconstruct(pca, cube, &rec);
    if (st == EELSVAE_OK)
        fuzz_walk_cube(rec);
    else
        fuzz_check_failure(st);
    eelsvae_cube_free(rec);
    eelsvae_cube_free(cube);

    const char *copy = fuzz_path("copy.evp");
    FUZZ_CHECK(eelsvae_pca_save(pca, copy) == EELSVAE_OK);
    eelsvae_pca *back = NULL;
    FUZZ_CHECK(eelsvae_pca_load(copy, &back) == EELSVAE_OK);
    size_t k2 = 0, ne2 = 0;
    eelsvae_pca_shape(back, &k2, &ne2);
    FUZZ_CHECK(k2 == k && ne2 == ne);
    FUZZ_CHECK(memcmp(eelsvae_pca_components(back), comp, k * ne * sizeof(float)) == 0);
    eelsvae_pca_free(back);
}

static eelsvae_status load(const char *path, const uint8_t *data, size_t size)
{
    fuzz_write(path, data, size);
    eelsvae_pca *pca = NULL;
    eelsvae_status st = eelsvae_pca_load(path, &pca);
    if (st == EELSVAE_OK) {
        use_basis(pca);
    } else {
        fuzz_check_failure(st);
        FUZZ_CHECK(pca == NULL);
    }
    eelsvae_pca_free(pca);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("input.evp");
    if (load(path, data, size) == EELSVAE_ERR_CHECKSUM) {
        uint8_t *fixed = fuzz_with_crc(data, size);
        FUZZ_CHECK(load(path, fixed, size) != EELSVAE_ERR_CHECKSUM);
        free(fixed);
    }
    return 0;
}
