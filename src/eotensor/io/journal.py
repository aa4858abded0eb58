"""The journal of a resumable run (``-optim.resume on``): what the output is, and which tiles are durable.

A journal lies next to its output's partial file (:func:`~eotensor.io.atomic.partial_paths`). Its first
line is a magic word, its second a JSON **header**: every item that determines the output's pixels, each
``[kind, label, value]`` (the output's name, pixel type, box, creation options, no-data, COG layout; the
grid, bands and tile plan; each input file's and model's size and modification time; the result's recipe).
Then one **record** per checkpoint: the tiles made durable since the previous one, as JSON, each line ending
with its CRC-32 so that a line torn by a crash is ignored (and cut off before a resumed run appends, so its
records stay readable). Records are appended and ``fsync``'d in order.

The journal knows nothing of the writer: a writer makes its tiles durable (a GeoTIFF: close the dataset so
GDAL writes its directory, then reopen it), and only then are they recorded (:meth:`Journal.record`). A
tile in the journal is therefore always in the partial file; a tile written after the last checkpoint is
simply computed again. :func:`header_changes` says, in one line, what differs between two headers.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CHECKPOINT_S", "Journal", "header_changes"]

MAGIC = "eotensor-journal 1"
CHECKPOINT_S = 10.0
"""Seconds of writing between two checkpoints (see docs/benchmarks.md for their cost)."""

Item = list[Any]
"""One header item: ``[kind, label, value]``; kind ``file`` (value: size and mtime), ``value`` or ``text``. A file
item is labelled by its resolved path and has a fourth element, its label as the user spelled it (for messages)."""


def _line(payload: Any) -> str:
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return f"{text}\t{zlib.crc32(text.encode()):08x}\n"


def _parse(line: str) -> Any | None:
    """A line's payload, or None when the line is torn or corrupt (its CRC does not match)."""
    text, sep, crc = line.rstrip("\n").rpartition("\t")
    if not sep or not line.endswith("\n") or f"{zlib.crc32(text.encode()):08x}" != crc:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _fsync_directory(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """An open journal: its header, the tiles recorded (``done``), and :meth:`record` to add more."""

    def __init__(self, path: str, header: list[Item], done: Iterable[tuple[int, int]] = ()) -> None:
        self.path = path
        self.header = header
        self.done: set[tuple[int, int]] = set(done)
        """The tiles recorded, by their (row, col) start."""
        self.samples: list[list[int]] = []
        """The records' ``sample`` facts: pixel rows of the partial file and their CRCs, checked on resume."""
        self._file: Any = None
        self._valid: int | None = None
        """Bytes of the file up to its last valid line (read from disk), where the next record goes."""

    @classmethod
    def read(cls, path: str) -> Journal | None:
        """The journal at ``path`` as recorded (None when there is none, or its header is unreadable). Records stop
        at the first torn or corrupt line; the next :meth:`record` cuts the file back there before appending, so
        that the records of the resumed run are readable too."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        lines, end = [], 0
        while (stop := data.find(b"\n", end)) >= 0:
            lines.append((data[end:stop + 1], stop + 1))
            end = stop + 1

        def parse(raw: bytes) -> Any | None:
            try:
                return _parse(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return None

        if len(lines) < 2 or lines[0][0].rstrip(b"\n") != MAGIC.encode():
            return None
        header = parse(lines[1][0])
        if not isinstance(header, list):
            return None
        journal = cls(path, header)
        journal._valid = lines[1][1]
        for raw, end in lines[2:]:
            record = parse(raw)
            if not isinstance(record, dict) or not isinstance(record.get("tiles"), list):
                break  # a torn or corrupt line: everything after it is unknown
            journal.done.update((int(r), int(c)) for r, c in record["tiles"])
            if isinstance(record.get("sample"), list) and len(record["sample"]) == 4:
                journal.samples.append([int(v) for v in record["sample"]])
            journal._valid = end
        return journal

    @classmethod
    def create(cls, path: str, header: list[Item]) -> Journal:
        """A new, empty journal with ``header`` at ``path`` (written whole under another name, then renamed)."""
        temp = path + ".new"
        with open(temp, "w", encoding="utf-8") as f:
            f.write(MAGIC + "\n" + _line(header))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        _fsync_directory(path)
        return cls(path, header)

    def record(self, tiles: Sequence[tuple[int, int]], **facts: Any) -> None:
        """Append the durable ``tiles`` (and any ``facts``, e.g. the partial file's size) and fsync."""
        if not tiles:
            return
        if self._file is None:
            if self._valid is not None and self._valid < os.path.getsize(self.path):
                os.truncate(self.path, self._valid)  # a torn line would hide every record appended after it
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._file.write(_line({"tiles": [list(t) for t in tiles], **facts}))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.update(tiles)
        if facts.get("sample") is not None:
            self.samples.append(list(facts["sample"]))

    def close(self) -> None:
        """Close the file (the journal stays on disk)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Close and delete the journal."""
        self.close()
        try:
            os.remove(self.path)
        except OSError:
            pass


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _text_difference(old: str, new: str, context: int = 40) -> str:
    """Where two long texts first differ, ``…old…`` → ``…new…`` around that place."""
    start = next((k for k, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    tail = 0
    while tail < min(len(old), len(new)) - start and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    lo = max(0, start - context)

    def cut(text: str) -> str:
        end = min(len(text) - tail + context, len(text))
        return ("…" if lo else "") + text[lo:end] + ("…" if end < len(text) else "")

    return f"{cut(old)} → {cut(new)}"


def header_changes(old: list[Item], new: list[Item]) -> str | None:
    """What differs between the interrupted run's header ``old`` and this run's ``new``, in one line (the first
    difference found, in header order), or None when they are the same."""
    before = {label: (kind, value) for kind, label, value, *_ in old}
    now = {label for _, label, *_ in new}
    for kind, key, value, *shown in new:
        label = shown[0] if shown else key
        if key not in before:
            return f"{label} was not {'an input' if kind == 'file' else 'set'} in the interrupted run"
        _, then = before[key]
        if then == value:
            continue
        if kind == "file":
            if not value:
                return f"{label} is missing (it existed in the interrupted run)"
            return f"{label} modified since the interrupted run (size or modification time differ)"
        if kind == "text":
            return f"{label} differs: {_text_difference(_short(then), _short(value))}"
        return f"{label} {_short(then)} → {_short(value)}"
    for kind, key, _, *shown in old:
        label = shown[0] if shown else key
        if key not in now:
            return f"{label} was {'an input' if kind == 'file' else 'set'} in the interrupted run and is not now"
    return None
