"""``python -m runtime.evaluate``: the CLI (``runtime/_evaluate.py``). Never import this module: ``runtime.evaluate`` is the function."""

import sys

from runtime._evaluate import main

if __name__ == "__main__":
    sys.exit(main())
