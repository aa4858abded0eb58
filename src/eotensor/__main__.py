"""``python -m eotensor APP -key value ...``: the same as the ``eotensor`` command."""

import sys

from eotensor.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
