"""eotensor: run tensor graphs over georeferenced rasters of any size, streamed tile by tile.

The Python successor of OTBTF. Two entry points share one engine:

* ``eotensor TensorflowModelServe -source1.il a.tif ... -out o.tif`` (the CLI, OTB's keys), and
* :func:`serve` (this module), which returns a lazy :class:`ServedRaster` to ``read`` or ``write``.

The library names below load on first use (PEP 562), so ``import eotensor`` is instant: the command line
can handle Ctrl-C from its first moment, and neither TensorFlow nor PyTorch is imported until a model needs
it. The OTB applications are reachable too, as ``eotensor.TensorflowModelServe(...)``, but they are not part
of the library's namespace: ``eotensor.apps`` holds them.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

_LIBRARY = {
    "ServedRaster": "eotensor.api", "serve": "eotensor.api", "source": "eotensor.api",
    "LazyRaster": "eotensor.lazy", "open": "eotensor.lazy", "write": "eotensor.lazy",
    "from_xarray": "eotensor.xarray_io", "where": "eotensor.calc",
    "Grid": "eotensor.geometry", "Window": "eotensor.geometry",
    "FunctionModel": "eotensor.runtimes", "Model": "eotensor.runtimes", "TensorSpec": "eotensor.runtimes",
    "load_model": "eotensor.runtimes",
    "errors": "eotensor.errors", "EotensorError": "eotensor.errors",
}

__all__ = [
    "EotensorError", "FunctionModel", "Grid", "LazyRaster", "Model", "ServedRaster", "TensorSpec", "Window", "errors",
    "from_xarray", "load_model", "open", "serve", "source", "where", "write",
]

if TYPE_CHECKING:
    from eotensor import errors
    from eotensor.api import ServedRaster, serve, source
    from eotensor.calc import where
    from eotensor.errors import EotensorError
    from eotensor.geometry import Grid, Window
    from eotensor.lazy import LazyRaster, open, write
    from eotensor.runtimes import FunctionModel, Model, TensorSpec, load_model
    from eotensor.xarray_io import from_xarray


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("eotensor")  # one source of truth: pyproject.toml
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """Load a library name, ``__version__``, or an OTB application's Python entry (``TensorflowModelServe``)."""
    if name == "__version__":
        value: Any = _version()
    elif name in _LIBRARY:
        module = _import_module(_LIBRARY[name])
        value = module if name == "errors" else getattr(module, name)
    else:
        from eotensor.apps import registry

        app = registry.get(name)  # imports the app's module; a plug-in that fails to load is a one-line error
        if app is None:
            raise AttributeError(f"module 'eotensor' has no attribute {name!r}")
        module = _import_module(registry.targets()[name].partition(":")[0])
        value = getattr(module, name, None) or app  # the module's Python entry, e.g. TensorflowModelServe()
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
