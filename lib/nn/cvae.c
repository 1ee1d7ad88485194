/*
 * The 3D-CVAE network of cvae.h: layout and validation, the parameter,
 * gradient and activation blocks, forward and backward.
 *
 * Memory, llm.c style: one parameter block, one gradient block, one block
 * of forward activations and one of activation gradients, each sized from a
 * table at create and never grown. The activations keep, per layer, only
 * its post-ReLU output: that output is both the next layer's input (for the
 * weight gradient) and the ReLU's own mask (relu_mask_grad reads the
 * output). The backward walks a chain, so the gradients of the large
 * tensors (stages, flat vector, logits) need only two buffers of the
 * largest size, used in turn: each layer reads one and writes the other.
 */
#include "cvae.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "conv3d.h"
#include "layers.h"

static const char *const axis_name[3] = {"y", "x", "E"};

/* Sub-buffers of the activation blocks start on 64-byte lines. */
#define LINE_FLOATS 16

/* Most activation tensors: encoder and decoder outputs, plus h, mulv, eps,
 * z, d1, d2. */
#define MAX_ACTS (2 * EELSVAE_MAX_CONV_LAYERS + 6)

/* Activation gradients: dh, dmulv, dz, dd1 and the two chain buffers. */
enum { GRAD_H, GRAD_MULV, GRAD_Z, GRAD_D1, GRAD_CHAIN0, GRAD_CHAIN1, GRAD_COUNT };

struct evae_cvae {
    eelsvae_model_options arch;
    evae_cvae_layout layout;
    size_t max_batch;
    size_t batch; /* the conv layers' current batch */
    bool training;

    evae_tensor_info *tensors; /* [layout.tensors] */
    float *params;             /* [layout.parameters] */
    float *grads;              /* [layout.parameters], training only */

    evae_conv3d *enc[EELSVAE_MAX_CONV_LAYERS]; /* enc i: stage i → stage i+1 */
    evae_conv3d *dec[EELSVAE_MAX_CONV_LAYERS]; /* dec j: stage n−j → stage n−1−j */

    /* Forward activations for max_batch items, in one block. */
    float *act_block;
    float *enc_out[EELSVAE_MAX_CONV_LAYERS]; /* [B][stage i+1], after ReLU */
    float *h;                                /* [B][hidden], after ReLU */
    float *mulv;                             /* [B][2L] */
    float *eps;                              /* [B][L] */
    float *z;                                /* [B][L] */
    float *d1;                               /* [B][hidden], after ReLU */
    float *d2;                               /* [B][flat], after ReLU: dec 0's input */
    float *dec_out[EELSVAE_MAX_CONV_LAYERS]; /* [B][stage n−1−j], after ReLU but the last (logits) */

    /* Activation gradients (training only), in one block. */
    float *grad_block;
    float *grad[GRAD_COUNT];
};

/* ---- layout -------------------------------------------------------------- */

/* A size field: ≥ 1, and within the int the conv and BLAS layers take. */
static eelsvae_status check_size(size_t value, const char *field, size_t index, const char *sub, int axis)
{
    char name[64];
    if (sub)
        snprintf(name, sizeof name, "conv[%zu].%s[%d]", index, sub, axis);
    else
        snprintf(name, sizeof name, "%s", field);
    if (value == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: %s = 0 (must be ≥ 1)", name);
    if (value > INT_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: %s = %zu exceeds %d, the largest size the layers take",
                         name, value, INT_MAX);
    return EELSVAE_OK;
}

static eelsvae_status check_conv_spec(const eelsvae_conv_spec *c, size_t i)
{
    if (c->channels == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: conv[%zu].channels = 0 (must be ≥ 1)", i);
    if (c->channels > INT_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: conv[%zu].channels = %zu exceeds %d", i, c->channels,
                         INT_MAX);
    for (int a = 0; a < 3; a++) {
        EVAE_TRY(check_size(c->kernel[a], NULL, i, "kernel", a));
        EVAE_TRY(check_size(c->stride[a], NULL, i, "stride", a));
        if (c->padding[a] > INT_MAX)
            return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: conv[%zu].padding[%d] = %zu exceeds %d", i, a,
                             c->padding[a], INT_MAX);
    }
    return EELSVAE_OK;
}

/* Field checks that need no arithmetic: INVALID_ARGUMENT or OVERFLOW. */
static eelsvae_status check_fields(const eelsvae_model_options *arch)
{
    EVAE_TRY(check_size(arch->tile, "tile", 0, NULL, 0));
    EVAE_TRY(check_size(arch->energy_channels, "energy_channels", 0, NULL, 0));
    if (!isfinite(arch->energy_start))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: energy_start = %g is not finite",
                         arch->energy_start);
    if (arch->conv_layers < 1 || arch->conv_layers > EELSVAE_MAX_CONV_LAYERS)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: conv_layers = %zu (must be 1 … %d)",
                         arch->conv_layers, EELSVAE_MAX_CONV_LAYERS);
    for (size_t i = 0; i < arch->conv_layers; i++) EVAE_TRY(check_conv_spec(&arch->conv[i], i));
    EVAE_TRY(check_size(arch->hidden, "hidden", 0, NULL, 0));
    EVAE_TRY(check_size(arch->latent, "latent", 0, NULL, 0));
    if (arch->latent > INT_MAX / 2)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: latent = %zu: 2·latent exceeds %d", arch->latent,
                         INT_MAX);
    if (!(arch->beta >= 0.0) || !isfinite(arch->beta))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: beta = %g (must be finite and ≥ 0)",
                         arch->beta);
    if (arch->loss != EELSVAE_LOSS_BERNOULLI && arch->loss != EELSVAE_LOSS_GAUSSIAN &&
        arch->loss != EELSVAE_LOSS_POISSON)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: loss = %d is not a known loss kind",
                         (int)arch->loss);
    return EELSVAE_OK;
}

/* The input must be a whole number of the network's total stride along
 * every axis (model.h): no stage then has a partial window left over at
 * its edge, and with the paper's kernels (k = 2p + 1) every stage is its
 * input divided by its stride. */
static eelsvae_status check_divisible(const eelsvae_model_options *arch)
{
    for (int a = 0; a < 3; a++) {
        size_t dim = a < 2 ? arch->tile : arch->energy_channels, total = 1;
        for (size_t i = 0; i < arch->conv_layers; i++) {
            size_t s = arch->conv[i].stride[a];
            if (total > dim / s) { /* the product outgrows dim (and could overflow): not a divisor */
                total = 0;
                break;
            }
            total *= s;
        }
        if (total == 0 || dim % total != 0) {
            char strides[160] = "", *p = strides;
            for (size_t i = 0; i < arch->conv_layers; i++)
                p += snprintf(p, sizeof strides - (size_t)(p - strides), "%s%zu", i ? "·" : "", arch->conv[i].stride[a]);
            return evae_fail(EELSVAE_ERR_DIMENSION,
                             "model options: %s %zu is not divisible by the total %s stride %s of the convolutions",
                             a < 2 ? "tile" : "energy_channels", dim, axis_name[a], strides);
        }
    }
    return EELSVAE_OK;
}

/* Stage i+1 from stage i through conv i, and the output padding that makes
 * the mirroring transposed conv give stage i back exactly. */
static eelsvae_status derive_stage(const eelsvae_model_options *arch, evae_cvae_layout *lay, size_t i)
{
    const eelsvae_conv_spec *c = &arch->conv[i];
    for (int a = 0; a < 3; a++) {
        size_t in = lay->stage_dims[i][a], padded = in + 2 * c->padding[a]; /* in, pad < INT_MAX: no wrap */
        if (c->kernel[a] > padded)
            return evae_fail(EELSVAE_ERR_DIMENSION,
                             "model options: conv[%zu].kernel[%d] = %zu is larger than its padded input "
                             "%zu + 2·%zu along %s: the stage shrinks to nothing",
                             i, a, c->kernel[a], in, c->padding[a], axis_name[a]);
        size_t out = (padded - c->kernel[a]) / c->stride[a] + 1;
        if (out > INT_MAX)
            return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: conv[%zu] output size %zu along %s exceeds %d", i,
                             out, axis_name[a], INT_MAX);
        /* The transposed conv gives (out − 1)·s − 2p + k + op. */
        size_t natural = (out - 1) * c->stride[a] + c->kernel[a];
        if (natural > in + 2 * c->padding[a] || in + 2 * c->padding[a] - natural >= c->stride[a])
            return evae_fail(EELSVAE_ERR_DIMENSION,
                             "model options: the transposed conv mirroring conv[%zu] cannot give back %zu along %s "
                             "with an output padding in [0, %zu)",
                             i, in, axis_name[a], c->stride[a]);
        lay->output_padding[i][a] = in + 2 * c->padding[a] - natural;
        lay->stage_dims[i + 1][a] = out;
    }
    lay->stage_channels[i + 1] = c->channels;
    size_t volume = 0;
    const size_t *d = lay->stage_dims[i + 1];
    return evae_mul4(c->channels, d[0], d[1], d[2], &volume, "model options: an encoder stage's size");
}

/* Floats of stage s (all channels) for one item. */
static size_t stage_volume(const evae_cvae_layout *lay, size_t s)
{
    const size_t *d = lay->stage_dims[s];
    return lay->stage_channels[s] * d[0] * d[1] * d[2]; /* checked by derive_stage / the input check */
}

/* The tensors of the parameter block, in order; `out` may be NULL (count
 * only). Returns the float count in *params. */
static eelsvae_status describe_tensors(const eelsvae_model_options *arch, const evae_cvae_layout *lay,
                                       evae_tensor_info *out, size_t *tensors, size_t *params)
{
    size_t n = lay->n_conv, count = 0, offset = 0;
    evae_tensor_info t;
    /* Append one tensor of ndim dims; its float count is checked. */
#define ADD_TENSOR(ndim_, d0, d1, d2, d3, d4, ...)                                                               \
    do {                                                                                                         \
        memset(&t, 0, sizeof t);                                                                                 \
        snprintf(t.name, sizeof t.name, __VA_ARGS__);                                                            \
        size_t dims_[5] = {d0, d1, d2, d3, d4};                                                                  \
        t.ndim = ndim_;                                                                                          \
        t.count = 1;                                                                                             \
        for (size_t k_ = 0; k_ < ndim_; k_++) {                                                                  \
            t.shape[k_] = dims_[k_];                                                                             \
            EVAE_TRY(evae_mul(t.count, dims_[k_], &t.count, "model options: a parameter tensor's size"));       \
        }                                                                                                        \
        t.offset = offset;                                                                                       \
        if (offset > SIZE_MAX - t.count)                                                                         \
            return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: the parameter count overflows at %s", t.name); \
        offset += t.count;                                                                                       \
        if (out) out[count] = t;                                                                                 \
        count++;                                                                                                 \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        const size_t *k = arch->conv[i].kernel;
        ADD_TENSOR(5, lay->stage_channels[i + 1], lay->stage_channels[i], k[0], k[1], k[2], "enc.%zu.weight", 2 * i);
        ADD_TENSOR(1, lay->stage_channels[i + 1], 0, 0, 0, 0, "enc.%zu.bias", 2 * i);
    }
    size_t hidden = arch->hidden, L = arch->latent, flat = lay->flat;
    ADD_TENSOR(2, hidden, flat, 0, 0, 0, "fc_enc.weight");
    ADD_TENSOR(1, hidden, 0, 0, 0, 0, "fc_enc.bias");
    ADD_TENSOR(2, 2 * L, hidden, 0, 0, 0, "fc_mulv.weight");
    ADD_TENSOR(1, 2 * L, 0, 0, 0, 0, "fc_mulv.bias");
    ADD_TENSOR(2, hidden, L, 0, 0, 0, "fc_dec.weight");
    ADD_TENSOR(1, hidden, 0, 0, 0, 0, "fc_dec.bias");
    ADD_TENSOR(2, flat, hidden, 0, 0, 0, "fc_unflat.weight");
    ADD_TENSOR(1, flat, 0, 0, 0, 0, "fc_unflat.bias");
    for (size_t j = 0; j < n; j++) {
        size_t m = n - 1 - j; /* the encoder layer dec j mirrors */
        const size_t *k = arch->conv[m].kernel;
        ADD_TENSOR(5, lay->stage_channels[m + 1], lay->stage_channels[m], k[0], k[1], k[2], "dec.%zu.weight", 2 * j);
        ADD_TENSOR(1, lay->stage_channels[m], 0, 0, 0, 0, "dec.%zu.bias", 2 * j);
    }
#undef ADD_TENSOR
    *tensors = count;
    *params = offset;
    return EELSVAE_OK;
}

eelsvae_status evae_cvae_layout_of(const eelsvae_model_options *arch, evae_cvae_layout *layout)
{
    if (!arch || !layout) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cvae layout: NULL options or layout");
    EVAE_TRY(check_fields(arch));
    EVAE_TRY(check_divisible(arch));
    evae_cvae_layout lay;
    memset(&lay, 0, sizeof lay);
    lay.n_conv = arch->conv_layers;
    lay.stage_dims[0][0] = lay.stage_dims[0][1] = arch->tile;
    lay.stage_dims[0][2] = arch->energy_channels;
    lay.stage_channels[0] = 1;
    size_t input = 0;
    EVAE_TRY(evae_mul3(arch->tile, arch->tile, arch->energy_channels, &input, "model options: a tile's size"));
    for (size_t i = 0; i < lay.n_conv; i++) EVAE_TRY(derive_stage(arch, &lay, i));
    lay.flat = stage_volume(&lay, lay.n_conv);
    if (lay.flat > INT_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW,
                         "model options: the last encoder stage flattens to %zu floats, more than the dense layers "
                         "take (%d)",
                         lay.flat, INT_MAX);
    EVAE_TRY(describe_tensors(arch, &lay, NULL, &lay.tensors, &lay.parameters));
    if (lay.parameters > SIZE_MAX / (2 * sizeof(float)))
        return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: %zu parameters do not fit in memory", lay.parameters);
    *layout = lay;
    return EELSVAE_OK;
}

/* ---- memory tables ------------------------------------------------------- */

static eelsvae_status add_size(size_t *total, size_t add, const char *what)
{
    if (*total > SIZE_MAX - add) return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: the total size overflows", what);
    *total += add;
    return EELSVAE_OK;
}

/* Floats of each forward activation for `batch` items, in the order the
 * block holds them: enc_out[0 … n−1], h, mulv, eps, z, d1, d2,
 * dec_out[0 … n−1]. */
static eelsvae_status activation_table(const eelsvae_model_options *arch, const evae_cvae_layout *lay, size_t batch,
                                       size_t sizes[MAX_ACTS], size_t *count)
{
    size_t n = lay->n_conv, k = 0;
    size_t per_item[MAX_ACTS];
    for (size_t i = 0; i < n; i++) per_item[k++] = stage_volume(lay, i + 1);
    per_item[k++] = arch->hidden;
    per_item[k++] = 2 * arch->latent;
    per_item[k++] = arch->latent;
    per_item[k++] = arch->latent;
    per_item[k++] = arch->hidden;
    per_item[k++] = lay->flat;
    for (size_t j = 0; j < n; j++) per_item[k++] = stage_volume(lay, n - 1 - j);
    for (size_t i = 0; i < k; i++) EVAE_TRY(evae_mul(batch, per_item[i], &sizes[i], "cvae activations"));
    *count = k;
    return EELSVAE_OK;
}

/* Floats of each activation gradient (GRAD_* order). */
static eelsvae_status gradient_table(const eelsvae_model_options *arch, const evae_cvae_layout *lay, size_t batch,
                                     size_t sizes[GRAD_COUNT])
{
    size_t widest = 0; /* the largest stage, logits and the flat vector included */
    for (size_t s = 0; s <= lay->n_conv; s++)
        if (stage_volume(lay, s) > widest) widest = stage_volume(lay, s);
    size_t per_item[GRAD_COUNT] = {arch->hidden, 2 * arch->latent, arch->latent, arch->hidden, widest, widest};
    for (size_t i = 0; i < GRAD_COUNT; i++)
        EVAE_TRY(evae_mul(batch, per_item[i], &sizes[i], "cvae activation gradients"));
    return EELSVAE_OK;
}

/* Floats of a block holding these buffers, each on its own cache line. */
static eelsvae_status block_floats(const size_t *sizes, size_t count, size_t *total)
{
    size_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        if (sizes[i] > SIZE_MAX - LINE_FLOATS) return evae_fail(EELSVAE_ERR_OVERFLOW, "cvae: a buffer's size overflows");
        EVAE_TRY(add_size(&sum, (sizes[i] + LINE_FLOATS - 1) / LINE_FLOATS * LINE_FLOATS, "cvae buffers"));
    }
    if (sum > SIZE_MAX / sizeof(float)) return evae_fail(EELSVAE_ERR_OVERFLOW, "cvae: %zu floats overflow", sum);
    *total = sum;
    return EELSVAE_OK;
}

/* Point ptrs[i] at consecutive line-aligned pieces of block. */
static void carve_block(float *block, const size_t *sizes, size_t count, float **ptrs[])
{
    size_t offset = 0;
    for (size_t i = 0; i < count; i++) {
        *ptrs[i] = block + offset;
        offset += (sizes[i] + LINE_FLOATS - 1) / LINE_FLOATS * LINE_FLOATS;
    }
}

/* ---- conv layer shapes and their work buffers ------------------------------- */

static evae_conv3d_shape encoder_shape(const eelsvae_model_options *arch, const evae_cvae_layout *lay, size_t i)
{
    evae_conv3d_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.in_channels = lay->stage_channels[i];
    sh.out_channels = lay->stage_channels[i + 1];
    for (int a = 0; a < 3; a++) {
        sh.in_dims[a] = lay->stage_dims[i][a];
        sh.kernel[a] = arch->conv[i].kernel[a];
        sh.stride[a] = arch->conv[i].stride[a];
        sh.pad[a] = arch->conv[i].padding[a];
    }
    sh.transposed = false;
    return sh;
}

/* dec j mirrors enc n−1−j. */
static evae_conv3d_shape decoder_shape(const eelsvae_model_options *arch, const evae_cvae_layout *lay, size_t j)
{
    size_t m = lay->n_conv - 1 - j;
    evae_conv3d_shape sh = encoder_shape(arch, lay, m);
    sh.in_channels = lay->stage_channels[m + 1];
    sh.out_channels = lay->stage_channels[m];
    for (int a = 0; a < 3; a++) {
        sh.in_dims[a] = lay->stage_dims[m + 1][a];
        sh.output_padding[a] = lay->output_padding[m][a];
    }
    sh.transposed = true;
    return sh;
}

/* The net's own struct and tensor table, and each conv layer's work
 * buffers as conv3d itself sizes them (evae_conv3d_workspace_bytes). */
static eelsvae_status workspace_of(const eelsvae_model_options *arch, const evae_cvae_layout *lay, size_t batch,
                                   size_t *bytes)
{
    size_t total = sizeof(struct evae_cvae), table = 0;
    EVAE_TRY(evae_mul(lay->tensors, sizeof(evae_tensor_info), &table, "cvae tensor table"));
    EVAE_TRY(add_size(&total, table, "cvae work buffers"));
    for (size_t i = 0; i < lay->n_conv; i++) {
        evae_conv3d_shape enc = encoder_shape(arch, lay, i), dec = decoder_shape(arch, lay, i);
        size_t b_enc = 0, b_dec = 0;
        EVAE_TRY(evae_conv3d_workspace_bytes(&enc, (int)batch, &b_enc));
        EVAE_TRY(evae_conv3d_workspace_bytes(&dec, (int)batch, &b_dec));
        EVAE_TRY(add_size(&total, b_enc, "cvae work buffers"));
        EVAE_TRY(add_size(&total, b_dec, "cvae work buffers"));
    }
    *bytes = total;
    return EELSVAE_OK;
}

static eelsvae_status check_batch(size_t batch, const char *what)
{
    if (batch < 1 || batch > INT_MAX)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: batch %zu (must be 1 … %d)", what, batch, INT_MAX);
    return EELSVAE_OK;
}

eelsvae_status evae_cvae_memory(const eelsvae_model_options *arch, size_t batch, bool training,
                                size_t *activation_bytes, size_t *workspace_bytes)
{
    if (!activation_bytes || !workspace_bytes)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cvae memory: NULL output");
    evae_cvae_layout lay;
    EVAE_TRY(evae_cvae_layout_of(arch, &lay));
    EVAE_TRY(check_batch(batch, "cvae memory"));
    size_t acts[MAX_ACTS], grads[GRAD_COUNT], count = 0, act_floats = 0, grad_floats = 0, ws = 0;
    EVAE_TRY(activation_table(arch, &lay, batch, acts, &count));
    EVAE_TRY(block_floats(acts, count, &act_floats));
    if (training) {
        EVAE_TRY(gradient_table(arch, &lay, batch, grads));
        EVAE_TRY(block_floats(grads, GRAD_COUNT, &grad_floats));
    }
    EVAE_TRY(add_size(&act_floats, grad_floats, "cvae activations"));
    if (act_floats > SIZE_MAX / sizeof(float))
        return evae_fail(EELSVAE_ERR_OVERFLOW, "cvae: %zu activation floats overflow", act_floats);
    EVAE_TRY(workspace_of(arch, &lay, batch, &ws));
    *activation_bytes = act_floats * sizeof(float);
    *workspace_bytes = ws;
    return EELSVAE_OK;
}

/* ---- life cycle --------------------------------------------------------------- */

static eelsvae_status alloc_activations(evae_cvae *net)
{
    size_t sizes[MAX_ACTS], count = 0, floats = 0, n = net->layout.n_conv, k = 0;
    float **ptrs[MAX_ACTS];
    for (size_t i = 0; i < n; i++) ptrs[k++] = &net->enc_out[i];
    ptrs[k++] = &net->h;
    ptrs[k++] = &net->mulv;
    ptrs[k++] = &net->eps;
    ptrs[k++] = &net->z;
    ptrs[k++] = &net->d1;
    ptrs[k++] = &net->d2;
    for (size_t j = 0; j < n; j++) ptrs[k++] = &net->dec_out[j];
    EVAE_TRY(activation_table(&net->arch, &net->layout, net->max_batch, sizes, &count));
    EVAE_TRY(block_floats(sizes, count, &floats));
    EVAE_TRY(evae_alloc_zeros(floats, sizeof(float), (void **)&net->act_block, "cvae activations"));
    carve_block(net->act_block, sizes, count, ptrs);
    if (!net->training) return EELSVAE_OK;
    float **gptrs[GRAD_COUNT];
    for (size_t g = 0; g < GRAD_COUNT; g++) gptrs[g] = &net->grad[g];
    EVAE_TRY(gradient_table(&net->arch, &net->layout, net->max_batch, sizes));
    EVAE_TRY(block_floats(sizes, GRAD_COUNT, &floats));
    EVAE_TRY(evae_alloc_zeros(floats, sizeof(float), (void **)&net->grad_block, "cvae activation gradients"));
    carve_block(net->grad_block, sizes, GRAD_COUNT, gptrs);
    return EELSVAE_OK;
}

/* Make one conv layer and check it maps the stages as the layout says. */
static eelsvae_status make_conv(evae_conv3d **layer, const evae_conv3d_shape *sh, size_t batch,
                                const size_t expect[3], const char *what, size_t index)
{
    EVAE_TRY(evae_conv3d_create(layer, sh, (int)batch));
    size_t out[3] = {0, 0, 0};
    evae_conv3d_out_dims(*layer, out);
    if (out[0] != expect[0] || out[1] != expect[1] || out[2] != expect[2])
        return evae_fail(EELSVAE_ERR_INTERNAL, "cvae: %s %zu gives %zu×%zu×%zu, the layout says %zu×%zu×%zu", what,
                         index, out[0], out[1], out[2], expect[0], expect[1], expect[2]);
    return EELSVAE_OK;
}

static eelsvae_status build_net(evae_cvae *net)
{
    const evae_cvae_layout *lay = &net->layout;
    size_t n = lay->n_conv, count = 0, params = 0;
    EVAE_TRY(evae_alloc_zeros(lay->tensors, sizeof(evae_tensor_info), (void **)&net->tensors, "cvae tensor table"));
    EVAE_TRY(describe_tensors(&net->arch, lay, net->tensors, &count, &params));
    EVAE_TRY(evae_alloc_zeros(lay->parameters, sizeof(float), (void **)&net->params, "cvae parameters"));
    if (net->training)
        EVAE_TRY(evae_alloc_zeros(lay->parameters, sizeof(float), (void **)&net->grads, "cvae gradients"));
    EVAE_TRY(alloc_activations(net));
    for (size_t i = 0; i < n; i++) {
        evae_conv3d_shape enc = encoder_shape(&net->arch, lay, i), dec = decoder_shape(&net->arch, lay, i);
        EVAE_TRY(make_conv(&net->enc[i], &enc, net->max_batch, lay->stage_dims[i + 1], "encoder conv", i));
        EVAE_TRY(make_conv(&net->dec[i], &dec, net->max_batch, lay->stage_dims[n - 1 - i], "decoder convT", i));
    }
    net->batch = net->max_batch;
    return EELSVAE_OK;
}

eelsvae_status evae_cvae_create(const eelsvae_model_options *arch, size_t max_batch, bool training, evae_cvae **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cvae create: NULL output");
    evae_cvae_layout lay;
    EVAE_TRY(evae_cvae_layout_of(arch, &lay));
    EVAE_TRY(check_batch(max_batch, "cvae create"));
    size_t act = 0, ws = 0; /* every size the blocks need, checked before allocating */
    EVAE_TRY(evae_cvae_memory(arch, max_batch, training, &act, &ws));
    evae_cvae *net = NULL;
    EVAE_TRY(evae_alloc_zeros(1, sizeof *net, (void **)&net, "cvae"));
    net->arch = *arch;
    net->arch.struct_size = sizeof net->arch;
    net->layout = lay;
    net->max_batch = max_batch;
    net->training = training;
    eelsvae_status st = build_net(net);
    if (st != EELSVAE_OK) {
        evae_cvae_free(net);
        return st;
    }
    *out = net;
    return EELSVAE_OK;
}

void evae_cvae_free(evae_cvae *net)
{
    if (!net) return;
    for (size_t i = 0; i < EELSVAE_MAX_CONV_LAYERS; i++) {
        evae_conv3d_free(net->enc[i]);
        evae_conv3d_free(net->dec[i]);
    }
    evae_free(net->grad_block);
    evae_free(net->act_block);
    evae_free(net->grads);
    evae_free(net->params);
    evae_free(net->tensors);
    evae_free(net);
}

const eelsvae_model_options *evae_cvae_arch(const evae_cvae *net)
{
    return &net->arch;
}

const evae_cvae_layout *evae_cvae_get_layout(const evae_cvae *net)
{
    return &net->layout;
}

size_t evae_cvae_max_batch(const evae_cvae *net)
{
    return net->max_batch;
}

float *evae_cvae_params(evae_cvae *net)
{
    return net->params;
}

float *evae_cvae_grads(evae_cvae *net)
{
    return net->grads;
}

size_t evae_cvae_param_count(const evae_cvae *net)
{
    return net->layout.parameters;
}

const evae_tensor_info *evae_cvae_tensor(const evae_cvae *net, size_t i)
{
    return i < net->layout.tensors ? &net->tensors[i] : NULL;
}

const float *evae_cvae_logits(const evae_cvae *net)
{
    return net->dec_out[net->layout.n_conv - 1];
}

/* ---- initialisation ------------------------------------------------------------ */

/* fan_in as torch.nn.init._calculate_fan_in_and_fan_out: weight.size(1) ×
 * the kernel's points, for Linear, Conv3d and ConvTranspose3d alike. */
static size_t fan_in_of(const evae_tensor_info *weight)
{
    size_t fan = weight->shape[1];
    for (size_t d = 2; d < weight->ndim; d++) fan *= weight->shape[d];
    return fan;
}

void evae_cvae_init_params(evae_cvae *net, uint64_t seed)
{
    /* Tensors come in (weight, bias) pairs; the bias uses its weight's fan_in. */
    for (size_t t = 0; t < net->layout.tensors; t++) {
        const evae_tensor_info *info = &net->tensors[t];
        double bound = 1.0 / sqrt((double)fan_in_of(&net->tensors[t & ~(size_t)1]));
        evae_rng rng;
        evae_rng_seed(&rng, seed, t);
        float *p = net->params + info->offset;
        for (size_t k = 0; k < info->count; k++) p[k] = (float)((2.0 * evae_rng_uniform(&rng) - 1.0) * bound);
    }
}

/* ---- forward ---------------------------------------------------------------------- */

/* Tensor indices in the block: enc i weight 2i, bias 2i+1; then the dense
 * layers; dec j weight 2n+8+2j. */
enum { FC_ENC = 0, FC_MULV = 2, FC_DEC = 4, FC_UNFLAT = 6 };

static float *weight(evae_cvae *net, size_t tensor)
{
    return net->params + net->tensors[tensor].offset;
}

static float *weight_grad(evae_cvae *net, size_t tensor)
{
    return net->grads + net->tensors[tensor].offset;
}

static size_t dense_tensor(const evae_cvae *net, size_t which)
{
    return 2 * net->layout.n_conv + which;
}

static size_t dec_tensor(const evae_cvae *net, size_t j)
{
    return 2 * net->layout.n_conv + 8 + 2 * j;
}

static size_t tile_floats(const evae_cvae *net)
{
    return stage_volume(&net->layout, 0);
}

static eelsvae_status check_call(const evae_cvae *net, const void *in, const void *out, size_t batch,
                                 const char *what)
{
    if (!net || !in || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL network or buffer", what);
    if (batch < 1 || batch > net->max_batch)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: batch %zu (must be 1 … %zu, the net's max_batch)", what,
                         batch, net->max_batch);
    return EELSVAE_OK;
}

/* Tell the conv layers how many items the next calls carry. */
static eelsvae_status use_batch(evae_cvae *net, size_t batch)
{
    if (batch == net->batch) return EELSVAE_OK;
    for (size_t i = 0; i < net->layout.n_conv; i++) {
        EVAE_TRY(evae_conv3d_set_batch(net->enc[i], (int)batch));
        EVAE_TRY(evae_conv3d_set_batch(net->dec[i], (int)batch));
    }
    net->batch = batch;
    return EELSVAE_OK;
}

/* x [B][T][T][E] → enc_out[…], h, mulv. */
static eelsvae_status encoder_forward(evae_cvae *net, const float *x, size_t batch)
{
    const evae_cvae_layout *lay = &net->layout;
    const float *in = x;
    for (size_t i = 0; i < lay->n_conv; i++) {
        EVAE_TRY(evae_conv3d_forward(net->enc[i], net->enc_out[i], in, weight(net, 2 * i), weight(net, 2 * i + 1)));
        evae_relu_forward(net->enc_out[i], net->enc_out[i], batch * stage_volume(lay, i + 1));
        in = net->enc_out[i];
    }
    size_t fc = dense_tensor(net, FC_ENC), mv = dense_tensor(net, FC_MULV);
    EVAE_TRY(evae_dense_forward(net->h, in, weight(net, fc), weight(net, fc + 1), batch, lay->flat, net->arch.hidden));
    evae_relu_forward(net->h, net->h, batch * net->arch.hidden);
    return evae_dense_forward(net->mulv, net->h, weight(net, mv), weight(net, mv + 1), batch, net->arch.hidden,
                              2 * net->arch.latent);
}

/* z [B][L] → d1, d2, dec_out[…] (the last holds the logits). */
static eelsvae_status decoder_forward(evae_cvae *net, const float *z, size_t batch)
{
    const evae_cvae_layout *lay = &net->layout;
    size_t n = lay->n_conv, hidden = net->arch.hidden;
    size_t fd = dense_tensor(net, FC_DEC), fu = dense_tensor(net, FC_UNFLAT);
    EVAE_TRY(evae_dense_forward(net->d1, z, weight(net, fd), weight(net, fd + 1), batch, net->arch.latent, hidden));
    evae_relu_forward(net->d1, net->d1, batch * hidden);
    EVAE_TRY(evae_dense_forward(net->d2, net->d1, weight(net, fu), weight(net, fu + 1), batch, hidden, lay->flat));
    evae_relu_forward(net->d2, net->d2, batch * lay->flat);
    const float *in = net->d2;
    for (size_t j = 0; j < n; j++) {
        size_t t = dec_tensor(net, j);
        EVAE_TRY(evae_conv3d_forward(net->dec[j], net->dec_out[j], in, weight(net, t), weight(net, t + 1)));
        if (j + 1 < n) evae_relu_forward(net->dec_out[j], net->dec_out[j], batch * stage_volume(lay, n - 1 - j));
        in = net->dec_out[j];
    }
    return EELSVAE_OK;
}

/* z from mulv: with the caller's ε, from rng, or ε = 0 (both NULL). */
static void sample_latent(evae_cvae *net, size_t batch, const float *eps, evae_rng *rng)
{
    size_t L = net->arch.latent;
    if (eps) {
        memcpy(net->eps, eps, batch * L * sizeof *eps);
        evae_reparam_apply(net->z, net->eps, net->mulv, batch, L);
    } else {
        evae_reparam_forward(net->z, net->eps, net->mulv, batch, L, rng);
    }
}

/* The loss terms of the last forward on target x; with `gradients`, writes
 * (=) ∂loss/∂logits into the first chain buffer and the KL part of
 * ∂loss/∂mulv. */
static eelsvae_status compute_losses(evae_cvae *net, const float *x, const uint8_t *keep, size_t batch,
                                     bool gradients, evae_cvae_losses *losses)
{
    size_t L = net->arch.latent, E = net->arch.energy_channels;
    double b = (double)batch, beta = net->arch.beta;
    float *dlogits = gradients ? net->grad[GRAD_CHAIN0] : NULL;
    float *dmulv = gradients ? net->grad[GRAD_MULV] : NULL;
    evae_loss_kind kind = (evae_loss_kind)net->arch.loss;
    double rec = keep ? evae_recon_loss_masked(kind, dlogits, evae_cvae_logits(net), x, batch * tile_floats(net) / E,
                                               E, keep, 1.0 / b)
                      : evae_recon_loss(kind, dlogits, evae_cvae_logits(net), x, batch * tile_floats(net), 1.0 / b);
    double kl = evae_kl_loss(dmulv, net->mulv, batch, L, beta / b);
    losses->reconstruction = rec / b;
    losses->kl = kl / b;
    losses->loss = losses->reconstruction + beta * losses->kl;
    if (!isfinite(losses->loss))
        return evae_fail(EELSVAE_ERR_NUMERIC, "cvae: the loss is not finite (reconstruction %g, KL %g)",
                         losses->reconstruction, losses->kl);
    return EELSVAE_OK;
}

/* ---- backward --------------------------------------------------------------------- */

/* Zero the first `floats` of an activation-gradient buffer. */
static float *zeroed(float *buffer, size_t floats)
{
    memset(buffer, 0, floats * sizeof *buffer);
    return buffer;
}

/* From ∂loss/∂logits (chain buffer 0) back to ∂loss/∂d2, through the
 * transposed convs; returns the chain buffer holding ∂loss/∂d2 (post-ReLU). */
static eelsvae_status decoder_backward(evae_cvae *net, size_t batch, float **chain)
{
    const evae_cvae_layout *lay = &net->layout;
    size_t n = lay->n_conv;
    float *dy = net->grad[GRAD_CHAIN0], *spare = net->grad[GRAD_CHAIN1];
    for (size_t j = n; j-- > 0;) {
        size_t t = dec_tensor(net, j), out_stage = n - 1 - j;
        if (j + 1 < n) evae_relu_mask_grad(dy, net->dec_out[j], batch * stage_volume(lay, out_stage));
        const float *in = j == 0 ? net->d2 : net->dec_out[j - 1];
        float *dx = zeroed(spare, batch * stage_volume(lay, out_stage + 1));
        EVAE_TRY(evae_conv3d_backward(net->dec[j], dx, weight_grad(net, t), weight_grad(net, t + 1), dy, in,
                                      weight(net, t)));
        spare = dy;
        dy = dx;
    }
    *chain = dy;
    return EELSVAE_OK;
}

/* Dense layers from ∂loss/∂d2 back to ∂loss/∂(last encoder stage), which
 * lands in `out` (a chain buffer); the KL part of dmulv is already there. */
static eelsvae_status latent_backward(evae_cvae *net, size_t batch, float *dd2, float *out)
{
    const evae_cvae_layout *lay = &net->layout;
    size_t hidden = net->arch.hidden, L = net->arch.latent;
    size_t fc = dense_tensor(net, FC_ENC), mv = dense_tensor(net, FC_MULV);
    size_t fd = dense_tensor(net, FC_DEC), fu = dense_tensor(net, FC_UNFLAT);
    float *dd1 = zeroed(net->grad[GRAD_D1], batch * hidden);
    float *dz = zeroed(net->grad[GRAD_Z], batch * L);
    float *dh = zeroed(net->grad[GRAD_H], batch * hidden);
    float *dmulv = net->grad[GRAD_MULV];

    evae_relu_mask_grad(dd2, net->d2, batch * lay->flat);
    EVAE_TRY(evae_dense_backward(dd1, weight_grad(net, fu), weight_grad(net, fu + 1), dd2, net->d1, weight(net, fu),
                                 batch, hidden, lay->flat));
    evae_relu_mask_grad(dd1, net->d1, batch * hidden);
    EVAE_TRY(evae_dense_backward(dz, weight_grad(net, fd), weight_grad(net, fd + 1), dd1, net->z, weight(net, fd),
                                 batch, L, hidden));
    evae_reparam_backward(dmulv, dz, net->eps, net->mulv, batch, L);
    EVAE_TRY(evae_dense_backward(dh, weight_grad(net, mv), weight_grad(net, mv + 1), dmulv, net->h, weight(net, mv),
                                 batch, hidden, 2 * L));
    evae_relu_mask_grad(dh, net->h, batch * hidden);
    float *dflat = zeroed(out, batch * lay->flat);
    return evae_dense_backward(dflat, weight_grad(net, fc), weight_grad(net, fc + 1), dh,
                               net->enc_out[lay->n_conv - 1], weight(net, fc), batch, lay->flat, hidden);
}

/* From ∂loss/∂(last encoder stage) in `dy` back through the convs; the
 * first conv's input gradient is not needed and not computed. */
static eelsvae_status encoder_backward(evae_cvae *net, const float *x, size_t batch, float *dy, float *spare)
{
    const evae_cvae_layout *lay = &net->layout;
    for (size_t i = lay->n_conv; i-- > 0;) {
        evae_relu_mask_grad(dy, net->enc_out[i], batch * stage_volume(lay, i + 1));
        const float *in = i == 0 ? x : net->enc_out[i - 1];
        float *dx = i == 0 ? NULL : zeroed(spare, batch * stage_volume(lay, i));
        EVAE_TRY(evae_conv3d_backward(net->enc[i], dx, weight_grad(net, 2 * i), weight_grad(net, 2 * i + 1), dy, in,
                                      weight(net, 2 * i)));
        spare = dy;
        dy = dx;
    }
    return EELSVAE_OK;
}

/* ---- the calls ---------------------------------------------------------------------- */

eelsvae_status evae_cvae_forward_backward(evae_cvae *net, const float *x, size_t batch, const float *eps,
                                          evae_rng *rng, evae_cvae_losses *losses)
{
    return evae_cvae_forward_backward_masked(net, x, NULL, batch, eps, rng, losses);
}

eelsvae_status evae_cvae_forward_backward_masked(evae_cvae *net, const float *x, const uint8_t *keep, size_t batch,
                                                 const float *eps, evae_rng *rng, evae_cvae_losses *losses)
{
    EVAE_TRY(check_call(net, x, losses, batch, "cvae forward_backward"));
    if (!net->training)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cvae forward_backward: the net was created without training");
    memset(net->grads, 0, net->layout.parameters * sizeof *net->grads);
    EVAE_TRY(use_batch(net, batch));
    EVAE_TRY(encoder_forward(net, x, batch));
    sample_latent(net, batch, eps, rng);
    EVAE_TRY(decoder_forward(net, net->z, batch));
    EVAE_TRY(compute_losses(net, x, keep, batch, true, losses));
    float *dd2 = NULL;
    EVAE_TRY(decoder_backward(net, batch, &dd2));
    float *other = dd2 == net->grad[GRAD_CHAIN0] ? net->grad[GRAD_CHAIN1] : net->grad[GRAD_CHAIN0];
    EVAE_TRY(latent_backward(net, batch, dd2, other));
    return encoder_backward(net, x, batch, other, dd2);
}

eelsvae_status evae_cvae_evaluate(evae_cvae *net, const float *x, size_t batch, const float *eps, evae_rng *rng,
                                  evae_cvae_losses *losses)
{
    return evae_cvae_evaluate_masked(net, x, NULL, batch, eps, rng, losses);
}

eelsvae_status evae_cvae_evaluate_masked(evae_cvae *net, const float *x, const uint8_t *keep, size_t batch,
                                         const float *eps, evae_rng *rng, evae_cvae_losses *losses)
{
    EVAE_TRY(check_call(net, x, losses, batch, "cvae evaluate"));
    EVAE_TRY(use_batch(net, batch));
    EVAE_TRY(encoder_forward(net, x, batch));
    sample_latent(net, batch, eps, rng);
    EVAE_TRY(decoder_forward(net, net->z, batch));
    return compute_losses(net, x, keep, batch, false, losses);
}

eelsvae_status evae_cvae_encode(evae_cvae *net, const float *x, size_t batch, float *mulv)
{
    EVAE_TRY(check_call(net, x, mulv, batch, "cvae encode"));
    EVAE_TRY(use_batch(net, batch));
    EVAE_TRY(encoder_forward(net, x, batch));
    memcpy(mulv, net->mulv, batch * 2 * net->arch.latent * sizeof *mulv);
    return EELSVAE_OK;
}

eelsvae_status evae_cvae_decode(evae_cvae *net, const float *z, size_t batch, float *recon)
{
    EVAE_TRY(check_call(net, z, recon, batch, "cvae decode"));
    EVAE_TRY(use_batch(net, batch));
    EVAE_TRY(decoder_forward(net, z, batch));
    evae_sigmoid_forward(recon, evae_cvae_logits(net), batch * tile_floats(net));
    return EELSVAE_OK;
}

eelsvae_status evae_cvae_reconstruct(evae_cvae *net, const float *x, size_t batch, float *recon)
{
    EVAE_TRY(check_call(net, x, recon, batch, "cvae reconstruct"));
    EVAE_TRY(use_batch(net, batch));
    EVAE_TRY(encoder_forward(net, x, batch));
    sample_latent(net, batch, NULL, NULL); /* z = μ */
    EVAE_TRY(decoder_forward(net, net->z, batch));
    evae_sigmoid_forward(recon, evae_cvae_logits(net), batch * tile_floats(net));
    return EELSVAE_OK;
}
