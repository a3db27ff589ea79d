"""``python -m runtime.infer``: the CLI (``runtime/_cli.py``). Never import this module: ``runtime.infer`` is the function."""

import sys

from runtime._cli import main

if __name__ == "__main__":
    sys.exit(main())
