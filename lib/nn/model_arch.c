/*
 * The architecture presets and the memory estimate of model.h: the parts of
 * the public model API that need no model, only its options.
 */
#include <eelsvae/model.h>

#include <string.h>

#include "../core/options_out.h"
#include "cvae.h"

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
    EVAE_TRY(evae_cvae_layout_of(&arch, &layout));
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
