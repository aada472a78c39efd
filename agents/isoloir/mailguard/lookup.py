"""The guard's copy of the suppression list (security N1).

The guard runs as its own user (`isoloir-mail`), which cannot read the agents'
state, so the agents export the suppression list's digests into the guard's
directory: `isoloir mailguard sync`, run by the agents' user every minute and
whenever the list changes (isoloir-mailguard-sync.timer and .path). The export
holds the `suppressed` table's kind and digest columns and the key's
identifier, nothing else; it is written in the agents' own temporary
directory, then copied into `<state>/mailguard/` by directory descriptor
(no symlink there is ever followed) and renamed over the previous one.

The guard opens the newest export read-only and immutable, and opens it again
when the file is replaced. No export, or one made with another key: the guard
defers every message (451), never delivers unchecked.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import urllib.parse
from pathlib import Path

from isoloir.retention.suppression import (
    SuppressionError,
    SuppressionList,
    key_id,
)
from isoloir.retention.suppression import db_path as suppression_path

EXPORT_NAME = "suppressed.sqlite"
EXPORT_MODE = 0o644  # the guard is neither owner nor group; the directory (2770) keeps others out


def export_path(state_dir: Path) -> Path:
    return state_dir / "mailguard" / EXPORT_NAME


def export(state_dir: Path, key: bytes) -> int:
    """Write the guard's copy of the suppression list; the number of entries.

    Run as the agents' user. No list yet: an empty copy (the guard then knows
    that nobody is suppressed, rather than that it knows nothing)."""
    source = suppression_path(state_dir)
    rows: list[tuple[str, str]] = []
    if source.exists():
        store = SuppressionList.for_filtering(source, key)
        try:
            rows = [
                (str(k), str(d))
                for k, d in store._db.execute("SELECT kind, digest FROM suppressed")
            ]
        finally:
            store.close()
    work = state_dir / "tmp"
    work.mkdir(mode=0o700, exist_ok=True)
    built = work / f".guard-export-{secrets.token_hex(8)}.sqlite"
    db = sqlite3.connect(built, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute(
            "CREATE TABLE suppressed (kind TEXT NOT NULL, digest TEXT NOT NULL,"
            " PRIMARY KEY (kind, digest)) WITHOUT ROWID"
        )
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO suppressed VALUES (?, ?)", rows)
        db.execute("INSERT INTO meta VALUES ('key_id', ?)", (key_id(key),))
        db.execute("COMMIT")
    finally:
        db.close()
    try:
        _install(built.read_bytes(), export_path(state_dir))
    finally:
        built.unlink(missing_ok=True)
    return len(rows)


def _install(data: bytes, target: Path) -> None:
    """`data` as `target`, written through a descriptor of its directory: a new
    file (O_EXCL, O_NOFOLLOW), then renamed over the old one."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    parent = os.open(target.parent, flags)
    try:
        temp = f".{target.name}.{secrets.token_hex(8)}"
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            EXPORT_MODE,
            dir_fd=parent,
        )
        try:
            os.fchmod(fd, EXPORT_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(temp, target.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            os.unlink(temp, dir_fd=parent)
            raise
    finally:
        os.close(parent)


class Snapshot:
    """The newest export, read-only; asks like `SuppressionList` (contains, digest)."""

    def __init__(self, state_dir: Path, key: bytes) -> None:
        self.path = export_path(state_dir)
        self._key = key
        self._seen: tuple[int, int, int] | None = None
        self._store: SuppressionList | None = None

    def _current(self) -> SuppressionList:
        st = os.stat(self.path)  # FileNotFoundError: no export yet, the guard defers
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._store is None or seen != self._seen:
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            row = db.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
            if row is None or row[0] != key_id(self._key):
                db.close()
                raise SuppressionError(f"{self.path} was made with another key")
            self.close()
            self._store = SuppressionList(self.path, self._key, _db=db)
            self._seen = seen
        return self._store

    def contains(self, email: str | None, phone: str | None) -> bool:
        return self._current().contains(email, phone)

    def digest(self, kind: str, value: str) -> str:
        return self._current().digest(kind, value)

    def count(self) -> int:
        return self._current().count()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
