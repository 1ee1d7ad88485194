"""Status codes and the exception that carries them."""
import enum


class Status(enum.IntEnum):
    """``eelsvae_status``: the value every fallible C call returns (fixed, append-only)."""
    OK = 0
    INVALID_ARGUMENT = 1
    NOMEM = 2
    OVERFLOW = 3
    IO = 4
    FORMAT = 5
    UNSUPPORTED = 6
    DIMENSION = 7
    RANGE = 8
    NUMERIC = 9
    CANCELLED = 10
    CHECKSUM = 11
    VERSION = 12
    INTERNAL = 13

    @property
    def c_name(self):
        """The C name, as ``eelsvae_strerror()`` spells it (``EELSVAE_ERR_FORMAT``)."""
        return "EELSVAE_OK" if self is Status.OK else "EELSVAE_ERR_" + self.name


class EelsvaeError(Exception):
    """A libeelsvae call failed.

    Attributes:
        status:   the :class:`Status` (an ``int``; a code this version does not
                  know stays a plain ``int``);
        message:  the library's own sentence (``eelsvae_last_error()``), read
                  right after the failing call on the same thread;
        function: the C function that failed (``None`` for checks made in Python).
    """

    def __init__(self, status, message, function=None):
        try:
            status = Status(status)
        except ValueError:
            status = int(status)
        self.status = status
        self.message = message
        self.function = function
        super().__init__(status, message, function)

    @property
    def status_name(self):
        """``EELSVAE_ERR_…`` name of the status."""
        if isinstance(self.status, Status):
            return self.status.c_name
        return "EELSVAE_ERR_UNKNOWN"

    def __str__(self):
        where = "%s: " % self.function if self.function else ""
        return "%s%s: %s" % (where, self.status_name, self.message or "(no detail)")

    def __reduce__(self):  # picklable, e.g. across multiprocessing
        return (type(self), (int(self.status), self.message, self.function))
