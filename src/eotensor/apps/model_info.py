"""ModelInfo: what a model takes and gives, which runtime serves it, and the fields to serve it with.

Prints the runtime, the layout, every input and output (dtype and shape), and for a fully-convolutional
model with free rows and columns a probe of its receptive field, expression field and spacing scale
(:mod:`eotensor.engine.probe`) as the TensorflowModelServe flags to pass. Nothing like it exists in OTBTF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eotensor.apps.params import App, Choice, Group, Kind, Param, Values, run_python

PARAMS = (
    Group("model", "The model to describe.", (
        Param("dir", Kind.FILE, "The model: a SavedModel directory, .keras, .onnx, .pt2/.pt or file.py[::function].",
              mandatory=True),
        Param("runtime", Kind.STRING, "Runtime to load it with; default: the first that opens model.dir."),
        Param("tagsets", Kind.STRING_LIST, "SavedModel tag set (default: serve)."),
        Param("device", Kind.STRING, "Where the probe runs: cpu, cuda, cuda:N or auto.", "cpu"),
        Param("layout", Kind.CHOICE, "How the model lays out its tensors.", "auto", choices=(
            Choice("auto", "TensorFlow, Keras, Python: NHWC; ONNX, PyTorch: from where the input declares channels"),
            Choice("nhwc", "batch, rows, columns, channels"),
            Choice("nchw", "batch, channels, rows, columns"),
        )),
        Param("channels", Kind.INT, "Bands to probe with when the model does not declare its channels.", minimum=1),
        Param("probe", Kind.BOOL, "Probe RF, EF and spacing scale by calling the model on blank inputs.", True),
    )),
)


@dataclass(frozen=True)
class ModelReport:
    """What ModelInfo found; ``str()`` is the text it prints."""

    path: str
    runtime: str
    layout: str | None
    inputs: list[Any]
    outputs: list[Any]
    ordered: bool
    probe: Any
    """A :class:`~eotensor.engine.probe.FieldProbe`, or None."""
    why: str
    """Why there is no probe."""

    def __str__(self) -> str:
        def shape(spec: Any) -> str:
            return "[?]" if spec.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in spec.shape) \
                + "]"

        rule = "declared order" if self.ordered else "alphabetical order (OTBTF's rule)"
        lines = [f"Model: {self.path}", f"Runtime: {self.runtime}",
                 f"Layout: {self.layout.upper() if self.layout else 'unknown (give -model.layout)'}",
                 f"Inputs (sources bind in {rule}):"]
        lines += [f"  {s.key:<20} {s.dtype.name:<8} {shape(s)}" for s in self.inputs]
        lines += ["Outputs:"] + [f"  {s.key:<20} {s.dtype.name:<8} {shape(s)}" for s in self.outputs]
        if self.probe is not None:
            p = self.probe
            lines += [f"Fields (probed): RF {p.rfield[0]} x {p.rfield[1]}, EF {p.efield[0]} x {p.efield[1]}, "
                      f"spacing scale {float(p.scale):g}", f"  TensorflowModelServe ... {p.flags()}"]
        elif self.why:
            lines.append(f"Fields: not probed: {self.why}")
        return "\n".join(lines)


def build(values: Values) -> ModelReport:
    """Load the model and describe it (probing its fields unless ``model.probe off``)."""
    from eotensor.engine.probe import model_layout_for, probe_model
    from eotensor.runtimes.base import ordered_inputs
    from eotensor.runtimes.registry import find_runtime, load_model

    path = values["model.dir"]
    runtime = find_runtime(str(path), values["model.runtime"] or None)
    model = load_model(path, runtime=runtime.name, tags=values["model.tagsets"] or (), device=values["model.device"])
    layout = model_layout_for(model, values["model.layout"])
    probe, why = probe_model(model, layout, values["model.channels"]) if values["model.probe"] else (None, "")
    return ModelReport(str(path), runtime.name, layout, list(model.inputs.values()), list(model.outputs.values()),
                       ordered_inputs(model), probe, why)


def write(result: ModelReport, values: Values, progress: bool = False) -> None:
    """Print the report on stdout."""
    print(result)


APP = App(
    name="ModelInfo",
    description="Describe a model: runtime, layout, inputs and outputs, and its probed RF, EF and spacing scale.",
    params=PARAMS,
    build=build,
    write=write,
)


def ModelInfo(options: dict[str, Any] | None = None, **kwargs: Any) -> ModelReport:  # noqa: N802
    """Describe a model from Python: ``ModelInfo(model_dir="net.onnx")`` returns the :class:`ModelReport`."""
    return run_python(APP, options, **kwargs)
