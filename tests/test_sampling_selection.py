"""PatchesSelection (sampling/selection.py and apps/patches_selection.py) against OTBTF's behaviour (§5).

The references below are written independently of the implementation: OTBTF's scan as its literal 2-D loop
with C++ integer arithmetic, the erosion as a NumPy slice per point, the split scheduler as its loop.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from fractions import Fraction

import numpy as np
import pytest
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eotensor.apps.cli import main
from eotensor.apps.patches_selection import PatchesSelection
from eotensor.geometry import Grid
from eotensor.io import vector
from eotensor.io.raster import RasterSource
from eotensor.sampling import selection as sel
from eotensor.testing import write_raster
from eotensor.testing.strategies import rectangles

SPACING = 10.0
ORIGIN = (300000.0, 4900020.0)  # write_raster's upper-left corner


def cpp_mod(a: int, b: int) -> int:
    return int(math.fmod(a, b))


def cpp_quot(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def otbtf_scan(width, height, psize, step, offx, offy, nodata):
    """OTBTF's Apply() loop: (row, col, pos_y, pos_x) of every grid position, in raster order, in image pixels
    (the padded mask's border, on the no-data path, gives rows/cols -1 and width/height)."""
    r = psize // 2
    pad = 1 if nodata else 0
    offx, offy = cpp_mod(offx + pad, step), cpp_mod(offy + pad, step)
    found = []
    for py in range(r, height + 2 * pad - r):  # the region shrunk by the radius
        for px in range(r, width + 2 * pad - r):
            ix, iy = px - (r + 1), py - (r + 1)
            if cpp_mod(ix, step) == offx and cpp_mod(iy, step) == offy:
                found.append((py - pad, px - pad, cpp_quot(iy, step), cpp_quot(ix, step)))
    return found


def scheduler_loop(props, total, count):
    """OTBTF's SampleSplit group sequence, as its loop (float32 counters, first minimum on ties)."""
    props = [np.float32(p) for p in props]
    tot = np.float32(np.float32(props[0] + props[1]) + props[2])
    incs = [np.float32(tot / p) if p > 0 else np.float32(0) for p in props]
    counts = [np.float32(0) if p > 0 else np.float32(total) for p in props]
    groups = []
    for _ in range(count):
        g = min(range(3), key=lambda k: (counts[k], k))
        groups.append(g)
        counts[g] = np.float32(counts[g] + incs[g])
    return groups


def image_file(path, width, height, bands=1, value=1.0):
    return write_raster(path, np.full((bands, height, width), value, np.float32), spacing=SPACING, origin=ORIGIN)


def read_points(path):
    layer = vector.read_vector(path, "outtrain", "id")
    x, y, _ = vector.point_coordinates(layer.geometries)
    ids, _ = vector.integer_values(layer)
    return x, y, ids.tolist(), layer.crs


def run(argv, capsys):
    status = main(["PatchesSelection", *map(str, argv)])
    return status, capsys.readouterr().err.strip()


# --- the grid ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nodata", [False, True])
def test_worked_example_of_the_reference(nodata):
    index, position = sel.grid_axis(100, 16, 20, 0, nodata)
    assert index.tolist() == [9, 29, 49, 69, 89]
    assert position.tolist() == [0, 1, 2, 3, 4]


def test_nodata_path_phase_differs_when_offset_is_step_minus_one():
    assert sel.grid_axis(100, 16, 20, 19, False)[0].tolist() == [28, 48, 68, 88]
    assert sel.grid_axis(100, 16, 20, 19, True)[0].tolist() == [8, 28, 48, 68, 88]


def test_step_one_corner_has_grid_position_minus_one():
    index, position = sel.grid_axis(5, 1, 1, 0, False)
    assert index.tolist() == [0, 1, 2, 3, 4] and position.tolist() == [-1, 0, 1, 2, 3]


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 30), height=st.integers(1, 12), psize=st.integers(1, 12), step=st.integers(1, 9),
       offx=st.integers(-25, 25), offy=st.integers(-25, 25), nodata=st.booleans())
def test_grid_axes_give_otbtf_scan(width, height, psize, step, offx, offy, nodata):
    cols, pos_x = sel.grid_axis(width, psize, step, offx, nodata)
    rows, pos_y = sel.grid_axis(height, psize, step, offy, nodata)
    product = [(r, c, y, x) for r, y in zip(rows.tolist(), pos_y.tolist()) for c, x in zip(cols.tolist(), pos_x.tolist())]
    assert product == otbtf_scan(width, height, psize, step, offx, offy, nodata)


@pytest.fixture
def workdir(tmp_path):
    counter = itertools.count()
    return lambda name: str(tmp_path / f"{next(counter)}-{name}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), width=st.integers(1, 24), height=st.integers(1, 24), step=st.integers(1, 6),
       offx=st.integers(-8, 8), offy=st.integers(-8, 8), case=st.sampled_from(["nodata", "mask", "both", "none"]),
       nodata=st.sampled_from([-1.0, 0.0, float("nan")]), ram=st.sampled_from([None, 0.0002]))
def test_accepted_points_are_otbtf_scan_and_erosion(workdir, data, width, height, step, offx, offy, case, nodata,
                                                    ram):
    psize = data.draw(st.integers(1, min(width, height)))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    pixels = rng.integers(1, 5, (2, height, width)).astype(np.float32)
    for row, col, h, w in data.draw(rectangles(height, width, 4)):
        pixels[:, row:row + h, col:col + w] = nodata  # every band: invalid
    pixels[0, rng.random((height, width)) < 0.2] = nodata  # one band only: still valid
    mask = rng.choice(np.array([0, 1, 2, 1, 1], np.uint8), (height, width))
    use_nodata, use_mask = case in ("nodata", "both"), case in ("mask", "both")
    image = RasterSource(write_raster(workdir("in.tif"), pixels))
    mask_source = RasterSource(write_raster(workdir("mask.tif"), mask)) if use_mask else None

    found = sel.select_patches(image, psize, step, (offx, offy), nodata if use_nodata else None, mask_source,
                               ram_mb=ram, workers=2)

    r = psize // 2
    same = np.isnan(pixels) if math.isnan(nodata) else pixels == nodata
    valid = ~same.all(axis=0) & ((mask != 0) if use_mask else True)
    expected = []
    for row, col, pos_y, pos_x in otbtf_scan(width, height, psize, step, offx, offy, use_nodata):
        if use_nodata:
            inside = r <= row < height - r and r <= col < width - r
            ok = inside and valid[row - r:row + r + 1, col - r:col + r + 1].all()
        elif use_mask:
            ok = mask[row, col] == 1
        else:
            ok = True
        if ok:
            expected.append((row, col, pos_y, pos_x))
    got = list(zip(found.rows.tolist(), found.cols.tolist(), found.position_y.tolist(), found.position_x.tolist()))
    assert got == expected


def test_many_strips_give_the_same_points_as_one(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 2, (3, 300, 200)).astype(np.float32)
    pixels[0] = np.where(rng.random((300, 200)) < 0.002, 0, 1)  # all bands 0 only at a few pixels
    pixels[:, 100:180, 40:90] = 0
    image = RasterSource(write_raster(tmp_path / "a.tif", pixels))
    one = sel.select_patches(image, 8, 5, nodata=0.0, ram_mb=64)
    many = sel.select_patches(image, 8, 5, nodata=0.0, ram_mb=0.01, workers=3)
    assert 0 < len(many) < many.tested
    for name in ("rows", "cols", "position_y", "position_x"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))


# --- points -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("psize", [5, 6])
@pytest.mark.parametrize("sy", [-2.0, 3.0])
def test_point_placement_and_patchesextraction_symmetry(psize, sy):
    grid = Grid.from_transform(Affine(2.0, 0, 100.0, 0, sy, 500.0), 40, 30)
    rows, cols = np.array([7, 12]), np.array([9, 20])
    x, y = sel.patch_points(grid, rows, cols, psize)
    r = psize // 2
    if psize % 2:
        np.testing.assert_array_equal(x, grid.x.point(cols))
        np.testing.assert_array_equal(y, grid.y.point(rows))
    else:
        np.testing.assert_array_equal(x, grid.x.point(cols) - 1.0)
        np.testing.assert_array_equal(y, grid.y.point(rows) - abs(sy) / 2)
    # PatchesExtraction: index by half-up rounding, start = index - psize // 2; the patch centre is the point.
    col0, row0 = grid.x.index(x) - r, grid.y.index(y) - r
    np.testing.assert_allclose(grid.x.point(col0 + (psize - 1) / 2), x)
    np.testing.assert_allclose(grid.y.point(row0 + (psize - 1) / 2), y)
    if psize % 2 == 0 and sy < 0:  # north-up even patch: [c - r, c + r - 1] x [row - r + 1, row + r]
        assert col0.tolist() == (cols - r).tolist() and row0.tolist() == (rows - r + 1).tolist()


# --- split scheduler -----------------------------------------------------------------------------------------


def test_split_sequence_of_the_issue():
    assert sel.split_schedule([50, 25, 25], 100, 9).tolist() == [0, 1, 2, 0, 0, 1, 2, 0, 0]


@settings(max_examples=200, deadline=None)
@given(props=st.lists(st.sampled_from([0.0, 1.0, 3.0, 10.0, 25.0, 33.3, 50.0, 0.7]), min_size=3, max_size=3)
       .filter(any), total=st.integers(1, 300), data=st.data(), chunk=st.integers(1, 50))
def test_split_schedule_is_otbtf_loop(props, total, data, chunk):
    count = data.draw(st.integers(0, total))
    assert sel.split_schedule(props, total, count, chunk=chunk).tolist() == scheduler_loop(props, total, count)


def test_split_shuffle_is_seeded_and_a_permutation():
    plain = sel.split_groups([50, 25, 25], 400, 400)
    a = sel.split_groups([50, 25, 25], 400, 400, shuffle=True, seed=5)
    assert a.tolist() == sel.split_groups([50, 25, 25], 400, 400, shuffle=True, seed=5).tolist()
    assert a.tolist() != sel.split_groups([50, 25, 25], 400, 400, shuffle=True, seed=6).tolist()
    assert sorted(a.tolist()) == sorted(plain.tolist()) and a.tolist() != plain.tolist()
    assert sel.split_groups([50, 25, 25], 400, 7, shuffle=True, seed=5).tolist() == a[:7].tolist()


def test_chessboard_groups_follow_cpp_remainders():
    px, py = np.array([-1, -1, 0, 1, 2]), np.array([-1, 0, 0, 0, 3])
    assert sel.chessboard_groups(px, py).tolist() == [cpp_mod(a + b, 2) for a, b in zip(px, py)] == [0, -1, 0, 1, 1]


# --- the app -------------------------------------------------------------------------------------------------


def test_split_app_writes_the_issue_sequence(tmp_path, capsys):
    image = image_file(tmp_path / "a.tif", 30, 30)  # psize 1, step 10: candidates 1, 11, 21 on each axis
    out = {name: str(tmp_path / f"{name}.gpkg") for name in ("train", "valid", "test")}
    status, err = run(["-in", image, "-grid.step", 10, "-grid.psize", 1, "-strategy", "split",
                       "-outtrain", out["train"], "-outvalid", out["valid"], "-outtest", out["test"]], capsys)
    assert status == 0, err
    assert "9 of 9 grid positions kept" in err
    ids = {name: read_points(path)[2] for name, path in out.items()}
    assert ids == {"train": [0, 3, 4, 7, 8], "valid": [1, 5], "test": [2, 6]}
    x, y, _, crs = read_points(out["train"])
    centres = [(ORIGIN[0] + (c + 0.5) * SPACING, ORIGIN[1] - (r + 0.5) * SPACING)
               for r, c in itertools.product([1, 11, 21], repeat=2)]
    assert list(zip(x, y)) == [centres[i] for i in (0, 3, 4, 7, 8)]
    assert crs.to_epsg() == 32631


def test_split_forces_proportions_of_missing_outputs_to_zero(tmp_path):
    image = image_file(tmp_path / "a.tif", 30, 30)
    result = PatchesSelection(in_=image, grid_step=10, grid_psize=1, strategy="split",
                              outtrain=tmp_path / "t.gpkg", outtest=tmp_path / "x.geojson")
    assert result.group.tolist() == scheduler_loop([50, 0, 25], 16, 9)
    assert set(result.group.tolist()) == {0, 2}
    assert read_points(tmp_path / "x.geojson")[2] == [i for i, g in enumerate(result.group) if g == 2]


def test_chessboard_app_ids_and_the_step_one_corner(tmp_path):
    image = image_file(tmp_path / "a.tif", 4, 3)
    with pytest.warns(UserWarning, match="outtest: unused with strategy chessboard"):
        result = PatchesSelection(in_=image, grid_step=1, grid_psize=1, outtrain=tmp_path / "t.gpkg",
                                  outvalid=tmp_path / "v.shp", outtest=tmp_path / "x.gpkg")
    assert not os.path.exists(tmp_path / "x.gpkg")
    positions = [(py, px) for py in (-1, 0, 1) for px in (-1, 0, 1, 2)]
    groups = [cpp_mod(px + py, 2) for py, px in positions]
    assert result.group.tolist() == groups and -1 in groups
    assert read_points(tmp_path / "t.gpkg")[2] == [i for i, g in enumerate(groups) if g == 0]
    assert read_points(tmp_path / "v.shp")[2] == [i for i, g in enumerate(groups) if g == 1]


def test_all_strategy_and_output_without_extension(tmp_path):
    image = image_file(tmp_path / "a.tif", 20, 20)
    with pytest.warns(UserWarning, match="outvalid: unused with strategy all"):
        result = PatchesSelection(in_=image, grid_step=4, grid_psize=2, strategy="all", outtrain=tmp_path / "pts",
                                  outvalid=tmp_path / "v.gpkg")
    assert vector.vector_info(tmp_path / "pts", "outtrain")["driver"] == "GPKG"
    x, y, ids, _ = read_points(tmp_path / "pts")
    assert ids == list(range(len(result))) and not os.path.exists(tmp_path / "v.gpkg")
    # even psize: the lower-left corner of the pixel (r = 1: candidates 2, 6, 10, 14, 18)
    assert x[0] == ORIGIN[0] + 2 * SPACING and y[0] == ORIGIN[1] - 3 * SPACING


def test_python_entry_without_outputs_returns_the_selection(tmp_path):
    image = image_file(tmp_path / "a.tif", 20, 20)
    result = PatchesSelection({"in": image, "grid.step": 5, "grid.psize": 3})
    assert isinstance(result, sel.Selection) and len(result) == 16 and os.listdir(tmp_path) == ["a.tif"]
    assert result.count("train") + result.count("valid") == 16


# --- errors --------------------------------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path):
    image = image_file(tmp_path / "a.tif", 20, 10)
    return tmp_path, image


@pytest.mark.parametrize("extra, message", [
    (["-mask", "small.tif"], r'^mask: ".*small.tif" is 5x5 pixels but in ".*a.tif" is 20x10; expected the same size'),
    (["-grid.psize", 11], r'^grid.psize: a 11x11 patch does not fit in ".*a.tif" \(20x10 pixels\)'),
    (["-strategy", "split", "-strategy.split.trainprop", 0],
     r"^strategy.split.trainprop: the proportions of the outputs given are all 0"),
    (["-outvalid", "v.xyz"], r'^outvalid: cannot write ".*v.xyz": unknown vector format "\.xyz"'),
    (["-nodata", 2], r'^in: no patch kept in ".*a.tif" \(20x10 pixels\): all \d+ grid positions rejected \(each 3x3'),
    (["-grid.offsetx", -3, "-grid.step", 5], r"^grid.step: no grid position fits in"),
    (["-strategy", "balanced", "-strategy.balanced.nclasses", 2, "-strategy.balanced.labelimage", "small.tif"],
     r'^strategy.balanced.labelimage: ".*small.tif" is 5x5 pixels but in ".*a.tif" is 20x10'),
    (["-strategy", "balanced", "-strategy.balanced.nclasses", 2, "-strategy.balanced.labelimage", "a.tif"],
     r"^strategy.balanced.labelimage: \".*a.tif\" holds the label 2 in the patch at rows 1..3, cols 1..3; "
     r"expected integers 0..1"),
])
def test_errors_are_one_line_naming_the_parameter(inputs, capsys, extra, message):
    folder, image = inputs
    image_file(folder / "small.tif", 5, 5)
    write_raster(folder / "a.tif", np.full((1, 10, 20), 2, np.float32), spacing=SPACING, origin=ORIGIN)
    argv = ["-in", image, "-grid.step", 3, "-grid.psize", 3, "-outtrain", folder / "t.gpkg"]
    extra = [folder / e if isinstance(e, str) and e.endswith((".tif", ".xyz")) else e for e in extra]
    for key, value in zip(extra[::2], extra[1::2]):
        if key in argv:
            argv[argv.index(key) + 1] = value
        else:
            argv += [key, value]
    status, err = run(argv, capsys)
    assert status == 1
    assert len(err.splitlines()) == 1, err
    line = err
    assert re.search(message, line.removeprefix("PatchesSelection: error: ")), line
    assert sorted(os.listdir(folder)) == ["a.tif", "small.tif"]


# --- balanced ------------------------------------------------------------------------------------------------


def cosine_to_uniform(h):
    return h.sum() / (np.linalg.norm(h) * math.sqrt(len(h)))


def test_balanced_keeps_valid_points_split_by_colour_and_closer_to_uniform(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.zeros((80, 80), np.uint8)
    labels[10:25, 5:40] = 1
    labels[50:60, 50:58] = 2
    labels[rng.random(labels.shape) < 0.02] = 2
    pixels = np.ones((1, 80, 80), np.float32)
    pixels[0, 30:45, 60:80] = -9  # no-data
    image = write_raster(tmp_path / "a.tif", pixels, spacing=SPACING, origin=ORIGIN)
    label_image = write_raster(tmp_path / "l.tif", labels, spacing=SPACING, origin=ORIGIN)
    result = PatchesSelection(in_=image, nodata=-9, grid_step=2, grid_psize=4, strategy="balanced",
                              strategy_balanced_nclasses=3, strategy_balanced_labelimage=label_image,
                              outtrain=tmp_path / "t.gpkg", outvalid=tmp_path / "v.gpkg")
    everything = PatchesSelection(in_=image, nodata=-9, grid_step=2, grid_psize=4)
    grid = Grid.from_transform(Affine(SPACING, 0, ORIGIN[0], 0, -SPACING, ORIGIN[1]), 80, 80)

    def histogram(x, y):
        col, row = grid.x.index(x) - 2, grid.y.index(y) - 2
        return np.bincount(labels[row:row + 4, col:col + 4].ravel(), minlength=3)

    candidates = set(zip(everything.x.tolist(), everything.y.tolist()))
    kept = list(zip(result.x.tolist(), result.y.tolist()))
    assert 0 < len(kept) < len(candidates) and set(kept) <= candidates and len(set(kept)) == len(kept)
    for x, y in kept:  # every kept patch is free of no-data
        col, row = grid.x.index(x) - 2, grid.y.index(y) - 2
        assert (pixels[0, row:row + 4, col:col + 4] != -9).all()
    colour = {(x, y): g for x, y, g in zip(everything.x.tolist(), everything.y.tolist(), everything.group.tolist())}
    assert result.group.tolist() == [colour[p] for p in kept]
    all_hist = sum(histogram(x, y) for x, y in candidates)
    kept_hist = sum(histogram(x, y) for x, y in kept)
    assert cosine_to_uniform(kept_hist) > cosine_to_uniform(all_hist) + 0.05
    train = read_points(tmp_path / "t.gpkg")
    valid = read_points(tmp_path / "v.gpkg")
    assert sorted(train[2] + valid[2]) == list(range(len(kept)))
    assert [(x, y) for x, y, i in zip(train[0], train[1], train[2])] == [kept[i] for i in train[2]]


def balanced_loop(hists, px, py, sp):
    """OTBTF's SampleBalanced steps 2-4 as its loops (a stable sort by float64 cosine, exact rises)."""
    q = int(1.0 / float(np.sqrt(np.float32(sp))))
    seed = [k for k in range(len(hists)) if cpp_mod(px[k], q) + cpp_mod(py[k], q) == 0]
    others = [k for k in range(len(hists)) if k not in seed]
    removed = math.trunc(float(np.float32(len(seed)) - np.float32(sp) * np.float32(len(hists))))
    if removed > 0:
        rate, step, kept = np.float32(np.float32(len(seed)) / np.float32(removed)), np.float32(0), []
        for k in seed:
            if step >= rate:
                step = np.float32(np.fmod(step, rate))
            else:
                kept.append(k)
            step = np.float32(step + np.float32(1))
        seed = kept
    total = sum((hists[k] for k in seed), np.zeros(hists.shape[1], np.int64))

    def cos2(a, b):  # the squared cosine, exactly (|b| is common to all): equal cosines are exact ties
        return Fraction(int(a @ b) ** 2, int(a @ a)) if a.any() else Fraction(0)

    others.sort(key=lambda k: -cos2(hists[k], total))
    best, out = Fraction(0), list(seed)
    while others:
        k = others[-1]
        total = total + hists[k]
        squared = Fraction(int(total.sum()) ** 2, int((total * total).sum()) * hists.shape[1])  # cos² to uniform
        if not squared > best:
            break
        best = squared
        out.append(others.pop())
    return out


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 60), classes=st.integers(2, 4), sp=st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0]),
       seed=st.integers(0, 10_000), chunk=st.integers(1, 8))
def test_balanced_selection_is_otbtf_loop(n, classes, sp, seed, chunk):
    rng = np.random.default_rng(seed)
    # like patch histograms, every row sums to the patch's pixel count, so equal cosines mean equal rows
    hists = rng.multinomial(int(rng.integers(1, 10)), rng.dirichlet(np.ones(classes) * 0.5), n)
    width = int(rng.integers(1, 9))
    px, py = np.arange(n) % width, np.arange(n) // width
    got = sel.balanced_selection(hists, px, py, sp, chunk=chunk).tolist()
    assert got == balanced_loop(hists, px.tolist(), py.tolist(), sp)


def test_mask_without_nodata_keeps_value_one_and_points_on_the_grid_of_in(tmp_path):
    image = image_file(tmp_path / "a.tif", 12, 12)
    mask = np.ones((12, 12), np.uint8)
    mask[:, :6] = 2  # valid for erosion (not 0) but not 1
    mask_file = write_raster(tmp_path / "m.tif", mask, origin=(100.0, 50.0), spacing=1.0)  # elsewhere
    result = PatchesSelection(in_=image, mask=mask_file, grid_step=3, grid_psize=1)
    cols = [1, 4, 7, 10]
    kept = [(r, c) for r in cols for c in cols if c >= 6]
    assert list(zip(result.x.tolist(), result.y.tolist())) == [
        (ORIGIN[0] + (c + 0.5) * SPACING, ORIGIN[1] - (r + 0.5) * SPACING) for r, c in kept]
    with_nodata = PatchesSelection(in_=image, mask=mask_file, nodata=-5, grid_step=3, grid_psize=1)
    assert len(with_nodata) == 16  # with nodata the mask only zeroes: 2 is valid


def test_random_split_from_the_command_line_is_seeded(tmp_path, capsys):
    image = image_file(tmp_path / "a.tif", 40, 40)
    ids = []
    for seed, name in ((1, "a"), (1, "b"), (2, "c")):
        argv = ["-in", image, "-grid.step", 2, "-grid.psize", 1, "-strategy", "split", "-strategy.split.random", "on",
                "-strategy.split.seed", seed, "-outtrain", tmp_path / f"{name}.gpkg",
                "-outvalid", tmp_path / f"{name}v.gpkg"]
        assert run(argv, capsys)[0] == 0
        ids.append(read_points(tmp_path / f"{name}.gpkg")[2])
    assert ids[0] == ids[1] != ids[2]
    plain = PatchesSelection(in_=image, grid_step=2, grid_psize=1, strategy="split", outtrain=tmp_path / "p.gpkg",
                             outvalid=tmp_path / "pv.gpkg")
    assert ids[0] != read_points(tmp_path / "p.gpkg")[2] == np.flatnonzero(plain.group == 0).tolist()
