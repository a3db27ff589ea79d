"""``python -m export.build``: the command-line front end of :func:`export.build`."""

import sys

from export._build import main

if __name__ == "__main__":
    sys.exit(main())
