"""OTB's Python API (the ``otbApplication`` module) over eotensor's apps, so OTBTF scripts run unchanged.

>>> from eotensor import otbApplication            # instead of: import otbApplication
>>> app = otbApplication.Registry.CreateApplication("TensorflowModelServe")
>>> app.SetParameterStringList("source1.il", ["lr.tif"])
>>> app.SetParameterString("model.dir", "savedmodel")
>>> app.SetParameterString("out", "hr.tif?&streaming:type=tiled")
>>> app.SetParameterOutputImagePixelType("out", otbApplication.ImagePixelType_uint16)
>>> app.ExecuteAndWriteOutput()

Every eotensor app (:mod:`eotensor.apps.registry`, plug-ins included) is an :class:`Application`: setters
convert like OTB's (a boolean from ``"on"``, ``"true"`` or the int ``1``; a choice from its name or index),
``Execute()`` builds the lazy result (OTB's pipeline, nothing computed), ``WriteOutput()`` streams it, and
``ConnectImage`` / ``GetParameterOutputImage`` / ``SetParameterInputImage`` chain apps in memory through
:class:`~eotensor.lazy.LazyRaster` results, tile by tile. Differences from OTB, on purpose:

* ``Registry.CreateApplication`` with an unknown name raises a one-line error listing the apps (OTB returns
  ``None``, which fails later with an unrelated message).
* A setter of the wrong type for the key, or a value the key cannot take, raises at once, one line naming the
  key and what it expects (OTB raises a generic ``RuntimeError`` or ``TypeError``).
* OTB's ``ram`` is read as ``optim.ram`` where the app has one; ``outxml``, ``progress`` and ``ram`` elsewhere are
  accepted and ignored with a warning; ``inxml`` is refused (ignoring it would run other parameters).
* ``Execute()`` prints nothing (ReadImageInfo prints on ``ExecuteAndWriteOutput()`` and on the command line).
* ``GetParametersKeys()`` lists parameter keys, not group keys (``source1``, ``model``); ``GetParameterValue``
  gives a choice's name, never an ``ApplicationProxy``; attribute access (``app.IN = ...``) is not provided.
* ``GetParameterFloat`` reads float parameters only; computed values keep double precision (OTB: float32).
* ``SetParameterBool`` is an addition; complex output pixel types (``ImagePixelType_cfloat``...) are refused.

For tools that ``import otbApplication`` themselves (pyotb), :func:`install` registers this module under that
name for the running process only; it is never installed as a top-level package (decision 27: it would shadow
OTB's own bindings).
"""

from __future__ import annotations

import difflib
import numbers
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from eotensor.apps import registry
from eotensor.apps.params import App, Kind, Row, Values, check_value, default_value, parse_python
from eotensor.errors import EotensorError, ParameterError

# OTB's enums, same names and values (otbWrapperTypes.h, as the SWIG module exposes them).
(ParameterType_Int, ParameterType_Float, ParameterType_Double, ParameterType_String, ParameterType_StringList,
 ParameterType_InputFilename, ParameterType_InputFilenameList, ParameterType_OutputFilename, ParameterType_Directory,
 ParameterType_Choice, ParameterType_InputImage, ParameterType_InputImageList, ParameterType_InputVectorData,
 ParameterType_InputVectorDataList, ParameterType_OutputImage, ParameterType_OutputVectorData, ParameterType_Radius,
 ParameterType_Group, ParameterType_ListView, ParameterType_RAM, ParameterType_Bool, ParameterType_Field,
 ParameterType_Band) = range(23)
(ImagePixelType_uint8, ImagePixelType_int16, ImagePixelType_uint16, ImagePixelType_int32, ImagePixelType_uint32,
 ImagePixelType_float, ImagePixelType_double, ImagePixelType_cint16, ImagePixelType_cint32, ImagePixelType_cfloat,
 ImagePixelType_cdouble) = range(11)
Role_Input, Role_Output = 0, 1
UserLevel_Basic, UserLevel_Advanced = 0, 1

PIXEL_TYPES: dict[int, str] = {
    ImagePixelType_uint8: "uint8", ImagePixelType_int16: "int16", ImagePixelType_uint16: "uint16",
    ImagePixelType_int32: "int32", ImagePixelType_uint32: "uint32", ImagePixelType_float: "float32",
    ImagePixelType_double: "float64",
}
"""``ImagePixelType_*`` -> NumPy name (OTB's ``ConvertPixelTypeToNumpy``); complex types are not written."""
_PIXEL_CONSTANTS = {name: constant for constant, name in PIXEL_TYPES.items()}
_COMPLEX = {ImagePixelType_cint16: "cint16", ImagePixelType_cint32: "cint32", ImagePixelType_cfloat: "cfloat",
            ImagePixelType_cdouble: "cdouble"}

_TYPES = {
    Kind.INT: ParameterType_Int, Kind.FLOAT: ParameterType_Float, Kind.BOOL: ParameterType_Bool,
    Kind.STRING: ParameterType_String, Kind.STRING_LIST: ParameterType_StringList,
    Kind.FILE: ParameterType_InputFilename, Kind.FILE_LIST: ParameterType_InputImageList,
    Kind.INPUT_IMAGE: ParameterType_InputImage, Kind.INPUT_VECTOR: ParameterType_InputVectorData,
    Kind.INPUT_VECTOR_LIST: ParameterType_InputVectorDataList, Kind.FIELD: ParameterType_Field,
    Kind.CHOICE: ParameterType_Choice, Kind.OUTPUT_IMAGE: ParameterType_OutputImage,
    Kind.OUTPUT_VECTOR: ParameterType_OutputVectorData, Kind.OUTPUT_FILE: ParameterType_OutputFilename,
}
"""eotensor's parameter kinds -> OTB's ``ParameterType_*`` (``FILE_LIST`` holds image lists: ``sourceN.il``)."""

_IMAGE_KINDS = (Kind.INPUT_IMAGE, Kind.FILE_LIST)
_IGNORED = {
    "ram": "OTB's memory budget; this app has no memory parameter",
    "outxml": "OTB's parameter file output is not written",
    "progress": "progress is shown on a terminal",
}


class ApplicationProxy:
    """OTB's proxy type for group and choice values; defined for ``isinstance`` checks (pyotb): this module
    returns plain values instead."""


class _Connection(NamedTuple):
    """An image input connected to another application's output (``ConnectImage``), resolved at ``Execute()``."""

    app: Application
    key: str


def _a(kind: Kind) -> str:
    """The kind with its article: "an int", "a float"."""
    return ("an " if kind.value[0] in "aeiou" else "a ") + kind.value


def _setter_for(kind: Kind) -> str:
    if kind in (Kind.INT,):
        return "SetParameterInt"
    if kind is Kind.FLOAT:
        return "SetParameterFloat"
    if kind is Kind.BOOL:
        return 'SetParameterString("on"/"off") or SetParameterInt(1/0)'
    if kind.is_list:
        return "SetParameterStringList"
    return "SetParameterString"


class Application:
    """One application: OTB's ``Application`` methods over an eotensor :class:`~eotensor.apps.params.App`.

    Values are kept by OTB key as set; ``Execute()`` parses them as the app's Python entry does
    (:func:`~eotensor.apps.params.parse_python`), so every check of the command line applies.
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._values: dict[str, Any] = {}
        self._pixel_types: dict[str, int] = {}
        self._result: Any = None

    def __repr__(self) -> str:
        return f"<eotensor.otbApplication.Application {self._app.name}>"

    def __str__(self) -> str:
        return f"{self._app.name}\n{self._app.description}"

    # ------------------------------------------------------------------ identity
    def GetName(self) -> str:
        """The application's name."""
        return self._app.name

    def GetDescription(self) -> str:
        """One line saying what the application does."""
        return self._app.description

    def GetDocLongDescription(self) -> str:
        """The description and the app's notes."""
        return f"{self._app.description}\n{self._app.notes}".rstrip()

    # ------------------------------------------------------------------ keys
    def _counts(self) -> dict[str, int]:
        table = self._app.table
        numbers_given: dict[str, int] = {}
        for key in self._values:
            found = table.find(key)
            if found and found[0].repeat:
                numbers_given[found[0].repeat] = max(numbers_given.get(found[0].repeat, 0), found[1])
        return table.counts(numbers_given, os.environ)

    def GetParametersKeys(self, recursive: bool = True) -> list[str]:
        """Every parameter key (repeats counted from the keys set, or ``OTB_TF_NSOURCES``); no group keys."""
        return [key for key, _, _ in self._app.table.concrete(self._counts())]

    def _find(self, key: str) -> tuple[Row, str] | None:
        found = self._app.table.find(key)
        if found is None:
            return None
        row, n, _ = found
        return row, row.key.replace("{n}", str(n))

    def _row(self, key: str, method: str) -> tuple[Row, str]:
        """The row and canonical key of ``key``, or a one-line error with the closest key."""
        found = self._find(key)
        if found is None:
            close = difflib.get_close_matches(key, self.GetParametersKeys(), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else "; see GetParametersKeys()"
            raise ParameterError(f"{self._app.name}: {method}: unknown parameter {key}{hint}")
        return found

    def _settable(self, key: str, method: str) -> tuple[Row, str] | None:
        """:meth:`_row` for a setter; OTB's keys eotensor does not have are read or ignored with a warning."""
        if key == "inxml":
            raise ParameterError(f"{self._app.name}: {method}: inxml (OTB's parameter file) is not supported; set "
                                 "the parameters instead")
        if self._find(key) is None and key == "ram" and self._find("optim.ram") is not None:
            warnings.warn(f"{self._app.name}: ram is read as optim.ram (the memory budget in MB)", stacklevel=3)
            key = "optim.ram"
        elif self._find(key) is None and key in _IGNORED:
            warnings.warn(f"{self._app.name}: {key} is ignored ({_IGNORED[key]})", stacklevel=3)
            return None
        row, canonical = self._row(key, method)
        if row.param.computed:
            raise ParameterError(f"{self._app.name}: {method}: {canonical} is computed by the app, not set; read it "
                                 "after Execute()")
        return row, canonical

    def _store(self, canonical: str, row: Row, value: Any) -> None:
        if isinstance(value, list) and any(isinstance(item, _Connection) for item in value) or \
                isinstance(value, _Connection):
            self._values[canonical] = value  # checked at Execute(), once the upstream's result exists
        else:
            try:
                self._values[canonical] = check_value(canonical, row.param, value)
            except ParameterError as error:
                raise ParameterError(f"{self._app.name}: {str(error).removeprefix('-')}") from None
        if not row.param.kind.is_output:
            self._result = None  # the pipeline changed: rebuilt at the next Execute()

    def _wrong(self, method: str, key: str, row: Row, accepted: str) -> ParameterError:
        return ParameterError(f"{self._app.name}: {method}({key}): {key} is {_a(row.param.kind)} parameter, "
                              f"not {accepted}; use {_setter_for(row.param.kind)}")

    # ------------------------------------------------------------------ setters
    def SetParameterString(self, key: str, value: str | os.PathLike, hasUserValueFlag: bool = True) -> None:
        """Set any parameter from text, as on the command line (``"on"``, ``"16"``, a choice's name, a filename)."""
        found = self._settable(key, "SetParameterString")
        if found is None:
            return
        row, canonical = found
        if not isinstance(value, (str, os.PathLike)):
            raise ParameterError(f"{self._app.name}: SetParameterString({canonical}) expects a string, got "
                                 f"{value!r} ({type(value).__name__}); use {_setter_for(row.param.kind)}")
        self._store(canonical, row, os.fspath(value))

    def SetParameterInt(self, key: str, value: int, hasUserValueFlag: bool = True) -> None:
        """Set an int, float or boolean parameter (1/0), or a choice by its index."""
        found = self._settable(key, "SetParameterInt")
        if found is None:
            return
        row, canonical = found
        kind = row.param.kind
        if kind not in (Kind.INT, Kind.FLOAT, Kind.BOOL, Kind.CHOICE):
            raise self._wrong("SetParameterInt", canonical, row, "an int")
        if not isinstance(value, numbers.Integral):
            raise ParameterError(f"{self._app.name}: SetParameterInt({canonical}) expects an int, got {value!r} "
                                 f"({type(value).__name__})")
        if kind is Kind.CHOICE:
            names = [choice.name for choice in row.param.choices]
            if not 0 <= value < len(names):
                raise ParameterError(f"{self._app.name}: SetParameterInt({canonical}): choice index {value} is out "
                                     f"of 0..{len(names) - 1} ({', '.join(names)})")
            self._store(canonical, row, names[value])
        else:
            self._store(canonical, row, bool(value) if kind is Kind.BOOL else int(value))

    def SetParameterFloat(self, key: str, value: float, hasUserValueFlag: bool = True) -> None:
        """Set a float parameter."""
        found = self._settable(key, "SetParameterFloat")
        if found is None:
            return
        row, canonical = found
        if row.param.kind is not Kind.FLOAT:
            raise self._wrong("SetParameterFloat", canonical, row, "a float")
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise ParameterError(f"{self._app.name}: SetParameterFloat({canonical}) expects a number, got "
                                 f"{value!r} ({type(value).__name__})")
        self._store(canonical, row, float(value))

    SetParameterDouble = SetParameterFloat

    def SetParameterStringList(self, key: str, values: Sequence[str | os.PathLike],
                               hasUserValueFlag: bool = True) -> None:
        """Set a list parameter (an image list, names, ``key=value`` items)."""
        found = self._settable(key, "SetParameterStringList")
        if found is None:
            return
        row, canonical = found
        if not row.param.kind.is_list:
            raise self._wrong("SetParameterStringList", canonical, row, "a list")
        if isinstance(values, (str, os.PathLike)) or not isinstance(values, Sequence) or \
                not all(isinstance(v, (str, os.PathLike)) for v in values):
            raise ParameterError(f"{self._app.name}: SetParameterStringList({canonical}) expects a list of "
                                 f"strings, got {values!r}")
        self._store(canonical, row, [os.fspath(v) for v in values])

    def SetParameterBool(self, key: str, value: bool | int | str) -> None:
        """Set a boolean parameter from a bool, 1/0 or on/off (an eotensor convenience; OTB has none)."""
        found = self._settable(key, "SetParameterBool")
        if found is None:
            return
        row, canonical = found
        if row.param.kind is not Kind.BOOL:
            raise self._wrong("SetParameterBool", canonical, row, "a boolean")
        self._store(canonical, row, value)

    def SetParameterValue(self, key: str, value: Any) -> None:
        """Set a parameter with the setter its type needs (OTB's dispatch)."""
        row, _ = self._find(key) or (None, key)
        kind = row.param.kind if row else None
        if kind is not None and kind.is_list:
            self.SetParameterStringList(key, [value] if isinstance(value, (str, os.PathLike)) else value)
        elif kind in (Kind.INT,):
            self.SetParameterInt(key, value)
        elif kind is Kind.FLOAT:
            self.SetParameterFloat(key, value)
        elif kind is Kind.BOOL:
            self.SetParameterString(key, str(value))
        else:
            self.SetParameterString(key, value if isinstance(value, (str, os.PathLike)) else str(value))

    def SetParameters(self, parameters: Mapping[str, Any]) -> None:
        """:meth:`SetParameterValue` for every item."""
        for key, value in parameters.items():
            self.SetParameterValue(key, value)

    def AddParameterStringList(self, key: str, value: str | os.PathLike) -> None:
        """Append one item to a list parameter."""
        row, canonical = self._row(key, "AddParameterStringList")
        if not row.param.kind.is_list:
            raise self._wrong("AddParameterStringList", canonical, row, "a list")
        self._store(canonical, row, [*self._values.get(canonical, []), os.fspath(value)])

    def ClearValue(self, key: str) -> None:
        """Forget the value set for ``key`` (its default applies again)."""
        _, canonical = self._row(key, "ClearValue")
        if self._values.pop(canonical, None) is not None:
            self._result = None

    def UpdateParameters(self) -> None:
        """Nothing to update: eotensor's apps derive nothing from the values set (OTB calls it after each set)."""

    def SetParameterUserValue(self, key: str, value: bool) -> None:
        """Accepted for compatibility; the values set are the user values."""

    # ------------------------------------------------------------------ getters
    def _get(self, key: str, method: str) -> tuple[Row, str, Any]:
        row, canonical = self._row(key, method)
        if row.param.computed:
            if self._result is None:
                raise ParameterError(f"{self._app.name}: {method}({canonical}): computed by the app; call Execute() "
                                     "first")
            return row, canonical, self._result.output_values[canonical]
        if canonical in self._values:
            return row, canonical, self._values[canonical]
        return row, canonical, default_value(row.param)

    def GetParameterString(self, key: str) -> str:
        """Any parameter as text (a boolean as true/false, a list space-separated, an output image its filename)."""
        return _as_text(self._get(key, "GetParameterString")[2])

    GetParameterAsString = GetParameterString

    def GetParameterInt(self, key: str) -> int:
        """An int or boolean parameter (1/0), or a choice's index."""
        row, canonical, value = self._get(key, "GetParameterInt")
        kind = row.param.kind
        if kind not in (Kind.INT, Kind.BOOL, Kind.CHOICE):
            raise ParameterError(f"{self._app.name}: GetParameterInt({canonical}): {canonical} is {_a(kind)} "
                                 "parameter, not an int")
        if value is None:
            raise ParameterError(f"{self._app.name}: GetParameterInt({canonical}): {canonical} has no value")
        if kind is Kind.CHOICE:
            return [choice.name for choice in row.param.choices].index(value)
        return int(value)

    def GetParameterFloat(self, key: str) -> float:
        """A float parameter."""
        row, canonical, value = self._get(key, "GetParameterFloat")
        if row.param.kind is not Kind.FLOAT:
            raise ParameterError(f"{self._app.name}: GetParameterFloat({canonical}): {canonical} is "
                                 f"{_a(row.param.kind)} parameter, not a float")
        if value is None:
            raise ParameterError(f"{self._app.name}: GetParameterFloat({canonical}): {canonical} has no value")
        return float(value)

    GetParameterDouble = GetParameterFloat

    def GetParameterStringList(self, key: str) -> list[str]:
        """A list parameter (an empty list when unset)."""
        row, canonical, value = self._get(key, "GetParameterStringList")
        if not row.param.kind.is_list:
            raise ParameterError(f"{self._app.name}: GetParameterStringList({canonical}): {canonical} is "
                                 f"{_a(row.param.kind)} parameter, not a list")
        return [_as_text(item) for item in value or []]

    def GetParameterValue(self, key: str) -> Any:
        """A parameter's value with the getter its type needs (OTB's dispatch; choices give their name)."""
        row, _ = self._row(key, "GetParameterValue")
        kind = row.param.kind
        if kind.is_list:
            return self.GetParameterStringList(key)
        if kind is Kind.INT:
            return self.GetParameterInt(key)
        if kind is Kind.FLOAT:
            return self.GetParameterFloat(key)
        if kind is Kind.BOOL:
            return bool(self.GetParameterInt(key))
        return self.GetParameterString(key)

    def GetParameters(self) -> dict[str, Any]:
        """Every input parameter that has a value, by key."""
        return {key: self.GetParameterValue(key) for key in self.GetParametersKeys()
                if self.HasValue(key) and self.GetParameterRole(key) == Role_Input}

    def HasValue(self, key: str) -> bool:
        """Whether ``key`` has a value: set, a default, or computed by the last ``Execute()``."""
        row, canonical = self._row(key, "HasValue")
        if row.param.computed:
            return self._result is not None
        return canonical in self._values or default_value(row.param) is not None

    def HasUserValue(self, key: str) -> bool:
        """Whether ``key`` was set."""
        return self._row(key, "HasUserValue")[1] in self._values

    def HasAutomaticValue(self, key: str) -> bool:
        """Always False: eotensor's apps set no value of their own before running."""
        self._row(key, "HasAutomaticValue")
        return False

    def IsMandatory(self, key: str) -> bool:
        """Whether ``key`` must be given."""
        return self._row(key, "IsMandatory")[0].param.mandatory

    def IsParameterEnabled(self, key: str) -> bool:
        """Whether ``key`` takes part in the run: mandatory or valued, and, under a choice, that choice made."""
        row, _ = self._row(key, "IsParameterEnabled")
        if row.when is not None:
            choice_key = row.when[0]
            if "{n}" in choice_key:
                choice_key = choice_key.replace("{n}", str(self._app.table.find(key)[1]))
            if self.GetParameterString(choice_key) != row.when[1]:
                return False
        return row.param.mandatory or self.HasValue(key)

    def GetParameterType(self, key: str) -> int:
        """OTB's ``ParameterType_*`` of ``key``."""
        return _TYPES[self._row(key, "GetParameterType")[0].param.kind]

    def GetParameterRole(self, key: str) -> int:
        """``Role_Output`` for values the app computes (ReadImageInfo's), else ``Role_Input``."""
        return Role_Output if self._row(key, "GetParameterRole")[0].param.computed else Role_Input

    def GetParameterName(self, key: str) -> str:
        """The first sentence of the parameter's help."""
        return self.GetParameterDescription(key).split(". ")[0].rstrip(".")

    def GetParameterDescription(self, key: str) -> str:
        """The parameter's help."""
        return self._row(key, "GetParameterDescription")[0].param.help

    def GetChoiceKeys(self, key: str) -> list[str]:
        """A choice parameter's option names."""
        return [choice.name for choice in self._choice(key).choices]

    def GetChoiceNames(self, key: str) -> list[str]:
        """A choice parameter's option descriptions."""
        return [choice.help for choice in self._choice(key).choices]

    def _choice(self, key: str) -> Any:
        row, canonical = self._row(key, "GetChoiceKeys")
        if row.param.kind is not Kind.CHOICE:
            raise ParameterError(f"{self._app.name}: {canonical} is {_a(row.param.kind)} parameter, not a choice")
        return row.param

    def IsApplicationReady(self) -> bool:
        """Whether every mandatory input parameter has a value."""
        return all(self.HasValue(key) for key in self.GetParametersKeys()
                   if self.IsMandatory(key) and self.IsParameterEnabled(key) and not self._is_file_output(key))

    def _is_file_output(self, key: str) -> bool:
        return self._row(key, "")[0].param.kind.is_output

    # ------------------------------------------------------------------ output pixel types
    def _output_image(self, key: str, method: str) -> str:
        row, canonical = self._row(key, method)
        if row.param.kind is not Kind.OUTPUT_IMAGE:
            outputs = [k for k in self.GetParametersKeys() if self._row(k, "")[0].param.kind is Kind.OUTPUT_IMAGE]
            raise ParameterError(f"{self._app.name}: {method}({canonical}): {canonical} is {_a(row.param.kind)} "
                                 f"parameter, not an output image (this app's: {', '.join(outputs) or 'none'})")
        return canonical

    def SetParameterOutputImagePixelType(self, key: str, pixel_type: int) -> None:
        """The pixel type an output image is written in (``ImagePixelType_uint8``...; OTB's casting rules)."""
        canonical = self._output_image(key, "SetParameterOutputImagePixelType")
        if isinstance(pixel_type, bool) or pixel_type not in PIXEL_TYPES:
            what = f"the complex type {_COMPLEX[pixel_type]} is not supported" if pixel_type in _COMPLEX else \
                f"{pixel_type!r} is not an ImagePixelType_* constant"
            raise ParameterError(f"{self._app.name}: SetParameterOutputImagePixelType({canonical}): {what}; expected "
                                 "ImagePixelType_uint8, _int16, _uint16, _int32, _uint32, _float or _double")
        self._pixel_types[canonical] = pixel_type

    def GetParameterOutputImagePixelType(self, key: str) -> int:
        """The ``ImagePixelType_*`` an output image is written in (default: the app's, else float)."""
        canonical = self._output_image(key, "GetParameterOutputImagePixelType")
        if canonical in self._pixel_types:
            return self._pixel_types[canonical]
        from eotensor.io.pixeltypes import parse_pixel_type

        default = self._row(canonical, "")[0].param.pixel_type
        return _PIXEL_CONSTANTS[parse_pixel_type(default).name]

    @staticmethod
    def ConvertPixelTypeToNumpy(pixel_type: int) -> str:
        """The NumPy dtype name of an ``ImagePixelType_*``."""
        names = {**PIXEL_TYPES, ImagePixelType_cfloat: "complex64", ImagePixelType_cdouble: "complex128"}
        if pixel_type not in names:
            raise ParameterError(f"ConvertPixelTypeToNumpy: {pixel_type!r} has no NumPy type")
        return names[pixel_type]

    # ------------------------------------------------------------------ running
    def _parse(self) -> Values:
        """The values set, connections resolved and pixel types attached, parsed as the app's Python entry does."""
        options: dict[str, Any] = {}
        for key, value in self._values.items():
            if isinstance(value, _Connection):
                value = value.app.GetParameterOutputImage(value.key)
            elif isinstance(value, list):
                value = [v.app.GetParameterOutputImage(v.key) if isinstance(v, _Connection) else v for v in value]
            if key in self._pixel_types:
                value = (getattr(value, "path", value), PIXEL_TYPES[self._pixel_types[key]])
            options[key] = value
        return parse_python(self._app, options)

    @contextmanager
    def _named(self) -> Iterator[None]:
        """Errors of the run start with the app's name, as OTB's log lines do (one line still)."""
        try:
            yield
        except EotensorError as error:
            if str(error).startswith(f"{self._app.name}: "):
                raise
            raise type(error)(f"{self._app.name}: {error}") from None

    def Execute(self) -> int:
        """Build the app's lazy result (OTB's pipeline): nothing is computed or written yet."""
        with self._named():
            self._result = self._app.build(self._parse())
        return 0

    def WriteOutput(self) -> None:
        """Write the outputs set (streamed, renamed when complete); apps without file outputs print their report."""
        with self._named():
            values = self._parse()
            outputs = [key for key, row, _ in self._app.table.concrete(values.counts) if row.param.kind.is_output]
            if outputs and not any(values.is_set(key) for key in outputs):
                raise ParameterError(f"WriteOutput: no output set; set {' or '.join(outputs)} first")
            if self._result is None:
                self._result = self._app.build(values)
            self._app.write(self._result, values, sys.stderr.isatty())

    def ExecuteAndWriteOutput(self) -> int:
        """``Execute()`` then ``WriteOutput()``."""
        self.Execute()
        self.WriteOutput()
        return 0

    # ------------------------------------------------------------------ in-memory connections
    def _image_input(self, key: str, method: str) -> tuple[Row, str]:
        row, canonical = self._settable(key, method) or self._row(key, method)
        if row.param.kind not in _IMAGE_KINDS:
            raise ParameterError(f"{self._app.name}: {method}({canonical}): {canonical} is {_a(row.param.kind)} "
                                 "parameter, not an input image or image list")
        return row, canonical

    def _set_image(self, key: str, image: Any, method: str, index: int | None = None) -> None:
        """Set an input image (an image list: its ``index``-th item, appended when ``index`` is its length)."""
        row, canonical = self._image_input(key, method)
        if row.param.kind is Kind.INPUT_IMAGE:
            self._store(canonical, row, image)
            return
        items = list(self._values.get(canonical) or [])
        index = len(items) if index is None else index
        if not 0 <= index <= len(items):
            raise ParameterError(f"{self._app.name}: {method}({canonical}): index {index} is out of 0..{len(items)}")
        items[index:index + 1] = [image]
        self._store(canonical, row, items)

    def ConnectImage(self, key: str, other: Application, other_key: str) -> bool:
        """Feed ``other``'s output image ``other_key`` to ``key`` in memory (an image list: appended); ``other``
        is executed when this app is, if it was not."""
        if not isinstance(other, Application):
            raise ParameterError(f"{self._app.name}: ConnectImage({key}): expects an Application, got "
                                 f"{type(other).__name__}")
        other._output_image(other_key, "ConnectImage")
        self._set_image(key, _Connection(other, other._row(other_key, "ConnectImage")[1]), "ConnectImage")
        return True

    def SetParameterInputImage(self, key: str, image: Any) -> None:
        """Feed a result (``GetParameterOutputImage``'s, any :class:`~eotensor.lazy.LazyRaster`) to ``key``."""
        self._set_image(key, _lazy(image, self._app.name, "SetParameterInputImage"), "SetParameterInputImage", 0)

    def AddImageToParameterInputImageList(self, key: str, image: Any) -> None:
        """Append a result to an image list."""
        row, canonical = self._image_input(key, "AddImageToParameterInputImageList")
        if row.param.kind is not Kind.FILE_LIST:
            raise ParameterError(f"{self._app.name}: AddImageToParameterInputImageList({canonical}): {canonical} is "
                                 "a single image; use SetParameterInputImage")
        self._set_image(key, _lazy(image, self._app.name, "AddImageToParameterInputImageList"),
                        "AddImageToParameterInputImageList")

    def SetNthParameterInputImageList(self, key: str, index: int, image: Any) -> None:
        """Replace (or, at its length, append) the ``index``-th image of a list."""
        self._set_image(key, _lazy(image, self._app.name, "SetNthParameterInputImageList"),
                        "SetNthParameterInputImageList", index)

    def ClearParameterInputImageList(self, key: str) -> None:
        """Empty an image list."""
        self.ClearValue(key)

    def GetNumberOfElementsInParameterInputImageList(self, key: str) -> int:
        """How many images a list holds."""
        return len(self._get(key, "GetNumberOfElementsInParameterInputImageList")[2] or [])

    def GetParameterOutputImage(self, key: str) -> Any:
        """The output image as a lazy result (:class:`~eotensor.lazy.LazyRaster`), executing the app if needed."""
        from eotensor.lazy import LazyRaster

        canonical = self._output_image(key, "GetParameterOutputImage")
        if self._result is None:
            self.Execute()
        if not isinstance(self._result, LazyRaster):
            raise ParameterError(f"{self._app.name}: {canonical} is not available in memory; write it with "
                                 "ExecuteAndWriteOutput()")
        return self._result

    # ------------------------------------------------------------------ NumPy exchange
    def GetVectorImageAsNumpyArray(self, key: str, dt: str = "float") -> Any:
        """The output image computed whole, (rows, cols, bands) in its output pixel type (OTB's casting)."""
        from eotensor.io.pixeltypes import to_pixel_type

        image = self.GetParameterOutputImage(key)
        return to_pixel_type(image.to_numpy(), PIXEL_TYPES[self.GetParameterOutputImagePixelType(key)])

    def GetImageAsNumpyArray(self, key: str, dt: str = "float") -> Any:
        """A one-band output image computed whole, (rows, cols); more bands are an error, as in OTB."""
        count = self.GetParameterOutputImage(key).count
        if count != 1:
            raise ParameterError(f"{self._app.name}: GetImageAsNumpyArray({key}): the image has {count} bands; use "
                                 "GetVectorImageAsNumpyArray")
        return self.GetVectorImageAsNumpyArray(key)[:, :, 0]

    def SetImageFromNumpyArray(self, key: str, array: Any, index: int = 0) -> Any:
        """Feed a one-band array (rows, cols) or (rows, cols, 1) to ``key`` (unit pixels, no CRS, as OTB)."""
        import numpy as np

        shape = np.shape(array)
        if len(shape) == 3 and shape[2] > 1:
            raise ParameterError(f"{self._app.name}: SetImageFromNumpyArray({key}): the array has {shape[2]} bands; "
                                 "use SetVectorImageFromNumpyArray")
        return self.SetVectorImageFromNumpyArray(key, array, index)

    def SetVectorImageFromNumpyArray(self, key: str, array: Any, index: int = 0) -> Any:
        """Feed an array (rows, cols, bands) to ``key`` (unit pixels, no CRS, as OTB); returns the image."""
        image = _array_image(array, None, self._app.name, key)
        self._set_image(key, image, "SetVectorImageFromNumpyArray", index)
        return image

    def ImportImage(self, key: str, image: Mapping[str, Any], index: int = 0) -> None:
        """Feed ``{"array", "origin", "spacing", ...}`` (``ExportImage``'s dict) to ``key``, on its grid."""
        self._set_image(key, _array_image(image["array"], image, self._app.name, key), "ImportImage", index)

    ImportVectorImage = ImportImage

    def ExportImage(self, key: str) -> dict[str, Any]:
        """``{"array", "origin", "spacing", "size", "region", "metadata"}`` of an output image (OTB's dict; the
        origin is the centre of the first pixel, the spacing signed)."""
        array = self.GetVectorImageAsNumpyArray(key)
        size = self.GetImageSize(key)
        return {"array": array, "origin": self.GetImageOrigin(key), "spacing": self.GetImageSpacing(key),
                "size": size, "region": ((0, 0), size), "metadata": {}}

    # ------------------------------------------------------------------ image information
    def _image(self, key: str, index: int) -> Any:
        """The image behind an output or input image key, as a lazy result."""
        from eotensor.lazy import LazyRaster, open

        row, canonical = self._row(key, "GetImage*")
        if row.param.kind is Kind.OUTPUT_IMAGE:
            return self.GetParameterOutputImage(canonical)
        if row.param.kind not in _IMAGE_KINDS:
            raise ParameterError(f"{self._app.name}: {canonical} is {_a(row.param.kind)} parameter, not an image")
        value = self._values.get(canonical)
        items = value if isinstance(value, list) else [value]
        if value is None or not 0 <= index < len(items):
            raise ParameterError(f"{self._app.name}: {canonical} has no image {index}")
        item = items[index]
        if isinstance(item, _Connection):
            return item.app.GetParameterOutputImage(item.key)
        return item if isinstance(item, LazyRaster) else open(item)

    def GetImageOrigin(self, key: str, index: int = 0) -> tuple[float, float]:
        """The centre of the first pixel (OTB's origin)."""
        t = self._image(key, index).transform
        return (t.c + t.a / 2, t.f + t.e / 2)

    def GetImageSpacing(self, key: str, index: int = 0) -> tuple[float, float]:
        """The signed pixel size (x, y)."""
        t = self._image(key, index).transform
        return (t.a, t.e)

    def GetImageSize(self, key: str, index: int = 0) -> tuple[int, int]:
        """(width, height) in pixels."""
        grid = self._image(key, index).grid
        return (grid.width, grid.height)

    def GetImageNbBands(self, key: str, index: int = 0) -> int:
        """The number of bands."""
        return self._image(key, index).count

    def GetImageProjection(self, key: str, index: int = 0) -> str:
        """The CRS as WKT ("" without one)."""
        crs = self._image(key, index).crs
        return crs.to_wkt() if crs else ""


def _as_text(value: Any) -> str:
    from eotensor.apps.params import OutputImage

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, OutputImage):
        return value.path
    if isinstance(value, list):
        return " ".join(_as_text(item) for item in value)
    if isinstance(value, _Connection):
        return f"<{value.app.GetName()}.{value.key}>"
    return str(value)


def _lazy(image: Any, app: str, method: str) -> Any:
    from eotensor.lazy import LazyRaster

    if not isinstance(image, LazyRaster):
        raise ParameterError(f"{app}: {method}: expects an image from GetParameterOutputImage (a LazyRaster), got "
                             f"{type(image).__name__}")
    return image


def _array_image(array: Any, info: Mapping[str, Any] | None, app: str, key: str) -> Any:
    """A NumPy array as a lazy result: on unit pixels, or on the grid ``info``'s origin and spacing give."""
    import numpy as np

    from eotensor.lazy import ArrayRaster

    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ParameterError(f"{app}: {key}: cannot use an array of dtype {array.dtype}; expected integers or floats")
    grid = None
    if info is not None:
        from affine import Affine

        from eotensor.geometry import Grid

        (ox, oy), (sx, sy) = info["origin"], info["spacing"]
        grid = Grid.from_transform(Affine(sx, 0, ox - sx / 2, 0, sy, oy - sy / 2), array.shape[1], array.shape[0],
                                   info.get("crs"))
    return ArrayRaster(array, grid)


class Registry:
    """OTB's application registry: eotensor's apps (built-in and plug-ins) by name."""

    @staticmethod
    def GetAvailableApplications() -> tuple[str, ...]:
        """Every application name."""
        return tuple(registry.names())

    @staticmethod
    def CreateApplication(name: str) -> Application:
        """A new application; an unknown name is a one-line error listing the available ones (OTB: None)."""
        app = registry.get(name)
        if app is None:
            raise ParameterError(f'unknown application "{name}"; available: {", ".join(registry.names())}')
        return Application(app)

    CreateApplicationWithoutLogger = CreateApplication

    @staticmethod
    def SetApplicationPath(path: str) -> None:
        """Nothing to do: apps come from eotensor and the ``eotensor.apps`` entry points, not from a path."""

    AddApplicationPath = SetApplicationPath

    @staticmethod
    def CleanRegistry() -> None:
        """Nothing to clean."""


def install() -> None:
    """Register this module as ``otbApplication`` in ``sys.modules``, for this process only, so tools that
    ``import otbApplication`` (pyotb) use eotensor. Refused when another ``otbApplication`` (OTB's own
    bindings) is already imported."""
    this = sys.modules[__name__]
    other = sys.modules.get("otbApplication")
    if other is not None and other is not this:
        raise EotensorError(f"otbApplication is already imported from {getattr(other, '__file__', other)}; "
                            "install() would shadow it: call it before anything imports OTB's bindings")
    sys.modules["otbApplication"] = this


def uninstall() -> None:
    """Undo :func:`install` (modules that imported it keep their reference)."""
    if sys.modules.get("otbApplication") is sys.modules[__name__]:
        del sys.modules["otbApplication"]
