/*
 * The architecture presets and the memory estimate of model.h: the parts of
 * the public model API that need no model, only its options.
 */
#include <eelsvae/model.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../core/options_out.h"
#include "../cube/cube_private.h"
#include "cvae.h"
#include "model_private.h"

/* The paper's four-layer pattern: a spectral-only conv, a 3 × 3 spatial one
 * still striding along E only, then two cubic stride-2 convs. */
static void set_conv(eelsvae_conv_spec *c, size_t channels, const size_t k[3], const size_t s[3], const size_t p[3])
{
    c->channels = channels;
    memcpy(c->kernel, k, sizeof c->kernel);
    memcpy(c->stride, s, sizeof c->stride);
    memcpy(c->padding, p, sizeof c->padding);
}

static void paper_pattern(eelsvae_model_options *opt, const size_t channels[4])
{
    static const size_t k0[3] = {1, 1, 7}, s0[3] = {1, 1, 2}, p0[3] = {0, 0, 3};
    static const size_t k1[3] = {3, 3, 5}, s1[3] = {1, 1, 2}, p1[3] = {1, 1, 2};
    static const size_t k2[3] = {3, 3, 3}, s2[3] = {2, 2, 2}, p2[3] = {1, 1, 1};
    opt->conv_layers = 4;
    set_conv(&opt->conv[0], channels[0], k0, s0, p0);
    set_conv(&opt->conv[1], channels[1], k1, s1, p1);
    set_conv(&opt->conv[2], channels[2], k2, s2, p2);
    set_conv(&opt->conv[3], channels[3], k2, s2, p2);
}

eelsvae_status eelsvae_model_options_init_sized(eelsvae_model_options *opt, eelsvae_preset preset, size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: NULL pointer");
    if (preset != EELSVAE_PRESET_PAPER && preset != EELSVAE_PRESET_FAST)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: unknown preset %d", (int)preset);
    eelsvae_model_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.tile = 24;
    o.energy_bin = 1;
    o.beta = 1.2;
    o.loss = EELSVAE_LOSS_BERNOULLI;
    if (preset == EELSVAE_PRESET_PAPER) {
        static const size_t channels[4] = {32, 64, 128, 256};
        o.energy_channels = 1312; /* 420 … 813.6 eV at 0.3 eV per channel */
        o.energy_start = 420.0;
        paper_pattern(&o, channels);
        o.hidden = 512;
        o.latent = 40;
    } else {
        /* 160 channels from 686 eV cover 686 … 733.7 eV at 0.3 eV per
         * channel: the Fe L2,3 edge and the whole 690–730 eV scoring window. */
        static const size_t channels[4] = {8, 16, 32, 64};
        o.energy_channels = 160;
        o.energy_start = 686.0;
        paper_pattern(&o, channels);
        o.hidden = 256;
        o.latent = 16;
    }
    /* Only the caller's struct_size bytes: an older program's struct may be shorter. */
    return evae_write_options(opt, struct_size, &o, sizeof o, "model options");
}

eelsvae_status eelsvae_model_estimate_memory(const eelsvae_model_options *opt, size_t batch,
                                             eelsvae_memory_estimate *estimate)
{
    if (!estimate) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "memory estimate: NULL output");
    if (estimate->struct_size < sizeof(size_t))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "memory estimate: struct_size is %zu; set it to sizeof(eelsvae_memory_estimate)",
                         estimate->struct_size);
    /* Fields an older caller's struct lacks keep the paper preset's values. */
    eelsvae_model_options arch;
    eelsvae_model_options_init(&arch, EELSVAE_PRESET_PAPER);
    EVAE_TRY(evae_read_options(&arch, sizeof arch, opt, "model"));
    evae_cvae_layout layout;
    EVAE_TRY(evae_model_check_arch(&arch, &layout));
    if (batch < 1) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "memory estimate: batch 0 (must be ≥ 1)");

    eelsvae_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    EVAE_TRY(evae_cvae_memory(&arch, batch, true, &e.activation_bytes, &e.workspace_bytes));
    e.parameters = layout.parameters;
    EVAE_TRY(evae_mul(layout.parameters, sizeof(float), &e.parameter_bytes, "memory estimate: parameters"));
    e.gradient_bytes = e.parameter_bytes;
    EVAE_TRY(evae_mul(e.parameter_bytes, 2, &e.optimizer_bytes, "memory estimate: Adam's moments"));
    const size_t parts[5] = {e.parameter_bytes, e.gradient_bytes, e.optimizer_bytes, e.activation_bytes,
                             e.workspace_bytes};
    for (size_t i = 0; i < 5; i++) {
        if (e.total_bytes > SIZE_MAX - parts[i])
            return evae_fail(EELSVAE_ERR_OVERFLOW, "memory estimate: the total overflows size_t");
        e.total_bytes += parts[i];
    }
    /* Fill the fields the caller's struct holds whole (all are size_t); its
     * struct_size stays as given, and nothing past it is written. */
    size_t given = estimate->struct_size < sizeof e ? estimate->struct_size : sizeof e;
    given -= given % sizeof(size_t);
    memcpy((char *)estimate + sizeof(size_t), (const char *)&e + sizeof(size_t), given - sizeof(size_t));
    return EELSVAE_OK;
}

/* ---- fitting an architecture to a cube ------------------------------------------- */

/* Product of the encoder's strides along axis a (0 y, 1 x, 2 E). */
static size_t total_stride(const eelsvae_model_options *o, int a)
{
    size_t s = 1;
    for (size_t i = 0; i < o->conv_layers; i++) s *= o->conv[i].stride[a];
    return s;
}

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The smallest tile both spatial strides divide: the step between the tiles a fit may pick. */
static size_t tile_step(const eelsvae_model_options *o)
{
    size_t sy = total_stride(o, 0), sx = total_stride(o, 1);
    return sy == 0 || sx == 0 ? 0 : sy / gcd(sy, sx) * sx;
}

/* Every field but the two the fit chooses must already be valid: checked
 * with tile and energy_channels set to the smallest the strides allow. */
static eelsvae_status check_fittable(const eelsvae_model_options *o)
{
    if (o->conv_layers < 1 || o->conv_layers > EELSVAE_MAX_CONV_LAYERS)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_model_options_fit: conv_layers = %zu (must be 1 … %d)",
                         o->conv_layers, EELSVAE_MAX_CONV_LAYERS);
    if (o->tile == 0 || o->energy_channels == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_model_options_fit: tile %zu and energy_channels %zu are the upper bounds of the "
                         "fit; give both ≥ 1", o->tile, o->energy_channels);
    eelsvae_model_options probe = *o;
    evae_cvae_layout layout;
    if (tile_step(o) == 0 || total_stride(o, 2) == 0) return evae_model_check_arch(o, &layout); /* names the layer */
    probe.tile = tile_step(o);
    probe.energy_channels = total_stride(o, 2);
    probe.energy_bin = 1;
    return evae_model_check_arch(&probe, &layout);
}

/* The largest tile ≤ o->tile that fits ny × nx and both spatial strides divide. */
static eelsvae_status fit_tile(eelsvae_model_options *o, size_t ny, size_t nx)
{
    size_t step = tile_step(o), fits = o->tile < ny ? o->tile : ny;
    if (nx < fits) fits = nx;
    size_t tile = fits - fits % step;
    if (tile == 0)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "eelsvae_model_options_fit: the %zu × %zu scan is smaller than the smallest tile this "
                         "architecture takes (%zu × %zu pixels, the product of its spatial strides): the smallest "
                         "scan it accepts is %zu × %zu",
                         ny, nx, step, step, step, step);
    o->tile = tile;
    return EELSVAE_OK;
}

/* Channels first … first + count − 1 of the axis inside [lo, hi] clipped to it. */
static eelsvae_status range_channels(const eelsvae_cube *cube, double lo, double hi, size_t *first, size_t *count)
{
    size_t ne = 0;
    double offset = 0, scale = 0;
    eelsvae_cube_shape(cube, NULL, NULL, &ne);
    EVAE_TRY(evae_require_energy_calibrated(cube, "eelsvae_model_options_fit"));
    EVAE_TRY(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, &offset, &scale, NULL));
    if (!(scale > 0.0))
        return evae_fail(EELSVAE_ERR_RANGE, "eelsvae_model_options_fit: the energy axis has scale %g; a model "
                         "needs an increasing energy axis", scale);
    if (isnan(lo) && isnan(hi)) {
        *first = 0;
        *count = ne;
        return EELSVAE_OK;
    }
    if (isnan(lo) || isnan(hi) || !(hi > lo))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_model_options_fit: energy range %g … %g eV: give "
                         "lo < hi, or both NaN for the whole axis", lo, hi);
    double end = offset + scale * (double)(ne - 1);
    if (hi < offset || lo > end)
        return evae_fail(EELSVAE_ERR_RANGE, "eelsvae_model_options_fit: the range %g … %g eV lies outside the "
                         "energy axis %g … %g eV", lo, hi, offset, end);
    eelsvae_status st = eelsvae_cube_energy_window(cube, lo > offset ? lo : offset, hi < end ? hi : end, first, count);
    if (st != EELSVAE_OK)
        return evae_fail(st, "eelsvae_model_options_fit: the range %g … %g eV holds no channel of the axis %g … %g eV",
                         lo, hi, offset, end);
    return EELSVAE_OK;
}

/* Bin the range into the budget, then make its count a multiple of the
 * energy stride: up where the axis has room, else down. */
static eelsvae_status fit_energy(eelsvae_model_options *o, const eelsvae_cube *cube, double lo, double hi)
{
    size_t first = 0, count = 0, ne = 0, budget = o->energy_channels, step = total_stride(o, 2);
    EVAE_TRY(range_channels(cube, lo, hi, &first, &count));
    eelsvae_cube_shape(cube, NULL, NULL, &ne);
    if (budget < step) budget = step;
    size_t bin = (count + budget - 1) / budget, n = count / bin, up = (n + step - 1) / step * step;
    if (up <= budget && up * bin <= ne) {
        n = up;
        if (first + n * bin > ne) first = ne - n * bin;
    } else {
        n -= n % step;
    }
    if (n == 0)
        return evae_fail(EELSVAE_ERR_RANGE, "eelsvae_model_options_fit: the energy axis holds %zu channels; this "
                         "architecture needs at least %zu (the product of its energy strides)", ne, step);
    double offset = 0, scale = 0;
    EVAE_TRY(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, &offset, &scale, NULL));
    o->energy_start = offset + scale * (double)first;
    o->energy_channels = n;
    o->energy_bin = bin;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_model_options_fit(eelsvae_model_options *opt, const eelsvae_cube *cube, double lo_ev,
                                         double hi_ev)
{
    if (!opt || !cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_model_options_fit: NULL argument");
    eelsvae_model_options o;
    eelsvae_model_options_init(&o, EELSVAE_PRESET_PAPER);
    EVAE_TRY(evae_read_options(&o, sizeof o, opt, "model"));
    EVAE_TRY(check_fittable(&o));
    size_t ny = 0, nx = 0;
    eelsvae_cube_shape(cube, &ny, &nx, NULL);
    EVAE_TRY(fit_tile(&o, ny, nx));
    EVAE_TRY(fit_energy(&o, cube, lo_ev, hi_ev));
    evae_cvae_layout layout;
    EVAE_TRY(evae_model_check_arch(&o, &layout));
    if (o.energy_bin > 1 && opt->struct_size < offsetof(eelsvae_model_options, energy_bin) + sizeof o.energy_bin)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_model_options_fit: the range needs its channels binned by %zu, and the caller's "
                         "options (struct_size %zu) predate energy_bin: rebuild against this library's model.h, or "
                         "give a window of at most %zu channels",
                         o.energy_bin, opt->struct_size, opt->energy_channels);
    /* In and out: the caller's own struct_size and any fields past ours stay. */
    size_t given = opt->struct_size < sizeof o ? opt->struct_size : sizeof o;
    memcpy((char *)opt + sizeof(size_t), (const char *)&o + sizeof(size_t), given - sizeof(size_t));
    return EELSVAE_OK;
}
