"""Outputs never lose or replace what they must not: failed flushes, devices, FIFOs, concurrent runs,
interrupts, read-only files, symlinks, long names; formats from the extension; block sizes."""

from __future__ import annotations

import gc
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import rasterio
from affine import Affine

from eotensor.errors import OutputFileError
from eotensor.io.atomic import AtomicOutput
from eotensor.io.extended import parse_output
from eotensor.io.geotiff import DEFAULT_BLOCK_SIZE, GeoTiffWriter, block_shape

TRANSFORM = Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0)
CRS = "EPSG:32631"
SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


def _write(spec, data, pixel_type=None):
    target = parse_output(str(spec), pixel_type)
    bands, height, width = data.shape
    with GeoTiffWriter(target, width=width, height=height, count=bands, transform=TRANSFORM, crs=CRS) as writer:
        writer.write(data, (0, 0, height, width))
    return target


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def _listing(directory):
    return sorted(os.listdir(directory))


# --- a write error at the final flush --------------------------------------------------------------------

FLUSH_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from affine import Affine
    from eotensor.errors import OutputFileError
    from eotensor.io.extended import parse_output
    from eotensor.io.geotiff import GeoTiffWriter

    path, limit = sys.argv[1], int(sys.argv[2])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    data = np.random.default_rng(0).random((1, 1024, 1024)).astype(np.float32)
    target = parse_output(path + "?&gdal:co:COMPRESS=DEFLATE")
    try:
        with GeoTiffWriter(target, width=1024, height=1024, count=1, transform=Affine(1, 0, 0, 0, -1, 0)) as w:
            for r in range(0, 1024, 128):
                for c in range(0, 1024, 128):
                    w.write(data[:, r:r + 128, c:c + 128], (r, c, 128, 128))
    except OutputFileError as error:
        print(error)
        sys.exit(3)
    print("wrote")
""")


def _run_flush(path, limit):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", FLUSH_SCRIPT, str(path), str(limit)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_failed_final_flush_is_an_error_and_keeps_the_old_output(tmp_path):
    reference = tmp_path / "ref" / "full.tif"
    reference.parent.mkdir()
    assert _run_flush(reference, 0).returncode == 0
    size = os.path.getsize(reference)
    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    _write(out, np.full((1, 4, 4), 7, np.float32))
    # The file-size limit stops the last ~2 KB: GDAL loses them when closing and reports nothing.
    result = _run_flush(out, size - 2000)
    assert result.returncode == 3, result.stdout + result.stderr
    message = result.stdout.strip()
    assert "\n" not in message and str(out) in message and ".eot-" not in message
    assert "lost data" in message and "previous file" in message
    assert _listing(out.parent) == ["o.tif"]
    assert (_read(out) == 7).all()


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs); skipped where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_is_an_error_and_keeps_the_old_output(small_disk):
    out = small_disk / "o.tif"
    _write(out, np.full((1, 4, 4), 7, np.float32))
    data = np.random.default_rng(0).random((1, 1024, 1024)).astype(np.float32)  # 4 MB, hardly compressible
    with pytest.raises(OutputFileError) as info:
        with GeoTiffWriter(parse_output(f"{out}?&gdal:co:COMPRESS=DEFLATE"), width=1024, height=1024, count=1,
                           transform=TRANSFORM, crs=CRS) as writer:
            for row in range(0, 1024, 256):
                writer.write(data[:, row:row + 256], (row, 0, 256, 1024))
    message = str(info.value)
    assert "the disk is full" in message and str(out) in message and ".eot-" not in message, message
    assert _listing(small_disk) == ["o.tif"] and (_read(out) == 7).all()


# --- special files, concurrent runs, interrupts ------------------------------------------------------------


def test_dev_null_is_written_through_and_stays_a_device():
    before = os.stat("/dev/null")
    target = _write("/dev/null", np.ones((1, 8, 8), np.float32))
    assert target.format.driver == "GTiff"  # no extension needed for a device
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_fifo_receives_the_geotiff(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    data = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    _write(fifo, data)
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (tmp_path / "copy.tif").write_bytes(received[0])
    np.testing.assert_array_equal(_read(tmp_path / "copy.tif"), data)
    assert _listing(tmp_path) == ["copy.tif", "pipe"]


def test_two_runs_on_one_output_do_not_share_a_temporary_file(tmp_path):
    out = tmp_path / "o.tif"
    first = GeoTiffWriter(parse_output(str(out)), width=4, height=4, count=1, transform=TRANSFORM, crs=CRS)
    second = GeoTiffWriter(parse_output(str(out)), width=4, height=4, count=1, transform=TRANSFORM, crs=CRS)
    assert first.temp_path != second.temp_path
    first.write(np.full((1, 4, 4), 1, np.float32), (0, 0, 4, 4))
    second.write(np.full((1, 4, 4), 2, np.float32), (0, 0, 4, 4))
    first.commit()
    assert (_read(out) == 1).all()
    second.commit()  # the last complete rename wins, whole
    assert (_read(out) == 2).all()
    assert _listing(tmp_path) == ["o.tif"]


def test_keyboard_interrupt_removes_the_temporary_file(tmp_path):
    out = tmp_path / "o.tif"
    _write(out, np.full((1, 4, 4), 7, np.float32))
    with pytest.raises(KeyboardInterrupt):
        with GeoTiffWriter(parse_output(str(out)), width=4, height=4, count=1, transform=TRANSFORM) as writer:
            writer.write(np.zeros((1, 4, 4), np.float32), (0, 0, 4, 4))
            raise KeyboardInterrupt
    assert _listing(tmp_path) == ["o.tif"] and (_read(out) == 7).all()


def test_dropped_writer_leaves_nothing(tmp_path):
    writer = GeoTiffWriter(parse_output(str(tmp_path / "o.tif")), width=4, height=4, count=1, transform=TRANSFORM)
    writer.write(np.zeros((1, 4, 4), np.float32), (0, 0, 4, 4))
    assert len(_listing(tmp_path)) == 1
    del writer
    gc.collect()
    assert _listing(tmp_path) == []


def test_sigterm_turned_into_keyboard_interrupt_leaves_nothing(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        import numpy as np
        from affine import Affine
        from eotensor.io.extended import parse_output
        from eotensor.io.geotiff import GeoTiffWriter

        def interrupt(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, interrupt)
        with GeoTiffWriter(parse_output(sys.argv[1]), width=64, height=64, count=1,
                           transform=Affine(1, 0, 0, 0, -1, 0)) as writer:
            writer.write(np.zeros((1, 64, 64), np.float32), (0, 0, 64, 64))
            os.kill(os.getpid(), signal.SIGTERM)
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "o.tif")], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    assert _listing(tmp_path) == []
    assert signal.SIGTERM  # the handler above is the CLI's way; the writer only has to abort


# --- read-only files, symlinks, long names ---------------------------------------------------------------


def test_read_only_output_is_refused(tmp_path):
    out = tmp_path / "o.tif"
    _write(out, np.full((1, 4, 4), 7, np.float32))
    out.chmod(0o444)
    with pytest.raises(OutputFileError) as info:
        _write(out, np.zeros((1, 4, 4), np.float32))
    message = str(info.value)
    assert "read-only" in message and str(out) in message and "0444" in message
    assert _listing(tmp_path) == ["o.tif"] and (_read(out) == 7).all()


def test_replaced_output_keeps_its_permissions(tmp_path):
    out = tmp_path / "o.tif"
    _write(out, np.full((1, 4, 4), 7, np.float32))
    out.chmod(0o640)
    _write(out, np.zeros((1, 4, 4), np.float32))
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640


def test_symlinked_output_writes_its_target(tmp_path):
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "real.tif"
    _write(real, np.full((1, 4, 4), 7, np.float32))
    link = tmp_path / "link.tif"
    link.symlink_to(real)
    target = parse_output(str(link))
    with GeoTiffWriter(target, width=4, height=4, count=1, transform=TRANSFORM, crs=CRS) as writer:
        assert os.path.dirname(writer.temp_path) == str(tmp_path / "data")  # same file system as the target
        writer.write(np.full((1, 4, 4), 3, np.float32), (0, 0, 4, 4))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (_read(real) == 3).all()
    assert _listing(tmp_path) == ["data", "link.tif"] and _listing(tmp_path / "data") == ["real.tif"]


def test_long_output_name(tmp_path):
    out = tmp_path / ("a" * 245 + ".tif")
    assert len(out.name) == 249
    _write(out, np.ones((1, 4, 4), np.float32))
    assert _listing(tmp_path) == [out.name]


def test_special_file_other_than_device_or_fifo_is_refused(tmp_path):
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(OutputFileError, match="special file"):
            AtomicOutput(str(path))
    assert _listing(tmp_path) == ["sock"]


def test_atomic_output_scratch_files_are_removed(tmp_path):
    with AtomicOutput(str(tmp_path / "o.xml")) as output:
        scratch = output.scratch(".tif")
        with open(output.temp_path, "w") as handle:
            handle.write("<done/>")
        assert os.path.exists(scratch)
    assert _listing(tmp_path) == ["o.xml"]
    assert (tmp_path / "o.xml").read_text() == "<done/>"


# --- GDAL's own messages -----------------------------------------------------------------------------------


def test_gdal_cause_and_final_name_in_the_error(tmp_path):
    out = tmp_path / "o.tif"
    target = parse_output(str(out) + "?&gdal:co:COMPRESS=JPEG")
    with pytest.raises(OutputFileError) as info:
        with GeoTiffWriter(target, width=300, height=300, count=1, transform=TRANSFORM, crs=CRS) as writer:
            writer.write(np.zeros((1, 300, 300), np.float32), (0, 0, 300, 300))
    message = str(info.value)
    assert "JPEG" in message and "BitsPerSample" in message, message
    assert str(out) in message and ".eot-" not in message and "free space" not in message
    assert _listing(tmp_path) == []


# --- formats from the extension (decision 34) ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "pixel_type", "bands"), [("o.png", "uint8", 1), ("o.png", "uint16", 3),
                                                           ("o.jpg", "uint8", 3), ("o.JPEG", "uint8", 1)])
def test_copied_formats(tmp_path, name, pixel_type, bands):
    data = (np.arange(bands * 40 * 30).reshape(bands, 40, 30) % 200).astype(np.float32)
    target = _write(tmp_path / name, data, pixel_type)
    with rasterio.open(tmp_path / name) as ds:
        assert ds.driver == target.format.driver
        assert ds.count == bands and ds.dtypes[0] == pixel_type
        if ds.driver == "PNG":
            np.testing.assert_array_equal(ds.read(), data.astype(pixel_type))
    assert [f for f in _listing(tmp_path) if not f.endswith(".aux.xml")] == [name]


@pytest.mark.parametrize(("name", "pixel_type", "fragment"), [
    ("o.png", None, "PNG cannot hold pixel type float32; expected uint8 or uint16"),
    ("o.png", "int16", "PNG cannot hold pixel type int16"),
    ("o.jpg", "uint16", "JPEG cannot hold pixel type uint16; expected uint8"),
    ("o.img", None, 'extension ".img" is not a supported output format; expected one of .tif, .tiff, .png'),
    ("output", None, "no extension is not a supported output format"),
])
def test_format_errors_before_any_work(tmp_path, name, pixel_type, fragment):
    with pytest.raises(OutputFileError) as info:
        parse_output(str(tmp_path / name), pixel_type)
    message = str(info.value)
    assert fragment in message and name in message and message.startswith("out ") and "\n" not in message


def test_copied_format_band_count_and_options_checked_at_creation(tmp_path):
    with pytest.raises(OutputFileError, match="JPEG cannot hold 2 band"):
        GeoTiffWriter(parse_output(str(tmp_path / "o.jpg"), "uint8"), width=4, height=4, count=2, transform=TRANSFORM)
    with pytest.raises(OutputFileError, match="NOSUCH"):
        GeoTiffWriter(parse_output(str(tmp_path / "o.png?&gdal:co:NOSUCH=1"), "uint8"), width=4, height=4, count=1,
                      transform=TRANSFORM)
    assert _listing(tmp_path) == []


# --- block sizes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "width", "height", "expected"), [
    ("o.tif", 1, 1, (16, 16)),
    ("o.tif", 300, 100, (112, 256)),
    ("o.tif", 1000, 1000, (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)),
    ("o.tif?&gdal:co:BLOCKXSIZE=512", 1000, 1000, (256, 512)),
    ("o.tif?&gdal:co:BLOCKXSIZE=512&gdal:co:BLOCKYSIZE=64", 1000, 1000, (64, 512)),
    ("o.tif?&box=0:0:20:40", 1000, 1000, (48, 32)),
    ("o.tif?&gdal:co:TILED=NO", 300, 1000, (256, 300)),
    ("o.tif?&gdal:co:TILED=NO&gdal:co:BLOCKYSIZE=10", 300, 100, (10, 300)),
    ("o.png", 300, 100, (112, 256)),
])
def test_block_shape_is_what_the_writer_uses(tmp_path, spec, width, height, expected):
    target = parse_output(str(tmp_path / spec), "uint8")
    assert block_shape(target, width, height) == expected
    with GeoTiffWriter(target, width=width, height=height, count=1, transform=TRANSFORM, crs=CRS) as writer:
        options = writer.creation_options  # of the GeoTIFF written (a PNG is copied from it)
        assert int(options["BLOCKYSIZE"]) == expected[0]
        assert int(options.get("BLOCKXSIZE", width)) == expected[1]
        writer.write(np.zeros((1, height, width), np.float32), (0, 0, height, width))
    if target.format.streamed:
        with rasterio.open(target.path) as ds:
            assert ds.block_shapes[0] == expected


def test_tiny_output_is_tiny(tmp_path):
    _write(tmp_path / "o.tif", np.ones((1, 1, 1), np.float32))
    assert os.path.getsize(tmp_path / "o.tif") < 4096


@pytest.mark.parametrize("option", ["BLOCKXSIZE=100", "BLOCKYSIZE=0", "BLOCKXSIZE=abc"])
def test_bad_block_option_is_refused_when_parsed(tmp_path, option):
    with pytest.raises(OutputFileError) as info:
        parse_output(str(tmp_path / "o.tif") + f"?&gdal:co:{option}")
    assert option.split("=")[0] in str(info.value) and "multiple of 16" in str(info.value)


def test_a_copied_format_leaves_room_for_its_georeferencing_side_car(tmp_path):
    """A PNG keeps its georeferencing in name.png.aux.xml: a name too long for it is refused before any work,
    and the previous output and its side-car stay."""
    data = np.full((1, 4, 4), 7, np.uint8)
    long = tmp_path / ("p" * 247 + ".png")
    with pytest.raises(OutputFileError, match="too long for its side-car file"):
        _write(long, data, "uint8")
    assert _listing(tmp_path) == []
    fine = tmp_path / ("p" * 240 + ".png")
    _write(fine, data, "uint8")
    assert os.path.isfile(str(fine) + ".aux.xml")
    np.testing.assert_array_equal(_read(fine), data)


def test_check_outputs_refuses_the_same_file_twice_and_fails_before_any_work(tmp_path):
    from eotensor.io.atomic import check_outputs

    a = str(tmp_path / "a.tif")
    with pytest.raises(OutputFileError, match=r'outlabels: ".*a.tif" is also the output of -source1.out'):
        check_outputs([("source1.out", a), ("outlabels", a)], [])
    with pytest.raises(OutputFileError, match=r'outvalid: ".*p.SHP" is also the output of -outtrain'):
        check_outputs([("outtrain", str(tmp_path / "p.shp")), ("outvalid", str(tmp_path / "p.SHP"))], [])
    with pytest.raises(OutputFileError, match="does not exist"):
        check_outputs([("out", str(tmp_path / "missing" / "o.tif"))], [])
    check_outputs([("outtrain", "/dev/null"), ("outvalid", "/dev/null")], [])  # a device may take several
    assert os.listdir(tmp_path) == []
