"""Thin applications with OTB's names and parameters; each is a parameter table plus one run function."""
