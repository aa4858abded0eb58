"""ReadImageInfo: OTB's image description app (size, origin, spacing, bands, pixel type, projection, no-data).

It prints what ``otbcli_ReadImageInfo`` prints for the common keys and computes OTB's output parameters
(``sizex``, ``spacingx``, ``originx``, ``numberbands``, ``datatype``, ``projectionref``...), read through
``GetParameter*`` after ``Execute()`` in :mod:`eotensor.otbApplication` (sr4rs's ``sr.py`` reads ``datatype``
to choose its output encoding). As in OTB, the origin is the centre of the first pixel and the spacing is
signed (north-up images have a negative y spacing); ``datatype`` uses ITK's names (``unsigned_char``,
``short``, ``float``...). Values are kept in double precision (OTB rounds its float parameters to float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eotensor.apps.params import App, Group, Kind, Param, Values, run_python

DATATYPES = {
    "uint8": "unsigned_char", "int8": "char", "uint16": "unsigned_short", "int16": "short",
    "uint32": "unsigned_int", "int32": "int", "uint64": "unsigned_long", "int64": "long",
    "float32": "float", "float64": "double", "complex_int16": "complex_short", "complex_int32": "complex_int",
    "complex64": "complex_float", "complex128": "complex_double",
}
"""GDAL/NumPy pixel types (rasterio's names) -> the ITK component names OTB prints."""


def _computed(key: str, kind: Kind, help: str) -> Param:  # noqa: A002
    return Param(key, kind, help, computed=True)


PARAMS = (
    Param("in", Kind.INPUT_IMAGE, "Input image (OTB's ?&bands= selection accepted) or, from Python, a result.",
          mandatory=True),
    Param("imagemetadata", Kind.BOOL, "Also print the image's GDAL metadata, KEY=VALUE per line (OTB prints its own "
          "metadata dictionary).", False),
    _computed("indexx", Kind.INT, "Start index (x): always 0."),
    _computed("indexy", Kind.INT, "Start index (y): always 0."),
    _computed("sizex", Kind.INT, "Width in pixels."),
    _computed("sizey", Kind.INT, "Height in pixels."),
    _computed("spacingx", Kind.FLOAT, "Pixel size along x (signed)."),
    _computed("spacingy", Kind.FLOAT, "Pixel size along y (signed: negative for north-up images)."),
    _computed("originx", Kind.FLOAT, "x of the centre of the first pixel."),
    _computed("originy", Kind.FLOAT, "y of the centre of the first pixel."),
    _computed("numberbands", Kind.INT, "Number of bands."),
    _computed("datatype", Kind.STRING, "Pixel type, as ITK names it: unsigned_char, short, unsigned_short, int, "
                                       "unsigned_int, float, double, complex_float..."),
    _computed("id", Kind.STRING, "Image identifier (empty: sensor metadata are not read)."),
    _computed("time", Kind.STRING, "Acquisition time (empty: sensor metadata are not read)."),
    _computed("town", Kind.STRING, "Nearest town (empty, as OTB without a geoid)."),
    _computed("country", Kind.STRING, "Country (empty, as OTB without a geoid)."),
    Group("rgb", "Default RGB display (0-based band indices, as OTB).", (
        Param("r", Kind.INT, "Red band.", 0, minimum=0),
        Param("g", Kind.INT, "Green band.", 1, minimum=0),
        Param("b", Kind.INT, "Blue band.", 2, minimum=0),
    )),
    _computed("projectionref", Kind.STRING, "The projection, as WKT (empty without a CRS)."),
    Group("gcp", "Ground control points.", (
        _computed("count", Kind.INT, "Number of GCPs."),
        _computed("proj", Kind.STRING, "Projection of the GCPs, as WKT."),
        _computed("ids", Kind.STRING_LIST, "GCP identifiers."),
        _computed("info", Kind.STRING_LIST, "GCP descriptions."),
        _computed("imcoord", Kind.STRING_LIST, "GCP image coordinates: \"[col, row]\"."),
        _computed("geocoord", Kind.STRING_LIST, "GCP ground coordinates: \"[x, y, z]\"."),
    )),
)

_EMPTY = ("id", "time", "town", "country")


@dataclass(frozen=True)
class ImageInfo:
    """What ReadImageInfo found; ``output_values`` holds the computed parameters, ``str()`` the text it prints."""

    output_values: dict[str, Any]
    nodata: list[float | None]
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        v = self.output_values
        if any(value is not None for value in self.nodata):
            flags = ["\tNo data flags :"] + [f"\t\tBand {k}: {'Not found' if value is None else f'{value:g}'}"
                                             for k, value in enumerate(self.nodata, start=1)]
        else:
            flags = ["\tNo data flags : Not found"]
        lines = ["Image general information:", f"\tNumber of bands : {v['numberbands']}",
                 f"\tData type : {v['datatype']}", *flags, "\tStart index :  [0,0]",
                 f"\tSize :  [{v['sizex']},{v['sizey']}]", f"\tOrigin :  [{v['originx']:g},{v['originy']:g}]",
                 f"\tSpacing :  [{v['spacingx']:g},{v['spacingy']:g}]", "", "Image acquisition information:",
                 "\tSensor : "]
        if v["projectionref"]:
            lines.append(f"\tImage projection : {v['projectionref']}")
        lines += ["", "Image default RGB composition:", f"\t[R, G, B] = [{v['rgb.r']},{v['rgb.g']},{v['rgb.b']}]",
                  "", "Ground control points information:", f"\tNumber of GCPs = {v['gcp.count']}",
                  f"\tGCPs projection = {v['gcp.proj']}"]
        for ident, info, image, ground in zip(v["gcp.ids"], v["gcp.info"], v["gcp.imcoord"], v["gcp.geocoord"]):
            lines += [f"\t\tID ={ident}", f"\t\tInfo ={info}", f"\t\tImage coordinates ={image}",
                      f"\t\tGround  coordinates ={ground}"]
        lines.append("")
        if self.metadata:
            lines += ["Image metadata (optional):", *(f"\t{key}={value}" for key, value in self.metadata.items()), ""]
        lines.append("Output parameters value:")
        lines += [f"{key}: {_text(value)}" for key, value in v.items()]
        return "\n".join(lines)


def _text(value: Any) -> str:
    """A value as OTB prints it: floats to 10 significant digits, lists space-separated."""
    if isinstance(value, float):
        return f"{value:.10g}"
    return " ".join(value) if isinstance(value, list) else str(value)


def build(values: Values) -> ImageInfo:
    """Open ``in`` (a file, or a lazy result from Python) and read its description."""
    from eotensor.lazy import LazyRaster

    image = values["in"]
    if isinstance(image, LazyRaster):  # a result connected in memory: float32 pixels, no no-data of its own
        grid, count = image.grid, image.count
        datatype, nodata, wkt, gcps, gcp_wkt, metadata = "float", [None] * count, _wkt(grid.crs), [], "", {}
    else:
        grid, count, datatype, nodata, wkt, (gcps, gcp_wkt), metadata = _read_file(str(image),
                                                                                   values["imagemetadata"])
    transform = grid.transform
    out: dict[str, Any] = {
        "indexx": 0, "indexy": 0, "sizex": grid.width, "sizey": grid.height,
        "spacingx": float(transform.a), "spacingy": float(transform.e),
        "originx": float(transform.c + transform.a / 2), "originy": float(transform.f + transform.e / 2),
        "numberbands": count, "datatype": datatype, **dict.fromkeys(_EMPTY, ""),
        "rgb.r": values["rgb.r"], "rgb.g": values["rgb.g"], "rgb.b": values["rgb.b"],
        "projectionref": wkt, "gcp.count": len(gcps), "gcp.proj": gcp_wkt,
        "gcp.ids": [p.id for p in gcps], "gcp.info": [p.info or "" for p in gcps],
        "gcp.imcoord": [f"[{p.col:g}, {p.row:g}]" for p in gcps],
        "gcp.geocoord": [f"[{p.x:g}, {p.y:g}, {p.z or 0:g}]" for p in gcps],
    }
    return ImageInfo(out, nodata, metadata)


def _read_file(spec: str, with_metadata: bool) -> tuple[Any, ...]:
    """(grid, bands, datatype, no-data per band, WKT, (GCPs, their WKT), metadata) of an image file."""
    from eotensor.geometry import Grid
    from eotensor.io.extended import parse_input, resolve_bands
    from eotensor.io.raster import open_raster

    parsed = parse_input(spec, "in")
    with open_raster(parsed.path, "in") as ds:
        bands = resolve_bands(parsed, ds.count, "in")
        grid = Grid.from_transform(ds.transform, ds.width, ds.height, ds.crs)
        datatype = DATATYPES.get(ds.dtypes[bands[0] - 1], ds.dtypes[bands[0] - 1])
        nodata = [ds.nodatavals[b - 1] for b in bands]
        wkt = _wkt(ds.crs)
        points, gcp_crs = ds.gcps
        gcps = (list(points), _wkt(gcp_crs) if points else "")
        metadata = dict(ds.tags()) if with_metadata else {}
    return grid, len(bands), datatype, nodata, wkt, gcps, metadata


def _wkt(crs: Any) -> str:
    """The CRS as GDAL's WKT 1 (what OTB prints), or "" without one."""
    return crs.to_wkt() if crs else ""


def write(result: ImageInfo, values: Values, progress: bool = False) -> None:
    """Print the description on stdout, as OTB logs it."""
    print(result)


APP = App(
    name="ReadImageInfo",
    description="Get information about the image: size, origin, spacing, bands, pixel type, projection (OTB's app).",
    params=PARAMS,
    build=build,
    write=write,
)


def ReadImageInfo(options: dict[str, Any] | None = None, **kwargs: Any) -> ImageInfo:  # noqa: N802
    """Describe an image from Python: ``ReadImageInfo(in_="a.tif").output_values["datatype"]``."""
    return run_python(APP, options, **kwargs)
