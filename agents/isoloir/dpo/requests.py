"""The log of rights requests and their deadlines (art. 12(3) GDPR).

A request is answered "without undue delay and in any event within one month
of receipt"; the controller may extend that by two further months when it
tells the person, within the first month, why. The log holds, per request:
its id, the right exercised, when it was received, its due date, whether it
was extended, its status and what was done (counts and record paths only).
It never holds the person's identifiers: the DPO's case file does.

`rights_job` (the daemon's daily `rights` job) raises an alert 7 days before
a request lapses, again 2 days before, and a high one once it has lapsed.

Stored as JSON in STATE/dpo/requests.json (0600), rewritten atomically under
a lock.
"""

from __future__ import annotations

import calendar
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from isoloir.findings import Finding, Severity
from isoloir.i18n import N_

KINDS = ("access", "rectification", "erasure", "objection", "restriction", "portability")
# the articles each right comes from (shown in the log and the alerts)
ARTICLES = {
    "access": "art. 15",
    "rectification": "art. 16",
    "erasure": "art. 17",
    "restriction": "art. 18",
    "portability": "art. 20",
    "objection": "art. 21",
}
WARN_DAYS = (7, 2)
RULE_DUE = "DPO-REQUEST-DUE"
RULE_LAPSED = "DPO-REQUEST-LAPSED"
_ID = re.compile(r"^DR-\d{8}-[0-9a-f]{6}$")


class RequestError(ValueError):
    """No such request, a bad date or kind, or an unreadable log."""


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the last day of that month (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass
class Request:
    id: str
    kind: str
    received: str  # ISO date
    due: str  # ISO date
    status: str = "open"  # open | answered | closed
    extended: bool = False
    extension_reason: str = ""
    opened_at: str = ""
    closed_at: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)  # counts and paths only

    @property
    def due_date(self) -> date:
        return date.fromisoformat(self.due)

    def days_left(self, today: date) -> int:
        return (self.due_date - today).days

    @property
    def open(self) -> bool:
        return self.status == "open"


@contextmanager
def locked_json(path: Path, key: str) -> Iterator[list[dict[str, Any]]]:
    """The list under `key` of a JSON file (0600), written back atomically when the
    block ends without an error; one writer at a time (flock on a side file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        items: list[dict[str, Any]] = []
        if path.is_file():
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                try:
                    items = list(json.loads(handle.read().decode("utf-8"))[key])
                except (ValueError, KeyError, TypeError) as exc:
                    raise RequestError(f"{path}: unreadable ({exc})") from None
        yield items
        data = json.dumps({key: items}, indent=2, ensure_ascii=False) + "\n"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        os.close(lock)


def log_path(state_dir: Path) -> Path:
    return state_dir / "dpo" / "requests.json"


class RequestLog:
    def __init__(self, state_dir: Path) -> None:
        self.path = log_path(state_dir)

    def _read(self) -> list[Request]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return []
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read()
        try:
            data = json.loads(raw.decode("utf-8"))
            return [Request(**item) for item in data["requests"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise RequestError(f"{self.path}: not a request log ({exc})") from None

    def _write(self, items: list[Request]) -> None:
        data = json.dumps({"requests": [asdict(r) for r in items]}, indent=2, ensure_ascii=False)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    @contextmanager
    def locked(self) -> Iterator[list[Request]]:
        """The requests, written back when the block ends without an error."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(
            self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            items = self._read()
            yield items
            self._write(items)
        finally:
            os.close(lock)

    def all(self) -> list[Request]:
        return self._read()

    def get(self, request_id: str) -> Request:
        for r in self._read():
            if r.id == request_id:
                return r
        raise RequestError(f"no rights request {request_id!r} in {self.path}")

    def open(self, kind: str, received: date, now: datetime) -> Request:
        if kind not in KINDS:
            raise RequestError(f"unknown right {kind!r} (one of {', '.join(KINDS)})")
        if received > now.date():
            raise RequestError("a request cannot be received in the future")
        request = Request(
            id=f"DR-{received.strftime('%Y%m%d')}-{secrets.token_hex(3)}",
            kind=kind,
            received=received.isoformat(),
            due=add_months(received, 1).isoformat(),
            opened_at=now.isoformat(),
        )
        with self.locked() as items:
            items.append(request)
        return request

    def update(self, request_id: str, now: datetime, **change: Any) -> Request:
        """Record an action (`action=dict`), a new status, or the extension."""
        if not _ID.match(request_id):
            raise RequestError(f"{request_id!r} is not a request id (DR-YYYYMMDD-xxxxxx)")
        with self.locked() as items:
            for r in items:
                if r.id != request_id:
                    continue
                action = change.pop("action", None)
                if action is not None:
                    r.actions.append({"at": now.isoformat(), **action})
                if change.get("extend"):
                    if r.extended:
                        raise RequestError(f"{r.id} was already extended")
                    if now.date() > r.due_date:
                        raise RequestError(
                            f"{r.id} lapsed on {r.due}: it can no longer be extended"
                        )
                    r.extended = True
                    r.extension_reason = str(change.get("reason", ""))
                    r.due = add_months(date.fromisoformat(r.received), 3).isoformat()
                status = change.get("status")
                if status:
                    r.status = status
                    if status != "open":
                        r.closed_at = now.isoformat()
                return r
        raise RequestError(f"no rights request {request_id!r} in {self.path}")


LAPSED = N_("Rights request {request} ({right}) lapsed on {due} unanswered.")
LAPSED_FIX = N_("Answer the person now and record why it was late (isoloir person request close).")
DUE = N_("Rights request {request} ({right}) is due on {due}: {days} day(s) left.")
DUE_FIX = N_(
    "Answer it (isoloir person export / erase), or extend it by two months and tell the "
    "person why (isoloir person request extend)."
)


def findings(requests: list[Request], today: date, now: datetime) -> list[Finding]:
    """An alert 7 and 2 days before an open request lapses, and a high one once lapsed."""
    out = []
    for r in requests:
        if not r.open:
            continue
        left = r.days_left(today)
        params = {
            "request": r.id,
            "right": ARTICLES.get(r.kind, r.kind),
            "due": r.due,
            "days": left,
        }
        resource = f"rights-request:{r.id}"
        if left < 0:
            rule, severity, text, fix = RULE_LAPSED, Severity.HIGH, LAPSED, LAPSED_FIX
            evidence: dict[str, Any] = {"due": r.due, "days_left": left}
        elif left <= max(WARN_DAYS):
            severity = Severity.HIGH if left <= min(WARN_DAYS) else Severity.MEDIUM
            rule, text, fix = RULE_DUE, DUE, DUE_FIX
            evidence = {"due": r.due, "days_left": left}
        else:
            continue
        out.append(
            Finding(
                rule,
                severity,
                resource,
                text.format(**params),
                remediation=fix,
                evidence=evidence,
                observed_at=now,
                message_id=text,
                remediation_id=fix,
                params=params,
            )
        )
    return out


def rights_job(ctx: Any) -> list[Finding]:
    """The daemon's daily job: deadlines of the open rights requests; the breach
    register brought up to date from the alert spool, and undecided breaches reminded."""
    from isoloir.dpo import breaches

    out = findings(RequestLog(ctx.state_dir).all(), ctx.now.date(), ctx.now)
    return out + breaches.reminders(breaches.sync(ctx.state_dir), ctx.now)
