"""The purge journal: every step is recorded before it is done.

SQLite in WAL mode with full synchronisation, in the agent's state directory.
A step is written `planned` (with everything needed to redo it: the exact
object versions or file names of a batch), then the action runs, then the step
is marked `done` with its result. After a crash the next run first replays the
planned steps that were not marked done (each action is idempotent: deleting a
deleted version or a missing file is a no-op), then carries on. Counts in the
certificate are computed from the journal, so a replayed batch is counted once.

Once a run is complete (its certificate signed), its steps no longer need the
names they recorded: `redact_completed` replaces every name (object keys, file
and directory names, error texts) by its HMAC under the retention key, so the
journal keeps no file name (often a person's name) beyond the run; the values
a certificate or an audit may want (paths of the certificate and the kept
contacts, version ids, key ids, hashes, dates, counts) stay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from isoloir.statefiles import corrupt_db

DB_NAME = "journal.sqlite"
# Test-only: kill the process with SIGKILL at the Nth journal checkpoint (two
# per write: before and after its commit). Used by the crash-resume tests.
CRASH_ENV = "ISOLOIR_TEST_RETENTION_CRASH_AT"


def db_path(state_dir: Path) -> Path:
    return state_dir / "retention" / DB_NAME


@dataclass(frozen=True)
class Step:
    seq: int
    run_id: str
    kind: str
    dataset: str
    payload: Any
    status: str
    result: Any


@dataclass(frozen=True)
class Run:
    run_id: str
    election: str
    started_at: str
    finished_at: str | None
    status: str  # running | complete
    certificate: str | None


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise corrupt_db(
                path,
                exc,
                "an interrupted purge then starts again from the beginning (nothing deleted "
                "twice: what is gone is gone), and `retention plan` no longer shows past purges",
            ) from None
        raw = os.environ.get(CRASH_ENV, "").strip()
        self._crash_at = int(raw) if raw.isdigit() else 0
        self._checkpoints = 0

    def _init_schema(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS runs (
              run_id TEXT PRIMARY KEY, election TEXT NOT NULL, started_at TEXT NOT NULL,
              finished_at TEXT, status TEXT NOT NULL, certificate TEXT);
            CREATE TABLE IF NOT EXISTS steps (
              seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
              kind TEXT NOT NULL, dataset TEXT NOT NULL, payload TEXT NOT NULL,
              status TEXT NOT NULL, result TEXT);
            CREATE INDEX IF NOT EXISTS steps_run ON steps (run_id, kind, dataset);
            """
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ test hook
    def _checkpoint(self) -> None:
        if not self._crash_at:
            return
        self._checkpoints += 1
        if self._checkpoints >= self._crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        self._checkpoint()
        cur = self._db.execute(sql, params)
        self._checkpoint()
        return int(cur.lastrowid or 0)

    # ------------------------------------------------------------------ runs
    def _run(self, row: tuple[Any, ...] | None) -> Run | None:
        return Run(*row) if row else None

    def open_run(self, election: str) -> Run | None:
        """The election's unfinished run, if a previous one was interrupted."""
        return self._run(
            self._db.execute(
                "SELECT * FROM runs WHERE election = ? AND status = 'running'"
                " ORDER BY started_at DESC LIMIT 1",
                (election,),
            ).fetchone()
        )

    def last_complete(self, election: str) -> Run | None:
        return self._run(
            self._db.execute(
                "SELECT * FROM runs WHERE election = ? AND status = 'complete'"
                " ORDER BY finished_at DESC LIMIT 1",
                (election,),
            ).fetchone()
        )

    def start_run(self, election: str, now: datetime) -> Run:
        run_id = f"{election}@{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
        self._write(
            "INSERT INTO runs VALUES (?, ?, ?, NULL, 'running', NULL)",
            (run_id, election, now.isoformat()),
        )
        run = self._run(
            self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )
        assert run is not None
        return run

    def finish_run(self, run_id: str, now: datetime, certificate: str) -> None:
        self._write(
            "UPDATE runs SET status = 'complete', finished_at = ?, certificate = ?"
            " WHERE run_id = ?",
            (now.isoformat(), certificate, run_id),
        )

    # ----------------------------------------------------------------- steps
    def plan(self, run_id: str, kind: str, dataset: str, payload: Any) -> int:
        """Record a step before doing it; returns its sequence number."""
        return self._write(
            "INSERT INTO steps (run_id, kind, dataset, payload, status)"
            " VALUES (?, ?, ?, ?, 'planned')",
            (run_id, kind, dataset, _dump(payload)),
        )

    def done(self, seq: int, result: Any) -> None:
        self._write(
            "UPDATE steps SET status = 'done', result = ? WHERE seq = ? AND status = 'planned'",
            (_dump(result), seq),
        )

    def steps(
        self,
        run_id: str,
        *,
        kind: str | None = None,
        dataset: str | None = None,
        status: str | None = None,
    ) -> Iterator[Step]:
        sql = (
            "SELECT seq, run_id, kind, dataset, payload, status, result FROM steps WHERE run_id = ?"
        )
        params: list[Any] = [run_id]
        for column, value in (("kind", kind), ("dataset", dataset), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        for row in self._db.execute(sql + " ORDER BY seq", params):
            yield Step(
                seq=row[0],
                run_id=row[1],
                kind=row[2],
                dataset=row[3],
                payload=json.loads(row[4]),
                status=row[5],
                result=json.loads(row[6]) if row[6] is not None else None,
            )

    def find(self, run_id: str, kind: str, dataset: str) -> Step | None:
        for step in self.steps(run_id, kind=kind, dataset=dataset):
            return step
        return None

    def redact_completed(self, key: bytes) -> int:
        """Redact the names in every complete run's steps; returns the steps changed."""
        changed = 0
        rows = self._db.execute(
            "SELECT s.seq, s.payload, s.result FROM steps s JOIN runs r ON s.run_id = r.run_id"
            " WHERE r.status = 'complete'"
        ).fetchall()
        for seq, payload, result in rows:
            new_payload = _dump(redact_value(json.loads(payload), key))
            new_result = None if result is None else _dump(redact_value(json.loads(result), key))
            if new_payload != payload or new_result != result:
                self._write(
                    "UPDATE steps SET payload = ?, result = ? WHERE seq = ?",
                    (new_payload, new_result, seq),
                )
                changed += 1
        if changed:
            # The old text may remain in free pages and the WAL: rewrite both.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
        return changed

    def digest(self, run_id: str) -> tuple[str, int]:
        """sha256 over the run's step rows in order (canonical JSON), and their number."""
        h = hashlib.sha256()
        n = 0
        for row in self._db.execute(
            "SELECT seq, kind, dataset, payload, status, result FROM steps"
            " WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ):
            h.update(json.dumps(list(row), separators=(",", ":"), ensure_ascii=False).encode())
            h.update(b"\n")
            n += 1
        return h.hexdigest(), n


# Values kept in clear by the redaction (under these keys): no name of a person.
KEPT_KEYS = frozenset(
    {
        "VersionId",
        "bucket",
        "deletion_date",
        "key_id",
        "path",
        "sha256",
        "state",
        "window_days",
        "contacts_file",
        "kept_file",
    }
)
REDACTED = "hmac:"
_REDACTED_FORM = re.compile(r"hmac:[0-9a-f]{32}")


def redact_value(value: Any, key: bytes, *, under: str = "") -> Any:
    """`value` with every string (outside KEPT_KEYS) replaced by `hmac:<hex>`;
    numbers, booleans and already redacted strings unchanged (idempotent)."""
    if isinstance(value, str):
        # Already redacted only when it is exactly what this function writes: a
        # folder named `hmac:` must not keep the names below it (security N12).
        if under in KEPT_KEYS or _REDACTED_FORM.fullmatch(value):
            return value
        raw = value.encode("utf-8", "surrogateescape")
        return REDACTED + hmac.new(key, raw, hashlib.sha256).hexdigest()[:32]
    if isinstance(value, list):
        return [redact_value(v, key, under=under) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v, key, under=k) for k, v in value.items()}
    return value


def _dump(value: Any) -> str:
    # ASCII escapes keep undecodable file names (surrogates) storable and exact.
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
