"""OTB statistics XML files: written byte for byte as OTB 8.1 writes them, and read back.

OTB's ``StatisticsXMLFileWriter`` writes two layouts (TinyXML, four-space indents):

* ``GeneralStatistics``: named maps, e.g. PolygonClassStatistics' ``samplesPerClass`` and ``samplesPerVector``
  (what ``SampleSelection -instats`` reads)::

      <?xml version="1.0" ?>
      <GeneralStatistics>
          <Statistic name="samplesPerClass">
              <StatisticMap key="1" value="42" />
          </Statistic>
      </GeneralStatistics>

  Maps come sorted by name and their entries sorted by key *as strings* (OTB keeps ``std::map<std::string,
  std::string>``: FID 11 comes before FID 2); an empty map is ``<Statistic name="..." />``;
* ``FeatureStatistics``: named vectors in the order given, e.g. ComputeImagesStatistics' ``mean``, ``min``,
  ``max``, ``stddev``, one ``<StatisticVector value="..." />`` per band, numbers printed as C++ streams do
  (six significant digits: ``3.16667``, ``13``, ``1e+06``).

Files are composed under a temporary name and renamed when complete (:class:`~eotensor.io.atomic.AtomicOutput`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from eotensor.errors import InputFileError, OutputFileError
from eotensor.io.atomic import AtomicOutput, error_text

GENERAL = "GeneralStatistics"
FEATURE = "FeatureStatistics"
_DECLARATION = '<?xml version="1.0" ?>\n'
_INDENT = "    "


_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&apos;",
            **{code: f"&#x{code:02X};" for code in range(32)}}
"""TinyXML's ``EncodeString``: the five entities, and control characters as hexadecimal references."""


def _attribute(value: Any) -> str:
    """An attribute value as TinyXML writes it, quoted."""
    return '"' + str(value).translate(_ESCAPES) + '"'



def format_number(value: float) -> str:
    """``value`` as a C++ ``std::ostream`` prints a double by default (``%g``, six significant digits)."""
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return format(value, ".6g")


def general_text(maps: Mapping[str, Mapping[Any, Any]]) -> str:
    """The text of a ``GeneralStatistics`` file holding ``maps`` (name -> {key: value})."""
    lines = [_DECLARATION + f"<{GENERAL}>"]
    for name in sorted(maps):
        entries = sorted((str(key), str(value)) for key, value in maps[name].items())
        if not entries:
            lines.append(f"{_INDENT}<Statistic name={_attribute(name)} />")
            continue
        lines.append(f"{_INDENT}<Statistic name={_attribute(name)}>")
        lines += [f"{_INDENT * 2}<StatisticMap key={_attribute(key)} value={_attribute(value)} />"
                  for key, value in entries]
        lines.append(f"{_INDENT}</Statistic>")
    lines.append(f"</{GENERAL}>")
    return "\n".join(lines) + "\n"


def feature_text(vectors: Mapping[str, Sequence[float]]) -> str:
    """The text of a ``FeatureStatistics`` file holding ``vectors`` (name -> one number per band), in order."""
    lines = [_DECLARATION + f"<{FEATURE}>"]
    for name, values in vectors.items():
        lines.append(f"{_INDENT}<Statistic name={_attribute(name)}>")
        lines += [f"{_INDENT * 2}<StatisticVector value={_attribute(format_number(v))} />" for v in values]
        lines.append(f"{_INDENT}</Statistic>")
    lines.append(f"</{FEATURE}>")
    return "\n".join(lines) + "\n"


def _write(path: str | os.PathLike, text: str, param: str) -> str:
    path = os.fspath(path)
    with AtomicOutput(path, param) as output:
        try:
            with open(output.temp_path, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        except OSError as error:
            raise OutputFileError(f'{param}: cannot write "{path}" ({output.explain(error)})') from None
    return path


def write_maps(path: str | os.PathLike, maps: Mapping[str, Mapping[Any, Any]], param: str = "out") -> str:
    """Write ``maps`` as a ``GeneralStatistics`` file (PolygonClassStatistics' layout); return ``path``."""
    return _write(path, general_text(maps), param)


def write_vectors(path: str | os.PathLike, vectors: Mapping[str, Sequence[float]], param: str = "out") -> str:
    """Write ``vectors`` as a ``FeatureStatistics`` file (ComputeImagesStatistics' layout); return ``path``."""
    return _write(path, feature_text(vectors), param)


def _root(path: str | os.PathLike, param: str, expected: str) -> Any:
    from xml.etree import ElementTree

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputFileError(f'{param}: statistics file "{path}" does not exist')
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise InputFileError(f'{param}: cannot read "{path}" as XML ({error_text(error)})') from None
    if root.tag != expected:
        raise InputFileError(f'{param}: "{path}" is a <{root.tag}> file; expected OTB statistics <{expected}>')
    return root


def read_maps(path: str | os.PathLike, param: str = "instats") -> dict[str, dict[str, str]]:
    """The maps of a ``GeneralStatistics`` file: name -> {key: value}, all as strings."""
    root = _root(path, param, GENERAL)
    return {s.get("name", ""): {m.get("key", ""): m.get("value", "") for m in s.iter("StatisticMap")}
            for s in root.iter("Statistic")}


def read_vectors(path: str | os.PathLike, param: str = "instats") -> dict[str, list[float]]:
    """The vectors of a ``FeatureStatistics`` file: name -> one float per band, in file order."""
    root = _root(path, param, FEATURE)
    return {s.get("name", ""): [float(v.get("value", "nan")) for v in s.iter("StatisticVector")]
            for s in root.iter("Statistic")}
