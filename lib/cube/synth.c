/* Synthetic BiFeO3-like spectrum image in raw counts.
 *
 * Model of the expectation at pixel (y, x), channel energy E, with the local
 * energy drift d (all features, the background included, move with it) and
 * E' = E − d:
 *
 *   bg(E')   = A·(E'/E0)^−r                        A = dose·thickness·gain
 *   O K      = kO·bg(E')·onset(E') + kO·bg(Eo)·peaks(E')   kO = o_jump·c_O
 *   Fe L2,3  = H·[white lines(E') + steps(E')·(E'/E3)^−r]
 *
 * E0 = energy_start, Eo = o_edge, E3 = fe_l3. Past the O onset the O K
 * continuum decays as the background does, so there the background is
 * multiplied by (1 + kO). H is chosen so that the Fe signal at E3 equals
 * fe_jump·c_Fe times the local background there (power law plus O K
 * continuum, what a pre-edge fit would remove). The maps — thickness,
 * exponent r, Fe and O compositions — are a few seeded low-frequency
 * cosines; the drift depends on the scan row (the slow, time-like
 * direction); each row has its own gain and its own random stream, so the
 * bits do not depend on the thread count.
 */
#include "cube_private.h"
#include "../core/options_out.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- shapes of the edges (eV; heights relative to the edge's unit) ------ */

/* O K onset: an erf step (no tail below threshold, unlike an arctan) whose
 * width is the instrument resolution. */
#define O_ONSET_SIGMA 1.0

/* O K near-edge structure of BiFeO3-like oxides: the O 2p–Fe 3d pre-peak at
 * the onset, the O 2p–Bi 6sp / Fe 4sp bands at ≈ +8 and ≈ +13 eV. Gaussians
 * (band structure broadened by the resolution); heights relative to the
 * O step. */
typedef struct gauss_peak {
    double offset, fwhm, height;
} gauss_peak;

static const gauss_peak o_peaks[] = {
    {1.0, 1.6, 0.8},
    {8.0, 4.0, 0.7},
    {13.0, 5.0, 0.5},
};

/* Fe L2,3 white lines: pseudo-Voigts (core-hole lifetime ⊗ resolution).
 * L3 carries the Fe3+ crystal-field shoulder 1.5 eV below its maximum; L2
 * is broader (Coster–Kronig decay). The continuum steps sit at the line
 * positions with the 2:1 (2p3/2 : 2p1/2) degeneracy ratio, as arctans of
 * the line widths, and decay with the background. */
#define FE_ETA 0.5
#define FE_L3_FWHM 2.0
#define FE_L2_FWHM 2.5
#define FE_SHOULDER_OFFSET (-1.5)
#define FE_SHOULDER_FWHM 1.5
#define FE_SHOULDER_HEIGHT 0.25
#define FE_STEP_L3 0.2
#define FE_STEP_L2 (FE_STEP_L3 / 2.0)

/* Amplitude of the realistic setting's thickness field: with the seeded
 * fields' spread it gives per-pixel totals a relative std near the 8 %
 * measured on the Nion SI (checked by tools/derive_realistic_dose.py). */
#define REALISTIC_THICKNESS_VARIATION 0.25
/* Row gains are clipped here so that the expectation stays positive. */
#define MIN_ROW_GAIN 0.05
/* Most |thickness_gradient|: the thinnest edge keeps 1 − 1.5/2 = 25 %. */
#define MAX_THICKNESS_GRADIENT 1.5

/* Streams of the map parameters; rows use streams 0 … ny − 1. */
#define STREAM_MAPS (UINT64_MAX - 16)

/* ---- options ------------------------------------------------------------ */

static void fill_defaults(eelsvae_synth_options *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->ny = 192;
    o->nx = 192;
    o->energy_start = 420.0;
    o->energy_end = 820.0;
    o->dispersion = 0.3;
    o->seed = 1;
    o->dose = 1000.0;
    o->read_noise = 3.0;
    o->bg_exponent_min = 3.0;
    o->bg_exponent_max = 4.0;
    o->thickness_gradient = 0.5;
    o->o_edge = 532.0;
    o->fe_l3 = 709.5;
    o->fe_l2 = 722.5;
    o->l3_l2_ratio = 4.0;
    o->fe_jump = 2.0;
    o->o_jump = 1.0;
    o->composition_variation = 0.15;
    o->drift = 0.3;
    o->stripe_gain = 0.02;
    o->thickness_variation = 0.05;
}

/* The realistic setting: see eelsvae_synth_options_init_realistic_sized()
 * and docs/synthetic.md for where each number comes from. */
static void apply_realistic(eelsvae_synth_options *o)
{
    o->dose = EELSVAE_SYNTH_REALISTIC_DOSE;
    /* Nion LSMO/STO SI (tools/measure_nuisances.py): the per-pixel totals vary
     * by 8 % and a planar trend explains none of it, so no gradient but a
     * smooth field of that std. */
    o->thickness_gradient = 0.0;
    o->thickness_variation = REALISTIC_THICKNESS_VARIATION;
    o->stripe_gain = 0.03;      /* row gain σ 2.9 % (max 5.6 %) */
    o->drift = 0.75;            /* 0.0038 eV per row, × 192 rows */
    o->bg_exponent_min = 1.8;   /* r = 2.4 ± 0.3, range 1.7–3.1 (Nion); 2.1 (HyperSpy's EELS_SI.dm4) */
    o->bg_exponent_max = 3.0;
}

eelsvae_status eelsvae_synth_options_init_sized(eelsvae_synth_options *opt, size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth_options_init: NULL options");
    /* Filled whole here, then only the caller's struct_size bytes are written. */
    eelsvae_synth_options o;
    fill_defaults(&o);
    return evae_write_options(opt, struct_size, &o, sizeof o, "synth options");
}

eelsvae_status eelsvae_synth_options_init_realistic_sized(eelsvae_synth_options *opt, size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth_options_init_realistic: NULL options");
    eelsvae_synth_options o;
    fill_defaults(&o);
    apply_realistic(&o);
    return evae_write_options(opt, struct_size, &o, sizeof o, "synth options");
}

static eelsvae_status check_range(double value, double lo, double hi, const char *field, const char *why)
{
    if (!isfinite(value) || value < lo || value > hi)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: %s = %g must be %s", field, value, why);
    return EELSVAE_OK;
}

/* Channels of energy_start + dispersion·i ≤ energy_end (to 1e-9 eV). */
static eelsvae_status channel_count(const eelsvae_synth_options *o, size_t *ne)
{
    double span = (o->energy_end - o->energy_start + 1e-9) / o->dispersion;
    if (!(span < 0x1p52) || span >= (double)SIZE_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "synth options: %g … %g eV at %g eV per channel is too many channels",
                         o->energy_start, o->energy_end, o->dispersion);
    size_t n = (size_t)floor(span) + 1;
    /* The division may round across an integer: settle on the definition. */
    while (n > 1 && o->energy_start + o->dispersion * (double)(n - 1) > o->energy_end + 1e-9) n--;
    while (o->energy_start + o->dispersion * (double)n <= o->energy_end + 1e-9) n++;
    *ne = n;
    return EELSVAE_OK;
}

static eelsvae_status check_on_axis(double value, const char *field, double first, double last)
{
    if (!isfinite(value) || value < first || value > last)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: %s = %g eV lies outside the energy axis %g … %g eV",
                         field, value, first, last);
    return EELSVAE_OK;
}

static eelsvae_status validate(const eelsvae_synth_options *o, size_t *ne)
{
    if (o->ny == 0 || o->nx == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: ny × nx = %zu × %zu has a zero", o->ny, o->nx);
    EVAE_TRY(check_range(o->dispersion, 0x1p-1022, HUGE_VAL, "dispersion", "positive and finite"));
    EVAE_TRY(check_range(o->drift, 0.0, HUGE_VAL, "drift", "≥ 0 and finite (peak to peak, eV)"));
    /* The power law needs E − drift > 0 everywhere on the axis. */
    EVAE_TRY(check_range(o->energy_start, o->drift / 2.0 + 1e-6, HUGE_VAL, "energy_start",
                         "positive (above half the drift) and finite"));
    if (!isfinite(o->energy_end) || !(o->energy_end > o->energy_start))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: energy_end = %g must exceed energy_start = %g",
                         o->energy_end, o->energy_start);
    EVAE_TRY(check_range(o->dose, 0.0, HUGE_VAL, "dose", "≥ 0 and finite"));
    EVAE_TRY(check_range(o->read_noise, 0.0, HUGE_VAL, "read_noise", "≥ 0 and finite"));
    if (!isfinite(o->bg_exponent_min) || !(o->bg_exponent_min > 0.0) || !(o->bg_exponent_min < 10.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: bg_exponent_min = %g must lie in (0, 10)",
                         o->bg_exponent_min);
    if (!isfinite(o->bg_exponent_max) || !(o->bg_exponent_max > 0.0) || !(o->bg_exponent_max < 10.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: bg_exponent_max = %g must lie in (0, 10)",
                         o->bg_exponent_max);
    if (o->bg_exponent_min > o->bg_exponent_max)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "synth options: bg_exponent_min = %g exceeds bg_exponent_max = %g", o->bg_exponent_min,
                         o->bg_exponent_max);
    EVAE_TRY(check_range(o->thickness_gradient, -MAX_THICKNESS_GRADIENT, MAX_THICKNESS_GRADIENT, "thickness_gradient",
                         "within ±1.5 (the thin edge must keep a positive thickness)"));
    EVAE_TRY(check_range(o->l3_l2_ratio, 1e-6, 1e6, "l3_l2_ratio", "positive and finite"));
    EVAE_TRY(check_range(o->fe_jump, 0.0, HUGE_VAL, "fe_jump", "≥ 0 and finite"));
    EVAE_TRY(check_range(o->o_jump, 0.0, HUGE_VAL, "o_jump", "≥ 0 and finite"));
    if (!isfinite(o->composition_variation) || o->composition_variation < 0.0 || !(o->composition_variation < 1.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "synth options: composition_variation = %g must lie in [0, 1)", o->composition_variation);
    EVAE_TRY(check_range(o->stripe_gain, 0.0, 1.0, "stripe_gain", "within [0, 1]"));
    if (!isfinite(o->thickness_variation) || o->thickness_variation < 0.0 || !(o->thickness_variation < 1.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "synth options: thickness_variation = %g must lie in [0, 1) (the thickness must stay positive)",
                         o->thickness_variation);
    EVAE_TRY(channel_count(o, ne));
    double last = o->energy_start + o->dispersion * (double)(*ne - 1);
    EVAE_TRY(check_on_axis(o->o_edge, "o_edge", o->energy_start, last));
    EVAE_TRY(check_on_axis(o->fe_l3, "fe_l3", o->energy_start, last));
    if (!isfinite(o->fe_l2) || !(o->fe_l2 > o->fe_l3))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth options: fe_l2 = %g eV must lie above fe_l3 = %g eV",
                         o->fe_l2, o->fe_l3);
    return EELSVAE_OK;
}

/* ---- smooth maps ---------------------------------------------------------- */

/* Σ a_k cos(2π(fx_k u + fy_k v) + φ_k) / Σ a_k: within [−1, 1], with
 * wavelengths between 0.8 and 4 scan widths. u, v ∈ [0, 1] span the scan. */
#define FIELD_TERMS 4
typedef struct smooth_field {
    double amp[FIELD_TERMS], fx[FIELD_TERMS], fy[FIELD_TERMS], phase[FIELD_TERMS];
} smooth_field;

static void field_init(smooth_field *f, evae_rng *rng)
{
    double total = 0.0;
    for (int k = 0; k < FIELD_TERMS; k++) {
        double cycles = 0.25 + evae_rng_uniform(rng);
        double angle = 2.0 * M_PI * evae_rng_uniform(rng);
        f->fx[k] = cycles * cos(angle);
        f->fy[k] = cycles * sin(angle);
        f->phase[k] = 2.0 * M_PI * evae_rng_uniform(rng);
        f->amp[k] = 0.5 + 0.5 * evae_rng_uniform(rng);
        total += f->amp[k];
    }
    for (int k = 0; k < FIELD_TERMS; k++) f->amp[k] /= total;
}

static double field_at(const smooth_field *f, double u, double v)
{
    double s = 0.0;
    for (int k = 0; k < FIELD_TERMS; k++) s += f->amp[k] * cos(2.0 * M_PI * (f->fx[k] * u + f->fy[k] * v) + f->phase[k]);
    return s;
}

typedef struct synth_model {
    eelsvae_synth_options opt;
    size_t ne;
    smooth_field thickness, exponent, fe, o;
    double ramp_cos, ramp_sin; /* direction of the exponent's gradient */
    double drift_sign;         /* +1: features drift up in energy along the scan */
    double fe_norm;            /* unit Fe shape (lines + steps) at E3, no drift */
} synth_model;

typedef struct pixel_maps {
    double thickness, exponent, c_fe, c_o;
} pixel_maps;

static double scan_fraction(size_t i, size_t n)
{
    return n > 1 ? (double)i / (double)(n - 1) : 0.5;
}

static pixel_maps maps_at(const synth_model *m, size_t y, size_t x)
{
    const eelsvae_synth_options *o = &m->opt;
    double u = scan_fraction(x, o->nx), v = scan_fraction(y, o->ny);
    pixel_maps p;
    p.thickness = (1.0 + o->thickness_gradient * (u - 0.5)) * (1.0 + o->thickness_variation * field_at(&m->thickness, u, v));
    /* Exponent: a ramp in a seeded direction (|ramp| ≤ 1) plus a ripple, so
     * that r spans most of [min, max] and never leaves it. */
    double ramp = M_SQRT2 * ((u - 0.5) * m->ramp_cos + (v - 0.5) * m->ramp_sin);
    double unit = 0.7 * ramp + 0.3 * field_at(&m->exponent, u, v);
    p.exponent = 0.5 * (o->bg_exponent_min + o->bg_exponent_max) + 0.5 * (o->bg_exponent_max - o->bg_exponent_min) * unit;
    if (p.exponent < o->bg_exponent_min) p.exponent = o->bg_exponent_min;
    if (p.exponent > o->bg_exponent_max) p.exponent = o->bg_exponent_max;
    p.c_fe = 1.0 + o->composition_variation * field_at(&m->fe, u, v);
    p.c_o = 1.0 + o->composition_variation * field_at(&m->o, u, v);
    return p;
}

/* Drift of row y: a smooth monotone settling, −drift/2 … +drift/2. */
static double row_drift(const synth_model *m, size_t y)
{
    return -m->drift_sign * 0.5 * m->opt.drift * cos(M_PI * scan_fraction(y, m->opt.ny));
}

/* ---- edge shapes ------------------------------------------------------------ */

static double pseudo_voigt(double de, double fwhm)
{
    double t = de / fwhm;
    return FE_ETA / (1.0 + 4.0 * t * t) + (1.0 - FE_ETA) * exp(-4.0 * M_LN2 * t * t);
}

static double pseudo_voigt_area(double fwhm)
{
    return fwhm * (FE_ETA * M_PI / 2.0 + (1.0 - FE_ETA) * 0.5 * sqrt(M_PI / M_LN2));
}

static double arctan_step(double de, double fwhm)
{
    return 0.5 + atan(2.0 * de / fwhm) / M_PI;
}

/* L2 height in units of the L3 main height, from the L3/L2 area ratio (the
 * L3 area includes its shoulder). */
static double fe_l2_height(const synth_model *m)
{
    double l3_area = pseudo_voigt_area(FE_L3_FWHM) + FE_SHOULDER_HEIGHT * pseudo_voigt_area(FE_SHOULDER_FWHM);
    return l3_area / m->opt.l3_l2_ratio / pseudo_voigt_area(FE_L2_FWHM);
}

static double fe_lines(const synth_model *m, double e, double h2)
{
    const eelsvae_synth_options *o = &m->opt;
    return pseudo_voigt(e - o->fe_l3, FE_L3_FWHM) +
           FE_SHOULDER_HEIGHT * pseudo_voigt(e - o->fe_l3 - FE_SHOULDER_OFFSET, FE_SHOULDER_FWHM) +
           h2 * pseudo_voigt(e - o->fe_l2, FE_L2_FWHM);
}

static double fe_steps(const synth_model *m, double e)
{
    return FE_STEP_L3 * arctan_step(e - m->opt.fe_l3, FE_L3_FWHM) +
           FE_STEP_L2 * arctan_step(e - m->opt.fe_l2, FE_L2_FWHM);
}

static double o_onset(const synth_model *m, double e)
{
    return 0.5 * erfc(-(e - m->opt.o_edge) / (M_SQRT2 * O_ONSET_SIGMA));
}

static double o_structure(const synth_model *m, double e)
{
    double s = 0.0;
    for (size_t k = 0; k < sizeof o_peaks / sizeof o_peaks[0]; k++) {
        double t = (e - m->opt.o_edge - o_peaks[k].offset) / o_peaks[k].fwhm;
        s += o_peaks[k].height * exp(-4.0 * M_LN2 * t * t);
    }
    return s;
}

static void model_init(synth_model *m, const eelsvae_synth_options *opt, size_t ne)
{
    m->opt = *opt;
    m->ne = ne;
    evae_rng rng;
    evae_rng_seed(&rng, opt->seed, STREAM_MAPS);
    field_init(&m->thickness, &rng);
    field_init(&m->exponent, &rng);
    field_init(&m->fe, &rng);
    field_init(&m->o, &rng);
    double angle = 2.0 * M_PI * evae_rng_uniform(&rng);
    m->ramp_cos = cos(angle);
    m->ramp_sin = sin(angle);
    m->drift_sign = evae_rng_uniform(&rng) < 0.5 ? -1.0 : 1.0;
    m->fe_norm = fe_lines(m, opt->fe_l3, fe_l2_height(m)) + fe_steps(m, opt->fe_l3);
}

/* Energy shapes of one row: they depend on the row's drift only. */
typedef struct row_shapes {
    double *log_e;    /* log(E'/E0), for the power law */
    double *onset;    /* O K onset, 0 → 1 */
    double *o_struct; /* O K near-edge peaks, unit = O step height at Eo */
    double *lines;    /* Fe white lines, unit = L3 main height */
    double *steps;    /* Fe continuum steps before their decay, same unit */
} row_shapes;

#define ROW_ARRAYS 5

static void row_shapes_bind(row_shapes *s, double *work, size_t ne)
{
    s->log_e = work;
    s->onset = work + ne;
    s->o_struct = work + 2 * ne;
    s->lines = work + 3 * ne;
    s->steps = work + 4 * ne;
}

static void row_shapes_fill(const synth_model *m, double drift, row_shapes *s)
{
    const eelsvae_synth_options *o = &m->opt;
    double h2 = fe_l2_height(m);
    for (size_t i = 0; i < m->ne; i++) {
        double e = o->energy_start + o->dispersion * (double)i - drift;
        s->log_e[i] = log(e / o->energy_start);
        s->onset[i] = o_onset(m, e);
        s->o_struct[i] = o_structure(m, e);
        s->lines[i] = fe_lines(m, e, h2);
        s->steps[i] = fe_steps(m, e);
    }
}

/* ---- noise -------------------------------------------------------------------- */

/* Normal deviates two at a time (Marsaglia's polar method) from a row's
 * stream: half the cost of one Box–Muller call per sample. */
typedef struct normal_source {
    evae_rng *rng;
    double spare;
    int has_spare;
} normal_source;

static double normal_next(normal_source *n)
{
    if (n->has_spare) {
        n->has_spare = 0;
        return n->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * evae_rng_uniform(n->rng) - 1.0;
        v = 2.0 * evae_rng_uniform(n->rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    n->spare = v * f;
    n->has_spare = 1;
    return u * f;
}

/* ---- generation ------------------------------------------------------------------ */

/* Per-pixel coefficients of the expectation
 *   P_i·(bg_coef + bg_o_coef·onset_i + step_coef·steps_i) + o_struct_coef·o_struct_i + line_coef·lines_i
 * with P_i = (E'_i/E0)^−r. */
typedef struct pixel_coefs {
    double exponent, bg, bg_o, step, o_struct, line;
} pixel_coefs;

static pixel_coefs pixel_coefs_at(const synth_model *m, size_t y, size_t x, double gain)
{
    const eelsvae_synth_options *o = &m->opt;
    pixel_maps p = maps_at(m, y, x);
    double amplitude = o->dose * p.thickness * gain;
    double k_o = o->o_jump * p.c_o;
    double p_o = pow(o->o_edge / o->energy_start, -p.exponent);
    double p_3 = pow(o->fe_l3 / o->energy_start, -p.exponent);
    /* Local background under Fe L3: power law plus the O K continuum. */
    double local_bg = amplitude * p_3 * (1.0 + k_o * o_onset(m, o->fe_l3)) + k_o * amplitude * p_o * o_structure(m, o->fe_l3);
    double fe_height = o->fe_jump * p.c_fe * local_bg / m->fe_norm;
    pixel_coefs c;
    c.exponent = p.exponent;
    c.bg = amplitude;
    c.bg_o = amplitude * k_o;
    c.step = fe_height / p_3;
    c.o_struct = k_o * amplitude * p_o;
    c.line = fe_height;
    return c;
}

static void synth_row(const synth_model *m, size_t y, double *work, float *counts, float *expected)
{
    const eelsvae_synth_options *o = &m->opt;
    size_t ne = m->ne;
    evae_rng rng;
    evae_rng_seed(&rng, o->seed, (uint64_t)y);
    normal_source noise = {&rng, 0.0, 0};
    double gain = 1.0 + o->stripe_gain * normal_next(&noise);
    noise.has_spare = 0; /* the row's samples start on a fresh pair */
    if (gain < MIN_ROW_GAIN) gain = MIN_ROW_GAIN;
    row_shapes s;
    row_shapes_bind(&s, work, ne);
    row_shapes_fill(m, row_drift(m, y), &s);
    for (size_t x = 0; x < o->nx; x++) {
        pixel_coefs c = pixel_coefs_at(m, y, x, gain);
        float *out = counts + x * ne;
        float *exp_out = expected ? expected + x * ne : NULL;
        for (size_t i = 0; i < ne; i++) {
            double power = exp(-c.exponent * s.log_e[i]);
            double mean = power * (c.bg + c.bg_o * s.onset[i] + c.step * s.steps[i]) + c.o_struct * s.o_struct[i] +
                          c.line * s.lines[i];
            if (exp_out) exp_out[i] = (float)mean;
            double value = evae_rng_poisson(&rng, mean);
            if (o->read_noise > 0.0) value += o->read_noise * normal_next(&noise);
            out[i] = (float)value;
        }
    }
}

static eelsvae_status new_synth_cube(const synth_model *m, eelsvae_cube **out)
{
    eelsvae_cube *c = NULL;
    EVAE_TRY(eelsvae_cube_create(m->opt.ny, m->opt.nx, m->ne, &c));
    eelsvae_status st = eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, m->opt.energy_start, m->opt.dispersion, "eV");
    if (st == EELSVAE_OK) st = eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, 0.0, 1.0, "px");
    if (st == EELSVAE_OK) st = eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 0.0, 1.0, "px");
    if (st != EELSVAE_OK) {
        eelsvae_cube_free(c);
        return st;
    }
    *out = c;
    return EELSVAE_OK;
}

static void synth_all_rows(const synth_model *m, double *work, int threads, eelsvae_cube *counts,
                           eelsvae_cube *expected)
{
    size_t ne = m->ne, row_len = m->opt.nx * ne;
    ptrdiff_t ny = (ptrdiff_t)m->opt.ny;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
    for (ptrdiff_t y = 0; y < ny; y++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        size_t offset = (size_t)y * row_len;
        synth_row(m, (size_t)y, work + (size_t)t * ROW_ARRAYS * ne, counts->data + offset,
                  expected ? expected->data + offset : NULL);
    }
    (void)threads;
}

eelsvae_status eelsvae_synth_generate(const eelsvae_synth_options *opt, eelsvae_cube **counts, eelsvae_cube **expected)
{
    if (!counts) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "synth_generate: NULL counts pointer");
    eelsvae_synth_options o;
    EVAE_TRY(eelsvae_synth_options_init(&o));
    EVAE_TRY(evae_read_options(&o, sizeof o, opt, "synth"));
    size_t ne = 0, samples = 0;
    EVAE_TRY(validate(&o, &ne));
    EVAE_TRY(evae_mul3(o.ny, o.nx, ne, &samples, "synthetic SI size"));

    int threads = evae_threads();
    if (threads < 1) threads = 1;
    if ((size_t)threads > o.ny) threads = (int)o.ny;
    size_t work_len = 0;
    EVAE_TRY(evae_mul3((size_t)threads, ROW_ARRAYS, ne, &work_len, "synth workspace"));

    synth_model *m = evae_malloc(sizeof *m);
    if (!m) return evae_fail(EELSVAE_ERR_NOMEM, "synth_generate: cannot allocate the model");
    model_init(m, &o, ne);
    double *work = NULL;
    eelsvae_cube *c = NULL, *e = NULL;
    eelsvae_status st = evae_alloc_array(work_len, sizeof(double), (void **)&work, "synth workspace");
    if (st == EELSVAE_OK) st = new_synth_cube(m, &c);
    if (st == EELSVAE_OK && expected) st = new_synth_cube(m, &e);
    if (st == EELSVAE_OK) {
        synth_all_rows(m, work, threads, c, e);
        *counts = c;
        if (expected) *expected = e;
    } else {
        eelsvae_cube_free(c);
        eelsvae_cube_free(e);
    }
    evae_free(work);
    evae_free(m);
    return st;
}
