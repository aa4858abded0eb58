"""TensorflowModelServe: OTBTF's inference app, parameter for parameter."""

from __future__ import annotations

import sys
from typing import Any

from eotensor.api import ServedRaster, serve, source
from eotensor.apps.params import App, Kind, Param, parse_bool, parse_python
from eotensor.io.extended import parse_output

NOTES = """\
Geometry, in one picture (one axis, source1 at S = 1):

   source pixels  . . . . [=========== RF ===========] . . . .
   output pixels                 [==== EF ====]
                          <- RF//2 ->|  block  |

  * RF, the receptive field (sourceN.rfieldx/y), is what the model reads around one output block,
    in that source's own pixels. Each source has its own RF and its own resolution.
  * EF, the expression field (output.efieldx/y), is how many output pixels one block yields.
    Requests are enlarged to the EF grid (anchored at output pixel 0) and the surplus dropped, so
    tiles never change a result. A fully-convolutional net reads RF + (EF-1)*S*s1/sN pixels of
    source N per block; a patch-based net reads one RF-sized patch per output pixel (EF = 1).
  * S, the spacing scale (output.spcscale), sets the output spacing to |source1 spacing| x S:
    S = 2 for a net with total stride 2, S = 0.25 for 4x super-resolution.
  The output covers where every source's full RF fits, as in OTBTF: its first pixel centre sits on a
  source1 pixel centre, shifted by EF//2 output pixels.

Tiling: without optim.tilesizex/y the tile size comes from a memory budget (OTB_MAX_RAM_HINT MB,
default 256): full-width strips for pixel-wise models, squares otherwise; optim.disabletiling on
always streams in strips. Output: GeoTIFF, pixel types uint8 int16 uint16 int32 uint32 float double
(and numpy names); extended filename keys ?&box=x0:y0:w:h, &gdal:co:KEY=VALUE, &nodata=V.
Environment: OTB_TF_NSOURCES (number of sources, when higher than the keys given)."""

PARAMS = (
    Param("source{n}.il", Kind.FILE_LIST, "Input images of source N, stacked on bands (same size required).",
          mandatory=True),
    Param("source{n}.rfieldx", Kind.INT, "Receptive field (x) of source N, in its own pixels.", 1,
          aliases=("source{n}.patchsize_x",), minimum=1),
    Param("source{n}.rfieldy", Kind.INT, "Receptive field (y) of source N, in its own pixels.", 1,
          aliases=("source{n}.rfielddy", "source{n}.patchsize_y"), minimum=1),
    Param("source{n}.placeholder", Kind.STRING,
          "Model input name for source N; empty: the N-th input in alphabetical order.", ""),
    Param("source{n}.nodata", Kind.FLOAT,
          "No-data value of source N: a block where it is all no-data is not computed (gets output.bv)."),
    Param("model.dir", Kind.FILE,
          "TensorFlow SavedModel directory, or a Python file defining model(**inputs) (file.py[::function]).",
          mandatory=True),
    Param("model.userplaceholders", Kind.STRING_LIST,
          'Constant model inputs: name=value, e.g. "a=(1.0, 2.0, 2.0, 1.0)" "k=3" "training=false".'),
    Param("model.fullyconv", Kind.BOOL, "Fully-convolutional mode (on) or patch-based mode (off).", False),
    Param("model.jit", Kind.BOOL,
          "Compile the TensorFlow graph with XLA (faster pixel-wise math; one compilation per tile shape).", False),
    Param("model.tagsets", Kind.STRING_LIST, "SavedModel tag set (default: serve)."),
    Param("output.names", Kind.STRING_LIST,
          "Model outputs, stacked on bands in this order; default: the first output in alphabetical order."),
    Param("output.efieldx", Kind.INT, "Expression field (x): output pixels per block.", 1, minimum=1),
    Param("output.efieldy", Kind.INT, "Expression field (y): output pixels per block.", 1,
          aliases=("output.efielddy",), minimum=1),
    Param("output.spcscale", Kind.FLOAT, "Output spacing = |source1 spacing| x this scale.", 1.0),
    Param("output.bv", Kind.FLOAT, "Background value written where a block was skipped as no-data.", 0.0),
    Param("optim.disabletiling", Kind.BOOL, "Stream in full-width strips sized from the memory budget.", False),
    Param("optim.tilesizex", Kind.INT, "Tile width in output pixels (rounded up to EF); default: from memory.",
          aliases=("optim.tilesex",), minimum=1),
    Param("optim.tilesizey", Kind.INT, "Tile height in output pixels (rounded up to EF); default: from memory.",
          aliases=("optim.tilesey",), minimum=1),
    Param("optim.threads", Kind.INT,
          "Worker threads computing tiles while one writes (default: one per core, at most 4; 0: sequential).",
          minimum=0),
    Param("optim.modelthreads", Kind.INT,
          "Threads of the model runtime's own pool (TensorFlow intra-op); default: the runtime's choice.",
          minimum=1),
    Param("optim.ram", Kind.FLOAT, "Memory budget in MB for tile buffers (default: OTB_MAX_RAM_HINT or 256).",
          minimum=1),
    Param("out", Kind.OUTPUT_IMAGE, "Output GeoTIFF, optional extended filename, then an optional pixel type.",
          mandatory=True),
)


def run(params: dict[str, Any], progress: bool = False) -> ServedRaster:
    """Serve the model as ``params`` say and write ``out``; return the lazy result."""
    n_sources = params["_n_sources"]
    sources = []
    for n in range(1, n_sources + 1):
        rf = (params[f"source{n}.rfieldx"], params[f"source{n}.rfieldy"])
        sources.append(source(params[f"source{n}.il"], rf, params[f"source{n}.placeholder"] or "",
                              params[f"source{n}.nodata"], index=n))
    if params["optim.modelthreads"]:
        from eotensor.runtimes.tensorflow import set_threads

        set_threads(intra_op=params["optim.modelthreads"])
    tiling_off = parse_bool(params["optim.disabletiling"], "optim.disabletiling")
    tile_x, tile_y = params["optim.tilesizex"], params["optim.tilesizey"]
    tile = None
    if not tiling_off and (tile_x or tile_y):
        tile = (tile_x or tile_y, tile_y or tile_x)
    result = serve(
        params["model.dir"], sources,
        efield=(params["output.efieldx"], params["output.efieldy"]),
        spcscale=params["output.spcscale"],
        fullyconv=parse_bool(params["model.fullyconv"], "model.fullyconv"),
        output_names=params["output.names"] or (),
        user_placeholders=params["model.userplaceholders"] or [],
        background=params["output.bv"],
        tags=params["model.tagsets"] or (),
        jit=parse_bool(params["model.jit"], "model.jit"),
        tile_size=tile, ram_mb=params["optim.ram"], strips=tiling_off,
        workers=params["optim.threads"],
    )
    filename, pixel_type = params["out"]
    path = result.write(filename, pixel_type, progress=progress)
    if progress:
        box = parse_output(filename).box
        width, height = (box[2], box[3]) if box else (result.grid.width, result.grid.height)
        print(f"TensorflowModelServe: wrote {path} ({result.count} band(s), {width}x{height} pixels)", file=sys.stderr)
    return result


APP = App(
    name="TensorflowModelServe",
    description="Serve a model over one or many sources, streamed tile by tile (OTBTF's inference app).",
    params=PARAMS,
    run=run,
    notes=NOTES,
)


def TensorflowModelServe(options: dict[str, Any] | None = None, **kwargs: Any) -> ServedRaster:  # noqa: N802
    """Run TensorflowModelServe from Python with OTB keys: ``source1_il=[...]``, ``model_dir=...``, ``out=...``.

    ``options`` may hold the same parameters as an OTB-key dict (``{"source1.il": [...]}``); keywords
    replace dots by underscores. Writes ``out`` and returns the lazy :class:`~eotensor.api.ServedRaster`.
    """
    return run(parse_python(APP, options, **kwargs))
