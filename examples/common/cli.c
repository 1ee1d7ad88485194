#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef EELSVAE_HAVE_PNG
#include <png.h>
#endif

static const char *prog = "eelsvae";

void cli_init(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    prog = slash ? slash + 1 : argv0;
}

const char *cli_prog(void)
{
    return prog;
}

static void vmessage(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help'.\n", prog);
    exit(2);
}

void cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    exit(1);
}

void cli_check(eelsvae_status st, const char *what)
{
    if (st != EELSVAE_OK) cli_fail("%s: %s: %s", what, eelsvae_strerror(st), eelsvae_last_error());
}

const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) cli_usage_error("option %s needs a value", argv[*i]);
    *i += 1;
    return argv[*i];
}

double cli_double(const char *option, const char *text)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v)) cli_usage_error("%s: '%s' is not a number", option, text);
    return v;
}

uint64_t cli_u64(const char *option, const char *text)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-')
        cli_usage_error("%s: '%s' is not a non-negative integer", option, text);
    return (uint64_t)v;
}

size_t cli_size(const char *option, const char *text)
{
    uint64_t v = cli_u64(option, text);
    if (v > SIZE_MAX) cli_usage_error("%s: %s is too large", option, text);
    return (size_t)v;
}

void cli_window(const char *option, const char *text, double *lo, double *hi)
{
    const char *colon = strchr(text, ':');
    if (!colon) cli_usage_error("%s: '%s' is not LO:HI", option, text);
    char left[64];
    size_t n = (size_t)(colon - text);
    if (n == 0 || n >= sizeof left) cli_usage_error("%s: '%s' is not LO:HI", option, text);
    memcpy(left, text, n);
    left[n] = '\0';
    *lo = cli_double(option, left);
    *hi = cli_double(option, colon + 1);
    if (!(*hi > *lo)) cli_usage_error("%s: '%s' is empty (HI must exceed LO)", option, text);
}

size_t cli_double_list(const char *option, const char *text, double *out, size_t max)
{
    size_t n = 0;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) cli_usage_error("%s: '%s' is not a comma-separated list", option, text);
        if (n == max) cli_usage_error("%s: more than %zu values", option, max);
        memcpy(item, p, len);
        item[len] = '\0';
        out[n++] = cli_double(option, item);
        p += len + (comma ? 1 : 0);
    }
    if (n == 0) cli_usage_error("%s: empty list", option);
    return n;
}

void cli_make_dir(const char *dir)
{
    char path[4096];
    if (strlen(dir) >= sizeof path) cli_fail("%s: path too long", dir);
    strcpy(path, dir);
    for (char *p = path + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST) cli_fail("cannot create directory %s: %s", path, strerror(errno));
            *p = saved;
            if (!saved) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) cli_fail("%s exists and is not a directory", dir);
    if (access(dir, W_OK) != 0) cli_fail("directory %s is not writable", dir);
}

const char *cli_join(const char *dir, const char *name)
{
    static char buf[8][4096];
    static int next;
    char *p = buf[next++ % 8];
    if ((size_t)snprintf(p, sizeof buf[0], "%s/%s", dir, name) >= sizeof buf[0]) cli_fail("%s/%s: path too long", dir, name);
    return p;
}

void cli_write_text(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    if (!fp) cli_fail("cannot write %s: %s", tmp, strerror(errno));
    int bad = fputs(text, fp) < 0;
    bad |= fclose(fp) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        cli_fail("cannot write %s: %s", path, strerror(errno));
    }
}

void cli_text_printf(cli_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) cli_fail("cannot format text");
    size_t need = t->len + (size_t)n + 1;
    if (need > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < need) cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) cli_fail("out of memory");
        t->s = s;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void cli_text_free(cli_text *t)
{
    free(t->s);
    t->s = NULL;
    t->len = t->cap = 0;
}

void cli_print_train_progress(const eelsvae_train_progress *p)
{
    int width = 24, filled = (int)(width * (double)p->batch / (double)(p->batches ? p->batches : 1));
    fprintf(stderr, "\repoch %zu/%zu [%.*s%*s] loss %.4g (rec %.4g, kl %.4g)", p->epoch, p->epochs, filled,
            "########################", width - filled, "", p->loss, p->reconstruction, p->kl);
    if (p->epoch_done) {
        if (!isnan(p->validation_loss)) fprintf(stderr, " val %.4g", p->validation_loss);
        fprintf(stderr, " lr %.2g", p->learning_rate);
    }
    fprintf(stderr, " ETA %.0fm%02.0fs   ", floor(p->eta_seconds / 60), fmod(p->eta_seconds, 60));
    if (p->epoch_done) fputc('\n', stderr);
}

/* viridis, sampled at nine points and interpolated linearly */
void cli_viridis(double t, uint8_t rgb[3])
{
    static const uint8_t lut[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                      {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double f = t * 8;
    int i = (int)f;
    if (i > 7) i = 7;
    double w = f - i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lround(lut[i][c] * (1 - w) + lut[i + 1][c] * w);
}

int cli_write_png(const char *path, const uint8_t *rgb, size_t w, size_t h)
{
#ifdef EELSVAE_HAVE_PNG
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) cli_fail("cannot write %s: %s", tmp, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        remove(tmp);
        cli_fail("cannot write PNG %s", path);
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (size_t y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + 3 * w * y));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        cli_fail("cannot write %s: %s", path, strerror(errno));
    }
    return 0;
#else
    (void)path, (void)rgb, (void)w, (void)h;
    return -1;
#endif
}

int cli_write_heatmap(const char *path, const float *map, size_t ny, size_t nx, double lo, double hi, int zoom)
{
    size_t w = nx * (size_t)zoom, h = ny * (size_t)zoom;
    uint8_t *rgb = malloc(w * h * 3);
    if (!rgb) cli_fail("out of memory");
    double span = hi > lo ? hi - lo : 1.0;
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) cli_viridis((map[(y / zoom) * nx + x / zoom] - lo) / span, rgb + 3 * (y * w + x));
    int rc = cli_write_png(path, rgb, w, h);
    free(rgb);
    return rc;
}

eelsvae_cube *cli_load_cube(const char *path, double energy_offset, double energy_scale)
{
    eelsvae_cube *cube = NULL;
    cli_check(eelsvae_cube_load_npy(path, &cube), path);
    /* A .npy file holds no calibration, and an uncalibrated axis (channel
     * numbers) would silently put an eV window on the wrong channels. */
    if (isnan(energy_offset) || isnan(energy_scale)) {
        eelsvae_cube_free(cube);
        cli_usage_error("%s has no energy calibration: pass --energy-offset EV and --energy-scale EV "
                        "(eelsvae-synth prints them)", path);
    }
    cli_check(eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, energy_offset, energy_scale, "eV"), "energy calibration");
    return cube;
}

uint8_t *cli_load_mask(const char *path, size_t ny, size_t nx)
{
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    float *data = NULL;
    cli_check(eelsvae_npy_read(path, &ndim, shape, NULL, &data), path);
    if (ndim != 2 || shape[0] != ny || shape[1] != nx) {
        eelsvae_free(data);
        cli_fail("%s: mask must be %zu × %zu to match the cube", path, ny, nx);
    }
    uint8_t *mask = malloc(ny * nx);
    if (!mask) cli_fail("out of memory");
    for (size_t i = 0; i < ny * nx; i++) mask[i] = data[i] != 0.0f;
    eelsvae_free(data);
    return mask;
}
