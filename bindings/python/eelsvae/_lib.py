"""ctypes declarations of libeelsvae: loading, the mirrored option structs,
and argtypes/restype for every exported function.

Everything here mirrors include/eelsvae/*.h exactly; the rest of the
package builds the Pythonic surface on top.  A function that returns an
``eelsvae_status`` is declared with an ``errcheck`` that raises
:class:`eelsvae.EelsvaeError` on a non-zero status, reading
``eelsvae_last_error()`` right after the failing call on the same thread,
so no wrapper can forget to check.
"""
import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int, c_size_t, c_uint8,
                    c_uint64, c_void_p)

from .errors import EelsvaeError, Status

#: ABI generation the bindings were written for (the soname's number).
ABI_MAJOR = 0
#: Oldest library version (major·10000 + minor·100 + patch) that has every symbol declared here.
MIN_VERSION_NUMBER = 100

UNITS_MAX = 16           # EELSVAE_UNITS_MAX
NPY_MAX_DIMS = 8         # EELSVAE_NPY_MAX_DIMS
SIGNAL_MAX_DIMS = 8      # EELSVAE_SIGNAL_MAX_DIMS
MAX_CONV_LAYERS = 6      # EELSVAE_MAX_CONV_LAYERS

c_status = c_int         # enum eelsvae_status
c_enum = c_int           # every other C enum: all values fit an int


# ---- opaque handles: distinct pointer types so that a PCA handle cannot be
# passed where a cube is expected (ctypes raises ArgumentError). ----------------

class _Opaque(Structure):
    pass


class CubeStruct(_Opaque):
    pass


class PcaStruct(_Opaque):
    pass


class ScorerStruct(_Opaque):
    pass


class ModelStruct(_Opaque):
    pass


class SignalStruct(_Opaque):
    pass


CubeP = POINTER(CubeStruct)
PcaP = POINTER(PcaStruct)
ScorerP = POINTER(ScorerStruct)
ModelP = POINTER(ModelStruct)
SignalP = POINTER(SignalStruct)


# ---- option structs (struct_size convention: field order and types as in C) ----

class PreprocessOptions(Structure):
    """Mirror of ``eelsvae_preprocess_options`` (cube.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("sigma", c_double * 3),
        ("percentile_lo", c_double),
        ("percentile_hi", c_double),
        ("use_fixed_scaling", c_int),
        ("scale_lo", c_double),
        ("scale_hi", c_double),
        ("mean_filter", c_size_t),
        ("median_filter", c_size_t),
    ]


class SynthOptions(Structure):
    """Mirror of ``eelsvae_synth_options`` (cube.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("ny", c_size_t),
        ("nx", c_size_t),
        ("energy_start", c_double),
        ("energy_end", c_double),
        ("dispersion", c_double),
        ("seed", c_uint64),
        ("dose", c_double),
        ("read_noise", c_double),
        ("bg_exponent_min", c_double),
        ("bg_exponent_max", c_double),
        ("thickness_gradient", c_double),
        ("o_edge", c_double),
        ("fe_l3", c_double),
        ("fe_l2", c_double),
        ("l3_l2_ratio", c_double),
        ("fe_jump", c_double),
        ("o_jump", c_double),
        ("composition_variation", c_double),
        ("drift", c_double),
        ("stripe_gain", c_double),
        ("thickness_variation", c_double),
    ]


class PcaOptions(Structure):
    """Mirror of ``eelsvae_pca_options`` (pca.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("components", c_size_t),
        ("center", c_int),
        ("poisson_normalize", c_int),
        ("seed", c_uint64),
        ("tolerance", c_double),
        ("max_iterations", c_size_t),
        ("trim_fraction", c_double),
    ]


class ScorerOptions(Structure):
    """Mirror of ``eelsvae_scorer_options`` (score.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("kind", c_enum),
        ("window_lo", c_double),
        ("window_hi", c_double),
    ]


class MetricsStruct(Structure):
    """Mirror of ``eelsvae_metrics`` (score.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("true_positive", c_size_t),
        ("false_positive", c_size_t),
        ("false_negative", c_size_t),
        ("true_negative", c_size_t),
        ("precision", c_double),
        ("recall", c_double),
        ("f1", c_double),
        ("iou", c_double),
    ]


class ConvSpec(Structure):
    """Mirror of ``eelsvae_conv_spec`` (model.h)."""
    _fields_ = [
        ("channels", c_size_t),
        ("kernel", c_size_t * 3),
        ("stride", c_size_t * 3),
        ("padding", c_size_t * 3),
    ]


class ModelOptions(Structure):
    """Mirror of ``eelsvae_model_options`` (model.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("tile", c_size_t),
        ("energy_channels", c_size_t),
        ("energy_start", c_double),
        ("conv_layers", c_size_t),
        ("conv", ConvSpec * MAX_CONV_LAYERS),
        ("hidden", c_size_t),
        ("latent", c_size_t),
        ("beta", c_double),
        ("loss", c_enum),
        ("energy_bin", c_size_t),
    ]


class EdgeStruct(Structure):
    """Mirror of ``eelsvae_edge`` (edges.h); struct_size is set by the caller."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("element", c_char_p),
        ("shell", c_char_p),
        ("onset_ev", c_double),
        ("last_onset_ev", c_double),
    ]


class ThresholdRuleStruct(Structure):
    """Mirror of ``eelsvae_threshold_rule`` (score.h); struct_size is set by the caller."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("kind", c_enum),
        ("parameter", c_double),
    ]


class MemoryEstimateStruct(Structure):
    """Mirror of ``eelsvae_memory_estimate`` (model.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("parameters", c_size_t),
        ("parameter_bytes", c_size_t),
        ("gradient_bytes", c_size_t),
        ("optimizer_bytes", c_size_t),
        ("activation_bytes", c_size_t),
        ("workspace_bytes", c_size_t),
        ("total_bytes", c_size_t),
    ]


class TrainProgressStruct(Structure):
    """Mirror of ``eelsvae_train_progress`` (model.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("epoch", c_size_t),
        ("epochs", c_size_t),
        ("batch", c_size_t),
        ("batches", c_size_t),
        ("epoch_done", c_int),
        ("loss", c_double),
        ("reconstruction", c_double),
        ("kl", c_double),
        ("validation_loss", c_double),
        ("learning_rate", c_double),
        ("elapsed_seconds", c_double),
        ("eta_seconds", c_double),
    ]


#: ``eelsvae_train_progress_fn``: int (*)(void *user, const eelsvae_train_progress *progress)
TRAIN_PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, POINTER(TrainProgressStruct))
#: ``eelsvae_log_fn``: void (*)(void *user, eelsvae_log_level level, const char *message)
LOG_FN = CFUNCTYPE(None, c_void_p, c_enum, c_char_p)


class TrainOptions(Structure):
    """Mirror of ``eelsvae_train_options`` (model.h)."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("epochs", c_size_t),
        ("batch", c_size_t),
        ("learning_rate", c_double),
        ("validation_fraction", c_double),
        ("clip_norm", c_double),
        ("plateau_patience", c_size_t),
        ("early_stop_patience", c_size_t),
        ("tile_stride", c_size_t),
        ("seed", c_uint64),
        ("preprocess", POINTER(PreprocessOptions)),
        ("checkpoint_path", c_char_p),
        ("checkpoint_every", c_size_t),
        ("progress", TRAIN_PROGRESS_FN),
        ("progress_user", c_void_p),
        ("min_tiles", c_size_t),
        ("min_steps", c_size_t),
        ("outlier_cut", c_double),
    ]


#: Every mirrored struct, by its C name (the struct-size test walks this).
STRUCTS = {
    "eelsvae_preprocess_options": PreprocessOptions,
    "eelsvae_synth_options": SynthOptions,
    "eelsvae_pca_options": PcaOptions,
    "eelsvae_scorer_options": ScorerOptions,
    "eelsvae_metrics": MetricsStruct,
    "eelsvae_conv_spec": ConvSpec,
    "eelsvae_edge": EdgeStruct,
    "eelsvae_threshold_rule": ThresholdRuleStruct,
    "eelsvae_model_options": ModelOptions,
    "eelsvae_memory_estimate": MemoryEstimateStruct,
    "eelsvae_train_progress": TrainProgressStruct,
    "eelsvae_train_options": TrainOptions,
}


# ---- function table: name -> (restype, argtypes); restype STATUS means "check it" ----

STATUS = object()
P_size = POINTER(c_size_t)
P_double = POINTER(c_double)
P_float = POINTER(c_float)
P_u8 = POINTER(c_uint8)
P_int = POINTER(c_int)
P_str = POINTER(c_char_p)

FUNCTIONS = {
    # base.h
    "eelsvae_version_number": (c_int, []),
    "eelsvae_version_string": (c_char_p, []),
    "eelsvae_strerror": (c_char_p, [c_status]),
    "eelsvae_last_error": (c_char_p, []),
    "eelsvae_set_threads": (STATUS, [c_int]),
    "eelsvae_threads": (c_int, []),
    "eelsvae_set_log_callback": (None, [LOG_FN, c_void_p]),
    "eelsvae_free": (None, [c_void_p]),
    # cube.h: cubes
    "eelsvae_cube_create": (STATUS, [c_size_t, c_size_t, c_size_t, POINTER(CubeP)]),
    "eelsvae_cube_create_from": (STATUS, [P_float, c_size_t, c_size_t, c_size_t, POINTER(CubeP)]),
    "eelsvae_cube_free": (None, [CubeP]),
    "eelsvae_cube_shape": (None, [CubeP, P_size, P_size, P_size]),
    "eelsvae_cube_data": (P_float, [CubeP]),
    "eelsvae_cube_data_const": (P_float, [CubeP]),
    "eelsvae_cube_set_axis": (STATUS, [CubeP, c_enum, c_double, c_double, c_char_p]),
    "eelsvae_cube_axis": (STATUS, [CubeP, c_enum, P_double, P_double, P_str]),
    "eelsvae_cube_spectrum": (STATUS, [CubeP, c_size_t, c_size_t, POINTER(P_float)]),
    "eelsvae_cube_energy_window": (STATUS, [CubeP, c_double, c_double, P_size, P_size]),
    "eelsvae_cube_crop_energy": (STATUS, [CubeP, c_double, c_double, POINTER(CubeP)]),
    "eelsvae_cube_bin_energy": (STATUS, [CubeP, c_size_t, POINTER(CubeP)]),
    "eelsvae_cube_crop": (STATUS, [CubeP, c_size_t, c_size_t, c_size_t, c_size_t, POINTER(CubeP)]),
    "eelsvae_cube_copy": (STATUS, [CubeP, POINTER(CubeP)]),
    "eelsvae_cube_sum_image": (STATUS, [CubeP, P_float, c_size_t]),
    "eelsvae_cube_mean_spectrum": (STATUS, [CubeP, P_float, c_size_t]),
    "eelsvae_cube_check_finite": (STATUS, [CubeP]),
    # cube.h: tiles
    "eelsvae_tiling": (STATUS, [c_size_t, c_size_t, c_size_t, c_size_t, P_size, P_size]),
    "eelsvae_cube_to_tiles": (STATUS, [CubeP, c_size_t, c_size_t, P_float, c_size_t]),
    "eelsvae_cube_from_tiles": (STATUS, [CubeP, c_size_t, c_size_t, P_float, c_size_t]),
    # cube.h: .npy
    "eelsvae_npy_read": (STATUS, [c_char_p, P_size, P_size, P_int, POINTER(P_float)]),
    "eelsvae_npy_write": (STATUS, [c_char_p, c_enum, c_void_p, c_size_t, P_size]),
    "eelsvae_cube_load_npy": (STATUS, [c_char_p, POINTER(CubeP)]),
    "eelsvae_cube_save_npy": (STATUS, [CubeP, c_char_p]),
    # cube.h: preprocessing
    "eelsvae_cube_gaussian_blur": (STATUS, [CubeP, c_double, c_double, c_double]),
    "eelsvae_cube_percentiles": (STATUS, [CubeP, c_double, c_double, P_double, P_double]),
    "eelsvae_cube_scale": (STATUS, [CubeP, c_double, c_double]),
    "eelsvae_cube_mean_filter": (STATUS, [CubeP, c_size_t]),
    "eelsvae_cube_median_filter": (STATUS, [CubeP, c_size_t]),
    "eelsvae_preprocess_options_init_sized": (STATUS, [POINTER(PreprocessOptions), c_enum, c_size_t]),
    "eelsvae_cube_preprocess": (STATUS, [CubeP, POINTER(PreprocessOptions), P_double, P_double]),
    "eelsvae_preprocess_options_choose_spatial": (STATUS, [POINTER(PreprocessOptions), CubeP, c_double,
                                                               c_double, P_double]),
    # cube.h: synthesis and injection
    "eelsvae_synth_options_init_sized": (STATUS, [POINTER(SynthOptions), c_size_t]),
    "eelsvae_synth_options_init_realistic_sized": (STATUS, [POINTER(SynthOptions), c_size_t]),
    "eelsvae_synth_generate": (STATUS, [POINTER(SynthOptions), POINTER(CubeP), POINTER(CubeP)]),
    "eelsvae_disk_mask": (STATUS, [c_size_t, c_size_t, c_size_t, c_double, c_double, c_uint64, P_u8,
                                   P_double]),
    "eelsvae_cube_inject_shift": (STATUS, [CubeP, P_u8, c_size_t, c_double, c_double, c_double]),
    # pca.h
    "eelsvae_pca_options_init_sized": (STATUS, [POINTER(PcaOptions), c_size_t]),
    "eelsvae_pca_fit": (STATUS, [CubeP, POINTER(PcaOptions), POINTER(PcaP)]),
    "eelsvae_pca_free": (None, [PcaP]),
    "eelsvae_pca_shape": (None, [PcaP, P_size, P_size]),
    "eelsvae_pca_components": (P_float, [PcaP]),
    "eelsvae_pca_explained_variance_ratio": (STATUS, [PcaP, P_double, c_size_t]),
    "eelsvae_pca_project": (STATUS, [PcaP, CubeP, P_float, c_size_t]),
    "eelsvae_pca_reconstruct": (STATUS, [PcaP, CubeP, POINTER(CubeP)]),
    "eelsvae_pca_save": (STATUS, [PcaP, c_char_p]),
    "eelsvae_pca_load": (STATUS, [c_char_p, POINTER(PcaP)]),
    # score.h
    "eelsvae_scorer_options_init_sized": (STATUS, [POINTER(ScorerOptions), c_size_t]),
    "eelsvae_scorer_create": (STATUS, [POINTER(ScorerOptions), POINTER(ScorerP)]),
    "eelsvae_scorer_free": (None, [ScorerP]),
    "eelsvae_scorer_direction": (c_enum, [ScorerP]),
    "eelsvae_scorer_noise_model": (STATUS, [ScorerP, CubeP, CubeP, P_double, P_double]),
    "eelsvae_scorer_score": (STATUS, [ScorerP, CubeP, CubeP, P_float, c_size_t, P_size]),
    "eelsvae_explain_means": (STATUS, [CubeP, CubeP, P_u8, c_size_t, c_double, c_double, P_double, P_double,
                                       P_double, P_double, P_double, c_size_t]),
    "eelsvae_otsu_threshold": (STATUS, [P_float, c_size_t, c_size_t, P_double]),
    "eelsvae_threshold_mask": (STATUS, [P_float, c_size_t, c_double, c_enum, P_u8]),
    "eelsvae_threshold_rule_default": (c_char_p, []),
    "eelsvae_threshold_rule_parse": (STATUS, [c_char_p, POINTER(ThresholdRuleStruct)]),
    "eelsvae_threshold_select": (STATUS, [P_float, c_size_t, c_enum, POINTER(ThresholdRuleStruct), P_double]),
    "eelsvae_score_p_values": (STATUS, [P_float, c_size_t, c_enum, P_double, c_size_t]),
    "eelsvae_metrics_compute": (STATUS, [P_u8, P_u8, c_size_t, POINTER(MetricsStruct)]),
    "eelsvae_roc_auc": (STATUS, [P_float, P_u8, c_size_t, c_enum, P_double]),
    "eelsvae_pr_auc": (STATUS, [P_float, P_u8, c_size_t, c_enum, P_double]),
    "eelsvae_score_histogram": (STATUS, [P_float, P_u8, c_size_t, c_double, c_double, c_size_t,
                                         POINTER(c_uint64), POINTER(c_uint64)]),
    # edges.h
    "eelsvae_edge_count": (c_size_t, []),
    "eelsvae_edge_at": (STATUS, [c_size_t, POINTER(EdgeStruct)]),
    "eelsvae_edge_lookup": (STATUS, [c_char_p, POINTER(EdgeStruct)]),
    "eelsvae_edge_window": (STATUS, [POINTER(EdgeStruct), P_double, P_double]),
    # model.h
    "eelsvae_model_options_init_sized": (STATUS, [POINTER(ModelOptions), c_enum, c_size_t]),
    "eelsvae_model_options_fit": (STATUS, [POINTER(ModelOptions), CubeP, c_double, c_double]),
    "eelsvae_model_estimate_memory": (STATUS, [POINTER(ModelOptions), c_size_t, POINTER(MemoryEstimateStruct)]),
    "eelsvae_model_create": (STATUS, [POINTER(ModelOptions), c_uint64, POINTER(ModelP)]),
    "eelsvae_model_free": (None, [ModelP]),
    "eelsvae_model_options_get_sized": (STATUS, [ModelP, POINTER(ModelOptions), c_size_t]),
    "eelsvae_model_parameter_count": (c_size_t, [ModelP]),
    "eelsvae_train_options_init_sized": (STATUS, [POINTER(TrainOptions), c_enum, c_size_t]),
    "eelsvae_model_train": (STATUS, [ModelP, POINTER(CubeP), POINTER(P_u8), c_size_t, POINTER(TrainOptions)]),
    "eelsvae_model_prepare": (STATUS, [ModelP, CubeP, POINTER(CubeP)]),
    "eelsvae_model_reconstruct": (STATUS, [ModelP, CubeP, c_size_t, POINTER(CubeP)]),
    "eelsvae_model_encode": (STATUS, [ModelP, CubeP, P_float, P_float, c_size_t]),
    "eelsvae_model_decode": (STATUS, [ModelP, P_float, c_size_t, P_float, c_size_t]),
    "eelsvae_model_save": (STATUS, [ModelP, c_char_p, c_int]),
    "eelsvae_model_load": (STATUS, [c_char_p, POINTER(ModelP)]),
    # io.h
    "eelsvae_format_detect": (STATUS, [c_char_p, P_int]),
    "eelsvae_format_name": (c_char_p, [c_enum]),
    "eelsvae_format_supported": (c_int, [c_enum]),
    "eelsvae_file_signals": (STATUS, [c_char_p, P_size, P_size]),
    "eelsvae_signal_load": (STATUS, [c_char_p, POINTER(SignalP)]),
    "eelsvae_signal_load_index": (STATUS, [c_char_p, c_size_t, POINTER(SignalP)]),
    "eelsvae_signal_create": (STATUS, [c_enum, c_size_t, P_size, c_void_p, POINTER(SignalP)]),
    "eelsvae_signal_from_cube": (STATUS, [CubeP, POINTER(SignalP)]),
    "eelsvae_signal_free": (None, [SignalP]),
    "eelsvae_signal_shape": (None, [SignalP, P_size, P_size, P_int]),
    "eelsvae_signal_data": (c_void_p, [SignalP]),
    "eelsvae_signal_value": (STATUS, [SignalP, c_size_t, P_double]),
    "eelsvae_dtype_size": (c_size_t, [c_enum]),
    "eelsvae_dtype_name": (c_char_p, [c_enum]),
    "eelsvae_signal_axis": (STATUS, [SignalP, c_size_t, P_double, P_double, P_str, P_str, P_int]),
    "eelsvae_signal_set_axis": (STATUS, [SignalP, c_size_t, c_double, c_double, c_char_p, c_char_p, c_int]),
    "eelsvae_signal_metadata_count": (c_size_t, [SignalP]),
    "eelsvae_signal_metadata_at": (STATUS, [SignalP, c_size_t, P_str, P_str]),
    "eelsvae_signal_metadata_get": (c_char_p, [SignalP, c_char_p]),
    "eelsvae_signal_metadata_set": (STATUS, [SignalP, c_char_p, c_char_p]),
    "eelsvae_signal_to_cube": (STATUS, [SignalP, POINTER(CubeP)]),
    "eelsvae_signal_save": (STATUS, [SignalP, c_char_p]),
    "eelsvae_cube_load": (STATUS, [c_char_p, POINTER(CubeP)]),
    "eelsvae_cube_save": (STATUS, [CubeP, c_char_p]),
    "eelsvae_map_save": (STATUS, [c_void_p, c_enum, CubeP, c_char_p, c_char_p]),
    "eelsvae_map_to_signal": (STATUS, [c_void_p, c_enum, CubeP, POINTER(SignalP)]),
}


# ---- loading -------------------------------------------------------------------

def _candidates():
    """Where to look for the shared object, in order."""
    explicit = os.environ.get("EELSVAE_LIBRARY")
    if explicit:
        return [explicit], True
    names = []
    try:
        from . import _build_config  # written by meson at install time only
        names.append(_build_config.LIBRARY)
    except ImportError:
        pass
    found = ctypes.util.find_library("eelsvae")
    if found:
        names.append(found)
    names.append("libeelsvae.so.%d" % ABI_MAJOR)
    return names, False


def _load_cdll():
    names, explicit = _candidates()
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append("%s: %s" % (name, exc))
    how = "EELSVAE_LIBRARY" if explicit else "the loader path (set EELSVAE_LIBRARY to its full path)"
    raise ImportError("eelsvae: cannot load libeelsvae from %s; tried: %s" % (how, "; ".join(errors)))


def _errcheck(result, func, args):
    if result != 0:
        # Read the thread-local detail now, before any other library call.
        message = lib.eelsvae_last_error().decode("utf-8", "replace")
        raise EelsvaeError(result, message, func.__name__)
    return result


def _missing(name):
    def stub(*args, **kwargs):
        raise EelsvaeError(Status.UNSUPPORTED,
                           "%s is not exported by the loaded libeelsvae %s" % (name, version_string()), name)
    stub.__name__ = name
    return stub


def _declare(cdll):
    missing = []
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            setattr(cdll, name, _missing(name))
            continue
        fn.argtypes = argtypes
        if restype is STATUS:
            fn.restype = c_status
            fn.errcheck = _errcheck
        else:
            fn.restype = restype
    return missing


def _check_version(cdll):
    cdll.eelsvae_version_number.restype = c_int
    cdll.eelsvae_version_number.argtypes = []
    number = cdll.eelsvae_version_number()
    if number // 10000 != ABI_MAJOR or number < MIN_VERSION_NUMBER:
        raise ImportError("eelsvae: the bindings need libeelsvae %d.x (>= %d.%d), but %s is version %d.%d.%d"
                          % (ABI_MAJOR, MIN_VERSION_NUMBER // 10000, MIN_VERSION_NUMBER // 100 % 100,
                             getattr(cdll, "_name", "?"), number // 10000, number // 100 % 100, number % 100))
    return number


lib = _load_cdll()
VERSION_NUMBER = _check_version(lib)
MISSING = _declare(lib)
LIBRARY_PATH = getattr(lib, "_name", None)


def version_string():
    return lib.eelsvae_version_string().decode()


def strerror(status):
    return lib.eelsvae_strerror(int(status)).decode()


# ---- small helpers shared by the modules -------------------------------------------

def fspath(path):
    """A path argument as the bytes the C library takes."""
    return os.fsencode(path)


def text(value, what, limit=None):
    """A str argument as NUL-free UTF-8 bytes (None stays None)."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if b"\0" in data:
        raise ValueError("%s must not contain a NUL character" % what)
    if limit is not None and len(data) >= limit:
        raise ValueError("%s %r is %d bytes long; at most %d fit" % (what, value, len(data), limit - 1))
    return data


def decode(value):
    return "" if value is None else value.decode("utf-8", "replace")

