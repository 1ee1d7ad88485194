#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
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

double cli_spatial_sigma(const char *option, const char *text)
{
    double v = cli_double(option, text);
    if (!(v >= 0.0 && v <= 5.0)) cli_usage_error("%s: %g pixels must lie in [0, 5]", option, v);
    return v;
}

size_t cli_mean_filter(const char *option, const char *text)
{
    size_t k = cli_size(option, text);
    if (k % 2 == 0 || k > 15) cli_usage_error("%s: %zu must be odd, from 1 to 15", option, k);
    return k;
}

void cli_chain(eelsvae_preprocess_options *chain, eelsvae_preset preset, double spatial_sigma, size_t mean_filter,
               const eelsvae_cube *raw, double lo, double hi)
{
    cli_check(eelsvae_preprocess_options_init(chain, preset), "preprocess options");
    bool sigma_given = !isnan(spatial_sigma);
    if (sigma_given) chain->sigma[0] = chain->sigma[1] = spatial_sigma;
    if (mean_filter) chain->mean_filter = mean_filter;
    if (preset == EELSVAE_PRESET_PAPER || (mean_filter && sigma_given)) return;
    double pcc = 0, sigma = chain->sigma[0];
    cli_check(eelsvae_preprocess_options_choose_spatial(chain, raw, lo, hi, &pcc), "noise estimate");
    if (sigma_given) chain->sigma[0] = chain->sigma[1] = spatial_sigma;
    if (mean_filter) chain->mean_filter = mean_filter;
    char range[64] = "the whole energy axis";
    if (!isnan(lo)) snprintf(range, sizeof range, "%g … %g eV", lo, hi);
    fprintf(stderr, "noise: a perfect reconstruction would reach PCC %.3f over %s after a %g-pixel blur; ", pcc,
            range, sigma);
    if (!mean_filter && chain->mean_filter > 1)
        fprintf(stderr, "below %.2f, so the chain pools each pixel with a %zu x %zu mean (--mean-filter 1: none)\n",
                EELSVAE_MEAN_FILTER_BELOW_PCC, chain->mean_filter, chain->mean_filter);
    else if (!sigma_given && chain->sigma[0] == 0.0 && sigma > 0.0)
        fprintf(stderr, "from %.2f up, so the chain leaves the spatial blur out and rims stay sharp "
                "(--spatial-sigma %g keeps it)\n", EELSVAE_SPATIAL_BLUR_BELOW_PCC, sigma);
    else if (!mean_filter)
        fprintf(stderr, "no spatial mean needed (--mean-filter 3 pools neighbours)\n");
    else
        fprintf(stderr, "the spatial blur stays (--spatial-sigma 0 leaves it out)\n");
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

int cli_noise_paper(const char *option, const char *text)
{
    if (!strcmp(text, "default")) return 0;
    if (!strcmp(text, "paper")) return 1;
    cli_usage_error("%s: '%s' is neither default nor paper", option, text);
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

/* ---- JSON output ------------------------------------------------------------ */

void cli_json_number(cli_text *t, double v)
{
    if (!isfinite(v)) {
        cli_text_printf(t, "null");
        return;
    }
    /* The fewest significant digits that read back to the same double… */
    char buf[40];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* …without an exponent where plain digits do (420, not 4.2e+02): %g
     * writes one only when the exponent is below -4 or not below the precision. */
    int exponent = v == 0 ? 0 : (int)floor(log10(fabs(v)));
    if (exponent >= digits && exponent < 17) digits = exponent + 1;
    snprintf(buf, sizeof buf, "%.*g", digits, v);
    cli_text_printf(t, "%s", buf);
}

/* Length of the well-formed UTF-8 sequence at p, 0 when it is not one. */
static size_t utf8_length(const unsigned char *p)
{
    unsigned c = p[0];
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len) return 0;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range excludes overlong forms and surrogates */
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF) return 0;
    return len;
}

void cli_json_string(cli_text *t, const char *s)
{
    cli_text_printf(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        size_t len = c >= 0x80 ? utf8_length(p) : 1;
        if (c == '"' || c == '\\') cli_text_printf(t, "\\%c", (char)c);
        else if (c == '\n') cli_text_printf(t, "\\n");
        else if (c == '\t') cli_text_printf(t, "\\t");
        else if (c == '\r') cli_text_printf(t, "\\r");
        else if (c < 0x20) cli_text_printf(t, "\\u%04x", c);
        else if (len) cli_text_printf(t, "%.*s", (int)len, (const char *)p);
        else cli_text_printf(t, "\\u%04x", c); /* a stray byte: read it as Latin-1 (DM's "µ") */
        p += len ? len : 1;
    }
    cli_text_printf(t, "\"");
}

void cli_signal_json_members(cli_text *t, const eelsvae_signal *signal, int indent)
{
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(signal, &ndim, shape, &dtype);
    cli_text_printf(t, "%*s\"shape\": [", indent, "");
    for (size_t d = 0; d < ndim; d++) cli_text_printf(t, d ? ", %zu" : "%zu", shape[d]);
    cli_text_printf(t, "],\n%*s\"dtype\": \"%s\",\n%*s\"axes\": [", indent, "", eelsvae_dtype_name(dtype), indent, "");
    for (size_t d = 0; d < ndim; d++) {
        double offset = 0, scale = 1;
        const char *name = "", *units = "";
        int navigate = 0;
        cli_check(eelsvae_signal_axis(signal, d, &offset, &scale, &name, &units, &navigate), "signal axis");
        cli_text_printf(t, "%s\n%*s{\"name\": ", d ? "," : "", indent + 2, "");
        cli_json_string(t, name);
        cli_text_printf(t, ", \"size\": %zu, \"offset\": ", shape[d]);
        cli_json_number(t, offset);
        cli_text_printf(t, ", \"scale\": ");
        cli_json_number(t, scale);
        cli_text_printf(t, ", \"units\": ");
        cli_json_string(t, units);
        cli_text_printf(t, ", \"navigate\": %s}", navigate ? "true" : "false");
    }
    cli_text_printf(t, "\n%*s],\n%*s\"metadata\": {", indent, "", indent, "");
    size_t n = eelsvae_signal_metadata_count(signal);
    for (size_t i = 0; i < n; i++) {
        const char *key = NULL, *value = NULL;
        cli_check(eelsvae_signal_metadata_at(signal, i, &key, &value), "signal metadata");
        cli_text_printf(t, "%s\n%*s", i ? "," : "", indent + 2, "");
        cli_json_string(t, key);
        cli_text_printf(t, ": ");
        cli_json_string(t, value);
    }
    if (n) cli_text_printf(t, "\n%*s", indent, "");
    cli_text_printf(t, "}");
}

/* ---- JSON input (sidecars): a small strict parser -------------------------- */

typedef enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json {
    json_type type;
    int boolean;
    double number;
    char *string;      /* JSON_STRING */
    size_t count;      /* JSON_ARRAY, JSON_OBJECT */
    char **keys;       /* JSON_OBJECT */
    struct json *item; /* JSON_ARRAY, JSON_OBJECT */
} json;

typedef struct json_parser {
    const char *text, *p, *path;
} json_parser;

static void json_error(const json_parser *jp, const char *what)
{
    cli_fail("%s: not valid JSON at byte %zu: %s", jp->path, (size_t)(jp->p - jp->text), what);
}

static void json_skip_space(json_parser *jp)
{
    while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r') jp->p++;
}

static void *json_grow(void *p, size_t count, size_t size)
{
    void *q = realloc(p, (count + 1) * size);
    if (!q) cli_fail("out of memory");
    return q;
}

static void json_put_utf8(cli_text *t, unsigned long cp)
{
    if (cp < 0x80) cli_text_printf(t, "%c", (char)cp);
    else if (cp < 0x800) cli_text_printf(t, "%c%c", (char)(0xC0 | cp >> 6), (char)(0x80 | (cp & 0x3F)));
    else if (cp < 0x10000)
        cli_text_printf(t, "%c%c%c", (char)(0xE0 | cp >> 12), (char)(0x80 | (cp >> 6 & 0x3F)), (char)(0x80 | (cp & 0x3F)));
    else
        cli_text_printf(t, "%c%c%c%c", (char)(0xF0 | cp >> 18), (char)(0x80 | (cp >> 12 & 0x3F)),
                        (char)(0x80 | (cp >> 6 & 0x3F)), (char)(0x80 | (cp & 0x3F)));
}

static unsigned long json_hex4(json_parser *jp)
{
    unsigned long v = 0;
    for (int k = 0; k < 4; k++) {
        char c = *jp->p++;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) json_error(jp, "bad \\u escape");
        v = v * 16 + (unsigned long)d;
    }
    return v;
}

static char *json_parse_string(json_parser *jp)
{
    cli_text t = {0};
    cli_text_printf(&t, "%s", "");
    jp->p++; /* the opening quote */
    for (;;) {
        unsigned char c = (unsigned char)*jp->p;
        if (c == '"') break;
        if (c == 0) json_error(jp, "unterminated string");
        if (c < 0x20) json_error(jp, "control character in a string");
        if (c != '\\') {
            cli_text_printf(&t, "%c", (char)c);
            jp->p++;
            continue;
        }
        char e = jp->p[1];
        jp->p += 2;
        switch (e) {
        case '"': cli_text_printf(&t, "\""); break;
        case '\\': cli_text_printf(&t, "\\"); break;
        case '/': cli_text_printf(&t, "/"); break;
        case 'b': cli_text_printf(&t, "\b"); break;
        case 'f': cli_text_printf(&t, "\f"); break;
        case 'n': cli_text_printf(&t, "\n"); break;
        case 'r': cli_text_printf(&t, "\r"); break;
        case 't': cli_text_printf(&t, "\t"); break;
        case 'u': {
            unsigned long cp = json_hex4(jp);
            if (cp >= 0xD800 && cp <= 0xDBFF && jp->p[0] == '\\' && jp->p[1] == 'u') {
                jp->p += 2;
                unsigned long low = json_hex4(jp);
                if (low < 0xDC00 || low > 0xDFFF) json_error(jp, "unpaired surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else if (cp >= 0xD800 && cp <= 0xDFFF) json_error(jp, "unpaired surrogate");
            if (cp == 0) json_error(jp, "\\u0000 in a string");
            json_put_utf8(&t, cp);
            break;
        }
        default: jp->p -= 1; json_error(jp, "bad escape");
        }
    }
    jp->p++;
    return t.s;
}

/* A number as JSON spells it (no leading '+', no leading zeros, no hex). */
static double json_parse_number(json_parser *jp)
{
    const char *q = jp->p;
    if (*q == '-') q++;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') while (*q >= '0' && *q <= '9') q++;
    else json_error(jp, "expected a value");
    if (*q == '.') {
        q++;
        if (!(*q >= '0' && *q <= '9')) json_error(jp, "digits must follow '.'");
        while (*q >= '0' && *q <= '9') q++;
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!(*q >= '0' && *q <= '9')) json_error(jp, "digits must follow the exponent");
        while (*q >= '0' && *q <= '9') q++;
    }
    double v = strtod(jp->p, NULL);
    if (!isfinite(v)) json_error(jp, "number out of range");
    jp->p = q;
    return v;
}

static void json_parse_value(json_parser *jp, json *v, int depth);

static void json_parse_container(json_parser *jp, json *v, int depth, int object)
{
    char close = object ? '}' : ']';
    jp->p++;
    json_skip_space(jp);
    if (*jp->p == close) {
        jp->p++;
        return;
    }
    for (;;) {
        json_skip_space(jp);
        v->item = json_grow(v->item, v->count, sizeof *v->item);
        if (object) {
            if (*jp->p != '"') json_error(jp, "expected a key");
            v->keys = json_grow(v->keys, v->count, sizeof *v->keys);
            v->keys[v->count] = json_parse_string(jp);
            json_skip_space(jp);
            if (*jp->p != ':') json_error(jp, "expected ':'");
            jp->p++;
        }
        json_parse_value(jp, &v->item[v->count], depth + 1);
        v->count++;
        json_skip_space(jp);
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p != close) json_error(jp, object ? "expected ',' or '}'" : "expected ',' or ']'");
        jp->p++;
        return;
    }
}

static void json_parse_value(json_parser *jp, json *v, int depth)
{
    *v = (json){JSON_NULL, 0, 0, NULL, 0, NULL, NULL};
    if (depth > 64) json_error(jp, "nested too deeply");
    json_skip_space(jp);
    const char *p = jp->p;
    if (*p == '{' || *p == '[') {
        v->type = *p == '{' ? JSON_OBJECT : JSON_ARRAY;
        json_parse_container(jp, v, depth, *p == '{');
    } else if (*p == '"') {
        v->type = JSON_STRING;
        v->string = json_parse_string(jp);
    } else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
        v->type = JSON_BOOL;
        v->boolean = *p == 't';
        jp->p += v->boolean ? 4 : 5;
    } else if (!strncmp(p, "null", 4)) {
        jp->p += 4;
    } else {
        v->type = JSON_NUMBER;
        v->number = json_parse_number(jp);
    }
}

static void json_free(json *v)
{
    for (size_t i = 0; i < v->count; i++) {
        json_free(&v->item[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->item);
    free(v->keys);
    free(v->string);
}

static const json *json_member(const json *object, const char *key)
{
    for (size_t i = 0; object->type == JSON_OBJECT && i < object->count; i++)
        if (!strcmp(object->keys[i], key)) return &object->item[i];
    return NULL;
}

/* A whole (small) text file, NUL-terminated. */
static char *read_text_file(const char *path, size_t limit)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) cli_fail("cannot open %s: %s", path, strerror(errno));
    cli_text t = {0};
    cli_text_printf(&t, "%s", "");
    char buf[4096];
    size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        if (memchr(buf, 0, n)) cli_fail("%s: a NUL byte: not a JSON text file", path);
        if (t.len + n > limit) cli_fail("%s: larger than %zu bytes: not a sidecar", path, limit);
        cli_text_printf(&t, "%.*s", (int)n, buf);
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) cli_fail("cannot read %s", path);
    return t.s;
}

static void json_parse_file(const char *path, json *root)
{
    char *text = read_text_file(path, 16u << 20);
    json_parser jp = {text, text, path};
    json_parse_value(&jp, root, 0);
    json_skip_space(&jp);
    if (*jp.p) json_error(&jp, "text after the value");
    free(text);
}

/* ---- reading files in any format --------------------------------------------- */

const char *cli_sidecar_path(const char *npy_path)
{
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    if ((size_t)snprintf(p, sizeof buf[0], "%s.json", npy_path) >= sizeof buf[0]) cli_fail("%s: path too long", npy_path);
    return p;
}

void cli_check_file(eelsvae_status st, const char *path)
{
    if (st == EELSVAE_OK) return;
    const char *msg = eelsvae_last_error();
    if (strstr(msg, path)) cli_fail("%s (%s)", msg, eelsvae_strerror(st));
    cli_fail("%s: %s (%s)", path, msg, eelsvae_strerror(st));
}

static const json *sidecar_member(const json *object, const char *key, json_type type, int required,
                                  const char *sidecar, const char *where)
{
    static const char *const type_names[] = {"null", "true or false", "a number", "a string", "a list", "an object"};
    const json *v = json_member(object, key);
    if (!v && required) cli_fail("%s: %s has no \"%s\"", sidecar, where, key);
    if (v && v->type != type) cli_fail("%s: %s: \"%s\" must be %s", sidecar, where, key, type_names[type]);
    return v;
}

static void apply_sidecar_axes(eelsvae_signal *s, const json *root, const char *sidecar, const char *npy_path)
{
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_signal_shape(s, &ndim, shape, NULL);
    const json *jshape = sidecar_member(root, "shape", JSON_ARRAY, 0, sidecar, "the top level");
    int match = !jshape || jshape->count == ndim;
    for (size_t d = 0; jshape && match && d < ndim; d++)
        match = jshape->item[d].type == JSON_NUMBER && jshape->item[d].number == (double)shape[d];
    if (!match) cli_fail("%s: its \"shape\" is not the shape of %s: a sidecar of another file?", sidecar, npy_path);
    const json *axes = sidecar_member(root, "axes", JSON_ARRAY, 1, sidecar, "the top level");
    if (axes->count != ndim)
        cli_fail("%s: %zu axes for the %zu dimensions of %s", sidecar, axes->count, ndim, npy_path);
    for (size_t d = 0; d < ndim; d++) {
        char where[32];
        snprintf(where, sizeof where, "axes[%zu]", d);
        const json *a = &axes->item[d];
        if (a->type != JSON_OBJECT) cli_fail("%s: %s must be an object", sidecar, where);
        const json *size = sidecar_member(a, "size", JSON_NUMBER, 0, sidecar, where);
        if (size && size->number != (double)shape[d])
            cli_fail("%s: %s has size %g but dimension %zu of %s is %zu", sidecar, where, size->number, d, npy_path,
                     shape[d]);
        const json *offset = sidecar_member(a, "offset", JSON_NUMBER, 1, sidecar, where);
        const json *scale = sidecar_member(a, "scale", JSON_NUMBER, 1, sidecar, where);
        const json *name = sidecar_member(a, "name", JSON_STRING, 0, sidecar, where);
        const json *units = sidecar_member(a, "units", JSON_STRING, 0, sidecar, where);
        const json *navigate = sidecar_member(a, "navigate", JSON_BOOL, 0, sidecar, where);
        eelsvae_status st = eelsvae_signal_set_axis(s, d, offset->number, scale->number, name ? name->string : "",
                                                    units ? units->string : "",
                                                    navigate ? navigate->boolean : d + 1 < ndim);
        if (st != EELSVAE_OK) cli_fail("%s: %s: %s", sidecar, where, eelsvae_last_error());
    }
}

static void apply_sidecar_metadata(eelsvae_signal *s, const json *root, const char *sidecar)
{
    const json *meta = sidecar_member(root, "metadata", JSON_OBJECT, 0, sidecar, "the top level");
    for (size_t i = 0; meta && i < meta->count; i++) {
        const json *v = &meta->item[i];
        cli_text number = {0};
        const char *value = v->string;
        if (v->type == JSON_NULL) continue; /* a value not known */
        if (v->type == JSON_NUMBER) {
            cli_json_number(&number, v->number);
            value = number.s;
        } else if (v->type == JSON_BOOL) value = v->boolean ? "true" : "false";
        else if (v->type != JSON_STRING)
            cli_fail("%s: metadata \"%s\" must be a string, a number, true, false or null", sidecar, meta->keys[i]);
        eelsvae_status st = eelsvae_signal_metadata_set(s, meta->keys[i], value);
        cli_text_free(&number);
        if (st != EELSVAE_OK) cli_fail("%s: metadata \"%s\": %s", sidecar, meta->keys[i], eelsvae_last_error());
    }
}

/* Give a .npy signal the axes and metadata of its sidecar; 0 when it has none. */
static int apply_sidecar(eelsvae_signal *s, const char *npy_path, const char **sidecar_path)
{
    const char *sidecar = cli_sidecar_path(npy_path);
    if (access(sidecar, F_OK) != 0) return 0;
    json root;
    json_parse_file(sidecar, &root);
    if (root.type != JSON_OBJECT) cli_fail("%s: a sidecar is a JSON object", sidecar);
    apply_sidecar_axes(s, &root, sidecar, npy_path);
    apply_sidecar_metadata(s, &root, sidecar);
    json_free(&root);
    *sidecar_path = sidecar;
    return 1;
}

static int has_extension(const char *path, const char *ext)
{
    size_t n = strlen(path), m = strlen(ext);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = path[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != ext[i]) return 0;
    }
    return 1;
}

eelsvae_signal *cli_load_signal(const char *path, size_t index, cli_source *source)
{
    static char calibration[4200];
    cli_source src = {EELSVAE_FORMAT_UNKNOWN, 0, 1, EELSVAE_DTYPE_FLOAT32, "none"};
    cli_check_file(eelsvae_format_detect(path, &src.format), path);
    if (src.format == EELSVAE_FORMAT_UNKNOWN)
        cli_fail("%s: not a .npy, .dm3, .dm4, .hspy or .rpl file (recognised by its contents, not its name)%s", path,
                 has_extension(path, ".raw") ? "; for Ripple data, name the .rpl header beside it" : "");
    eelsvae_signal *s = NULL;
    if (src.format == EELSVAE_FORMAT_NPY) {
        if (index != CLI_MAIN_SIGNAL && index != 0) cli_fail("%s: a .npy file holds one signal, not %zu", path, index + 1);
        cli_check_file(eelsvae_signal_load(path, &s), path);
        eelsvae_signal_shape(s, NULL, NULL, &src.file_dtype);
        const char *sidecar = NULL;
        if (apply_sidecar(s, path, &sidecar)) {
            snprintf(calibration, sizeof calibration, "sidecar %s", sidecar);
            src.calibration = calibration;
        }
    } else {
        cli_check_file(eelsvae_file_signals(path, &src.count, &src.index), path);
        if (index != CLI_MAIN_SIGNAL) {
            if (index >= src.count) cli_fail("%s: no signal %zu: the file holds %zu (0 … %zu)", path, index, src.count,
                                             src.count - 1);
            src.index = index;
        }
        cli_check_file(eelsvae_signal_load_index(path, src.index, &s), path);
        eelsvae_signal_shape(s, NULL, NULL, &src.file_dtype);
        src.calibration = "the file";
    }
    if (source) *source = src;
    return s;
}

void cli_save_signal(const eelsvae_signal *signal, const char *path, int sidecar)
{
    cli_check_file(eelsvae_signal_save(signal, path), path);
    if (!sidecar || !has_extension(path, ".npy")) return;
    cli_text t = {0};
    cli_text_printf(&t, "{\n");
    cli_signal_json_members(&t, signal, 2);
    cli_text_printf(&t, "\n}\n");
    cli_write_text(cli_sidecar_path(path), t.s);
    cli_text_free(&t);
}

size_t cli_energy_axis(const eelsvae_signal *signal, const char *path)
{
    size_t ndim = 0, found = 0, signal_axes = 0;
    eelsvae_signal_shape(signal, &ndim, NULL, NULL);
    found = ndim - 1;
    for (size_t d = 0; d < ndim; d++) {
        int navigate = 1;
        cli_check(eelsvae_signal_axis(signal, d, NULL, NULL, NULL, NULL, &navigate), path);
        if (!navigate) {
            found = d;
            signal_axes++;
        }
    }
    if (signal_axes > 1)
        cli_fail("%s holds an image (%zu signal axes), not a spectrum image with one energy axis", path, signal_axes);
    return found;
}

/* ---- cubes and masks ------------------------------------------------------------ */

eelsvae_cube *cli_load_cube(const char *path, double energy_offset, double energy_scale)
{
    cli_source src;
    eelsvae_signal *s = cli_load_signal(path, CLI_MAIN_SIGNAL, &src);
    size_t e = cli_energy_axis(s, path);
    double offset = 0, scale = 1;
    const char *file_units = "";
    cli_check(eelsvae_signal_axis(s, e, &offset, &scale, NULL, &file_units, NULL), path);
    /* An uncalibrated axis counts channels (the library refuses eV windows
     * on it): say here which options fix it, before any conversion. */
    int calibrated = !(offset == 0 && scale == 1 && file_units[0] == '\0');
    int given = !isnan(energy_offset) + !isnan(energy_scale);
    if (!calibrated && given < 2) {
        eelsvae_signal_free(s);
        cli_usage_error("%s has no energy calibration (%s): pass --energy-offset EV and --energy-scale EV "
                        "(eelsvae-synth prints them), or write them in a sidecar %s (see --help)",
                        path, src.format == EELSVAE_FORMAT_NPY ? ".npy holds none and there is no sidecar" : "its energy "
                        "axis is channel numbers", cli_sidecar_path(path));
    }
    eelsvae_cube *cube = NULL;
    cli_check_file(eelsvae_signal_to_cube(s, &cube), path);
    eelsvae_signal_free(s);
    /* The library gives a keV or meV axis in eV and keeps other units. */
    const char *cube_units = "";
    cli_check(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, &offset, &scale, &cube_units), path);
    char units[EELSVAE_UNITS_MAX];
    snprintf(units, sizeof units, "%s", cube_units);
    if (units[0] && strcmp(units, "eV") && given < 2)
        fprintf(stderr, "%s: warning: the energy axis of %s is in '%s', not eV; energy windows are read in '%s'\n",
                prog, path, units, units);
    if (!isnan(energy_offset)) offset = energy_offset;
    if (!isnan(energy_scale)) scale = energy_scale;
    if (given || units[0] == '\0') strcpy(units, "eV");
    cli_check(eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, offset, scale, units), "energy calibration");
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(cube, &ny, &nx, &ne);
    fprintf(stderr, "%s: %s (%s): %zu × %zu × %zu, energy %g %s + %g %s per channel, calibration from %s%s\n", prog,
            path, eelsvae_format_name(src.format), ny, nx, ne, offset, units, scale, units,
            given == 2 ? "the command line" : src.calibration, given == 1 ? " and the command line" : "");
    return cube;
}

uint8_t *cli_load_mask(const char *path, size_t ny, size_t nx)
{
    eelsvae_signal *s = cli_load_signal(path, CLI_MAIN_SIGNAL, NULL);
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    /* Freed before failing: exit() then holds no memory that was read for nothing. */
    if (ndim != 2 || shape[0] != ny || shape[1] != nx) {
        eelsvae_signal_free(s);
        cli_fail("%s: a mask must be %zu × %zu (y × x) to match the cube; this is %zu-D, %zu × %zu…", path, ny, nx,
                 ndim, shape[0], ndim > 1 ? shape[1] : 1);
    }
    if (dtype == EELSVAE_DTYPE_COMPLEX64 || dtype == EELSVAE_DTYPE_COMPLEX128 || dtype == EELSVAE_DTYPE_RGBA8) {
        eelsvae_signal_free(s);
        cli_fail("%s: a mask holds numbers, not %s", path, eelsvae_dtype_name(dtype));
    }
    uint8_t *mask = malloc(ny * nx);
    if (!mask) cli_fail("out of memory");
    for (size_t i = 0; i < ny * nx; i++) {
        double v = 0.0;
        cli_check(eelsvae_signal_value(s, i, &v), path);
        mask[i] = v != 0.0;
    }
    eelsvae_signal_free(s);
    return mask;
}
