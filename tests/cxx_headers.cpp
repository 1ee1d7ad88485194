// A C++17 translation unit that includes every public header and calls a
// representative function of each. It proves the headers' extern "C" guards
// (a missing guard would mangle the names and the link would fail), that they
// compile warning-free as C++ (-Wall -Wextra -pedantic -Werror), and that
// the API is usable from idiomatic C++: RAII handles, std::vector buffers.
// Built in-tree by tests/meson.build and out of tree, against an installed
// copy found with pkg-config, by tests/consumer_test.sh. Exit status 0 when
// every check holds.

// Each header first on its own, leaf-most first, so that one that leans on
// another being included before it fails here; the umbrella last.
#include <eelsvae/io.h>
#include <eelsvae/model.h>
#include <eelsvae/score.h>
#include <eelsvae/edges.h>
#include <eelsvae/pca.h>
#include <eelsvae/cube.h>
#include <eelsvae/base.h>
#include <eelsvae/eelsvae.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "cxx_headers: FAILED: %s (last error: %s)\n", what, eelsvae_last_error());
        ++failures;
    }
}

struct cube_deleter {
    void operator()(eelsvae_cube *c) const { eelsvae_cube_free(c); }
};
struct pca_deleter {
    void operator()(eelsvae_pca *p) const { eelsvae_pca_free(p); }
};
struct scorer_deleter {
    void operator()(eelsvae_scorer *s) const { eelsvae_scorer_free(s); }
};
struct signal_deleter {
    void operator()(eelsvae_signal *s) const { eelsvae_signal_free(s); }
};
using cube_ptr = std::unique_ptr<eelsvae_cube, cube_deleter>;
using pca_ptr = std::unique_ptr<eelsvae_pca, pca_deleter>;
using scorer_ptr = std::unique_ptr<eelsvae_scorer, scorer_deleter>;
using signal_ptr = std::unique_ptr<eelsvae_signal, signal_deleter>;

// The values are part of the ABI (base.h: fixed, append-only).
static_assert(EELSVAE_OK == 0, "EELSVAE_OK is 0");
static_assert(EELSVAE_ERR_INTERNAL == 13, "status values are fixed");
static_assert(std::is_same<decltype(&eelsvae_cube_create),
                           eelsvae_status (*)(size_t, size_t, size_t, eelsvae_cube **)>::value,
              "eelsvae_cube_create has its documented signature");
static_assert(offsetof(eelsvae_pca_options, struct_size) == 0, "options structs start with struct_size");

// base.h
void check_base()
{
    check(eelsvae_version_number() == EELSVAE_VERSION_NUMBER, "version number matches the headers");
    const std::string expected = std::to_string(EELSVAE_VERSION_MAJOR) + "." + std::to_string(EELSVAE_VERSION_MINOR) +
                                 "." + std::to_string(EELSVAE_VERSION_PATCH);
    check(expected == eelsvae_version_string(), "version string matches the headers");
    check(std::string(eelsvae_strerror(EELSVAE_ERR_RANGE)) == "EELSVAE_ERR_RANGE", "strerror names a status");
    check(eelsvae_set_threads(1) == EELSVAE_OK && eelsvae_threads() == 1, "set_threads(1) gives one thread");
    eelsvae_set_log_callback(nullptr, nullptr);
}

// cube.h: a calibrated axis and an energy window on it.
void check_cube()
{
    eelsvae_cube *raw = nullptr;
    check(eelsvae_cube_create(0, 2, 2, &raw) == EELSVAE_ERR_INVALID_ARGUMENT && raw == nullptr,
          "a zero dimension is EELSVAE_ERR_INVALID_ARGUMENT");
    check(eelsvae_last_error()[0] != '\0', "a failure leaves a message");
    check(eelsvae_cube_create(2, 3, 10, &raw) == EELSVAE_OK, "cube_create");
    cube_ptr cube(raw);
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(cube.get(), &ny, &nx, &ne);
    check(ny == 2 && nx == 3 && ne == 10, "cube_shape gives the created shape");
    check(eelsvae_cube_set_axis(cube.get(), EELSVAE_AXIS_E, 420.0, 0.5, "eV") == EELSVAE_OK, "set_axis");
    size_t first = 0, count = 0;
    // Channels at 420 + 0.5 i within [421, 422]: i = 2, 3, 4.
    check(eelsvae_cube_energy_window(cube.get(), 421.0, 422.0, &first, &count) == EELSVAE_OK && first == 2 &&
              count == 3,
          "energy window [421, 422] eV on 420 + 0.5 i is channels 2 … 4");
}

// A 4 × 4 × 8 cube whose spectra are multiples of one spectrum v.
cube_ptr rank_one_cube(std::vector<float> &v)
{
    v = {1, 2, 3, 4, 4, 3, 2, 1};
    std::vector<float> data;
    for (int p = 0; p < 16; ++p)
        for (float s : v) data.push_back(s * static_cast<float>(1 + p % 5));
    eelsvae_cube *raw = nullptr;
    check(eelsvae_cube_create_from(data.data(), 4, 4, 8, &raw) == EELSVAE_OK, "cube_create_from");
    return cube_ptr(raw);
}

// pca.h and score.h: one component spans rank-one data, and every spectrum
// then correlates perfectly with its reconstruction.
void check_pca_and_score()
{
    std::vector<float> v;
    cube_ptr cube = rank_one_cube(v);
    eelsvae_pca_options po;
    check(eelsvae_pca_options_init(&po) == EELSVAE_OK && po.struct_size == sizeof po, "pca_options_init");
    po.components = 1;
    po.center = 0;
    eelsvae_pca *raw = nullptr;
    check(eelsvae_pca_fit(cube.get(), &po, &raw) == EELSVAE_OK, "pca_fit");
    pca_ptr pca(raw);
    if (!pca) return;
    const float *c = eelsvae_pca_components(pca.get());
    double dot = 0, norm = 0;
    for (size_t i = 0; i < v.size(); ++i) {
        dot += c[i] * v[i];
        norm += double(v[i]) * v[i];
    }
    check(std::fabs(std::fabs(dot) / std::sqrt(norm) - 1.0) < 1e-5, "the component is ±v/|v|");

    eelsvae_cube *rec = nullptr;
    check(eelsvae_pca_reconstruct(pca.get(), cube.get(), &rec) == EELSVAE_OK, "pca_reconstruct");
    cube_ptr recon(rec);
    eelsvae_scorer_options so;
    check(eelsvae_scorer_options_init(&so) == EELSVAE_OK && so.kind == EELSVAE_SCORE_PCC, "scorer_options_init");
    // A new cube's energy axis is uncalibrated, which the scorer refuses: 0 … 7 eV.
    check(eelsvae_cube_set_axis(cube.get(), EELSVAE_AXIS_E, 0.0, 1.0, "eV") == EELSVAE_OK, "set_axis (energy)");
    so.window_lo = 0;
    so.window_hi = 7;
    eelsvae_scorer *sraw = nullptr;
    check(eelsvae_scorer_create(&so, &sraw) == EELSVAE_OK, "scorer_create");
    scorer_ptr scorer(sraw);
    std::vector<float> scores(16);
    size_t degenerate = 99;
    check(eelsvae_scorer_score(scorer.get(), cube.get(), recon.get(), scores.data(), scores.size(), &degenerate) ==
              EELSVAE_OK,
          "scorer_score");
    bool all_one = degenerate == 0;
    for (float s : scores) all_one = all_one && std::fabs(s - 1.0f) < 1e-5f;
    check(all_one, "every pixel's PCC with its rank-one reconstruction is 1");
    check(eelsvae_scorer_direction(scorer.get()) == EELSVAE_ANOMALOUS_BELOW, "PCC: low is anomalous");

    // Two clusters, 0 and 1: Otsu's threshold lies between them.
    const std::vector<float> two = {0, 0, 0, 0, 1, 1, 1, 1};
    double threshold = -1;
    check(eelsvae_otsu_threshold(two.data(), two.size(), 256, &threshold) == EELSVAE_OK && threshold >= 0 &&
              threshold < 1,
          "Otsu's threshold of {0, 1} lies in [0, 1)");
}

// edges.h: an edge by name, and its score window.
void check_edges()
{
    eelsvae_edge edge{};
    edge.struct_size = sizeof edge;
    check(eelsvae_edge_count() > 0, "the edge table is not empty");
    check(eelsvae_edge_lookup("Fe-L", &edge) == EELSVAE_OK && std::string(edge.element) == "Fe" &&
              std::string(edge.shell) == "L2,3",
          "Fe-L is the Fe L2,3 edge");
    double lo = 0, hi = 0;
    check(eelsvae_edge_window(&edge, &lo, &hi) == EELSVAE_OK && lo == edge.onset_ev - 10 &&
              hi == edge.last_onset_ev + 30,
          "edge_window is [onset - 10, last + 30] eV");
}

// model.h: the fast preset's memory estimate adds up, before anything is allocated.
void check_model()
{
    eelsvae_model_options mo;
    check(eelsvae_model_options_init(&mo, EELSVAE_PRESET_FAST) == EELSVAE_OK, "model_options_init");
    eelsvae_memory_estimate est;
    std::memset(&est, 0, sizeof est);
    est.struct_size = sizeof est;
    check(eelsvae_model_estimate_memory(&mo, 4, &est) == EELSVAE_OK, "model_estimate_memory");
    check(est.parameters > 0 && est.parameter_bytes >= est.parameters * sizeof(float), "at least 4 bytes per parameter");
    check(est.total_bytes == est.parameter_bytes + est.gradient_bytes + est.optimizer_bytes + est.activation_bytes +
                                 est.workspace_bytes,
          "the memory estimate's total is the sum of its parts");
    mo.tile = 0;
    check(eelsvae_model_estimate_memory(&mo, 4, &est) == EELSVAE_ERR_INVALID_ARGUMENT, "tile 0 is refused");
}

// io.h: a cube as a signal keeps its shape and type.
void check_io()
{
    check(std::string(eelsvae_format_name(EELSVAE_FORMAT_NPY)) == "npy", "format_name(NPY) is npy");
    check(eelsvae_dtype_size(EELSVAE_DTYPE_FLOAT32) == 4, "float32 is 4 bytes");
    eelsvae_cube *raw = nullptr;
    check(eelsvae_cube_create(2, 3, 5, &raw) == EELSVAE_OK, "cube_create");
    cube_ptr cube(raw);
    eelsvae_signal *sraw = nullptr;
    check(eelsvae_signal_from_cube(cube.get(), &sraw) == EELSVAE_OK, "signal_from_cube");
    signal_ptr signal(sraw);
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {};
    eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
    eelsvae_signal_shape(signal.get(), &ndim, shape, &dtype);
    check(ndim == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 5 && dtype == EELSVAE_DTYPE_FLOAT32,
          "the signal of a 2 × 3 × 5 cube is float32 (2, 3, 5)");
}

}  // namespace

int main()
{
    check_base();
    check_cube();
    check_pca_and_score();
    check_edges();
    check_model();
    check_io();
    std::printf("cxx_headers: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
