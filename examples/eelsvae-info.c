/* eelsvae-info: what a data file holds — shape, sample type, every axis's
 * calibration and the metadata, as text or as one JSON object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "common/cli.h"

static void usage(void)
{
    printf("Usage: %s FILE [--json] [--signal N]\n"
           "Print what a data file holds: its format, element type, shape, every axis\n"
           "(name, size, offset, scale, units; value = offset + scale * index, in C order,\n"
           "slowest first, so a spectrum image is y, x, E), the metadata and the range\n"
           "of the values.\n\n"
           "FILE is recognised by its contents: .dm3, .dm4, .hspy (when built with HDF5),\n"
           "Ripple .rpl (with its .raw) or .npy. A .npy file holds no calibration; its\n"
           "axes and metadata come from a sidecar FILE.json beside it when there is one\n"
           "(e.g. si.npy.json, written by eelsvae-convert; the same JSON as --json).\n\n"
           "Options:\n"
           "  --json       print one JSON object: \"shape\" ([ny, nx, ne] for a spectrum\n"
           "               image), \"dtype\", \"axes\" (a list of {name, size, offset, scale,\n"
           "               units, navigate} in the order of shape) and \"metadata\" (an\n"
           "               object of strings), with \"file\", \"format\", \"signal\",\n"
           "               \"signals\" and \"calibration\" (where the axes came from)\n"
           "  --signal N   which signal of a file holding several (DigitalMicrograph files\n"
           "               may hold a thumbnail, a survey image and the spectrum image;\n"
           "               counted from 0; default: the main one)\n"
           "  --help       this text\n",
           cli_prog());
}

/* The file's element type, and how it was read when that differs. */
static void print_dtype(const cli_source *src, eelsvae_dtype dtype)
{
    printf("dtype   %s", eelsvae_dtype_name(src->file_dtype));
    if (src->file_dtype != dtype) printf(" (read as %s)", eelsvae_dtype_name(dtype));
    printf("\n");
}

/* Print s left-aligned in `width` columns, counting characters, not bytes
 * (units such as "µm" are UTF-8). */
static void print_padded(const char *s, int width)
{
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) chars += (*p & 0xC0) != 0x80;
    printf("%s%*s", s, chars < width ? width - chars : 0, "");
}

static void print_axes(const eelsvae_signal *s, size_t ndim, const size_t *shape)
{
    printf("axes    value = offset + scale * index\n");
    for (size_t d = 0; d < ndim; d++) {
        double offset = 0, scale = 1;
        const char *name = "", *units = "";
        int navigate = 0;
        cli_check(eelsvae_signal_axis(s, d, &offset, &scale, &name, &units, &navigate), "axis");
        printf("  %zu  ", d);
        print_padded(*name ? name : "-", 14);
        printf(" size %-6zu offset %-12.10g scale %-12.10g units ", shape[d], offset, scale);
        print_padded(*units ? units : "-", 6);
        printf(" %s\n", navigate ? "navigation" : "signal");
    }
}

static void print_metadata(const eelsvae_signal *s)
{
    size_t n = eelsvae_signal_metadata_count(s);
    printf("metadata%s\n", n ? "" : " (none)");
    for (size_t i = 0; i < n; i++) {
        const char *key = NULL, *value = NULL;
        cli_check(eelsvae_signal_metadata_at(s, i, &key, &value), "metadata");
        printf("  %-24s %s\n", key, value);
    }
}

static void print_values(const eelsvae_signal *s, eelsvae_dtype dtype, size_t count)
{
    if (dtype == EELSVAE_DTYPE_COMPLEX64 || dtype == EELSVAE_DTYPE_COMPLEX128 || dtype == EELSVAE_DTYPE_RGBA8) return;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    size_t finite = 0;
    for (size_t i = 0; i < count; i++) {
        double v = NAN;
        cli_check(eelsvae_signal_value(s, i, &v), "signal values");
        if (!isfinite(v)) continue;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
        finite++;
    }
    if (finite) printf("values  min %g, max %g, mean %g", lo, hi, sum / (double)finite);
    else printf("values  none finite");
    if (finite < count) printf(" (%zu not finite)", count - finite);
    printf("\n");
}

static void print_text(const char *path, const cli_source *src, const eelsvae_signal *s)
{
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0}, count = 1;
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    printf("file    %s\nformat  %s", path, eelsvae_format_name(src->format));
    if (src->count > 1) printf(" (signal %zu of %zu, counted from 0; others: --signal N)", src->index, src->count);
    printf("\n");
    const char *title = eelsvae_signal_metadata_get(s, "title");
    if (title && *title) printf("title   %s\n", title);
    print_dtype(src, dtype);
    printf("shape   (");
    for (size_t d = 0; d < ndim; d++) {
        printf(d ? ", %zu" : "%zu", shape[d]);
        count *= shape[d];
    }
    printf(")\n");
    print_axes(s, ndim, shape);
    if (!strcmp(src->calibration, "none"))
        printf("calibration none: a .npy file holds none; a sidecar %s would give it\n", cli_sidecar_path(path));
    else printf("calibration from %s\n", src->calibration);
    print_metadata(s);
    print_values(s, dtype, count);
}

static void print_json(const char *path, const cli_source *src, const eelsvae_signal *s)
{
    cli_text t = {0};
    cli_text_printf(&t, "{\n  \"file\": ");
    cli_json_string(&t, path);
    cli_text_printf(&t, ",\n  \"format\": \"%s\",\n  \"signal\": %zu,\n  \"signals\": %zu,\n  \"calibration\": ",
                    eelsvae_format_name(src->format), src->index, src->count);
    cli_json_string(&t, src->calibration);
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, NULL, NULL, &dtype);
    if (src->file_dtype != dtype) cli_text_printf(&t, ",\n  \"file_dtype\": \"%s\"", eelsvae_dtype_name(src->file_dtype));
    cli_text_printf(&t, ",\n");
    cli_signal_json_members(&t, s, 2);
    cli_text_printf(&t, "\n}\n");
    fputs(t.s, stdout);
    cli_text_free(&t);
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    const char *path = NULL;
    int json = 0;
    size_t index = CLI_MAIN_SIGNAL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--signal")) {
            const char *o = argv[i];
            index = cli_size(o, cli_value(argc, argv, &i));
            if (index == CLI_MAIN_SIGNAL) cli_usage_error("--signal: %zu is too large", index);
        } else if (argv[i][0] == '-' && argv[i][1]) cli_usage_error("unknown option '%s'", argv[i]);
        else if (path) cli_usage_error("one FILE only (got '%s' and '%s')", path, argv[i]);
        else path = argv[i];
    }
    if (!path) cli_usage_error("FILE is required");
    cli_source src;
    eelsvae_signal *s = cli_load_signal(path, index, &src);
    if (json) print_json(path, &src, s);
    else print_text(path, &src, s);
    eelsvae_signal_free(s);
    if (fflush(stdout) != 0 || ferror(stdout)) cli_fail("cannot write the output");
    return 0;
}
