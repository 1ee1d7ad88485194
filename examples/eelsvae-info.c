/* eelsvae-info: what a data file holds — shape, sample type, calibration. */
#include <stdio.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "common/cli.h"

static const char *dtype_name(eelsvae_dtype t)
{
    static const char *const names[] = {"int8",    "uint8",   "int16",   "uint16",  "int32",   "uint32",
                                        "int64",   "uint64",  "float16", "float32", "float64", "bool"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "unknown";
}

static void usage(void)
{
    printf("Usage: %s FILE\n"
           "Print the shape, sample type and calibration of a data file (.npy).\n"
           "A .npy file carries no calibration; its axes are reported as uncalibrated.\n\n"
           "Options:\n"
           "  --help   this text\n",
           cli_prog());
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else if (argv[i][0] == '-') cli_usage_error("unknown option '%s'", argv[i]);
        else if (path) cli_usage_error("one FILE only");
        else path = argv[i];
    }
    if (!path) cli_usage_error("FILE is required");
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    float *data = NULL;
    cli_check(eelsvae_npy_read(path, &ndim, shape, &dtype, &data), path);
    size_t n = 1;
    printf("file    %s\nformat  npy\ndtype   %s\nshape   (", path, dtype_name(dtype));
    for (size_t d = 0; d < ndim; d++) {
        printf(d ? ", %zu" : "%zu", shape[d]);
        n *= shape[d];
    }
    printf(")\n");
    if (ndim == 3) printf("axes    y %zu, x %zu, energy %zu (uncalibrated: .npy holds no calibration)\n", shape[0], shape[1], shape[2]);
    double lo = 0, hi = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || data[i] < lo) lo = data[i];
        if (i == 0 || data[i] > hi) hi = data[i];
        sum += data[i];
    }
    if (n) printf("values  min %g, max %g, mean %g\n", lo, hi, sum / (double)n);
    eelsvae_free(data);
    return 0;
}
