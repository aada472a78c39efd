"""Runtime settings of the agents (not policies): where the rendered config,
the state and the secrets live. See docs/contracts.md."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/isoloir/agent.json")
DEFAULT_STATE_DIR = Path("/var/lib/isoloir")
DEFAULT_SECRETS_DIR = Path("/etc/isoloir/secrets")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("ISOLOIR_CONFIG") or DEFAULT_CONFIG)


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("ISOLOIR_STATE_DIR") or DEFAULT_STATE_DIR)


def secrets_dir() -> Path:
    return Path(os.environ.get("ISOLOIR_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--config` and `--state-dir` flags every agent command takes."""
    parser.add_argument(
        "--config",
        help="rendered agent config (default: $ISOLOIR_CONFIG or /etc/isoloir/agent.json)",
    )
    parser.add_argument(
        "--state-dir",
        help="agent state directory (default: $ISOLOIR_STATE_DIR or /var/lib/isoloir)",
    )
