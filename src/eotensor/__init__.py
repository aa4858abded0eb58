"""eotensor: run tensor graphs over georeferenced rasters of any size, streamed tile by tile.

The Python successor of OTBTF. Two entry points share one engine:

* ``eotensor TensorflowModelServe -source1.il a.tif ... -out o.tif`` (the CLI, OTB's keys), and
* :func:`serve` (this module), which returns a lazy :class:`ServedRaster` to ``read`` or ``write``.

Importing eotensor imports neither TensorFlow nor PyTorch; runtimes load them when a model needs them.
"""

from importlib import metadata as _metadata

from eotensor.api import ServedRaster, serve, source
from eotensor.apps.model_serve import TensorflowModelServe
from eotensor.errors import EotensorError
from eotensor.geometry import Grid, Window
from eotensor.runtimes import FunctionModel, Model, TensorSpec, load_model

try:
    __version__ = _metadata.version("eotensor")  # one source of truth: pyproject.toml
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "EotensorError",
    "FunctionModel",
    "Grid",
    "Model",
    "ServedRaster",
    "TensorSpec",
    "TensorflowModelServe",
    "Window",
    "load_model",
    "serve",
    "source",
]
