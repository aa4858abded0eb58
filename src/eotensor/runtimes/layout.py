"""Tensor layouts: the engine speaks NHWC (OTBTF's); :class:`ChannelsFirst` serves an NCHW model to it.

TensorFlow, Keras and Python functions are NHWC. Most PyTorch and many ONNX models are NCHW: their
``layout`` attribute is None, and :func:`infer_layout` decides from where the declared channel dimension
matches the band count of the source bound to each input (``-model.layout`` overrides it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from eotensor.errors import ParameterError
from eotensor.runtimes.base import Model, StaticSignature, TensorSpec, ordered_inputs

LAYOUTS = ("nhwc", "nchw")


def model_layout(model: Model) -> str | None:
    """The layout a model declares (``layout`` attribute): ``nhwc`` when it has none, None when it must be
    inferred (ONNX, PyTorch)."""
    return getattr(model, "layout", "nhwc")


def infer_layout(bound: Sequence[tuple[TensorSpec, int, str]]) -> str:
    """NHWC or NCHW from ``bound`` (input spec, bands of its source, the source's parameter), or a one-line error.

    A rank-4 input whose declared channel dimension equals the band count at position 3 only says NHWC, at
    position 1 only NCHW; inputs that say nothing (unknown dims, or both match) are skipped, and two inputs
    that disagree, or none that tells, are an error asking for ``-model.layout``.
    """
    votes = set()
    for spec, bands, _ in bound:
        if spec.shape is None or len(spec.shape) != 4:
            continue
        last, first = spec.shape[3] == bands, spec.shape[1] == bands
        if last != first:
            votes.add("nhwc" if last else "nchw")
    if len(votes) == 1:
        return next(iter(votes))
    if not votes:
        for spec, bands, param in bound:
            if spec.shape is not None and len(spec.shape) == 4 and (spec.shape[1] is None) != (spec.shape[3] is None):
                position, declared = (1, spec.shape[1]) if spec.shape[1] is not None else (3, spec.shape[3])
                raise ParameterError(
                    f'{param}: {bands} band(s), but model input "{spec.key}" {_shape(spec)} declares {declared} '
                    f"channels ({'NCHW' if position == 1 else 'NHWC'}); give a source with {declared} bands")
    described = "; ".join(f'input "{s.key}" {_shape(s)} gets {b} band(s) from {p}' for s, b, p in bound)
    why = "its inputs disagree" if votes else "no input's declared channels tell"
    raise ParameterError(f"model.layout: cannot tell whether the model is NHWC or NCHW ({why}: {described}); "
                         "give -model.layout nhwc or nchw")


def _shape(spec: TensorSpec) -> str:
    dims = "?" if spec.shape is None else ", ".join("?" if d is None else str(d) for d in spec.shape)
    return f"[{dims}]"


def _nhwc(spec: TensorSpec) -> TensorSpec:
    if spec.shape is None or len(spec.shape) != 4:
        return spec
    n, c, h, w = spec.shape
    return TensorSpec(spec.key, spec.dtype, (n, h, w, c))


class ChannelsFirst(StaticSignature):
    """An NCHW model seen as NHWC: the image feeds (``keys``: the inputs sources feed; default all rank-4 ones)
    are transposed to NCHW, rank-4 results back to NHWC. Other feeds (user placeholders) pass as given, in
    the model's own layout.

    Signature shapes are permuted the same way, so the engine's channel checks and band counts hold.
    """

    layout = "nhwc"

    def __init__(self, model: Model, keys: Sequence[str] | None = None) -> None:
        self.model = model
        self.keys = frozenset(keys if keys is not None else [k for k, s in model.inputs.items()
                                                             if s.shape is None or len(s.shape) == 4])
        """The inputs fed NHWC images, transposed to NCHW."""
        super().__init__((_nhwc(spec) if key in self.keys else spec for key, spec in model.inputs.items()),
                         (_nhwc(spec) for spec in model.outputs.values()), ordered=True)  # keeps the model's order
        self.ordered_inputs = ordered_inputs(model)
        token = getattr(model, "token", None)
        self.token = None if token is None else f"{token}:nchw"
        nhwc = {0: 0, 1: 3, 2: 1, 3: 2}  # NCHW dimension -> NHWC dimension
        self.limits = {key: {nhwc.get(d, d): bounds for d, bounds in dims.items()}
                       for key, dims in getattr(model, "limits", {}).items()}
        """The model's size limits (PyTorch range constraints), dimensions renumbered as NHWC."""
        self.steps = {key: {nhwc.get(d, d): step for d, step in dims.items()}
                      for key, dims in getattr(model, "steps", {}).items()}
        """Dimensions that must be multiples of a step, renumbered as NHWC."""

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the NCHW model on NHWC feeds; NHWC results."""
        moved = {k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if k in self.keys and v.ndim == 4 else v
                 for k, v in feeds.items()}
        results = self.model.run(moved, fetches)
        return [np.ascontiguousarray(np.asarray(r).transpose(0, 2, 3, 1)) if np.ndim(r) == 4 else r
                for r in results]


def as_layout(model: Model, layout: str | None, param: str = "model.layout") -> str | None:
    """``layout`` checked (None, "" or ``auto``: the model's own, None when it must be inferred)."""
    text = str(layout or "auto").strip().lower()
    if text == "auto":
        return model_layout(model)
    if text not in LAYOUTS:
        raise ParameterError(f'{param}: "{layout}" is not a layout; expected auto, nhwc or nchw')
    return text


def layout_from_shape(spec: TensorSpec) -> str | None:
    """NHWC or NCHW from one rank-4 input's declared shape alone (channels known at one position only), else
    None: for reports made without any source (ModelInfo)."""
    if spec.shape is None or len(spec.shape) != 4 or (spec.shape[1] is None) == (spec.shape[3] is None):
        return None
    return "nchw" if spec.shape[1] is not None else "nhwc"
