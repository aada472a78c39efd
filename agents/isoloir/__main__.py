"""`python -m isoloir`: the `isoloir` command (CLI review N9: it failed with
"No module named isoloir.__main__" where the console script is not on PATH)."""

from __future__ import annotations

import sys

from isoloir.cli import main

if __name__ == "__main__":
    sys.exit(main())
