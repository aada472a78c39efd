"""The suppression list: people who unsubscribed, kept as HMAC-SHA256 digests.

It lives in the agent's state directory (SQLite), outside every election, so an
opt-out survives the destruction of the file it was recorded in. Only digests
of normalised identifiers are stored (`email:` + lower-cased address,
`phone:` + E.164 number), keyed with the agent's secret: the list cannot be
read back into a contact file, only asked "is this person suppressed?".
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from isoloir.retention import tabular

DB_NAME = "suppression.sqlite"

# Column names tried, in order, when a prospect file does not name its columns.
EMAIL_NAMES = ("email", "e-mail", "courriel", "mail", "adresse_email", "adresse email")
PHONE_NAMES = ("telephone", "téléphone", "tel", "tél", "phone", "mobile", "portable")


def db_path(state_dir: Path) -> Path:
    return state_dir / "retention" / DB_NAME


class SuppressionList:
    def __init__(self, path: Path, key: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._key = key
        new = not path.exists()
        if new:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS suppressed ("
            " kind TEXT NOT NULL, digest TEXT NOT NULL, added_at TEXT NOT NULL,"
            " election TEXT NOT NULL, run_id TEXT NOT NULL,"
            " PRIMARY KEY (kind, digest))"
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SuppressionList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def add(
        self,
        emails: Iterable[str],
        phones: Iterable[str],
        *,
        election: str,
        run_id: str,
        now: datetime,
    ) -> int:
        """Insert the digests in one transaction; returns how many entries `run_id` owns.

        Re-adding is harmless (the first insert is kept), so a replayed step
        reports the same count.
        """
        entries = [("email", self.digest("email", e)) for e in sorted(emails)]
        entries += [("phone", self.digest("phone", p)) for p in sorted(phones)]
        stamp = now.isoformat()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO suppressed VALUES (?, ?, ?, ?, ?)",
                [(kind, d, stamp, election, run_id) for kind, d in entries],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return self.count(run_id=run_id)

    def count(self, *, run_id: str | None = None) -> int:
        if run_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM suppressed").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM suppressed WHERE run_id = ?", (run_id,)
            ).fetchone()
        return int(row[0])

    def contains(self, email: str | None, phone: str | None) -> bool:
        """Whether this email or phone (normalised here) was suppressed."""
        normalised = (
            ("email", tabular.normalise_email(email)),
            ("phone", tabular.normalise_phone(phone)),
        )
        for kind, value in normalised:
            if value:
                row = self._db.execute(
                    "SELECT 1 FROM suppressed WHERE kind = ? AND digest = ?",
                    (kind, self.digest(kind, value)),
                ).fetchone()
                if row:
                    return True
        return False


@dataclass(frozen=True)
class FilterResult:
    rows: int
    removed: int
    kept: int
    without_identifier: int  # rows with neither a usable email nor phone (kept)


def _guess(header: list[str], explicit: str | None, names: tuple[str, ...]) -> str | None:
    if explicit:
        found = tabular.find_column(header, explicit)
        if found is None:
            raise ValueError(f"column {explicit!r} not in the file's header")
        return found
    for name in names:
        found = tabular.find_column(header, name)
        if found:
            return found
    return None


def filter_table(
    data: bytes,
    suppression: SuppressionList,
    *,
    email_column: str | None = None,
    phone_column: str | None = None,
) -> tuple[bytes, FilterResult]:
    """A copy of the CSV `data` without the rows of suppressed people (same delimiter)."""
    text = tabular.decode(data)
    delimiter = tabular.detect_delimiter(text)
    header, rows = tabular.read_table(data)
    email_col = _guess(header, email_column, EMAIL_NAMES)
    phone_col = _guess(header, phone_column, PHONE_NAMES)
    if email_col is None and phone_col is None:
        raise ValueError("no email or phone column found (use --email-column/--phone-column)")
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    removed = no_id = 0
    for row in rows:
        email, phone = tabular.identifiers(header, row, email_col, phone_col)
        if not email and not phone:
            no_id += 1
        if suppression.contains(email, phone):
            removed += 1
            continue
        writer.writerow([row.get(h, "") for h in header])
    result = FilterResult(
        rows=len(rows), removed=removed, kept=len(rows) - removed, without_identifier=no_id
    )
    return out.getvalue().encode("utf-8"), result
