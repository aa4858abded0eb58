"""Pure geometry: grids, windows and OTBTF's receptive-field / expression-field arithmetic."""

from eotensor.geometry.grid import Axis, Grid, Window, align_span, align_window, as_window, round_up

__all__ = ["Axis", "Grid", "Window", "align_span", "align_window", "as_window", "round_up"]
