"""Thin applications with OTB's names and parameters: each is a parameter table, a build step and a write step.

``eotensor.apps.registry`` lists them without importing them; ``eotensor.apps.cli`` is the ``eotensor`` command.
"""
