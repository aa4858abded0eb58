"""Which applications exist, loaded only when used: name -> ``"module:attribute"`` of its :class:`App`.

Other packages add apps through the ``eotensor.apps`` entry-point group (``Name = "package.module:APP"``),
as rasterio's ``rasterio.rio_plugins``. Listing names imports nothing; :func:`get` imports one app module.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from eotensor.apps.params import App
from eotensor.errors import EotensorError

BUILTIN: dict[str, str] = {
    "TensorflowModelServe": "eotensor.apps.model_serve:APP",
    "PatchesExtraction": "eotensor.apps.patches_extraction:APP",
    "PatchesSelection": "eotensor.apps.patches_selection:APP",
    "LabelImageSampleSelection": "eotensor.apps.label_image_sample_selection:APP",
    "DensePolygonClassStatistics": "eotensor.apps.dense_polygon_class_statistics:APP",
    "ModelInfo": "eotensor.apps.model_info:APP",
    "TensorflowModelTrain": "eotensor.apps.model_train:APP",
    "BandMath": "eotensor.apps.band_math:APP",
    "BandMathX": "eotensor.apps.band_math:APP_X",
    "ReadImageInfo": "eotensor.apps.read_image_info:APP",
    "ExtractROI": "eotensor.apps.extract_roi:APP",
    "ComputeImagesStatistics": "eotensor.apps.compute_images_statistics:APP",
    "TrainImagesClassifier": "eotensor.apps.train_images_classifier:APP",
    "ImageClassifier": "eotensor.apps.image_classifier:APP",
    "TrainClassifierFromDeepFeatures": "eotensor.apps.train_classifier_from_deep_features:APP",
    "ImageClassifierFromDeepFeatures": "eotensor.apps.image_classifier_from_deep_features:APP",
}
ENTRY_POINT_GROUP = "eotensor.apps"


def targets() -> dict[str, str]:
    """Every app name -> ``"module:attribute"``; built-in names win over plug-ins."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def names() -> list[str]:
    """The app names, built-in first."""
    return list(BUILTIN) + sorted(set(targets()) - set(BUILTIN))


def get(name: str) -> App | None:
    """The app called ``name`` (imported now), or None if there is none; a plug-in that fails to load is an
    :class:`~eotensor.errors.EotensorError` naming it."""
    target = targets().get(name)
    if target is None:
        return None
    module, _, attribute = target.partition(":")
    try:
        app = getattr(importlib.import_module(module), attribute or "APP")
    except (ImportError, AttributeError) as error:
        raise EotensorError(f"application {name} ({target}) cannot be loaded: {type(error).__name__}: {error}") \
            from None
    if not isinstance(app, App):
        raise EotensorError(f"application {name} ({target}) is a {type(app).__name__}, not an eotensor App")
    return app
