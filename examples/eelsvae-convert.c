/* eelsvae-convert: any file this library reads to .npy (+ sidecar), .hspy or
 * .rpl, keeping the data, its element type, the axes and the metadata. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "common/cli.h"

static void usage(void)
{
    printf("Usage: %s IN OUT [options]\n"
           "Convert a data file to another format, keeping the data (element type and\n"
           "values), the axes (name, offset, scale, units) and the metadata.\n\n"
           "IN is recognised by its contents: .dm3, .dm4, .hspy, Ripple .rpl (with its\n"
           ".raw) or .npy (with its sidecar IN.json when there is one). OUT's extension\n"
           "names the format written:\n"
           "  .npy          the array, plus a sidecar OUT.json (e.g. si.npy.json) with the\n"
           "                shape, dtype, axes and metadata, which every eelsvae program\n"
           "                reads back as the file's calibration\n"
           "  .hspy, .hdf5  HyperSpy HDF5 (when built with HDF5)\n"
           "  .rpl          Ripple header, and its data beside it (x.rpl → x.raw)\n"
           "A .npy input whose element type float32 cannot hold exactly (float64, large\n"
           "64-bit integers) is written as float32, with a note.\n\n"
           "Options:\n"
           "  --signal N           which signal of a file holding several (DigitalMicrograph;\n"
           "                       counted from 0, see eelsvae-info; default the main one)\n"
           "  --energy-offset EV   set the energy (signal) axis: value at channel 0, eV\n"
           "  --energy-scale EV    set the energy axis: eV per channel (with either option\n"
           "                       the axis's units become eV; e.g. to calibrate a .npy)\n"
           "  --help               this text\n",
           cli_prog());
}

static int ends_with(const char *s, const char *ext)
{
    size_t n = strlen(s), m = strlen(ext);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = s[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != ext[i]) return 0;
    }
    return 1;
}

/* Set the energy axis from the command line (NAN = keep the file's). */
static void calibrate_energy(eelsvae_signal *s, const char *path, double e0, double de)
{
    if (isnan(e0) && isnan(de)) return;
    size_t e = cli_energy_axis(s, path);
    double offset = 0, scale = 1;
    const char *name = "";
    int navigate = 0;
    cli_check(eelsvae_signal_axis(s, e, &offset, &scale, &name, NULL, &navigate), path);
    if (!isnan(e0)) offset = e0;
    if (!isnan(de)) scale = de;
    char keep_name[64];
    snprintf(keep_name, sizeof keep_name, "%s", *name ? name : "Energy loss");
    cli_check(eelsvae_signal_set_axis(s, e, offset, scale, keep_name, "eV", navigate), "energy calibration");
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    const char *in = NULL, *out = NULL;
    size_t index = CLI_MAIN_SIGNAL;
    double e0 = NAN, de = NAN;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(o, "--signal")) {
            index = cli_size(o, cli_value(argc, argv, &i));
            if (index == CLI_MAIN_SIGNAL) cli_usage_error("--signal: %zu is too large", index);
        } else if (!strcmp(o, "--energy-offset")) e0 = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--energy-scale")) de = cli_double(o, cli_value(argc, argv, &i));
        else if (o[0] == '-' && o[1]) cli_usage_error("unknown option '%s'", o);
        else if (!in) in = o;
        else if (!out) out = o;
        else cli_usage_error("IN and OUT only (got a third file, '%s')", o);
    }
    if (!in || !out) cli_usage_error("IN and OUT are required");
    if (!ends_with(out, ".npy") && !ends_with(out, ".hspy") && !ends_with(out, ".hdf5") && !ends_with(out, ".rpl"))
        cli_usage_error("%s: OUT must end in .npy, .hspy, .hdf5 or .rpl (the format written)", out);
    if (!isnan(de) && de == 0) cli_usage_error("--energy-scale: must not be 0");

    cli_source src;
    eelsvae_signal *s = cli_load_signal(in, index, &src);
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, NULL, NULL, &dtype);
    if (src.file_dtype != dtype)
        fprintf(stderr, "%s: note: %s holds %s, which is read and written as %s\n", cli_prog(), in,
                eelsvae_dtype_name(src.file_dtype), eelsvae_dtype_name(dtype));
    calibrate_energy(s, in, e0, de);
    cli_save_signal(s, out, 1);
    eelsvae_signal_free(s);
    if (ends_with(out, ".npy")) fprintf(stderr, "wrote %s and %s\n", out, cli_sidecar_path(out));
    else fprintf(stderr, "wrote %s\n", out);
    return 0;
}
