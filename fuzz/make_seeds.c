/* Write the seed corpora of our own file formats with the library itself:
 * model files (untrained, trained, a checkpoint, two architectures) into
 * CORPUS/model and PCA bases (centred, Poisson-normalised, neither) into
 * CORPUS/pca. The other formats' seeds come from fuzz/make_seeds.py.
 *
 *     build-fuzz/fuzz/make_seeds fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <eelsvae/eelsvae.h>

static void check(eelsvae_status st, const char *what)
{
    if (st != EELSVAE_OK) {
        fprintf(stderr, "make_seeds: %s: %s: %s\n", what, eelsvae_strerror(st), eelsvae_last_error());
        exit(1);
    }
}

static const char *out_path(const char *root, const char *dir, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, dir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/%s", root, dir, name);
    printf("%s\n", path);
    return path;
}

/* A cube of smooth positive counts, energy axis from e0 at 1 eV per channel. */
static eelsvae_cube *counts_cube(size_t ny, size_t nx, size_t ne, double e0)
{
    eelsvae_cube *c = NULL;
    check(eelsvae_cube_create(ny, nx, ne, &c), "cube");
    float *x = eelsvae_cube_data(c);
    for (size_t p = 0; p < ny * nx; p++)
        for (size_t e = 0; e < ne; e++) x[p * ne + e] = (float)(100.0 / (1.0 + (double)e) + (double)((p * 7 + e * 3) % 11));
    check(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, e0, 1.0, "eV"), "axis");
    return c;
}

/* The smallest architecture: a 2 × 2 tile of 4 channels, one 1×1×1 conv. */
static void smallest_arch(eelsvae_model_options *o)
{
    check(eelsvae_model_options_init(o, EELSVAE_PRESET_FAST), "model options");
    o->tile = 2;
    o->energy_channels = 4;
    o->energy_start = 10.0;
    o->conv_layers = 1;
    memset(o->conv, 0, sizeof o->conv);
    o->conv[0] = (eelsvae_conv_spec){1, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    o->hidden = 2;
    o->latent = 1;
    o->loss = EELSVAE_LOSS_GAUSSIAN;
}

/* Three layers with padding and strides (tests/test_model.c's tiny net). */
static void three_layer_arch(eelsvae_model_options *o)
{
    check(eelsvae_model_options_init(o, EELSVAE_PRESET_FAST), "model options");
    o->tile = 8;
    o->energy_channels = 32;
    o->energy_start = 695.0;
    o->conv_layers = 3;
    const eelsvae_conv_spec layers[3] = {
        {2, {1, 1, 3}, {1, 1, 2}, {0, 0, 1}},
        {4, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
        {4, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
    };
    memset(o->conv, 0, sizeof o->conv);
    memcpy(o->conv, layers, sizeof layers);
    o->hidden = 8;
    o->latent = 4;
    o->loss = EELSVAE_LOSS_BERNOULLI;
}

static void model_seeds(const char *root)
{
    eelsvae_model_options o;
    smallest_arch(&o);
    eelsvae_model *m = NULL;
    check(eelsvae_model_create(&o, 1, &m), "create");
    check(eelsvae_model_save(m, out_path(root, "model", "smallest-untrained.evm"), 0), "save");

    eelsvae_cube *c = counts_cube(4, 4, 8, 9.0);
    eelsvae_train_options t;
    check(eelsvae_train_options_init(&t, EELSVAE_PRESET_FAST), "train options");
    t.epochs = 1;
    t.batch = 2;
    t.tile_stride = 2;
    t.validation_fraction = 0.25;
    const eelsvae_cube *cubes[1] = {c};
    check(eelsvae_model_train(m, cubes, NULL, 1, &t), "train");
    check(eelsvae_model_save(m, out_path(root, "model", "smallest-trained.evm"), 0), "save");
    check(eelsvae_model_save(m, out_path(root, "model", "smallest-checkpoint.evm"), 1), "save");
    eelsvae_model_free(m);
    eelsvae_cube_free(c);

    three_layer_arch(&o);
    check(eelsvae_model_create(&o, 2, &m), "create");
    check(eelsvae_model_save(m, out_path(root, "model", "three-layer-untrained.evm"), 0), "save");
    eelsvae_model_free(m);
}

static void pca_seed(const char *root, const char *name, size_t k, size_t ne, int center, int poisson)
{
    eelsvae_cube *c = counts_cube(3, 4, ne, 100.0);
    eelsvae_pca_options o;
    check(eelsvae_pca_options_init(&o), "pca options");
    o.components = k;
    o.center = center;
    o.poisson_normalize = poisson;
    eelsvae_pca *pca = NULL;
    check(eelsvae_pca_fit(c, &o, &pca), "fit");
    check(eelsvae_pca_save(pca, out_path(root, "pca", name)), "save");
    eelsvae_pca_free(pca);
    eelsvae_cube_free(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    eelsvae_set_threads(1);
    model_seeds(argv[1]);
    pca_seed(argv[1], "centred.evp", 2, 6, 1, 0);
    pca_seed(argv[1], "poisson.evp", 1, 5, 1, 1);
    pca_seed(argv[1], "plain.evp", 3, 4, 0, 0);
    return 0;
}
