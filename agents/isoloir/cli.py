"""The `isoloir` command.

Each part of the kit registers its own sub-command in a module listed in
COMMAND_MODULES; a module exposes `register(subparsers)` and sets
`func(args) -> int` on its parsers. Adding a command is adding one line here.
The controller's commands (deploy, demo, audit, infra, preflight) are absent on a
file-share host, whose wheel has no `isoloir.controller`: they are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from isoloir import __version__
from isoloir.statefiles import StateError

CONTROLLER = "isoloir.controller"
COMMAND_MODULES = [
    "isoloir.policy.cli",
    "isoloir.controller.infra.cli",
    "isoloir.retention.cli",
    "isoloir.daemon",
    "isoloir.alerts.cli",
    "isoloir.exposure.cli",
    "isoloir.controller.preflight",
    "isoloir.controller.deploy",
    "isoloir.controller.demo",
    "isoloir.controller.audit",
    "isoloir.mailguard.cli",
    "isoloir.dpo.cli",
    "isoloir.phonebank.cli",
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
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A file-share host has no controller (its wheel is built without it).
            if name.startswith(CONTROLLER) and (exc.name or "").startswith(CONTROLLER):
                continue
            raise
        module.register(subparsers)
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
    except StateError as exc:  # a corrupt state file: named, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
