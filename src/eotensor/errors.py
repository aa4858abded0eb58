"""Every error eotensor raises on purpose, under one root.

Each message is one line: what was received, what was expected, and how to fix it. The CLI prints
``str(error)`` and exits non-zero without a traceback. Subclasses also inherit the matching builtin so
callers can catch ``ValueError`` / ``OSError`` / ``ImportError`` as usual.
"""

from __future__ import annotations


class EotensorError(Exception):
    """Root of all errors raised deliberately by eotensor."""


class ParameterError(EotensorError, ValueError):
    """Raised when a parameter value is missing, malformed or out of range."""


class InputFileError(EotensorError, OSError):
    """Raised when an input raster cannot be opened or read, or image lists do not match."""


class OutputFileError(EotensorError, OSError):
    """Raised when an output file cannot be created or its filename options are wrong."""


class ModelError(EotensorError, ValueError):
    """Raised when a model cannot be loaded, a tensor name does not resolve, or a call fails."""


class GeometryError(EotensorError, ValueError):
    """Raised when receptive fields, expression fields and spacing scale cannot produce an output grid."""


class ModelOutputError(EotensorError, ValueError):
    """Raised when a model returns a tensor whose size does not match the output region."""


class MissingDependencyError(EotensorError, ImportError):
    """Raised when an optional dependency (an extra such as ``eotensor[tf]``) is not installed."""
