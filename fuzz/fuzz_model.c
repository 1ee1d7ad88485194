/* libFuzzer harness: the model file (lib/nn/model_file.c).
 *
 * The input is the file. It is loaded as given; when that fails only on
 * the checksum, the last four bytes are replaced by the right CRC-32 and
 * it is loaded again, so that the fuzzer reaches the checks behind the
 * checksum. A model that loads must be usable: its architecture is read
 * back, a small one decodes a latent vector, and saving it and loading the
 * copy gives a byte-identical second copy. */
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_library();
    return 0;
}

/* Samples per tile up to which a loaded model is run (T·T·E). */
#define MAX_TILE_FLOATS 4096

static void use_model(const eelsvae_model *m)
{
    eelsvae_model_options o;
    memset(&o, 0, sizeof o);
    FUZZ_CHECK(eelsvae_model_options_get(m, &o) == EELSVAE_OK);
    FUZZ_CHECK(eelsvae_model_parameter_count(m) > 0);
    size_t tile_floats = o.tile * o.tile * o.energy_channels;
    if (o.tile <= 64 && o.energy_channels <= 4096 && tile_floats <= MAX_TILE_FLOATS && o.latent <= 1024) {
        float *z = calloc(o.latent, sizeof *z);
        float *tile = malloc(tile_floats * sizeof *tile);
        FUZZ_CHECK(z && tile);
        eelsvae_status st = eelsvae_model_decode(m, z, 1, tile, tile_floats);
        if (st == EELSVAE_OK) {
            for (size_t i = 0; i < tile_floats; i++) FUZZ_CHECK(!(tile[i] < 0.0f) && !(tile[i] > 1.0f));
        } else {
            fuzz_check_failure(st);
        }
        free(z);
        free(tile);
    }
    /* save, load, save: the two saved files are the same bytes */
    const char *first = fuzz_path("copy1.evm"), *second = fuzz_path("copy2.evm");
    FUZZ_CHECK(eelsvae_model_save(m, first, 1) == EELSVAE_OK);
    eelsvae_model *back = NULL;
    FUZZ_CHECK(eelsvae_model_load(first, &back) == EELSVAE_OK);
    FUZZ_CHECK(eelsvae_model_save(back, second, 1) == EELSVAE_OK);
    eelsvae_model_free(back);
    size_t n1 = 0, n2 = 0;
    uint8_t *a = fuzz_read(first, &n1), *b = fuzz_read(second, &n2);
    FUZZ_CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
}

static eelsvae_status load(const char *path, const uint8_t *data, size_t size)
{
    fuzz_write(path, data, size);
    eelsvae_model *m = NULL;
    eelsvae_status st = eelsvae_model_load(path, &m);
    if (st == EELSVAE_OK) {
        use_model(m);
    } else {
        fuzz_check_failure(st);
        FUZZ_CHECK(m == NULL);
    }
    eelsvae_model_free(m);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("input.evm");
    if (load(path, data, size) == EELSVAE_ERR_CHECKSUM) {
        uint8_t *fixed = fuzz_with_crc(data, size);
        FUZZ_CHECK(load(path, fixed, size) != EELSVAE_ERR_CHECKSUM);
        free(fixed);
    }
    return 0;
}
