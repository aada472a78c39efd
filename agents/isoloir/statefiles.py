"""The agents' state files: one that is corrupt is named, with what to do, never a traceback.

A truncated or overwritten SQLite file (the alert spool, the retention journal,
the suppression list, the exposure journal) or JSON record (the daemon's
runs.json and heartbeat) raises StateError: the file, what is wrong, and what
moving it aside loses. The CLI prints it as one `error:` line and exits 2.
"""

from __future__ import annotations

import json
import math
import os
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


def load_record(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """A small JSON record an administrator's command keeps (accepted losses,
    reviews): {} when absent; `error` naming the file when unreadable (never a
    symbolic link followed, never a FIFO waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(16 * 1024 * 1024)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{path} is not a JSON document") from None
    if not isinstance(document, dict):
        raise error(f"{path} is not a record of {what}")
    return document


def write_record(target: Path, document: dict[str, Any]) -> None:
    """Written whole to a temporary file (0600) renamed over `target`: a reader
    sees the old record or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write((json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def finite(value: Any) -> float | None:
    """A finite number from a state file (a time, an age), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
