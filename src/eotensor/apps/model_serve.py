"""TensorflowModelServe: OTBTF's inference app, parameter for parameter.

The table below is the app; :class:`ServeConfig` reads the parsed values, :func:`build` binds the model lazily
(:func:`eotensor.api.serve`) and :func:`write` streams the output. ``eotensor.api`` is imported on first use, so
listing the apps or printing ``-help`` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eotensor.apps import options
from eotensor.apps.params import App, Choice, Group, Kind, OutputImage, Param, Values, run_python

if TYPE_CHECKING:
    from eotensor.api import ServedRaster

NOTES = f"""\
Geometry, in one picture (one axis, source1 at S = 1):

   source pixels  . . . . [=========== RF ===========] . . . .
   output pixels                 [==== EF ====]
                          <- RF//2 ->|  block  |

  * RF, the receptive field (sourceN.rfieldx/y), is what the model reads around one output block,
    in that source's own pixels. Each source has its own RF and its own resolution.
  * EF, the expression field (output.efieldx/y), is how many output pixels one block yields.
    Requests are enlarged to the EF grid (anchored at output pixel 0) and the surplus dropped, so
    tiles never change a result. In fully-convolutional mode one EF block reads RF pixels of source N
    (as OTBTF); a tile of T output pixels reads (T - EF)*S*s1/sN + RF (s1, sN: the spacings of
    source1 and source N). A patch-based net reads one RF-sized patch per output pixel (EF = 1).
  * S, the spacing scale (output.spcscale), sets the output spacing to |source1 spacing| x S:
    S = 2 for a net with total stride 2, S = 0.25 for 4x super-resolution.
  The output covers where every source's full RF fits, as in OTBTF: its first pixel centre sits on a
  source1 pixel centre, shifted by EF//2 output pixels.

No-data: with sourceN.nodata, every EF block (patch-based: every output pixel) whose input from
source N is entirely no-data gets output.bv; the decision is per block, so tiles never change it.

Tiling: without optim.tilesizex/y the tile size comes from a memory budget (OTB_MAX_RAM_HINT MB,
default 256): full-width strips for pixel-wise models, squares otherwise, multiples of the output's
blocks; optim.disabletiling on always streams in strips. Output format from the extension: .tif/.tiff
(streamed GeoTIFF), .png, .jpg (copied from a GeoTIFF); pixel types uint8 int16 uint16 int32 uint32
float double (and numpy names); extended filename keys ?&box=x0:y0:w:h, &gdal:co:KEY=VALUE, &nodata=V.
Inputs accept ?&bands=1,3:4 (OTB's band selection).
{options.NSOURCES_NOTE}"""

PARAMS = (
    options.sources(
        Param("rfieldx", Kind.INT, "Receptive field (x) of source N, in its own pixels.", 1,
              aliases=("patchsize_x",), minimum=1),
        Param("rfieldy", Kind.INT, "Receptive field (y) of source N, in its own pixels.", 1,
              aliases=("rfielddy", "patchsize_y"), minimum=1),
        Param("placeholder", Kind.STRING,
              "Model input fed by source N. When empty: runtimes whose inputs have a declared order (Python "
              "functions, PyTorch, ONNX) bind source N to the N-th input not named elsewhere; unordered signatures "
              "(TF SavedModels, Keras) keep OTBTF's alphabetical rule. sourceN.placeholder always wins.", ""),
        options.nodata("No-data value of source N: an EF block (patch-based: an output pixel) whose input from "
                       "source N is all no-data is not computed and gets output.bv."),
        help="Source N: an image list stacked on bands, and how much of it the model reads.",
    ),
    Group("model", "The model and how to call it.", (
        Param("dir", Kind.FILE,
              "The model: a TensorFlow SavedModel directory, a Keras 3 .keras file, an ONNX graph (.onnx), a PyTorch "
              "program (.pt2 from torch.export, .pt TorchScript), or a Python file defining model(x1, x2, ...), one "
              "named parameter per input (file.py[::function]).", mandatory=True),
        Param("userplaceholders", Kind.STRING_LIST,
              'Constant model inputs: name=value, e.g. "a=(1.0, 2.0, 2.0, 1.0)" "k=3" "training=false".'),
        Param("fullyconv", Kind.BOOL, "Fully-convolutional mode (on) or patch-based mode (off).", False),
        Param("autofields", Kind.BOOL,
              "Probe the model (as ModelInfo does) for source1's receptive field, the expression field and the "
              "spacing scale, where they are not given; fully-convolutional mode.", False),
        Param("jit", Kind.BOOL,
              "Compile the TensorFlow graph with XLA (faster pixel-wise math; one compilation per tile shape).", False),
        Param("tagsets", Kind.STRING_LIST, "SavedModel tag set (default: serve)."),
        Param("runtime", Kind.STRING,
              "Runtime to load the model with (python, tensorflow, keras, onnx, torch, or a plug-in's); default: the "
              "first that opens model.dir."),
        Param("device", Kind.STRING, "Where the model runs: cpu, cuda, cuda:N, or auto (a GPU when the runtime has "
              "one, else the CPU).", "cpu"),
        Param("layout", Kind.CHOICE, "How the model lays out its tensors.", "auto", choices=(
            Choice("auto", "TensorFlow, Keras and Python: NHWC; ONNX and PyTorch: from the input's declared channels"),
            Choice("nhwc", "batch, rows, columns, channels"),
            Choice("nchw", "batch, channels, rows, columns (fed transposed, results transposed back)"),
        )),
    )),
    Group("output", "What the model yields and where it lands.", (
        Param("names", Kind.STRING_LIST,
              "Model outputs, stacked on bands in this order; default: the first output in alphabetical order."),
        Param("efieldx", Kind.INT, "Expression field (x): output pixels per block.", 1, minimum=1),
        Param("efieldy", Kind.INT, "Expression field (y): output pixels per block.", 1, aliases=("efielddy",),
              minimum=1),
        Param("spcscale", Kind.FLOAT, "Output spacing = |source1 spacing| x this scale.", 1.0),
        Param("bv", Kind.FLOAT, "Background value written where a block was skipped as no-data.", 0.0, finite=False),
    )),
    Group("optim", "Tiling, threads and memory: they change the speed, never the result.", (
        Param("disabletiling", Kind.BOOL, "Stream in full-width strips sized from the memory budget.", False),
        Param("tilesizex", Kind.INT, "Tile width in output pixels (rounded up to EF); default: from memory.",
              aliases=("tilesex",), minimum=1),
        Param("tilesizey", Kind.INT, "Tile height in output pixels (rounded up to EF); default: from memory.",
              aliases=("tilesey",), minimum=1),
        Param("scheduler", Kind.STRING,
              "How tiles are computed: threads (a pool of optim.threads workers), sync (one at a time, the "
              "reference), processes:N (a Dask LocalCluster of N worker processes for this run), tcp://HOST:PORT "
              "(a running Dask scheduler), dask (the scheduler DASK_SCHEDULER_ADDRESS names); the Dask ones need "
              "the dask extra, a model path and file sources.", "threads"),
        options.resume(),
        options.threads(),
        Param("batchsize", Kind.INT,
              "Patches per model call in patch-based mode (the last batch is padded with a real patch); a model "
              "that fixes its batch dimension sets its own.", 256, minimum=1),
        Param("modelthreads", Kind.INT,
              "Threads of the model runtime's own pool (TensorFlow intra-op); default: the runtime's choice.",
              minimum=1),
        options.ram(),
    )),
    Param("out", Kind.OUTPUT_IMAGE,
          "Output raster (.tif, .png, .jpg), optional extended filename, then an optional pixel type.",
          mandatory=True),
)


@dataclass(frozen=True)
class SourceConfig:
    """One ``sourceN`` group."""

    images: list[str]
    rfield: tuple[int, int]
    placeholder: str
    nodata: float | None


@dataclass(frozen=True)
class ServeConfig:
    """TensorflowModelServe's parameters as typed fields, read once from the parsed values."""

    sources: tuple[SourceConfig, ...]
    model: Any
    """A SavedModel directory or .py file, or (from Python) a loaded Model."""
    user_placeholders: list[str]
    fullyconv: bool
    autofields: bool
    given: frozenset[str]
    """The keys given (not defaulted): autofields fills only the others."""
    jit: bool
    tags: list[str]
    runtime: str | None
    device: str
    layout: str
    output_names: list[str]
    efield: tuple[int, int]
    spcscale: float
    background: float
    tile_size: tuple[int, int] | None
    strips: bool
    scheduler: str
    workers: int | None
    batch_size: int
    model_threads: int | None
    ram_mb: float | None
    out: OutputImage | None

    @classmethod
    def from_values(cls, v: Values) -> ServeConfig:
        """Read ``v`` (from :func:`~eotensor.apps.params.parse_cli` or ``parse_python``)."""
        sources = tuple(
            SourceConfig(v[f"source{n}.il"], (v[f"source{n}.rfieldx"], v[f"source{n}.rfieldy"]),
                         v[f"source{n}.placeholder"] or "", v[f"source{n}.nodata"])
            for n in range(1, v.count("source") + 1)
        )
        strips = v["optim.disabletiling"]
        tile_x, tile_y = v["optim.tilesizex"], v["optim.tilesizey"]
        tile = (tile_x or tile_y, tile_y or tile_x) if not strips and (tile_x or tile_y) else None
        return cls(
            sources=sources, model=v["model.dir"], user_placeholders=v["model.userplaceholders"] or [],
            fullyconv=v["model.fullyconv"], autofields=v["model.autofields"],
            given=frozenset(key for key in v if v.is_set(key)), jit=v["model.jit"], tags=v["model.tagsets"] or [],
            runtime=v["model.runtime"] or None, device=v["model.device"], layout=v["model.layout"],
            output_names=v["output.names"] or [], efield=(v["output.efieldx"], v["output.efieldy"]),
            spcscale=v["output.spcscale"], background=v["output.bv"], tile_size=tile, strips=strips,
            scheduler=v["optim.scheduler"], workers=v["optim.threads"], batch_size=v["optim.batchsize"],
            model_threads=v["optim.modelthreads"],
            ram_mb=v["optim.ram"], out=v.get("out"),
        )


def build(values: Values) -> ServedRaster:
    """Bind the model to its sources: the lazy result, nothing computed or written yet."""
    from eotensor.api import serve, source
    from eotensor.io.extended import parse_output

    cfg = ServeConfig.from_values(values)
    if cfg.out is not None:
        parse_output(*cfg.out)  # a bad output name, format or pixel type fails before the model loads
    sources = [source(s.images, s.rfield, s.placeholder, s.nodata, index=n)
               for n, s in enumerate(cfg.sources, start=1)]
    model: Any = cfg.model
    load = dict(tags=cfg.tags, jit=cfg.jit, model_threads=cfg.model_threads, runtime=cfg.runtime, device=cfg.device)
    if cfg.autofields:
        model, cfg = _probe_fields(cfg, sources)
        load = {}  # loaded above with these options
    return serve(
        model, sources, efield=cfg.efield, spcscale=cfg.spcscale, fullyconv=cfg.fullyconv,
        output_names=cfg.output_names, user_placeholders=cfg.user_placeholders, background=cfg.background,
        tile_size=cfg.tile_size, ram_mb=cfg.ram_mb, strips=cfg.strips, workers=cfg.workers,
        batch_size=cfg.batch_size, scheduler=cfg.scheduler, layout=cfg.layout, **load,
    )


def _probe_fields(cfg: ServeConfig, sources: list[Any]) -> tuple[Any, ServeConfig]:
    """``-model.autofields on``: load the model, probe it, and fill source1's RF, EF and S where not given."""
    import dataclasses

    from eotensor.engine.probe import probe_model
    from eotensor.errors import ParameterError
    from eotensor.runtimes import load_model

    if "model.fullyconv" in cfg.given and not cfg.fullyconv:
        raise ParameterError("model.autofields: probes fully-convolutional models; remove -model.fullyconv off")
    model = load_model(cfg.model, runtime=cfg.runtime, tags=cfg.tags, jit=cfg.jit, threads=cfg.model_threads,
                       device=cfg.device)
    probe, why = probe_model(model, cfg.layout, sources[0].raster.count)
    if probe is None:
        raise ParameterError(f"model.autofields: cannot probe the model ({why}); give -source1.rfieldx/y, "
                             "-output.efieldx/y and -output.spcscale")
    given = cfg.given
    rfield = tuple(probe.rfield[k] if f"source1.rfield{axis}" not in given else cfg.sources[0].rfield[k]
                   for k, axis in enumerate("xy"))
    efield = tuple(probe.efield[k] if f"output.efield{axis}" not in given else cfg.efield[k]
                   for k, axis in enumerate("xy"))
    scale = cfg.spcscale if "output.spcscale" in given else float(probe.scale)
    sources[0] = dataclasses.replace(sources[0], rfield=rfield)
    print(f"note: model.autofields: source1 RF {rfield[0]}x{rfield[1]}, EF {efield[0]}x{efield[1]}, spacing scale "
          f"{scale:g} (probed: {probe.flags()})", file=sys.stderr)
    return model, dataclasses.replace(cfg, efield=efield, spcscale=scale, fullyconv=True)


def write(result: ServedRaster, values: Values, progress: bool = False) -> str:
    """Stream ``result`` to ``out``; with ``progress``, a progress bar and a one-line summary on stderr."""
    filename, pixel_type = values["out"]
    path = result.write(filename, pixel_type, progress=progress, resume=values["optim.resume"])
    if progress:
        from eotensor.io.extended import parse_output

        region = parse_output(filename, pixel_type).region(result.grid.width, result.grid.height)
        print(f"TensorflowModelServe: wrote {path} ({result.count} band(s), {region.width}x{region.height} pixels)",
              file=sys.stderr)
    return path


APP = App(
    name="TensorflowModelServe",
    description="Serve a model over one or many sources, streamed tile by tile (OTBTF's inference app).",
    params=PARAMS,
    build=build,
    write=write,
    notes=NOTES,
)


def TensorflowModelServe(options: dict[str, Any] | None = None, **kwargs: Any) -> ServedRaster:  # noqa: N802
    """Run TensorflowModelServe from Python with OTB keys: ``source1_il=[...]``, ``model_dir=...``, ``out=...``.

    Keywords are the OTB keys with every dot replaced by an underscore; ``options`` may hold the same
    parameters as an OTB-key dict (``{"source1.il": [...]}``). Values parse as on the command line
    (``model_fullyconv="off"``, ``source1_rfieldx="16"``), a single string or path stands for a one-item list,
    and ``out`` takes a filename, a path or (filename, pixel type). With ``out``, the output is written;
    without it, nothing is written. Either way the lazy :class:`~eotensor.api.ServedRaster` is returned.
    """
    return run_python(APP, options, **kwargs)
