"""Serve the benchmark U-Net over a window; print total vs in-model seconds as JSON on stderr."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import cnn_main  # noqa: E402

if __name__ == "__main__":
    cnn_main()
