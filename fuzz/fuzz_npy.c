/* libFuzzer harness: NumPy .npy files (lib/cube/npy.c).
 *
 * The input is the file. It is read as an array (eelsvae_npy_read), as a
 * cube (eelsvae_cube_load_npy) and as a signal (eelsvae_signal_load, which
 * recognises the format by content). Properties checked besides memory
 * safety: a failure has a message; an array read is written back with
 * eelsvae_npy_write and reads back to the same bits; the cube and the array
 * agree when both load. */
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_library();
    return 0;
}

static size_t element_count(size_t ndim, const size_t *shape)
{
    size_t n = 1;
    for (size_t d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* Written back as float32 and read again: the same shape and bits. */
static void check_round_trip(size_t ndim, const size_t *shape, const float *data)
{
    const char *copy = fuzz_path("copy.npy");
    eelsvae_status st = eelsvae_npy_write(copy, EELSVAE_DTYPE_FLOAT32, data, ndim, shape);
    FUZZ_CHECK(st == EELSVAE_OK);
    size_t ndim2 = 0, shape2[EELSVAE_NPY_MAX_DIMS] = {0};
    eelsvae_dtype dtype2 = EELSVAE_DTYPE_INT8;
    float *data2 = NULL;
    st = eelsvae_npy_read(copy, &ndim2, shape2, &dtype2, &data2);
    FUZZ_CHECK(st == EELSVAE_OK);
    FUZZ_CHECK(ndim2 == ndim && dtype2 == EELSVAE_DTYPE_FLOAT32);
    FUZZ_CHECK(memcmp(shape2, shape, ndim * sizeof *shape) == 0);
    size_t n = element_count(ndim, shape);
    FUZZ_CHECK(n == 0 || memcmp(data2, data, n * sizeof(float)) == 0);
    eelsvae_free(data2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path("input.npy");
    fuzz_write(path, data, size);

    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    float *array = NULL;
    eelsvae_status st = eelsvae_npy_read(path, &ndim, shape, &dtype, &array);
    if (st == EELSVAE_OK) {
        FUZZ_CHECK(ndim <= EELSVAE_NPY_MAX_DIMS && array != NULL);
        size_t n = element_count(ndim, shape);
        FUZZ_CHECK(n <= size); /* every element came from at least one byte of the file */
        float sum = 0;
        for (size_t i = 0; i < n; i++) sum += array[i];
        volatile float keep = sum;
        (void)keep;
        check_round_trip(ndim, shape, array);
    } else {
        fuzz_check_failure(st);
        FUZZ_CHECK(array == NULL);
    }

    eelsvae_cube *cube = NULL;
    eelsvae_status cst = eelsvae_cube_load_npy(path, &cube);
    if (cst == EELSVAE_OK) {
        FUZZ_CHECK(st == EELSVAE_OK && ndim == 3);
        size_t ny = 0, nx = 0, ne = 0;
        eelsvae_cube_shape(cube, &ny, &nx, &ne);
        FUZZ_CHECK(ny == shape[0] && nx == shape[1] && ne == shape[2]);
        FUZZ_CHECK(memcmp(eelsvae_cube_data_const(cube), array, ny * nx * ne * sizeof(float)) == 0);
        fuzz_walk_cube(cube);
    } else {
        fuzz_check_failure(cst);
        FUZZ_CHECK(cube == NULL);
    }
    eelsvae_cube_free(cube);
    eelsvae_free(array);

    eelsvae_signal *signal = NULL;
    st = eelsvae_signal_load(path, &signal);
    if (st == EELSVAE_OK)
        fuzz_walk_signal(signal);
    else
        fuzz_check_failure(st);
    eelsvae_signal_free(signal);
    return 0;
}
