"""The C enums as IntEnums; every function that takes one also takes its name as a string."""
import enum


class _NamedEnum(enum.IntEnum):
    @classmethod
    def coerce(cls, value):
        """An enum member from a member, an int, or a case-insensitive name ('pcc', 'spectral-angle')."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().upper().replace("-", "_").replace(" ", "_")
            aliases = getattr(cls, "_aliases", {})
            key = aliases.get(key, key)
            try:
                return cls[key]
            except KeyError:
                raise ValueError("unknown %s %r; one of %s" % (cls.__name__, value,
                                                             ", ".join(m.name.lower() for m in cls))) from None
        try:
            return cls(int(value))
        except (TypeError, ValueError):
            raise ValueError("unknown %s %r; one of %s" % (cls.__name__, value,
                                                         ", ".join(m.name.lower() for m in cls))) from None


class Axis(_NamedEnum):
    """``eelsvae_axis``: axes of a cube, slowest first."""
    Y = 0
    X = 1
    E = 2


Axis._aliases = {"ENERGY": "E"}


class Preset(_NamedEnum):
    """``eelsvae_preset``: which preset an options struct is filled with."""
    PAPER = 0
    FAST = 1


class ScoreKind(_NamedEnum):
    """``eelsvae_score_kind``: what a scorer measures."""
    PCC = 0
    MSE = 1
    SPECTRAL_ANGLE = 2
    CHI2 = 3


ScoreKind._aliases = {"ANGLE": "SPECTRAL_ANGLE", "SAM": "SPECTRAL_ANGLE", "CHI_SQUARE": "CHI2"}


class Direction(_NamedEnum):
    """``eelsvae_direction``: which side of a threshold is anomalous."""
    BELOW = 0
    ABOVE = 1


Direction._aliases = {"ANOMALOUS_BELOW": "BELOW", "ANOMALOUS_ABOVE": "ABOVE"}


class LossKind(_NamedEnum):
    """``eelsvae_loss_kind``: reconstruction term of the VAE loss."""
    BERNOULLI = 0
    GAUSSIAN = 1
    POISSON = 2


class LogLevel(_NamedEnum):
    """``eelsvae_log_level``."""
    DEBUG = 0
    INFO = 1
    WARN = 2


class DType(_NamedEnum):
    """``eelsvae_dtype``: element type of a signal or .npy array."""
    INT8 = 0
    UINT8 = 1
    INT16 = 2
    UINT16 = 3
    INT32 = 4
    UINT32 = 5
    INT64 = 6
    UINT64 = 7
    FLOAT16 = 8
    FLOAT32 = 9
    FLOAT64 = 10
    BOOL = 11
    COMPLEX64 = 12
    COMPLEX128 = 13
    RGBA8 = 14


class Format(_NamedEnum):
    """``eelsvae_format``: a file format."""
    UNKNOWN = 0
    NPY = 1
    DM3 = 2
    DM4 = 3
    HSPY = 4
    RPL = 5
