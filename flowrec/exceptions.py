"""Exception classes raised by flowrec.

Each class also derives from the built-in exception that callers would catch
without knowing flowrec (``ValueError``, ``OSError`` ...), so existing
``except ValueError`` blocks keep working. ``docs/errors.md`` lists when each
one is raised.
"""

from sklearn.exceptions import NotFittedError

__all__ = [
    "FlowrecError",
    "NotFittedError",
    "DivergenceError",
    "UnknownIdError",
    "IdTypeError",
    "DuplicateRatingsError",
    "DatasetNotFoundError",
    "ChecksumMismatchError",
    "DownloadError",
    "MemoryEstimateError",
]


class FlowrecError(Exception):
    """Base class of every exception defined by flowrec."""


class DivergenceError(FlowrecError, FloatingPointError):
    """Training produced a non-finite loss or parameters.

    Attributes
    ----------
    epoch : int
        The first epoch (counting from 1) after which a non-finite value was seen.
    """

    def __init__(self, message, *, epoch):
        super().__init__(message)
        self.epoch = epoch


class UnknownIdError(FlowrecError, ValueError):
    """A user or item id was not seen during ``fit`` and the policy is ``"raise"``."""


class IdTypeError(FlowrecError, TypeError):
    """Ids have a type that does not match the ids seen during ``fit``.

    Raised, for example, when a model fitted on integer ids receives ``"17"``
    while ``17`` is a known id.
    """


class DuplicateRatingsError(FlowrecError, ValueError):
    """The same (user, item) pair occurs more than once and no policy merges them."""


class DatasetNotFoundError(FlowrecError, FileNotFoundError):
    """A dataset file is neither at the given path nor in the cache, and downloading is off or failed."""


class ChecksumMismatchError(FlowrecError, OSError):
    """A file's SHA-256 digest differs from the one recorded in flowrec."""


class DownloadError(FlowrecError, OSError):
    """A download failed; the message names the URL and where to put the file by hand."""


class MemoryEstimateError(FlowrecError, MemoryError):
    """A step would allocate more memory than allowed; the message gives the estimate in bytes."""
