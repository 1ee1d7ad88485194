/* Helpers shared by the example programs: option parsing, fatal errors,
 * output directories, atomic text files, PNG heatmaps. Not part of the library. */
#ifndef EELSVAE_EXAMPLES_CLI_H
#define EELSVAE_EXAMPLES_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <eelsvae/eelsvae.h>

/* Set once from argv[0]; prefixes every message. */
void cli_init(const char *argv0);
const char *cli_prog(void);

/* Print "prog: message" and exit(2) (usage errors) or exit(1) (failures). */
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Exit with the library's status name and message when `st` is not OK. */
void cli_check(eelsvae_status st, const char *what);
/* The same for a call on a file: the message names `path` once. */
void cli_check_file(eelsvae_status st, const char *path);

/* The value after option argv[*i]; advances *i. */
const char *cli_value(int argc, char **argv, int *i);
double cli_double(const char *option, const char *text);
/* --spatial-sigma S: the chain's Gaussian σ on y and x in pixels, 0 … 5
 * (the presets' 0.5 mixes a little of each pixel's neighbours in: less
 * noise, a one-pixel ring around every small region; docs/scores.md). */
double cli_spatial_sigma(const char *option, const char *text);
/* The optimiser steps eelsvae-train and eelsvae-bench train at least (by
 * raising the epochs) unless --epochs is given: a small scan gives few
 * batches an epoch, and outlier mode's warm-up needs a model that already
 * fits the bulk (96 × 96, 16 disks, 0.9 eV: the SI-trained VAE's F1 was
 * 0.32 after 240 steps, 0.97 after 900). */
#define CLI_MIN_STEPS 900

/* --mean-filter K: the chain's K × K spatial mean, K odd, 1 … 15. */
size_t cli_mean_filter(const char *option, const char *text);
#define CLI_MEAN_FILTER_HELP \
    "  --mean-filter K         K x K spatial mean of the preprocessing, K odd: pools\n" \
    "                          each pixel with its neighbours, so that at low counts\n" \
    "                          regions several pixels wide stand out of the noise,\n" \
    "                          while a one-pixel feature keeps 1/K^2 of its signal\n" \
    "                          and region rims smear (default: chosen for the SI's\n" \
    "                          noise, 3 where a perfect reconstruction would reach\n" \
    "                          PCC < 0.95 over the range, else 1; 3, the paper's,\n" \
    "                          with --preset paper)\n"

/* The preprocessing chain of `preset` with the programs' overrides:
 * spatial_sigma (NAN: the preset's σ on y and x) and mean_filter (0: the
 * paper preset's 3). With the fast preset, what is not given is chosen by
 * eelsvae_preprocess_options_choose_spatial for the noise of the raw cube
 * over lo … hi eV (NaN: the whole axis), and the choice said on stderr. */
void cli_chain(eelsvae_preprocess_options *chain, eelsvae_preset preset, double spatial_sigma, size_t mean_filter,
               const eelsvae_cube *raw, double lo, double hi);
#define CLI_SPATIAL_SIGMA_HELP \
    "  --spatial-sigma S       Gaussian blur of the preprocessing on y and x, pixels:\n" \
    "                          it lowers the noise and mixes a one-pixel ring around\n" \
    "                          each small region into it (default: chosen for the\n" \
    "                          SI's noise, 0 where a perfect reconstruction would\n" \
    "                          reach PCC >= 0.99 over the range, else 0.5, the\n" \
    "                          paper's)\n"
size_t cli_size(const char *option, const char *text);
uint64_t cli_u64(const char *option, const char *text);
/* "LO:HI" → lo < hi. */
void cli_window(const char *option, const char *text, double *lo, double *hi);
/* "a,b,c" → up to max doubles; returns the count. */
size_t cli_double_list(const char *option, const char *text, double *out, size_t max);
/* --noise of the programs that synthesise an SI: "default" → 0, "paper" →
 * 1 (the library's realistic setting, eelsvae_synth_options_init_realistic). */
int cli_noise_paper(const char *option, const char *text);

/* mkdir -p; exits with a clear message on failure. */
void cli_make_dir(const char *dir);
/* dir + "/" + name in a static rotating buffer. */
const char *cli_join(const char *dir, const char *name);
/* Write a whole text file via a temporary and rename. */
void cli_write_text(const char *path, const char *text);

/* A growing text buffer (s is NUL-terminated, or NULL before the first
 * append); an append that cannot allocate exits with a message. */
typedef struct cli_text {
    char *s;
    size_t len, cap;
} cli_text;
void cli_text_printf(cli_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_text_free(cli_text *t);

/* One line of training progress on stderr, as eelsvae-train draws it: a
 * bar per epoch, the losses, the ETA; a newline when an epoch ends. */
void cli_print_train_progress(const eelsvae_train_progress *p);

/* viridis at t in [0, 1] (clamped; NaN gives the low end). */
void cli_viridis(double t, uint8_t rgb[3]);

/* A w × h RGB image (3 bytes per pixel, row-major) as PNG, written to a
 * temporary and renamed. Returns 0, or -1 when built without libpng. */
int cli_write_png(const char *path, const uint8_t *rgb, size_t w, size_t h);

/* ---- data files in any format ------------------------------------------
 *
 * Inputs are recognised by content: .npy, .dm3, .dm4, .hspy, .rpl. A .npy
 * file holds no calibration; its axes and metadata may come from a sidecar
 * FILE.json beside it (the full name plus ".json", e.g. si.npy.json), the
 * JSON that eelsvae-convert writes and `eelsvae-info --json` prints:
 *   {"shape": [ny, nx, ne], "dtype": "float32",
 *    "axes": [{"name": "y", "size": ny, "offset": 0, "scale": 1, "units": "nm",
 *              "navigate": true}, …],
 *    "metadata": {"signal_type": "EELS", …}}
 * Only "axes" (offset and scale of every axis, in the order of the shape) is
 * required; "size" and "shape", when present, must match the .npy file. */

/* Pass as `index` to read a file's main signal (DM files hold several). */
#define CLI_MAIN_SIGNAL ((size_t)-1)

/* The sidecar name of a .npy file: path + ".json" (static rotating buffer). */
const char *cli_sidecar_path(const char *npy_path);

/* What cli_load_signal() found out about a file. */
typedef struct cli_source {
    eelsvae_format format;
    size_t index, count;      /* the signal read, of how many in the file */
    eelsvae_dtype file_dtype; /* element type in the file (see below) */
    const char *calibration;  /* "the file", "sidecar PATH" or "none" (static) */
} cli_source;

/* Read one signal of a file (CLI_MAIN_SIGNAL: the main one), exiting with a
 * message naming the file on failure. A .npy file keeps its element type
 * when float32 holds every value exactly (the library reads .npy as
 * float32), else it is float32 and file_dtype says what the file held; it
 * takes axes and metadata from its sidecar when there is one. `source` may
 * be NULL. */
eelsvae_signal *cli_load_signal(const char *path, size_t index, cli_source *source);

/* Write a signal in the format of path's extension (.npy, .hspy, .hdf5,
 * .rpl); with `sidecar`, a .npy file gets its FILE.json too. */
void cli_save_signal(const eelsvae_signal *signal, const char *path, int sidecar);

/* Append the members "shape", "dtype", "axes" and "metadata" of a signal's
 * JSON description (no braces), indented by `indent` spaces. */
void cli_signal_json_members(cli_text *t, const eelsvae_signal *signal, int indent);
/* A JSON string literal (escaped; bytes that are not UTF-8 read as Latin-1). */
void cli_json_string(cli_text *t, const char *s);
/* A JSON number that reads back to the same double (null for NaN/Inf). */
void cli_json_number(cli_text *t, double v);

/* The signal (energy) axis of a signal: the one not flagged navigate, the
 * last when all are; exits naming `path` when there are several. */
size_t cli_energy_axis(const eelsvae_signal *signal, const char *path);

/* Load the main signal of a file as a cube with its energy calibration.
 * The calibration comes from the file (or a .npy file's sidecar);
 * energy_offset / energy_scale (eV; NAN = not given) override it, and both
 * are required when the file has none (a bare .npy). An axis in keV is
 * converted to eV. Prints one line on stderr saying what was loaded. */
eelsvae_cube *cli_load_cube(const char *path, double energy_offset, double energy_scale);

/* The help lines shared by the programs that load a CUBE (ends in "\n"). */
#define CLI_CUBE_FORMATS_HELP \
    "CUBE is a spectrum image (y, x, E) in any format read here, recognised by\n" \
    "content: .dm3, .dm4, .hspy, .rpl (+ .raw) with their calibration, or .npy,\n" \
    "which holds none: give it --energy-offset/--energy-scale, or a sidecar\n" \
    "CUBE.json (e.g. si.npy.json, as eelsvae-convert writes) with its axes.\n"

/* Load an ny × nx mask (any format, any real element type; non-zero = 1). */
uint8_t *cli_load_mask(const char *path, size_t ny, size_t nx);


#endif
