"""The persistent spool: finding state and the outbox, in one SQLite file.

Every message is committed here before any attempt to send it (synchronous=FULL,
WAL), so a crash or a mail outage delays an alert but never loses it. Times are
Unix seconds (floats).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isoloir.alerts.routing import Destination
from isoloir.alerts.transport import Outgoing
from isoloir.findings import Finding, Severity
from isoloir.statefiles import corrupt_db

SPOOL_FILE = "alerts.sqlite"
SPOOL_LOST = (
    "the alerts still queued in it are lost, and every open finding is alerted again as new"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS findings (
    fingerprint TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    finding TEXT NOT NULL,
    severity INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    seen_count INTEGER NOT NULL DEFAULT 1,
    notified_at REAL,
    notified_severity INTEGER,
    resolved_at REAL
);
CREATE INDEX IF NOT EXISTS findings_job_state ON findings (job, state);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    fingerprint TEXT,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    address TEXT NOT NULL,
    language TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    payload TEXT NOT NULL,
    headers TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    last_error TEXT,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_dest ON outbox (channel, recipient, created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COUNTED_KINDS = ("alert", "reminder", "resolved", "summary")
# Sent and dead messages and resolved findings name files (often people's names)
# and recipients: they are deleted this long after they were settled.
KEEP_DAYS = 90


@dataclass(frozen=True)
class FindingRow:
    fingerprint: str
    job: str
    finding: Finding
    state: str
    first_seen: float
    last_seen: float
    seen_count: int
    notified_at: float | None
    notified_severity: Severity | None


@dataclass(frozen=True)
class PendingItem:
    message: Outgoing
    attempts: int
    created_at: float


def spool_path(state_dir: Path) -> Path:
    return state_dir / SPOOL_FILE


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # The spool holds recipients' addresses: owner only.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise corrupt_db(path, exc, SPOOL_LOST) from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- findings -----------------------------------------------------------

    @staticmethod
    def _finding_row(row: sqlite3.Row) -> FindingRow:
        ns = row["notified_severity"]
        return FindingRow(
            fingerprint=row["fingerprint"],
            job=row["job"],
            finding=Finding.from_dict(json.loads(row["finding"])),
            state=row["state"],
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            seen_count=row["seen_count"],
            notified_at=row["notified_at"],
            notified_severity=Severity(ns) if ns is not None else None,
        )

    def get_finding(self, fingerprint: str) -> FindingRow | None:
        row = self.db.execute(
            "SELECT * FROM findings WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return self._finding_row(row) if row else None

    def open_findings(self, job: str | None = None) -> list[FindingRow]:
        if job is None:
            rows = self.db.execute("SELECT * FROM findings WHERE state = 'open'").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM findings WHERE state = 'open' AND job = ?", (job,)
            ).fetchall()
        return [self._finding_row(r) for r in rows]

    def open_finding(self, job: str, finding: Finding, now: float) -> None:
        """A new finding, or one seen again after it was resolved."""
        self.db.execute(
            "INSERT INTO findings (fingerprint, job, finding, severity, state, first_seen,"
            " last_seen, seen_count) VALUES (?, ?, ?, ?, 'open', ?, ?, 1)"
            " ON CONFLICT (fingerprint) DO UPDATE SET job = excluded.job,"
            " finding = excluded.finding, severity = excluded.severity, state = 'open',"
            " first_seen = excluded.first_seen, last_seen = excluded.last_seen, seen_count = 1,"
            " notified_at = NULL, notified_severity = NULL, resolved_at = NULL",
            (finding.fingerprint, job, finding.to_json(), int(finding.severity), now, now),
        )

    def touch_finding(self, job: str, finding: Finding, now: float) -> None:
        self.db.execute(
            "UPDATE findings SET job = ?, finding = ?, severity = ?, last_seen = ?,"
            " seen_count = seen_count + 1 WHERE fingerprint = ?",
            (job, finding.to_json(), int(finding.severity), now, finding.fingerprint),
        )

    def mark_notified(self, fingerprint: str, severity: Severity, now: float) -> None:
        self.db.execute(
            "UPDATE findings SET notified_at = ?, notified_severity = ? WHERE fingerprint = ?",
            (now, int(severity), fingerprint),
        )

    def resolve_finding(self, fingerprint: str, now: float) -> None:
        self.db.execute(
            "UPDATE findings SET state = 'resolved', resolved_at = ? WHERE fingerprint = ?",
            (now, fingerprint),
        )

    # -- outbox -------------------------------------------------------------

    def enqueue(
        self,
        *,
        kind: str,
        destination: Destination,
        language: str,
        subject: str,
        body: str,
        now: float,
        fingerprint: str | None = None,
        payload: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO outbox (kind, fingerprint, channel, recipient, address, language,"
            " subject, body, payload, headers, created_at, next_attempt_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                kind,
                fingerprint,
                destination.channel,
                destination.recipient,
                destination.address,
                language,
                subject,
                body,
                json.dumps(dict(payload or {}), ensure_ascii=False, sort_keys=True),
                json.dumps(dict(headers or {}), sort_keys=True),
                now,
                now,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def recent_count(self, destination: Destination, since: float) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE channel = ? AND recipient = ? AND created_at >= ?"
            " AND kind IN ('alert', 'reminder', 'resolved', 'summary', 'grouped')",
            (destination.channel, destination.recipient, since),
        ).fetchone()
        return int(row[0])

    def due(self, now: float, limit: int = 100) -> list[PendingItem]:
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [
            PendingItem(
                message=Outgoing(
                    id=r["id"],
                    kind=r["kind"],
                    channel=r["channel"],
                    recipient=r["recipient"],
                    address=r["address"],
                    subject=r["subject"],
                    body=r["body"],
                    payload=json.loads(r["payload"]),
                    headers=json.loads(r["headers"]),
                    language=r["language"],
                ),
                attempts=r["attempts"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def mark_sent(self, item_id: int, now: float) -> None:
        self.db.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
            " last_error = NULL WHERE id = ? AND status = 'pending'",
            (now, item_id),
        )

    def mark_failed(self, item_id: int, error: str, next_attempt_at: float, *, dead: bool) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
            " status = ? WHERE id = ? AND status = 'pending'",
            (error, next_attempt_at, "dead" if dead else "pending", item_id),
        )

    def revive_dead(self, now: float) -> int:
        cur = self.db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
            " WHERE status = 'dead'",
            (now,),
        )
        return cur.rowcount

    def next_due_at(self) -> float | None:
        row = self.db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def stats(self, now: float) -> dict[str, Any]:
        counts = {
            r["status"]: r["n"]
            for r in self.db.execute("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        }
        retrying = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND attempts > 0"
        ).fetchone()[0]
        oldest = self.db.execute(
            "SELECT MIN(created_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()[0]
        open_findings = self.db.execute(
            "SELECT COUNT(*) FROM findings WHERE state = 'open'"
        ).fetchone()[0]
        return {
            "pending": counts.get("pending", 0),
            "retrying": retrying,
            "dead": counts.get("dead", 0),
            "sent": counts.get("sent", 0),
            "oldest_pending_age_seconds": None if oldest is None else round(now - oldest, 1),
            "open_findings": open_findings,
        }

    # -- retention of the spool itself ---------------------------------------

    def prune(self, before: float) -> dict[str, int]:
        """Delete what was settled before `before`: sent and dead messages, resolved
        findings. Pending messages and open findings are never pruned."""
        sent = self.db.execute(
            "DELETE FROM outbox WHERE status IN ('sent', 'dead')"
            " AND COALESCE(sent_at, next_attempt_at, created_at) < ?",
            (before,),
        ).rowcount
        resolved = self.db.execute(
            "DELETE FROM findings WHERE state = 'resolved' AND resolved_at < ?", (before,)
        ).rowcount
        return {"messages": sent, "findings": resolved}

    # -- meta ---------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
