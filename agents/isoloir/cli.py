"""The `isoloir` command.

Each part of the kit registers its own sub-command in a module listed in
COMMAND_MODULES; a module exposes `register(subparsers)` and sets
`func(args) -> int` on its parsers. Adding a command is adding one line here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from isoloir import __version__

COMMAND_MODULES = [
    "isoloir.policy.cli",
    "isoloir.infra.cli",
    "isoloir.retention.cli",
    "isoloir.daemon",
    "isoloir.alerts.cli",
    "isoloir.exposure.cli",
    "isoloir.preflight",
    "isoloir.deploy",
    "isoloir.demo",
    "isoloir.mailguard.cli",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isoloir",
        description="Protect the personal data of a political campaign.",
    )
    parser.add_argument("--version", action="version", version=f"isoloir {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
