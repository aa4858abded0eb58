"""Execution: bind a model to its sources (serve), plan tiles (tiling) and run them (run)."""
