"""Atomic outputs: a file appears under its final name only once complete, and never replaces what it must not.

Every writer (GeoTIFF, copied formats, and later vectors, XML, COG, Zarr, models) composes its file under a
temporary name from :class:`AtomicOutput` and calls :meth:`~AtomicOutput.commit` when complete, or
:meth:`~AtomicOutput.abort` (or leaves the ``with`` block by any exception, ``KeyboardInterrupt`` included).

What the final name may be, decided when the output is created (before any work starts):

* a new or existing **regular file**: the temporary file ``.eot-<random>.tmp`` lies next to it (same file
  system, so the final rename is atomic); the name is short (a valid long output name stays valid) and
  unique (two runs writing the same output never share it: the last complete rename wins);
* an existing file **without write permission** (mode bits, checked even for root): refused, never replaced;
* a **symbolic link**: its target is written (the temporary file lies next to the resolved target and the
  rename replaces it); the link stays a link;
* an existing **character device or FIFO** (``/dev/null``, a named pipe): written through, i.e. the
  complete file is composed in the system temporary directory and then copied into it; the device node
  is never replaced. Other special files (block devices, sockets) are refused.

A **directory output** (a Zarr store: ``directory=`` a :class:`DirectoryKind`) is composed in a temporary directory
``.eot-<random>.tmp`` next to the final name and renamed onto it when complete; an existing directory of that kind
is replaced only then (moved aside, the new one renamed in, the old one deleted); anything else at the final name
(a file, a directory of another kind, a device) is refused before any work.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self

from eotensor.errors import OutputFileError

__all__ = ["AtomicOutput", "DirectoryKind", "check_directory_target", "check_outputs", "ensure_not_input", "error_text",
           "is_virtual_path", "is_write_through", "lock_output", "partial_paths", "remove_partials", "resume_files",
           "unlock_output"]

_TEMP_PREFIX = ".eot-"
_TEMP_SUFFIX = ".tmp"


def is_virtual_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a GDAL virtual path (``/vsi...``) or a URL, which the OS cannot stat."""
    text = os.fspath(path)
    return text.startswith("/vsi") or "://" in text


def _is_device_or_fifo(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def is_write_through(path: str | os.PathLike) -> bool:
    """Whether ``path`` (symlinks resolved) is an existing character device or FIFO, written through."""
    try:
        return _is_device_or_fifo(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def error_text(error: BaseException) -> str:
    """The most telling first line of ``error`` and the exceptions it was raised from.

    rasterio raises generic errors ("Write failed. See previous exception for details.") from GDAL's own,
    which carry the cause ("BitsPerSample 32 not allowed for JPEG"): the chain is walked and the first
    message that is not such a pointer is kept.
    """
    messages = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip()
        messages.append(text.splitlines()[0] if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    for message in messages:
        if "see previous exception" not in message.lower():
            return message
    return messages[-1]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def ensure_not_input(
    target_path: str | os.PathLike, input_paths: Iterable[str | os.PathLike], param: str = "out"
) -> None:
    """Raise :class:`OutputFileError` if ``target_path`` resolves to the same file as one of ``input_paths``.

    Compares resolved paths (symlinks, ``..``, hard links when both exist), so an input is never
    overwritten while it is still being read. GDAL virtual paths and URLs are skipped.
    """
    target = os.fspath(target_path)
    for item in input_paths:
        path = os.fspath(item)
        if is_virtual_path(path):
            continue
        if _same_file(target, path):
            spelled = "" if path == target else f' ("{path}")'
            raise OutputFileError(
                f'{param}: output file "{target}" is also an input{spelled}; expected a file that is not an input'
            )


def _output_key(path: str) -> str:
    """What makes two outputs the same file: the resolved path; for a Shapefile its base name, since its
    parts (.shx, .dbf, ...) would collide too."""
    resolved = os.path.normcase(os.path.realpath(path))
    base, extension = os.path.splitext(resolved)
    return base if extension.lower() == ".shp" else resolved


def check_outputs(outputs: Sequence[tuple[str, str | os.PathLike] | tuple[str, str | os.PathLike, Any]],
                  inputs: Iterable[str | os.PathLike]) -> None:
    """Before any work, for every ``(param, path)`` output: it is not an input, not another output of the same
    run (a character device or FIFO such as ``/dev/null`` may take several), and it can be created (the checks
    :class:`AtomicOutput` makes, so a missing directory fails now, not after hours of work). A directory output
    (a Zarr store) is given as ``(param, path, kind)``."""
    inputs = list(inputs)
    seen: dict[str, str] = {}
    for param, path, *kind in outputs:
        path = os.fspath(path)
        ensure_not_input(path, inputs, param)
        key = _output_key(path)
        if key in seen and not is_write_through(path):
            raise OutputFileError(f'{param}: "{path}" is also the output of -{seen[key]}; give each output its own '
                                  "file")
        seen[key] = param
        AtomicOutput(path, param, directory=kind[0] if kind else None).abort()


def _reserve(directory: str, suffix: str = "") -> str:
    """Create a new empty file with a short random name in ``directory``; return its path.

    ``O_EXCL`` makes the name ours alone, even when several runs write next to the same output; the file
    gets the mode a plain create would (0666 less the umask).
    """
    for _ in range(100):
        path = os.path.join(directory, f"{_TEMP_PREFIX}{secrets.token_hex(8)}{_TEMP_SUFFIX}{suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name in {directory}")


class ResumeFiles(NamedTuple):
    """A resumable run's files next to its output ``map.tif`` (:func:`resume_files`)."""

    partial: str
    """``.eot-map.tif.partial.tif``: the GeoTIFF the tiles are streamed into."""
    journal: str
    """``.eot-map.tif.journal``: the tiles the partial file holds durably (:mod:`eotensor.io.journal`)."""
    lock: str
    """``.eot-map.tif.lock``: locked (``flock``) by the run writing the output, holding its pid."""
    temp: str
    """``.eot-map.tif.tmp``: the copy renamed onto the output at the end (a COG, PNG or JPEG copy, a compacted
    GeoTIFF)."""


def resume_files(final: str) -> ResumeFiles:
    """The resumable run's files of the output ``final`` (symlinks resolved), named after it next to it (a hash of
    the name when it is too long). Unlike :class:`AtomicOutput`'s random names, these are found again by the next
    run of the same output, which continues or removes them (``-optim.resume on``, see :mod:`eotensor.io.journal`),
    even after a SIGKILL."""
    directory, name = os.path.split(final)
    if len(name) + len(_TEMP_PREFIX) + len(".partial.tif") > _name_max(directory or "."):
        name = hashlib.sha256(name.encode()).hexdigest()[:24]
    stem = os.path.join(directory, f"{_TEMP_PREFIX}{name}")
    return ResumeFiles(stem + ".partial.tif", stem + ".journal", stem + ".lock", stem + _TEMP_SUFFIX)


def partial_paths(final: str) -> tuple[str, str]:
    """The partial file and journal of the output ``final`` (see :func:`resume_files`)."""
    files = resume_files(final)
    return files.partial, files.journal


_HELD: dict[str, int] = {}
"""The locks this process holds (lock file -> descriptor): the outputs of its resumable runs."""


def _take_lock(path: str) -> int | None:
    """Lock the file ``path`` (created if needed) exclusively without waiting; its descriptor, or None when another
    process (or another run of this one) holds it. A lock file unlinked by its previous holder between our open and
    our lock is opened again. (``fcntl`` is imported here: it is Unix-only, and every output imports this module.)"""
    import errno
    import fcntl

    while True:
        created = True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            created = False
            try:
                fd = os.open(path, os.O_RDWR)
            except PermissionError:  # another user's lock file: flock needs no write access
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # removed by its holder meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            if created:
                os.remove(path)
            raise  # locks unsupported on this file system (ENOLCK, EOPNOTSUPP...): said by the caller
        try:
            current = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            current = False
        if current:
            return fd
        os.close(fd)


def _release_lock(path: str, fd: int) -> None:
    """Remove the lock file ``path`` (while still locked: nobody holds a stale copy), then unlock it."""
    try:
        os.remove(path)
    except OSError:
        pass
    os.close(fd)


def lock_output(final: str, param: str, shown: str) -> None:
    """Hold the lock of the output ``final`` (symlinks resolved, ``shown`` as the user spelled it) for a resumable
    run, until :func:`unlock_output`: two runs never share a partial file and journal, and a run that commits
    ``final`` meanwhile leaves them alone (:func:`remove_partials`). Another run holding it raises
    :class:`OutputFileError` naming its pid. The lock is the kernel's (``flock``): a killed run's lock is free."""
    path = resume_files(final).lock
    try:
        fd = None if path in _HELD else _take_lock(path)
    except OSError as error:
        raise OutputFileError(f'{param}: cannot create the lock file next to "{shown}" ({error_text(error)})') from None
    if fd is None:
        try:
            with open(path, encoding="ascii") as f:
                pid = f.read().strip()
        except (OSError, ValueError):
            pid = ""
        holder = f"another run (pid {pid})" if pid.isdigit() else "another run"
        raise OutputFileError(f'{param} "{shown}": {holder} is writing it; wait for it or choose another output')
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[path] = fd


def unlock_output(final: str) -> None:
    """Release the lock :func:`lock_output` took (removing the lock file); nothing if it is not held."""
    path = resume_files(final).lock
    fd = _HELD.pop(path, None)
    if fd is not None:
        _release_lock(path, fd)


def remove_partials(final: str, scratch_only: bool = False, owner: bool = False) -> None:
    """Delete a resumable run's files for ``final`` (best effort): once an output is complete they describe nothing
    (a run without resume replaces a stale temporary file). With ``scratch_only``, only the copy a killed run left
    (:attr:`ResumeFiles.temp`), not the partial file and journal a resumed run continues.

    Only stale files go: those of a run writing ``final`` now are left alone, whether its lock is held by another
    process, by another user (a lock file this process cannot even open), on a file system without locks, or by a
    resumable run of this process that is not the caller (``owner``: the caller is the run holding the lock)."""
    files = resume_files(final)
    names = [files.temp + suffix for suffix in ("", ".aux.xml", ".ovr")]
    if not scratch_only:  # the journal first: a journal without its partial file would only mislead
        names = [files.journal, files.journal + ".new", files.partial, *names]  # .new: created when a run died
    if not any(os.path.lexists(path) for path in names):
        return  # nothing to remove (every run without resume, nearly always): no lock file is ever created
    fd = None
    if files.lock in _HELD:
        if not owner:
            return  # a resumable run of this process is writing this output
    else:
        try:
            fd = _take_lock(files.lock)
        except OSError:
            return  # cannot lock: the files may be a live run's
        if fd is None:
            return  # another run is writing this output: its files are not stale
    for path in names:
        try:
            os.remove(path)
        except OSError:
            pass
    if fd is not None:
        _release_lock(files.lock, fd)


def _reserve_dir(directory: str) -> str:
    """Create a new empty directory with a short random name in ``directory``; return its path (``mkdir`` is
    exclusive: the name is ours alone)."""
    for _ in range(100):
        path = os.path.join(directory, f"{_TEMP_PREFIX}{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name in {directory}")


@dataclass(frozen=True)
class DirectoryKind:
    """What a directory output is (a Zarr store): its name in messages, and how to recognise an existing one (which
    is then replaced; any other existing path is refused)."""

    label: str
    """The format's short name ("Zarr")."""
    recognise: Callable[[str], bool]
    """Whether an existing directory is one of this kind (and so may be replaced)."""


def check_directory_target(path: str | os.PathLike, kind: DirectoryKind, param: str = "out") -> None:
    """Refuse (one line) an existing ``path`` (symlinks resolved) that is not a directory output of ``kind``: a
    file, a device or a directory of anything else is never replaced by one."""
    path = os.fspath(path)
    final = os.path.realpath(path)
    if not os.path.lexists(final) or (os.path.isdir(final) and kind.recognise(final)):
        return
    what = ("a directory that is not a " + kind.label + " store" if os.path.isdir(final) else
            "a file" if os.path.isfile(final) else "a special file")
    raise OutputFileError(f'{param}: "{path}" is {what}; {kind.label} output to an existing non-{kind.label} path is '
                          "refused: remove it or choose another name")


def _name_max(directory: str) -> int:
    """The longest file name ``directory``'s file system accepts (255 where it cannot tell)."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


class CommitOnSuccess:
    """Context-manager protocol of every output: ``commit()`` when the block succeeds, ``abort()`` otherwise.

    Any exception counts, ``KeyboardInterrupt`` and the CLI's signal exceptions included, so an
    interrupted run leaves no temporary file.
    """

    def commit(self) -> str:
        """Make the output final; return its path."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop everything written so far."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class AtomicOutput(CommitOnSuccess):
    """A unique temporary file standing for the output ``path`` until :meth:`commit`.

    ``temp_path`` is the file to write (it exists, empty; a writer may recreate it). :meth:`scratch` hands
    out more temporary names (e.g. a GeoTIFF to copy into another format), deleted at commit and abort.
    ``sidecars`` are suffixes of GDAL side-car files (``.aux.xml``): the temporary file's are renamed with
    it, and the final name's stale ones removed, so they cannot describe other pixels; ``made`` are those
    the writer will surely create (a PNG's georeferencing), checked to fit the file system's name length.

    With ``directory`` (a :class:`DirectoryKind`, e.g. a Zarr store) the output is a directory: ``temp_path`` is
    an empty temporary directory, and an existing store of that kind at ``path`` is replaced at commit.

    With ``resumable`` (a resumable run's output, whose lock the run holds) ``temp_path`` is the fixed name
    :attr:`ResumeFiles.temp`, not yet created, so that a killed run's copy is found and removed by the next run;
    :meth:`adopt` makes the run's partial file the one renamed.

    All checks happen in the constructor, before any work: see the module docstring for what the final
    name may be. Errors name ``param`` and the output as the user spelled it, never the temporary name.
    """

    def __init__(self, path: str | os.PathLike, param: str = "out", sidecars: Sequence[str] = (),
                 made: Sequence[str] = (), *, directory: DirectoryKind | None = None, resumable: bool = False) -> None:
        self.path = os.fspath(path)
        self.param = param
        self.sidecars = tuple(dict.fromkeys((*sidecars, *made)))
        self.made = tuple(made)
        """Side-car suffixes the writer will create: the final name must leave room for them."""
        self.final = os.path.realpath(self.path)
        """The file the rename replaces: ``path`` with symlinks resolved."""
        self.write_through = False
        """Whether the output is a character device or FIFO, copied into rather than replaced."""
        self._mode: int | None = None
        self._scratch: list[str] = []
        self._kept = ""
        self._done = False
        self.temp_path = ""
        self.directory = directory
        """The kind of a directory output (``temp_path`` is then a directory), or None for a file."""
        self.resumable = resumable
        """Whether this is a resumable run's output (the run holds the output's lock)."""
        if directory is not None:
            check_directory_target(self.path, directory, param)
        folder = self._check_target()
        if resumable and directory is None and not self.write_through:
            self.temp_path = resume_files(self.final).temp
            remove_partials(self.final, scratch_only=True, owner=True)
            return
        try:
            self.temp_path = _reserve(folder) if directory is None else _reserve_dir(folder)
        except OSError as error:
            raise OutputFileError(
                f'{param}: cannot create a temporary file next to "{self.path}" ({error_text(error)})'
            ) from None

    def _check_target(self) -> str:
        """Check the final name; return the directory where the temporary files go."""
        try:
            info = os.stat(self.final)
        except (FileNotFoundError, NotADirectoryError):
            info = None  # a new file; the directory check below says what is wrong with its directory
        except OSError as error:
            raise OutputFileError(f'{self.param}: cannot write "{self.path}" ({error_text(error)})') from None
        if info is not None and self.directory is not None:  # a store of its kind (checked): replaced at commit
            if not os.access(self.final, os.W_OK | os.X_OK):
                raise OutputFileError(f'{self.param}: output "{self.path}" is read-only; make it writable or choose '
                                      "another name")
        elif info is not None:
            if stat.S_ISDIR(info.st_mode):
                raise OutputFileError(f'{self.param}: output "{self.path}" is a directory; expected a file name')
            if _is_device_or_fifo(info.st_mode):
                self.write_through = True
                return tempfile.gettempdir()
            if not stat.S_ISREG(info.st_mode):
                raise OutputFileError(
                    f'{self.param}: output "{self.path}" is a special file (block device or socket); '
                    "expected a regular file, a character device or a FIFO"
                )
            if not info.st_mode & 0o222 or not os.access(self.final, os.W_OK):
                raise OutputFileError(
                    f'{self.param}: output "{self.path}" is read-only (mode {stat.S_IMODE(info.st_mode):04o}); '
                    "make it writable or choose another name"
                )
            self._mode = stat.S_IMODE(info.st_mode)
        directory = os.path.dirname(self.final)
        longest = max((len(os.path.basename(self.final) + suffix) for suffix in self.made), default=0)
        if longest > _name_max(directory):
            raise OutputFileError(
                f'{self.param}: output name "{os.path.basename(self.path)}" is too long for its side-car file '
                f"({', '.join(self.made)}: the georeferencing this format cannot hold); use a name shorter by "
                f"{longest - _name_max(directory)} characters"
            )
        if not os.path.isdir(directory):
            if os.path.exists(directory):
                why = f'"{directory}" is a file'
            else:
                why = f'the directory "{directory}" does not exist'
            raise OutputFileError(
                f'{self.param}: cannot write "{self.path}": {why}; expected an existing, writable directory'
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OutputFileError(
                f'{self.param}: cannot write "{self.path}": the directory "{directory}" is not writable'
            )
        return directory

    @property
    def closed(self) -> bool:
        """Whether the output was committed or aborted."""
        return self._done

    def adopt(self, path: str) -> None:
        """Make the complete file ``path`` (a resumable run's partial file) the one :meth:`commit` renames: no copy,
        so that no moment exists where neither it nor the output holds the tiles; unlike a temporary file it is
        kept on abort."""
        if self.temp_path and self.temp_path != path:
            try:
                os.remove(self.temp_path)
            except OSError:
                pass
        self.temp_path = self._kept = path

    def scratch(self, suffix: str = "") -> str:
        """A further unique temporary file next to ``temp_path``, deleted at commit and abort."""
        try:
            path = _reserve(os.path.dirname(self.temp_path), suffix)
        except OSError as error:
            raise OutputFileError(
                f'{self.param}: cannot create a temporary file next to "{self.path}" ({error_text(error)})'
            ) from None
        self._scratch.append(path)
        return path

    def explain(self, error: BaseException | str) -> str:
        """``error``'s message (see :func:`error_text`) with temporary names replaced by the output name, and
        a note when the disk is full."""
        text = error if isinstance(error, str) else error_text(error)
        for path in (self.temp_path, *self._scratch):
            if path:
                text = text.replace(path, self.path).replace(os.path.basename(path), os.path.basename(self.path))
        if self.disk_full():
            text += "; the disk is full"
        return text

    def disk_full(self) -> bool:
        """Whether the file system of the temporary files has less than 1 MiB left (GDAL's messages rarely say)."""
        try:
            info = os.statvfs(os.path.dirname(self.temp_path or self.final))
        except (OSError, AttributeError):
            return False
        return info.f_bavail * info.f_frsize < 1 << 20

    def commit(self) -> str:
        """Move the complete temporary file onto the final name (or copy it into a device); return ``path``.

        The rename is atomic on the file system: readers see the old file or the new one, never a mix. A
        replaced file keeps its permission bits. On failure the temporary files are deleted and the old
        output stays.
        """
        if self._done:
            raise OutputFileError(f'{self.param} "{self.path}": commit after the output was committed or aborted')
        self._done = True
        if self.directory is not None:
            return self._commit_directory()
        try:
            if self.write_through:
                with open(self.temp_path, "rb") as source, open(self.final, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
            else:
                if self._mode is not None:
                    os.chmod(self.temp_path, self._mode)
                os.replace(self.temp_path, self.final)  # first: a failure here leaves the old output whole
                for suffix in self.sidecars:
                    if os.path.isfile(self.temp_path + suffix):
                        os.replace(self.temp_path + suffix, self.final + suffix)
                    elif os.path.isfile(self.final + suffix):
                        os.remove(self.final + suffix)  # stale: it described the previous pixels
                self.temp_path = ""  # renamed: nothing left to delete under that name
                remove_partials(self.final, owner=self.resumable)  # a resumable run's leftovers: stale now
        except OSError as error:
            raise OutputFileError(
                f'{self.param}: cannot finish "{self.path}" ({self.explain(error)}); the previous file, if any, '
                "is unchanged"
            ) from None
        finally:
            self._remove()
        return self.path

    def _commit_directory(self) -> str:
        """Rename the complete temporary directory onto the final name. An existing store there is first moved
        aside (a rename onto an empty reserved directory), deleted once the new one is in place, and moved back
        if the new one cannot be."""
        old = ""
        try:
            if os.path.lexists(self.final):
                assert self.directory is not None
                # Checked again: what appeared there during the run (a folder of something else) is never replaced.
                check_directory_target(self.path, self.directory, self.param)
                old = _reserve_dir(os.path.dirname(self.final))
                os.replace(self.final, old)
            try:
                os.replace(self.temp_path, self.final)
            except OSError:
                if old:
                    os.replace(old, self.final)
                    old = ""
                raise
            self.temp_path = ""
        except OSError as error:
            raise OutputFileError(
                f'{self.param}: cannot finish "{self.path}" ({self.explain(error)}); the previous output, if any, '
                "is unchanged"
            ) from None
        finally:
            if old:
                shutil.rmtree(old, ignore_errors=True)
            self._remove()
        return self.path

    def abort(self) -> None:
        """Delete the temporary files; the final name is left untouched. Safe to call twice."""
        self._done = True
        self._remove()

    def _remove(self) -> None:
        if getattr(self, "directory", None) is not None and self.temp_path:
            # Renamed away first (atomic), then deleted: a Dask worker still writing a chunk finds the store gone at
            # once, not only when the whole tree (seconds on NFS) is deleted.
            doomed = f"{self.temp_path}.dead"
            try:
                os.replace(self.temp_path, doomed)
            except OSError:
                doomed = self.temp_path
            shutil.rmtree(doomed, ignore_errors=True)
            self.temp_path = ""
        for path in (self.temp_path, *self._scratch):
            if not path or path == self._kept:
                continue
            for name in (path, *(path + suffix for suffix in (*self.sidecars, ".aux.xml"))):
                try:
                    os.remove(name)
                except OSError:
                    pass  # best effort: an error here must not hide the one being reported
        self._scratch = []

    def __del__(self) -> None:
        # Dropped without commit/abort (an error in a caller, interpreter shutdown): leave no temporary file.
        try:
            if not getattr(self, "_done", True):
                self.abort()
        except Exception:  # noqa: BLE001 - nothing may escape __del__
            pass
