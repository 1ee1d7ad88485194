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

/* The value after option argv[*i]; advances *i. */
const char *cli_value(int argc, char **argv, int *i);
double cli_double(const char *option, const char *text);
size_t cli_size(const char *option, const char *text);
uint64_t cli_u64(const char *option, const char *text);
/* "LO:HI" → lo < hi. */
void cli_window(const char *option, const char *text, double *lo, double *hi);
/* "a,b,c" → up to max doubles; returns the count. */
size_t cli_double_list(const char *option, const char *text, double *out, size_t max);

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

/* Heatmap of an ny × nx map as PNG, values lo…hi on a viridis scale, each
 * pixel drawn `zoom` × `zoom`. Returns 0, or -1 when built without libpng. */
int cli_write_heatmap(const char *path, const float *map, size_t ny, size_t nx, double lo, double hi, int zoom);

/* Load a cube and give it the energy calibration from the command line;
 * both are required (a .npy file carries none): NAN means "not given". */
eelsvae_cube *cli_load_cube(const char *path, double energy_offset, double energy_scale);

/* Load an ny × nx uint8 mask (.npy of any integer or bool dtype). */
uint8_t *cli_load_mask(const char *path, size_t ny, size_t nx);

#endif
