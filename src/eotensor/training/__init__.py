"""Training models on patches images: the work of TensorflowModelTrain, usable from Python.

* :mod:`~eotensor.training.patches`: the sources' patches through the dataset readers, batch by batch;
* :mod:`~eotensor.training.validation`: validation passes measured with :mod:`eotensor.metrics`;
* :mod:`~eotensor.training.graph`: TF1 graph SavedModels (OTBTF's semantics: target nodes, the graph's saver);
* :mod:`~eotensor.training.keras`: Keras 3 ``.keras`` files (``fit``, save, export).

TensorFlow is imported only when a trainer is made.
"""

from __future__ import annotations

from collections.abc import Callable

from eotensor.training.base import Trainer, TrainOptions
from eotensor.training.patches import PatchesData, PatchSource
from eotensor.training.validation import ValidationReport

__all__ = ["PatchSource", "PatchesData", "TrainOptions", "Trainer", "ValidationReport", "make_trainer"]


def make_trainer(options: TrainOptions, log: Callable[[str], None] | None = None) -> Trainer:
    """The trainer for ``options.model``: a ``.keras`` file is trained with Keras, anything else as a TF1 graph."""
    if options.model.lower().endswith(".keras"):
        from eotensor.training.keras import KerasTrainer

        return KerasTrainer(options, log)
    from eotensor.training.graph import GraphTrainer

    return GraphTrainer(options, log)
