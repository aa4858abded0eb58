"""What every trainer shares: the options of TensorflowModelTrain as typed fields, and the epoch bookkeeping.

A trainer is made from :class:`TrainOptions` (every check and every load happens then, before any epoch), then
:meth:`Trainer.train` runs the epochs, validating every ``validation_step`` epochs, and :meth:`Trainer.save`
writes what was asked for. Log lines go to ``log`` (the CLI prints them on stderr); validation reports are
kept in :attr:`Trainer.reports` either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from eotensor.errors import ParameterError
from eotensor.runtimes.base import TensorSpec
from eotensor.training.patches import PatchesData, PatchSource
from eotensor.training.validation import ValidationReport, validate

__all__ = ["TrainOptions", "Trainer", "check_fed_once"]


@dataclass(frozen=True)
class TrainOptions:
    """TensorflowModelTrain's parameters (behaviour reference §3.1), read once."""

    model: str
    training: tuple[PatchSource, ...]
    validation: tuple[PatchSource, ...] = ()
    """One per training source (empty ``il``: not given); ``name`` defaults to the training placeholder."""
    tags: tuple[str, ...] = ()
    restore_from: str | None = None
    save_to: str | None = None
    export: str | None = None
    batch_size: int = 100
    epochs: int = 100
    user_placeholders: tuple[str, ...] = ()
    target_nodes: tuple[str, ...] = ()
    output_tensors: tuple[str, ...] = ()
    streaming: bool = False
    validation_step: int = 10
    validation_mode: str = "none"
    validation_placeholders: tuple[str, ...] = ()
    validation_streaming: bool = False
    seed: int | None = None


def check_fed_once(names: Sequence[tuple[str, str]]) -> None:
    """``(parameter, tensor key)`` pairs: a key fed by two of them is an error naming both."""
    seen: dict[str, str] = {}
    for param, key in names:
        if key in seen:
            raise ParameterError(f'{param}: model input "{key}" is fed twice (also by {seen[key]}); feed each input '
                                 "once")
        seen[key] = param


class Trainer(ABC):
    """The epoch loop's frame: data, validation passes and logs; subclasses run the framework."""

    def __init__(self, options: TrainOptions, log: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.log = log or (lambda line: None)
        self.reports: list[ValidationReport] = []
        """Every validation pass, in order (training data, then validation data, every ``validation_step``)."""
        self.losses: list[dict[str, float]] = []
        """Per epoch, the mean of every output logged while training (``training.outputtensors``, Keras' loss)."""
        self.validating = options.validation_mode != "none"
        stray = [s for s in options.validation[len(options.training):] if s.images]
        if stray:
            raise ParameterError(f"{stray[0].param}.il: there are only {len(options.training)} training sources; "
                                 "validation source N matches training source N")
        if self.validating:
            missing = [s for s in options.validation if not s.images]
            if missing or len(options.validation) < len(options.training):
                which = missing[0].param if missing else f"validation.source{len(options.validation) + 1}"
                raise ParameterError(f"{which}.il: no validation patches for this source; validation.mode "
                                     f"{options.validation_mode} needs validation.sourceN.il for every training source")
        self.train_data = PatchesData(options.training, options.streaming)
        self.valid_data = PatchesData(options.validation, options.validation_streaming) if self.validating else None

    def check_bands(self, specs: Sequence[TensorSpec | None]) -> None:
        """Each training source's band count against the channels its tensor declares (``None``: not a tensor fed
        or compared, or no declared channels)."""
        for i, spec in enumerate(specs):
            channels = spec.shape[-1] if spec is not None and spec.shape else None
            bands = self.train_data.bands(i)
            if channels is not None and channels != bands:
                source = self.options.training[i]
                raise ParameterError(f"{source.param}.il: {bands} band(s) in {', '.join(source.images)} but tensor "
                                     f'"{spec.key}" has {channels} channels')

    def check_compared(self, outputs: Mapping[str, TensorSpec]) -> None:
        """Each compared output's declared channels (image outputs ``[B, h, w, C]`` only) against the band count
        of the validation source it is compared with: a mismatch would fail at the first validation."""
        for i, key in self.compared:
            shape = outputs[key].shape
            channels = shape[-1] if shape is not None and len(shape) == 4 else None
            bands = self.valid_data.bands(i) if self.valid_data is not None else None
            if channels is not None and bands is not None and channels != bands:
                source = self.options.validation[i]
                raise ParameterError(f'{source.param}.name: output "{key}" has {channels} channels but '
                                     f"{source.param}.il has {bands} band(s) ({', '.join(source.images)}); name an "
                                     "output with as many channels as the reference patches have bands")

    @abstractmethod
    def predict(self, batch: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The compared outputs of the model (inference mode) for one batch of every source."""

    @property
    @abstractmethod
    def compared(self) -> list[tuple[int, str]]:
        """``(source index, output key)``: which validation source each compared output is measured against."""

    @abstractmethod
    def train(self) -> None:
        """Run every epoch (calling :meth:`end_epoch` after each)."""

    @abstractmethod
    def save(self) -> list[str]:
        """Write ``save_to`` / ``export`` where asked; the paths written."""

    def end_epoch(self, epoch: int, means: dict[str, float]) -> None:
        """Log the epoch, then validate when ``epoch`` (1-based) is a multiple of ``validation_step``."""
        self.losses.append(means)
        values = ", ".join(f"{k} = {v:.6g}" for k, v in means.items())
        self.log(f"Epoch {epoch}/{self.options.epochs}" + (f": {values}" if values else ""))
        if not self.validating or epoch % self.options.validation_step:
            return
        for name, data in (("training", self.train_data), ("validation", self.valid_data)):
            report = validate(data, self.compared, self.predict, self.options.batch_size, self.options.validation_mode,
                              epoch, name, [source.param for source in self.options.validation])
            self.reports.append(report)
            self.log(report.report())

    def close(self) -> None:
        """Release the files (and the framework's session, in subclasses)."""
        self.train_data.close()
        if self.valid_data is not None:
            self.valid_data.close()
