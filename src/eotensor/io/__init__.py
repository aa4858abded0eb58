"""Raster input and output: reading sources window by window, writing outputs atomically."""
