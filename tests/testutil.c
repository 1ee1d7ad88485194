#include "testutil.h"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#else
#define HAVE_MALLINFO2 0
#endif
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tu_tmpdir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/eelsvae-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return dir;
}

const char *tu_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tu_tmpdir(), name);
    return p;
}

const char *tu_python(void)
{
    static int checked;
    static const char *python;
    if (!checked) {
        checked = 1;
        const char *p = getenv("EELSVAE_PYTHON");
        if (!p || !*p) p = "/usr/bin/python3";
        if (tu_system("%s -c 'import numpy' >/dev/null 2>&1", p) == 0) python = p;
    }
    return python;
}

int tu_system(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

void tu_fill_uniform(float *x, size_t n, double lo, double hi, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)(lo + (hi - lo) * (double)(s >> 11) * 0x1.0p-53);
    }
}

eelsvae_cube *tu_random_cube(size_t ny, size_t nx, size_t ne, uint64_t seed)
{
    eelsvae_cube *c = NULL;
    if (eelsvae_cube_create(ny, nx, ne, &c) != EELSVAE_OK) return NULL;
    tu_fill_uniform(eelsvae_cube_data(c), ny * nx * ne, 0.0, 1.0, seed);
    return c;
}

eelsvae_cube *tu_calibrated_cube(size_t ny, size_t nx, size_t ne, uint64_t seed)
{
    eelsvae_cube *c = tu_random_cube(ny, nx, ne, seed);
    assert_non_null(c);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, -2.0, 0.25, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 1.5, 0.5, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 280.5, 0.05, "eV"));
    return c;
}

eelsvae_signal *tu_random_signal(eelsvae_dtype dtype, size_t ndim, const size_t *shape, uint64_t seed)
{
    size_t n = eelsvae_dtype_size(dtype);
    for (size_t d = 0; d < ndim; d++) n *= shape[d];
    uint8_t *bytes = malloc(n);
    assert_non_null(bytes);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bytes[i] = (uint8_t)(x >> 32);
        if (dtype == EELSVAE_DTYPE_BOOL) bytes[i] &= 1;
    }
    if (dtype == EELSVAE_DTYPE_FLOAT64) /* finite values, not random bit patterns */
        for (size_t i = 0; i < n / 8; i++) ((double *)bytes)[i] = (double)i * 0.75 - 3.0;
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(dtype, ndim, shape, bytes, &s));
    free(bytes);
    return s;
}

size_t tu_heap_in_use(void)
{
#if HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

int tu_heap_measurable(void)
{
    return HAVE_MALLINFO2 && !TU_UNDER_ASAN;
}

/* ---- files ------------------------------------------------------------------------ */

const char *tu_data_dir(void)
{
    static char dir[1024];
    const char *env = getenv("EELSVAE_TEST_DATA");
    if (env && *env) return env;
    env = getenv("EELSVAE_SOURCE_DIR");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s/tests/data", env);
        return dir;
    }
    /* Built by hand from the source root: the data sit beside this file. */
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    snprintf(slash ? slash + 1 : dir, sizeof dir - (size_t)(slash ? slash + 1 - dir : 0), "data");
    return dir;
}

char *tu_read_file(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    if (buf) buf[n] = '\0';
    if (size) *size = buf ? (size_t)n : 0;
    return buf;
}

void tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

size_t tu_count_temporaries(const char *dir, const char *stem)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, stem, strlen(stem)) == 0 && strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* ---- HyperSpy as the oracle ---------------------------------------------------------- */

const char *tu_hyperspy_python(void)
{
    static int checked;
    static const char *python;
    if (!checked) {
        checked = 1;
        const char *p = tu_python();
        if (p && tu_system("%s -c 'import h5py, hyperspy.api' >/dev/null 2>&1", p) == 0) python = p;
    }
    return python;
}

const char *tu_oracle_corpus(const char *script, const char *dirname)
{
    static int state; /* 0 not tried, 1 made, -1 failed */
    static char dir[1024];
    if (state == 0) {
        snprintf(dir, sizeof dir, "%s", tu_path(dirname));
        mkdir(dir, 0700);
        int rc = tu_system("%s '%s/%s' make '%s' >'%s/make.log' 2>&1", tu_hyperspy_python(), tu_data_dir(), script,
                           dir, dir);
        state = rc == 0 ? 1 : -1;
        if (rc != 0) tu_system("cat '%s/make.log' >&2", dir);
    }
    assert_int_equal(state, 1);
    return dir;
}

void tu_desc_load(tu_description *d, const char *prefix)
{
    char path[1200];
    memset(d, 0, sizeof *d);
    snprintf(path, sizeof path, "%s.txt", prefix);
    d->text = tu_read_file(path, NULL);
    if (!d->text) fail_msg("no oracle description %s", path);
    for (char *line = d->text; line && *line && d->n < TU_DESC_MAX;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
            d->key[d->n] = line;
            d->value[d->n++] = tab + 1;
        }
        line = next;
    }
    snprintf(path, sizeof path, "%s.bin", prefix);
    d->bin = (uint8_t *)tu_read_file(path, &d->bin_size);
}

void tu_desc_free(tu_description *d)
{
    free(d->text);
    free(d->bin);
}

const char *tu_desc_get(const tu_description *d, const char *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->key[i], key) == 0) return d->value[i];
    return NULL;
}

const char *tu_desc_need(const tu_description *d, const char *key)
{
    const char *v = tu_desc_get(d, key);
    if (!v) fail_msg("the oracle's description has no %s", key);
    return v;
}

double tu_desc_number(const tu_description *d, const char *key)
{
    return strtod(tu_desc_need(d, key), NULL);
}

/* A number in HyperSpy's metadata must be ours exactly (both are the same
 * double printed to round-trip); absent there, absent here. */
static void assert_same_number(const eelsvae_signal *s, const char *ours, const tu_description *d, const char *theirs)
{
    const char *want = tu_desc_get(d, theirs), *have = eelsvae_signal_metadata_get(s, ours);
    if (!want) {
        if (have) fail_msg("%s = %s, but HyperSpy has no %s", ours, have, theirs);
        return;
    }
    if (!have) fail_msg("no %s; HyperSpy has %s = %s", ours, theirs, want);
    assert_close(strtod(have, NULL), strtod(want, NULL), 0.0, 1e-15);
}

/* Text metadata must be equal; absent counts as "". */
static void assert_same_text(const eelsvae_signal *s, const char *ours, const tu_description *d, const char *theirs)
{
    const char *want = tu_desc_get(d, theirs), *have = eelsvae_signal_metadata_get(s, ours);
    assert_string_equal(have ? have : "", want ? want : "");
}

static void assert_same_axes(const eelsvae_signal *s, size_t ndim, const tu_description *d)
{
    for (size_t i = 0; i < ndim; i++) {
        char key[64];
        double offset = 0, scale = 0;
        const char *name = NULL, *units = NULL;
        int navigate = -1;
        assert_ok(eelsvae_signal_axis(s, i, &offset, &scale, &name, &units, &navigate));
        snprintf(key, sizeof key, "axis%zu.name", i);
        assert_string_equal(name, tu_desc_need(d, key));
        snprintf(key, sizeof key, "axis%zu.units", i);
        assert_string_equal(units, tu_desc_need(d, key));
        snprintf(key, sizeof key, "axis%zu.equal_steps", i);
        /* A point axis' mean step is computed (differently) on both sides. */
        double tol = tu_desc_get(d, key) ? 1e-12 : 0.0;
        snprintf(key, sizeof key, "axis%zu.offset", i);
        assert_close(offset, tu_desc_number(d, key), 0.0, tol);
        snprintf(key, sizeof key, "axis%zu.scale", i);
        assert_close(scale, tu_desc_number(d, key), 0.0, tol);
        snprintf(key, sizeof key, "axis%zu.navigate", i);
        assert_int_equal(navigate, (int)tu_desc_number(d, key));
    }
}

void tu_oracle_assert_matches(const eelsvae_signal *s, const char *prefix)
{
    tu_description d;
    tu_desc_load(&d, prefix);
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    const char *want_type = tu_desc_need(&d, "dtype");
    /* float16 is read widened to float32 (the oracle's .bin is float32 too). */
    if (strcmp(want_type, "float16") == 0) want_type = "float32";
    assert_string_equal(eelsvae_dtype_name(dtype), want_type);
    assert_int_equal(ndim, (size_t)tu_desc_number(&d, "ndim"));
    const char *p = tu_desc_need(&d, "shape");
    for (size_t i = 0; i < ndim; i++) {
        char *end = NULL;
        assert_int_equal(shape[i], (size_t)strtoull(p, &end, 10));
        p = end;
    }
    assert_same_axes(s, ndim, &d);
    assert_same_text(s, "title", &d, "title");
    assert_same_text(s, "signal_type", &d, "signal_type");
    assert_same_text(s, "acquisition_date", &d, "date");
    assert_same_text(s, "acquisition_time", &d, "time");
    assert_same_text(s, "microscope", &d, "microscope");
    assert_same_number(s, "beam_energy_kev", &d, "beam_energy");
    assert_same_number(s, "convergence_angle_mrad", &d, "convergence_angle");
    assert_same_number(s, "collection_angle_mrad", &d, "collection_angle");
    assert_same_number(s, "exposure_s", &d, "exposure_s");
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++) count *= shape[i];
    assert_non_null(d.bin);
    assert_int_equal(d.bin_size, count * eelsvae_dtype_size(dtype));
    assert_memory_equal(eelsvae_signal_data(s), d.bin, d.bin_size);
    tu_desc_free(&d);
}

void tu_oracle_assert_class(const char *prefix, const char *cls, int signal_dimension)
{
    tu_description d;
    tu_desc_load(&d, prefix);
    assert_string_equal(tu_desc_need(&d, "class"), cls);
    assert_int_equal((int)tu_desc_number(&d, "signal_dimension"), signal_dimension);
    tu_desc_free(&d);
}

void tu_oracle_check_written(const char *script, const tu_written *w, size_t n)
{
    char cmd[4096];
    int len = snprintf(cmd, sizeof cmd, "%s '%s/%s' describe", tu_hyperspy_python(), tu_data_dir(), script);
    for (size_t i = 0; i < n; i++) {
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", tu_path(w[i].file));
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", tu_path(w[i].name));
    }
    assert_true((size_t)len < sizeof cmd);
    assert_int_equal(tu_system("%s >'%s' 2>&1", cmd, tu_path("describe.log")), 0);
    for (size_t i = 0; i < n; i++) {
        tu_oracle_assert_matches(w[i].expected, tu_path(w[i].name));
        /* and our reader agrees with HyperSpy's on our files */
        eelsvae_signal *back = NULL;
        assert_ok(eelsvae_signal_load(tu_path(w[i].file), &back));
        tu_oracle_assert_matches(back, tu_path(w[i].name));
        eelsvae_signal_free(back);
    }
}

/* ---- the tiny model ----------------------------------------------------------------- */

eelsvae_status tu_tiny_model_options(eelsvae_model_options *o)
{
    eelsvae_status st = eelsvae_model_options_init(o, EELSVAE_PRESET_FAST);
    if (st != EELSVAE_OK) return st;
    o->tile = TU_TINY_TILE;
    o->energy_channels = TU_TINY_CHANNELS;
    o->energy_start = TU_TINY_ENERGY_START;
    o->conv_layers = 3;
    const eelsvae_conv_spec layers[3] = {
        {2, {1, 1, 3}, {1, 1, 2}, {0, 0, 1}},
        {4, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
        {4, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
    };
    memset(o->conv, 0, sizeof o->conv);
    memcpy(o->conv, layers, sizeof layers);
    o->hidden = 8;
    o->latent = TU_TINY_LATENT;
    o->beta = 1.2;
    o->loss = EELSVAE_LOSS_BERNOULLI;
    return EELSVAE_OK;
}

eelsvae_model *tu_tiny_model(uint64_t seed)
{
    eelsvae_model_options o;
    assert_ok(tu_tiny_model_options(&o));
    eelsvae_model *m = NULL;
    assert_ok(eelsvae_model_create(&o, seed, &m));
    return m;
}

eelsvae_cube *tu_tiny_train_cube(size_t n, uint64_t seed)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = s.nx = n;
    s.energy_start = 686.0;
    s.energy_end = 737.0;
    s.dispersion = 1.0;
    s.o_edge = 690.0;
    s.seed = seed;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&s, &c, NULL));
    return c;
}
