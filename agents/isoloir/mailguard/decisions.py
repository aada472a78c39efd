"""The guard's decision log: counts only (never an address, subject or name).

`<state>/mailguard/decisions.sqlite`, one row per message: time, action, rule,
election, recipients, dropped, held. `isoloir status` shows the last 24 hours.
Each call opens its own connection, so the relay's threads may all record.

Held messages are also kept by Postfix queue id until an administrator
releases or deletes them (`isoloir mailguard release|delete`): while one is
open, the scan job reports it as a likely breach (`mail_held_personal_data`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
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


_HELD_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS held ("
    " queue_id TEXT PRIMARY KEY, at TEXT NOT NULL, election TEXT,"
    " outside INTEGER NOT NULL, tables INTEGER NOT NULL,"
    " settled TEXT, settled_at TEXT)"
)


@dataclass(frozen=True)
class Held:
    """A message in the hold queue (counts only)."""

    queue_id: str
    at: datetime
    election: str | None
    outside: int  # recipients outside the party's domains
    tables: int  # attachments with personal data


_QUEUE_ID = re.compile(r"[0-9A-Za-z]{5,32}")


def db_path(state_dir: Path) -> Path:
    return state_dir / "mailguard" / DB_NAME


def record(state_dir: Path, verdict: Verdict, *, now: datetime) -> None:
    """Append one decision (counts only)."""
    db = _open(state_dir)
    try:
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
    db = _open_read_only(state_dir)
    if db is None:
        return out
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


def _open(state_dir: Path) -> sqlite3.Connection:
    """The log for writing, created with its tables when absent."""
    path = db_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        # A rollback journal, not WAL: the agents (another uid) read this log
        # with mode=ro, and WAL readers need a -shm file they can write.
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        db.execute(_HELD_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _open_read_only(state_dir: Path) -> sqlite3.Connection | None:
    """The log read-only, or None when there is none (never creates it)."""
    path = db_path(state_dir)
    if not path.is_file():
        return None
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)


def record_held(state_dir: Path, queue_id: str, verdict: Verdict, *, now: datetime) -> None:
    """Remember a message the guard put on hold, by its Postfix queue id."""
    counts = verdict.counts
    db = _open(state_dir)
    try:
        db.execute(
            "INSERT OR IGNORE INTO held (queue_id, at, election, outside, tables)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                queue_id,
                now.astimezone(UTC).isoformat(),
                verdict.election,
                int(counts.get("recipients_outside", 0)),
                int(counts.get("attachments_personal", 0)),
            ),
        )
    finally:
        db.close()


def settle(state_dir: Path, queue_id: str, how: str, *, now: datetime) -> None:
    """Mark a held message released or deleted.

    Called by `isoloir mailguard release|delete`, which run as root, in a
    directory the guard's user owns (security N4): every path component is
    opened with O_NOFOLLOW from a directory descriptor, `settled` must be a
    real directory, and the marker is a new file (O_EXCL): a symlink planted
    there is removed, never followed. A marker file, never a write into the
    guard's database (a root-owned journal would lock the guard out)."""
    if not _QUEUE_ID.fullmatch(queue_id):
        raise ValueError(f"{queue_id!r} is not a Postfix queue id")
    guard_dir = db_path(state_dir).parent
    if not guard_dir.is_dir():
        raise FileNotFoundError(f"{guard_dir} does not exist: is this the relay host?")
    top = _open_dir(guard_dir)
    try:
        try:
            os.mkdir(SETTLED, 0o755, dir_fd=top)
        except FileExistsError:
            pass
        settled = os.open(SETTLED, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    finally:
        os.close(top)
    try:
        text = f"{how} {now.astimezone(UTC).isoformat()}\n".encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(queue_id, flags, 0o644, dir_fd=settled)
        except FileExistsError:
            os.unlink(queue_id, dir_fd=settled)  # the entry itself, a link is not followed
            fd = os.open(queue_id, flags, 0o644, dir_fd=settled)
        try:
            os.write(fd, text)
        finally:
            os.close(fd)
    finally:
        os.close(settled)


SETTLED = "settled"


def _open_dir(path: Path) -> int:
    """A descriptor of `path`: its real path (the directories above the state
    directory are root's), then each component opened with O_NOFOLLOW, so a
    symlink swapped in below is refused, never followed."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        real = Path(os.path.realpath(path.parent)) / path.name
        for part in real.parts[1:]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_holds(state_dir: Path) -> list[Held]:
    """Held messages neither released nor deleted yet (read-only; [] without a log)."""
    db = _open_read_only(state_dir)
    if db is None:
        return []
    try:
        rows = db.execute(
            "SELECT queue_id, at, election, outside, tables FROM held"
            " WHERE settled IS NULL ORDER BY at"
        ).fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        db.close()
    settled = db_path(state_dir).parent / "settled"
    return [
        Held(str(q), datetime.fromisoformat(at), e, int(o), int(t))
        for q, at, e, o, t in rows
        if not (settled / str(q)).exists()
    ]
