"""Validation passes, the same for every trainer (behaviour reference §3.2, ``validation.mode class|rmse``).

A pass runs the model over a :class:`~eotensor.training.patches.PatchesData` in order, batch by batch, and compares
each compared output with its reference source patch for patch, value for value: ``class`` casts both to int and
accumulates a :class:`~eotensor.metrics.ConfusionMatrix`; ``rmse`` (beyond OTBTF) accumulates squared errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from eotensor.errors import ModelOutputError
from eotensor.metrics import ConfusionMatrix, ErrorStats, confusion_matrix, rmse
from eotensor.training.patches import PatchesData

__all__ = ["ValidationReport", "validate"]

Predict = Callable[[list[np.ndarray]], Mapping[str, np.ndarray]]
"""Model outputs (key -> array) for one batch of every source's patches."""


@dataclass(frozen=True)
class ValidationReport:
    """The metrics of one pass: per compared output, a confusion matrix (``class``) or error sums (``rmse``)."""

    epoch: int
    dataset: str
    """``training`` or ``validation``."""
    metrics: dict[str, ConfusionMatrix | ErrorStats] = field(default_factory=dict)

    def report(self) -> str:
        """The log of the pass: one block per output, OTB's layout for confusion matrices."""
        blocks = [f'Epoch {self.epoch}, {self.dataset} data, output "{key}":\n{metric.report()}'
                  for key, metric in self.metrics.items()]
        return "\n\n".join(blocks)


def validate(data: PatchesData, compared: Sequence[tuple[int, str]], predict: Predict, batch_size: int,
             mode: str, epoch: int, dataset: str, params: Sequence[str] | None = None) -> ValidationReport:
    """Run ``predict`` over ``data`` in order; compare output ``key`` with source ``i`` for each ``(i, key)``.

    ``params``: per source, the parameter group that names the compared output (``validation.source2``), for
    messages; the pass over the training data reads ``training.sourceN`` patches but the output is named by
    ``validation.sourceN.name`` (default: ``data``'s own source groups)."""
    measure = confusion_matrix if mode == "class" else rmse
    totals: dict[str, ConfusionMatrix | ErrorStats] = {}
    for _, batch in data.batches(batch_size):
        outputs = predict(batch)
        for i, key in compared:
            produced, reference = np.asarray(outputs[key]), batch[i]
            if produced.size != reference.size:
                param = params[i] if params is not None else data.sources[i].param
                raise ModelOutputError(
                    f'{param}.name: output "{key}" gives {produced.size} values for {len(reference)} patches '
                    f"but the reference patches hold {reference.size} ({len(reference)} x "
                    f"{' x '.join(str(d) for d in reference.shape[1:])}); compare an output with patches of its size")
            result = measure(reference, produced)
            totals[key] = totals[key] + result if key in totals else result
    return ValidationReport(epoch, dataset, totals)
