"""The guard's decision log: counts only (never an address, subject or name).

`<state>/mailguard/decisions.sqlite`, one row per message: time, action, rule,
election, recipients, dropped, held. `isoloir status` shows the last 24 hours.
Each call opens its own connection, so the relay's threads may all record.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isoloir.mailguard.guard import Verdict

DB_NAME = "decisions.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS decisions ("
    " at TEXT NOT NULL, action TEXT NOT NULL, rule TEXT NOT NULL, election TEXT,"
    " recipients INTEGER NOT NULL, dropped INTEGER NOT NULL, held INTEGER NOT NULL)"
)


def db_path(state_dir: Path) -> Path:
    return state_dir / "mailguard" / DB_NAME


def record(state_dir: Path, verdict: Verdict, *, now: datetime) -> None:
    """Append one decision (counts only)."""
    path = db_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now.astimezone(UTC).isoformat(),
                verdict.action,
                verdict.rule,
                verdict.election,
                int(verdict.counts.get("recipients", 0)),
                len(verdict.drop),
                1 if verdict.action == "hold" else 0,
            ),
        )
    finally:
        db.close()


def summary(state_dir: Path, since: datetime) -> dict[str, Any]:
    """Decisions since `since`: per action, per rule, dropped recipients, messages.

    Read-only; an absent log gives zeros (never creates it).
    """
    out: dict[str, Any] = {"messages": 0, "actions": {}, "rules": {}, "dropped": 0, "held": 0}
    path = db_path(state_dir)
    if not path.is_file():
        return out
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)
    try:
        stamp = since.astimezone(UTC).isoformat()
        for column, key in (("action", "actions"), ("rule", "rules")):
            rows = db.execute(
                f"SELECT {column}, COUNT(*) FROM decisions WHERE at >= ? GROUP BY {column}",  # noqa: S608 - fixed names
                (stamp,),
            )
            out[key] = {str(name): int(n) for name, n in rows}
        row = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(dropped), 0), COALESCE(SUM(held), 0)"
            " FROM decisions WHERE at >= ?",
            (stamp,),
        ).fetchone()
        out["messages"], out["dropped"], out["held"] = int(row[0]), int(row[1]), int(row[2])
    except sqlite3.OperationalError:  # no table yet
        pass
    finally:
        db.close()
    return out

