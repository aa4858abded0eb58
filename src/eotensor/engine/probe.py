"""Probe a fully-convolutional model's receptive field, expression field and spacing scale from its sizes.

A model with free spatial dimensions is called on blank inputs of growing sizes (rows and columns apart,
so the two axes are told apart); :func:`~eotensor.geometry.fields.solve_axis_fields` finds the RF, EF and S
that OTBTF's block arithmetic needs to predict every output size. Nothing like it exists in OTBTF: users
had to work these numbers out from the architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from eotensor.errors import EotensorError, ModelError
from eotensor.geometry.fields import solve_axis_fields
from eotensor.runtimes.base import Model, TensorSpec
from eotensor.runtimes.layout import ChannelsFirst, as_layout, infer_layout, layout_from_shape

PROBE_BASE = 32
"""Smallest probe size (or the model's declared minimum when larger)."""
PROBE_SPAN = 160
"""How much larger the farthest probe is: far enough that rounding down cannot move the scale."""


@dataclass(frozen=True)
class FieldProbe:
    """What a probe found: RF (x, y), EF (x, y) and the spacing scale."""

    rfield: tuple[int, int]
    efield: tuple[int, int]
    scale: Fraction

    def flags(self, source: int = 1) -> str:
        """The TensorflowModelServe flags that say the same."""
        scale = float(self.scale)
        return (f"-source{source}.rfieldx {self.rfield[0]} -source{source}.rfieldy {self.rfield[1]} "
                f"-output.efieldx {self.efield[0]} -output.efieldy {self.efield[1]} -output.spcscale {scale:g} "
                "-model.fullyconv on")


def _image_input(model: Model) -> tuple[TensorSpec | None, str]:
    images = [s for s in model.inputs.values() if s.shape is None or len(s.shape) == 4]
    if len(images) != 1:
        return None, f"the probe needs exactly one image input (rank 4), the model has {len(images)}"
    spec = images[0]
    if spec.shape is not None and (spec.shape[1] is not None or spec.shape[2] is not None):
        return None, (f'input "{spec.key}" has fixed rows x columns {spec.shape[1]} x {spec.shape[2]}: a '
                      "patch-based model with that receptive field (-model.fullyconv off)")
    return spec, ""


def probe_fields(model: Model, channels: int | None = None, sizes: tuple[int, int] = (PROBE_BASE, PROBE_BASE),
                 steps: tuple[int, int] = (1, 1)) -> tuple[FieldProbe | None, str]:
    """(probe, why): the fields of an NHWC ``model`` (wrap NCHW ones in ``ChannelsFirst``), or None and why not.

    ``channels`` feeds models that do not declare theirs; ``sizes`` are the smallest rows and columns to try
    and ``steps`` what they must be multiples of (a PyTorch program's constraints). Other inputs (user
    placeholders) must not be required.
    """
    spec, why = _image_input(model)
    if spec is None:
        return None, why
    first_error = ""
    for power in PROBE_POWERS:  # a strided net (U-Net, FCN) may only take multiples of 2**levels
        multiple = (math.lcm(steps[0], power), math.lcm(steps[1], power))
        probe, why, failed_at_once = _probe(model, spec, channels, sizes, multiple)
        if not failed_at_once:
            return probe, why
        first_error = first_error or why
    return None, first_error


PROBE_POWERS = (1, 2, 4, 8, 16, 32, 64)
"""Multiples the probe sizes try in turn when a model refuses the first size (strided networks)."""
PROBE_LARGEST = 1100
"""Largest probe rows or columns once sizes are multiples of a step (memory: the probe runs the whole model)."""


def _probe(model: Model, spec: TensorSpec, channels: int | None, sizes: tuple[int, int],
           steps: tuple[int, int]) -> tuple[FieldProbe | None, str, bool]:
    """One probe with sizes multiple of ``steps``: (probe, why not, whether the very first call failed)."""
    declared = spec.shape[3] if spec.shape is not None else None
    bands = declared or channels or 1
    output = sorted(model.outputs)[0]
    step_r, step_c = steps
    base_rows = _multiple(max(PROBE_BASE, sizes[0]), step_r)
    base_cols = _multiple(max(PROBE_BASE, sizes[1]) + 3, step_c)  # rows and columns apart: the axes told apart
    span = max(16, min(PROBE_SPAN, (PROBE_LARGEST - base_cols) // step_c))
    rows, cols = [], []
    for k in [*range(16), span]:
        shape = (1, base_rows + k * step_r, base_cols + k * step_c, bands)
        try:
            result = np.asarray(model.run({spec.key: np.zeros(shape, spec.dtype)}, [output])[0])
        except ModelError as error:
            return None, f"the model failed on a {shape[1]} x {shape[2]} input ({error})", not rows
        if result.ndim not in (3, 4) or result.shape[0] != 1:
            return None, (f'output "{output}" has shape {result.shape} for a {shape[1]} x {shape[2]} input: not an '
                          "image; a patch-based model (-model.fullyconv off)"), False
        rows.append((shape[1], result.shape[1]))
        cols.append((shape[2], result.shape[2]))
    fx, fy = solve_axis_fields(cols), solve_axis_fields(rows)
    if fx is None or fy is None or fx.scale != fy.scale:
        return None, (f'output "{output}" sizes follow no receptive-field rule (rows {rows[0]}, {rows[-1]}; '
                      f"columns {cols[0]}, {cols[-1]})"), False
    fields = []
    for f, step in ((fx, step_c), (fy, step_r)):
        # inputs must be multiples of ``step``: so must every block's input, EF x S (RF grows along)
        block_step = Fraction(step) / f.scale  # output pixels per ``step`` input pixels
        ef = f.efield if block_step.denominator != 1 else math.lcm(f.efield, int(block_step))
        fields.append((int(f.rfield + (ef - f.efield) * f.scale), ef))
    probe = FieldProbe((fields[0][0], fields[1][0]), (fields[0][1], fields[1][1]), fx.scale)
    if not _shift_invariant(model, spec, output, probe, (base_rows, base_cols, bands), steps):
        return None, (f'output "{output}" near an input\'s edges depends on where the input ends (the model pads '
                      "its borders, e.g. 'same' convolutions), so no RF makes tiles seamless; serve it with an RF "
                      "larger than EF whose margin it crops (a _cropN output), or pass the fields by hand"), False
    return probe, "", False


def _multiple(size: int, step: int) -> int:
    return -(-size // step) * step


def _shift_invariant(model: Model, spec: TensorSpec, output: str, probe: FieldProbe,
                     shape: tuple[int, int, int], steps: tuple[int, int] = (1, 1)) -> bool:
    """Whether the model's output for an input cut by whole EF blocks (``EF x S`` input pixels, or the least
    multiple of that and of the model's step) at the top-left equals its output for the whole input from the
    same block on: what seamless tiles need. A padded ("same") convolution fails it, whatever its sizes say."""
    rng = np.random.default_rng(0)
    rows, cols, bands = shape
    if spec.dtype.kind in "iub":
        pixels = rng.integers(0, 2 if spec.dtype.kind == "b" else 100, size=(1, rows, cols, bands))
    else:
        pixels = rng.normal(size=(1, rows, cols, bands))
    pixels = pixels.astype(spec.dtype)
    dy, dx = (math.lcm(int(probe.efield[k] * probe.scale), step) for k, step in ((1, steps[0]), (0, steps[1])))
    try:
        whole = np.asarray(model.run({spec.key: pixels}, [output])[0], dtype=np.float64)
        shifted = np.asarray(model.run({spec.key: np.ascontiguousarray(pixels[:, dy:, dx:])}, [output])[0],
                             dtype=np.float64)
    except ModelError:
        return False
    ey, ex = int(dy / probe.scale), int(dx / probe.scale)  # the output rows and columns the cut drops
    h, w = shifted.shape[1], shifted.shape[2]
    expected = whole[:, ey:ey + h, ex:ex + w]
    if expected.shape[1:3] != (h, w):
        return False
    scale = max(1.0, float(np.abs(whole).max()))
    return bool(np.allclose(shifted, expected, rtol=1e-4, atol=1e-4 * scale))


def model_layout_for(model: Model, layout: str | None, bands: int | None = None) -> str | None:
    """The layout of ``model``: ``layout`` if given, the runtime's own, else inferred from the declared channels
    (against ``bands`` when known, else from the shape alone); None when nothing tells."""
    chosen = as_layout(model, layout)
    if chosen is not None:
        return chosen
    if bands is not None:
        try:
            return infer_layout([(spec, bands, "source1.il") for spec in model.inputs.values()])
        except EotensorError:
            return None
    guesses = {layout_from_shape(s) for s in model.inputs.values()} - {None}
    return guesses.pop() if len(guesses) == 1 else None


def probe_model(model: Model, layout: str | None = None, bands: int | None = None) -> tuple[FieldProbe | None, str]:
    """(probe, why not) for a loaded model in any layout (see :func:`model_layout_for`); ``bands`` feeds a model
    that does not declare its channels. A PyTorch program's range constraints set the smallest probe sizes."""
    fixed = [s for s in model.inputs.values() if s.shape is not None and len(s.shape) == 4 and None not in s.shape[1:]]
    if fixed:
        return None, (f'input "{fixed[0].key}" has a fixed shape {list(fixed[0].shape)[1:]}: a patch-based model '
                      "whose patch is its receptive field (-model.fullyconv off)")
    layout = model_layout_for(model, layout, bands)
    if layout is None:
        return None, "the layout is unknown; give -model.layout"
    limits, multiples = getattr(model, "limits", {}), getattr(model, "steps", {})
    dims = (2, 3) if layout == "nchw" else (1, 2)
    lowest = tuple(max((d[k][0] for d in limits.values() if k in d), default=0) for k in dims)
    steps = tuple(math.lcm(1, *(d[k] for d in multiples.values() if k in d)) for k in dims)
    return probe_fields(ChannelsFirst(model) if layout == "nchw" else model, bands, lowest, steps)
