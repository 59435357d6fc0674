"""``python -m lastexp.export``: see :mod:`lastexp.export.cli`."""

import sys

from lastexp.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
