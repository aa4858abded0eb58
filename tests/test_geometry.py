"""OTBTF's serving geometry: every worked example of the behaviour reference §2.8, plus the edge cases."""

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from eotensor.errors import GeometryError
from eotensor.geometry import Grid, Window
from eotensor.geometry.fields import Fields, aligned_window, input_region, output_grid


def north_up(size, spacing=1.0, x0=0.0, y0=None, height=None):
    height = size if height is None else height
    y0 = height * spacing if y0 is None else y0
    return Grid.from_transform(Affine(spacing, 0, x0, 0, -spacing, y0), size, height, "EPSG:32631")


def cols(region):
    return region.window.col, region.window.col_stop


def test_grid_transform_roundtrip():
    t = Affine(10.0, 0, 600000.0, 0, -10.0, 5000040.0)
    g = Grid.from_transform(t, 100, 50)
    assert g.transform == t
    assert g.x.origin == 600005.0 and g.y.origin == 5000035.0
    assert g.x.index(600010.0) == 1  # a tie rounds half up
    assert g.y.index(5000030.0) == 1
    assert g.window(Window(2, 3, 4, 5)).transform == Affine(10.0, 0, 600030.0, 0, -10.0, 5000020.0)


def test_maggiori_fcn():
    src = north_up(1000)
    f = Fields(rfields=((80, 80),), efield=(16, 16), scale=1.0, fully_conv=True)
    out = output_grid([src], f)
    assert (out.width, out.height) == (928, 928)
    assert out.x.origin == src.x.point(32) and out.y.origin == src.y.point(32)
    assert (out.x.spacing, out.y.spacing) == (1.0, -1.0)
    assert cols(input_region(out, Window(0, 0, 16, 16), src, 1, f, src)) == (0, 80)
    assert cols(input_region(out, Window(0, 912, 16, 16), src, 1, f, src)) == (912, 992)
    assert aligned_window(Window(3, 5, 2, 20), f) == Window(0, 0, 16, 32)


def test_patch_based_cnn():
    src = north_up(1000)
    f = Fields(rfields=((16, 16),), fully_conv=False)
    out = output_grid([src], f)
    assert (out.width, out.height) == (985, 985)
    assert out.x.origin == src.x.point(8)
    region = input_region(out, Window(0, 0, 1, 1), src, 1, f, src)
    assert cols(region) == (0, 17) and region.crop == (1, 1, 0, 0)


def test_strided_cnn_scale_4():
    src = north_up(100)
    f = Fields(rfields=((16, 16),), efield=(1, 1), scale=4, fully_conv=True)
    out = output_grid([src], f)
    assert (out.width, out.x.spacing, out.y.spacing) == (21, 4.0, -4.0)
    assert out.x.origin == src.x.point(8)
    first = input_region(out, Window(0, 0, 1, 1), src, 1, f, src)
    assert cols(first) == (0, 18) and first.crop[1] == 1  # cropped from [-1, 18)
    assert cols(input_region(out, Window(0, 5, 1, 1), src, 1, f, src)) == (19, 38)


def test_xs_pan_fusion():
    xs = north_up(250, spacing=4.0)
    pan = north_up(1000, spacing=1.0)
    f = Fields(rfields=((8, 8), (32, 32)), efield=(1, 1), scale=1.0, fully_conv=True)
    out = output_grid([xs, pan], f)
    assert (out.width, out.height, out.x.spacing) == (242, 242, 4.0)
    block = Window(0, 0, 16, 16)
    assert input_region(out, block, xs, 1, f, xs).window.width == 23
    assert input_region(out, block, pan, 2, f, xs).window.width == 95


def test_super_resolution_x4():
    lr = north_up(1000, spacing=4.0)
    f = Fields(rfields=((128, 128),), efield=(512, 512), scale=0.25, fully_conv=True)
    out = output_grid([lr], f)
    assert (out.width, out.x.spacing) == (3584, 1.0)
    assert out.x.origin == lr.x.origin and out.y.origin == lr.y.origin  # first centre on LR pixel 0's centre
    region = input_region(out, Window(0, 0, 512, 512), lr, 1, f, lr)
    assert cols(region) == (0, 128) and region.crop == (0, 0, 0, 0)


def test_inconsistent_fields():
    src = north_up(100)
    f = Fields(rfields=((4, 4),), efield=(8, 8), fully_conv=True)
    out = output_grid([src], f)
    with pytest.raises(GeometryError, match=r"source1.rfieldx = 4 is inconsistent .* use source1.rfieldx >= 8"):
        input_region(out, Window(0, 0, 8, 8), src, 1, f, src)


def test_disjoint_sources_give_a_clear_error():
    far = north_up(100, x0=1000.0)
    with pytest.raises(GeometryError, match="output grid is empty along x"):
        output_grid([north_up(100), far], Fields(rfields=((1, 1), (1, 1)), fully_conv=True))


def test_efield_larger_than_the_image_is_inconsistent():
    # EF enlarges the grid (valid + EF - 1 pixels), so an EF that does not fit shows up as an RF/EF conflict.
    src = north_up(60)
    f = Fields(rfields=((16, 16),), efield=(64, 64), fully_conv=True)
    out = output_grid([src], f)
    assert out.width == 64
    with pytest.raises(GeometryError, match="inconsistent"):
        input_region(out, Window(0, 0, 64, 64), src, 1, f, src)


def test_rfield_larger_than_source():
    with pytest.raises(GeometryError, match="source2.rfieldx = 40 is larger than source2"):
        output_grid([north_up(100), north_up(30)], Fields(rfields=((1, 1), (40, 40))))


def test_patch_based_efield_is_rejected():
    with pytest.raises(GeometryError, match="patch-based"):
        Fields(rfields=((16, 16),), efield=(2, 2), fully_conv=False)


def test_fully_conv_needs_whole_pixels_per_block():
    with pytest.raises(GeometryError, match="use output.efieldx 2"):
        output_grid([north_up(100)], Fields(rfields=((8, 8),), efield=(1, 1), scale=0.5, fully_conv=True))
    coarse = north_up(50, spacing=2.0)
    with pytest.raises(GeometryError, match="source2"):
        output_grid([north_up(100), coarse], Fields(rfields=((1, 1), (3, 3)), efield=(1, 1), fully_conv=True))


def test_patch_based_super_resolution_drops_last_row_and_column():
    src = north_up(20)
    f = Fields(rfields=((4, 4),), scale=0.5, fully_conv=False)
    out = output_grid([src], f)
    # 17 valid centres x 2 output pixels each, minus the last one whose centre sits on the valid edge.
    assert out.width == 33 and out.height == 33


def test_one_pixel_region_moves_outward():
    # EF 1, coarser output (S = 4): both points of a one-pixel region coincide and take OTBTF's "else" branch.
    src = north_up(100)
    f = Fields(rfields=((4, 4),), scale=4, fully_conv=True)
    out = output_grid([src], f)
    region = input_region(out, Window(2, 2, 1, 1), src, 1, f, src)
    assert region.window.width == 4 + 3 and region.window.height == 7


def test_fc_grid_snaps_to_every_source():
    a = north_up(100)
    b = north_up(100, x0=0.5)  # shifted by half a pixel
    out = output_grid([a, b], Fields(rfields=((1, 1), (1, 1)), fully_conv=True))
    # x extent [0.5, 100): snapped up to a's grid (1.0) and down to b's (99.5)
    assert out.x.origin == 1.5 and out.width == 98
    patch = output_grid([a, b], Fields(rfields=((1, 1), (1, 1)), fully_conv=False))
    assert patch.x.origin == 1.0 and patch.width == 99


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_box_counts_equal_the_brute_force_sum_over_any_boxes(rows, cols, seed):
    from eotensor.geometry.boxes import BoxCounts

    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < 0.4
    r0, c0 = rng.integers(-3, rows + 3, 20), rng.integers(-3, cols + 3, 20)
    r1, c1 = r0 + rng.integers(-2, 8, 20), c0 + rng.integers(-2, 8, 20)
    expected = [mask[max(a, 0):max(b, 0), max(c, 0):max(d, 0)].sum() for a, b, c, d in zip(r0, r1, c0, c1)]
    assert BoxCounts(mask).count(r0, r1, c0, c1).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 25), st.sampled_from(["1/4", "1/2", "1", "2", "4", "1/3", "3"]), st.integers(1, 3))
def test_axis_fields_are_solved_back_from_the_sizes_they_give(rfield, scale, multiple):
    from fractions import Fraction

    from eotensor.geometry.fields import solve_axis_fields

    scale = Fraction(scale)
    efield = scale.denominator * multiple
    sizes = [(n, efield * ((n - rfield) // (efield * scale) + 1)) for n in [*range(64, 80), 576]]
    solved = solve_axis_fields(sizes)
    assert (solved.rfield, solved.efield, solved.scale) == (rfield, efield, scale)


def test_axis_fields_refuse_sizes_that_follow_no_rule():
    from eotensor.geometry.fields import solve_axis_fields

    assert solve_axis_fields([(n, n * n) for n in range(10, 20)]) is None
    assert solve_axis_fields([(n, 7) for n in range(10, 20)]) is None
