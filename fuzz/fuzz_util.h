/* Shared by the libFuzzer harnesses: our parsers take file names, so each
 * input is written to a file in a private directory on /dev/shm (a RAM
 * file system; /tmp when there is none), created once per process and
 * removed at exit. A finding stops the process with __builtin_trap(),
 * which libFuzzer reports as a crash with the input that caused it. */
#ifndef EELSVAE_FUZZ_UTIL_H
#define EELSVAE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <eelsvae/eelsvae.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the parser must keep; a violation is a finding. */
#define FUZZ_CHECK(cond)                                                                                         \
    do {                                                                                                         \
        if (!(cond)) {                                                                                           \
            fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                      \
            __builtin_trap();                                                                                    \
        }                                                                                                        \
    } while (0)

static char fuzz_dir[256];
static char fuzz_paths[8][320];
static int fuzz_path_count;

static inline void fuzz_cleanup(void)
{
    for (int i = 0; i < fuzz_path_count; i++) unlink(fuzz_paths[i]);
    if (fuzz_dir[0]) rmdir(fuzz_dir);
}

/* The path of `name` in this process's directory (made on first use); every
 * name used is removed at exit. At most 8 names. */
static inline const char *fuzz_path(const char *name)
{
    if (!fuzz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/eelsvae-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_cleanup);
    }
    char path[320];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, name);
    for (int i = 0; i < fuzz_path_count; i++)
        if (strcmp(fuzz_paths[i], path) == 0) return fuzz_paths[i];
    if (fuzz_path_count == 8) abort();
    snprintf(fuzz_paths[fuzz_path_count], sizeof fuzz_paths[0], "%s", path);
    return fuzz_paths[fuzz_path_count++];
}

/* Write bytes to a file, replacing it; aborts (a harness bug, not a
 * finding in the library) when the file system refuses. */
static inline void fuzz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Whole-file bytes (malloc'd); NULL when the file cannot be read. */
static inline uint8_t *fuzz_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 12, n = 0, got = 0;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    fclose(f);
    if (!buf) abort();
    *size = n;
    return buf;
}

/* CRC-32 (IEEE, as zlib's), written here so the harnesses keep to the
 * public API: the model and PCA files end with one over every byte before. */
static inline uint32_t fuzz_crc32(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* A copy of the input whose last four bytes are the little-endian CRC-32
 * of the rest: lets the fuzzer past the checksum into the fields behind it. */
static inline uint8_t *fuzz_with_crc(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) abort();
    memcpy(copy, data, size);
    if (size >= 4) {
        uint32_t crc = fuzz_crc32(copy, size - 4);
        for (int b = 0; b < 4; b++) copy[size - 4 + b] = (uint8_t)(crc >> (8 * b));
    }
    return copy;
}

/* A failed call must say why. It must not have run out of memory either:
 * an input of at most 64 KiB never justifies more than the harness allows
 * (libFuzzer's -malloc_limit_mb; replay.c's allocation cap), so NOMEM means
 * the parser tried a huge allocation. */
static inline void fuzz_check_failure(eelsvae_status st)
{
    FUZZ_CHECK(st != EELSVAE_OK);
    FUZZ_CHECK(st != EELSVAE_ERR_INTERNAL);
    FUZZ_CHECK(st != EELSVAE_ERR_NOMEM);
    FUZZ_CHECK(eelsvae_last_error()[0] != '\0');
}

/* Read every field of a signal, so that ASan sees each byte the reader set up. */
static inline void fuzz_walk_signal(const eelsvae_signal *s)
{
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    FUZZ_CHECK(ndim >= 1 && ndim <= EELSVAE_SIGNAL_MAX_DIMS);
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) {
        FUZZ_CHECK(shape[d] >= 1);
        FUZZ_CHECK(count <= SIZE_MAX / shape[d]);
        count *= shape[d];
        double offset = 0, scale = 0;
        const char *name = NULL, *units = NULL;
        int navigate = 0;
        FUZZ_CHECK(eelsvae_signal_axis(s, d, &offset, &scale, &name, &units, &navigate) == EELSVAE_OK);
        FUZZ_CHECK(strlen(name) < 64 && strlen(units) < EELSVAE_UNITS_MAX);
    }
    size_t esize = eelsvae_dtype_size(dtype);
    FUZZ_CHECK(esize > 0);
    const volatile uint8_t *bytes = eelsvae_signal_data(s);
    FUZZ_CHECK(bytes != NULL);
    unsigned sum = 0;
    for (size_t i = 0; i < count * esize; i++) sum += bytes[i];
    (void)sum;
    size_t n = eelsvae_signal_metadata_count(s);
    for (size_t i = 0; i < n; i++) {
        const char *key = NULL, *value = NULL;
        FUZZ_CHECK(eelsvae_signal_metadata_at(s, i, &key, &value) == EELSVAE_OK);
        FUZZ_CHECK(key[0] != '\0');
        FUZZ_CHECK(eelsvae_signal_metadata_get(s, key) != NULL);
        (void)strlen(value);
    }
}

/* Read every sample of a cube. */
static inline void fuzz_walk_cube(const eelsvae_cube *c)
{
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    FUZZ_CHECK(ny >= 1 && nx >= 1 && ne >= 1);
    const float *x = eelsvae_cube_data_const(c);
    float sum = 0;
    for (size_t i = 0; i < ny * nx * ne; i++) sum += x[i];
    volatile float keep = sum;
    (void)keep;
    for (int a = 0; a < 3; a++) {
        double offset = 0, scale = 0;
        const char *units = NULL;
        FUZZ_CHECK(eelsvae_cube_axis(c, (eelsvae_axis)a, &offset, &scale, &units) == EELSVAE_OK);
        FUZZ_CHECK(strlen(units) < EELSVAE_UNITS_MAX);
    }
}

/* Load a file as signals (each one the file holds, up to 16) and as a
 * cube, through the public entry points, checking what comes back. */
static inline void fuzz_load_everything(const char *path)
{
    size_t count = 0, main_index = 0;
    eelsvae_status st = eelsvae_file_signals(path, &count, &main_index);
    if (st == EELSVAE_OK) {
        FUZZ_CHECK(count >= 1 && main_index < count);
        for (size_t i = 0; i < count && i < 16; i++) {
            eelsvae_signal *s = NULL;
            st = eelsvae_signal_load_index(path, i, &s);
            if (st != EELSVAE_OK) {
                fuzz_check_failure(st);
                FUZZ_CHECK(s == NULL);
                continue;
            }
            fuzz_walk_signal(s);
            eelsvae_cube *c = NULL;
            st = eelsvae_signal_to_cube(s, &c);
            if (st == EELSVAE_OK)
                fuzz_walk_cube(c);
            else
                fuzz_check_failure(st);
            eelsvae_cube_free(c);
            eelsvae_signal_free(s);
        }
    } else {
        fuzz_check_failure(st);
    }
    eelsvae_cube *c = NULL;
    st = eelsvae_cube_load(path, &c);
    if (st == EELSVAE_OK)
        fuzz_walk_cube(c);
    else
        fuzz_check_failure(st);
    eelsvae_cube_free(c);
}

/* One thread: the inputs are small, and libFuzzer's leak check and timing
 * behave best without a pool of OpenMP workers. */
static inline void fuzz_init_library(void)
{
    eelsvae_set_threads(1);
}

#endif
