"""The agents' state files: one that is corrupt is named, with what to do, never a traceback.

A truncated or overwritten SQLite file (the alert spool, the retention journal,
the suppression list, the exposure journal) or JSON record (the daemon's
runs.json and heartbeat) raises StateError: the file, what is wrong, and what
moving it aside loses. The CLI prints it as one `error:` line and exits 2.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any


class StateError(RuntimeError):
    """A state file of the agents cannot be used; the message names it."""


def corrupt_db(path: Path, exc: sqlite3.Error, lost: str) -> StateError:
    return StateError(
        f"{path}: not a usable SQLite database ({exc}; corrupt or not a database?): move it "
        f"aside (mv {path} {path}.corrupt) and run again; {lost}"
    )


def read_json(path: Path, lost: str) -> Any:
    """The JSON content of a state file; None when it does not exist; StateError otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StateError(f"{path}: cannot be read ({reason}); {lost}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise StateError(
            f"{path}: not valid JSON (truncated or overwritten?): move it aside and run again; "
            f"{lost}"
        ) from None


def finite(value: Any) -> float | None:
    """A finite number from a state file (a time, an age), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
