"""From findings to delivered messages: de-duplication, resolved notices, flood
guard, digest, and delivery with exponential backoff.

`process()` decides what to say and commits it to the spool in one transaction;
`flush()` delivers what is due. Nothing is sent between the two, so a crash
after the commit only delays the messages, and a de-duplicated finding is never
queued twice.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isoloir.alerts import messages
from isoloir.alerts.lockfile import FileLock
from isoloir.alerts.routing import Destination, all_destinations, destinations
from isoloir.alerts.smtp import SmtpTransport
from isoloir.alerts.spool import KEEP_DAYS, Spool, spool_path
from isoloir.alerts.transport import DeliveryError, Outgoing, Transport
from isoloir.alerts.webhook import WebhookTransport, payload
from isoloir.findings import Finding, Severity, Unread
from isoloir.policy.model import Baseline, Policies

log = logging.getLogger("isoloir.alerts")

# Test-only: when set to a file path, flush() writes that file and blocks just
# before the first send, so a test can kill the process between the spool commit
# and the delivery. Never set in production.
PAUSE_BEFORE_SEND_ENV = "ISOLOIR_TEST_PAUSE_BEFORE_SEND"

BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
BACKOFF_JITTER = 0.2  # +/- 20 %
MAX_ATTEMPTS = 30  # about a day at the cap; then "dead" until `alerts flush --revive`


def backoff_delay(attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds before the next try after `attempts` failures (>= 1)."""
    if retry_after is not None:
        return max(1.0, min(retry_after, 24 * 3600.0))
    delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return float(delay) * (1.0 + rng.uniform(-BACKOFF_JITTER, BACKOFF_JITTER))


def build_transports(baseline: Baseline) -> dict[str, Transport]:
    out: dict[str, Transport] = {}
    if baseline.alerts.email is not None:
        out["email"] = SmtpTransport(baseline.alerts.email)
    for hook in baseline.alerts.webhooks:
        out[f"webhook:{hook.name}"] = WebhookTransport(hook)
    return out


@dataclass
class ProcessReport:
    job: str
    findings: int = 0
    new: int = 0
    reminders: int = 0
    resolved: int = 0
    queued: int = 0
    grouped: int = 0  # held back by the flood guard, told in a summary

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _meta(f: Finding, first_seen: float | None) -> dict[str, Any]:
    fingerprint = f.fingerprint
    f = f.escaped()  # the webhook's human fields: no forged line, no escape code
    return {
        "severity": str(f.severity),
        "election": f.election,
        "rule_id": f.rule_id,
        "resource": f.resource,
        "location": f.location,
        "fingerprint": fingerprint,
        "first_seen": _dt(first_seen).isoformat() if first_seen else None,
        "legal_hold_reason": messages.legal_hold_reason(f),
    }


def _outside_reads(f: Finding) -> int:
    try:
        return int(f.evidence.get("outside_reads") or 0)
    except (TypeError, ValueError):
        return 0


def _first_outside_read(before: Finding, now: Finding) -> bool:
    """The access logs show a first read by an outsider on an open finding: the
    breach is now confirmed, a new alert (not a reminder) goes out. A count that
    merely grows says nothing new."""
    return _outside_reads(before) == 0 and _outside_reads(now) > 0


def _split_for_cycle(
    items: list[tuple[str, Finding, float]],
) -> tuple[list[tuple[str, Finding, float]], list[tuple[str, Finding, float]]]:
    """What one recipient hears from one check run: each critical alert (or
    reminder) alone, at once; everything else in one grouped message, unless
    there is only one such item, which then goes alone too."""
    alone = [x for x in items if x[0] != "resolved" and x[1].severity >= Severity.CRITICAL]
    rest = [x for x in items if x not in alone]
    if len(rest) <= 1:
        return alone + rest, []
    return alone, rest


def exposure_starts(state_dir: Path, prefix: str = "s3://") -> dict[str, datetime]:
    """When each open finding's resource was first seen (the earliest, per resource):
    the start of the window in which the scan counts reads of an exposed resource.
    Read before the scan; an absent spool (first run) gives {} and is not created."""
    path = spool_path(state_dir)
    if not path.is_file():
        return {}
    spool = Spool(path)
    try:
        starts: dict[str, float] = {}
        for row in spool.open_findings():
            resource = row.finding.resource
            if resource.startswith(prefix):
                starts[resource] = min(row.first_seen, starts.get(resource, row.first_seen))
    finally:
        spool.close()
    return {resource: _dt(ts) for resource, ts in starts.items()}


class AlertService:
    def __init__(
        self,
        policies: Policies,
        state_dir: Path,
        *,
        transports: Mapping[str, Transport] | None = None,
        time_source: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        keep_days: float = KEEP_DAYS,
    ) -> None:
        self.keep_days = keep_days
        self.policies = policies
        self.baseline = policies.baseline
        self.state_dir = state_dir
        self.spool = Spool(spool_path(state_dir))
        self.transports = dict(transports) if transports is not None else None
        self.time = time_source
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def close(self) -> None:
        self.spool.close()

    @property
    def language(self) -> str:
        lang = self.baseline.alerts.language
        return lang if lang in messages.LANGUAGES else "fr"

    def _transports(self) -> dict[str, Transport]:
        if self.transports is None:
            self.transports = build_transports(self.baseline)
        return self.transports

    # -- deciding -------------------------------------------------------------

    def _with_hold(self, f: Finding) -> Finding:
        """A finding about an election under legal hold always says why."""
        if f.election is None or messages.legal_hold_reason(f):
            return f
        try:
            election = self.policies.election(f.election)
        except KeyError:
            return f
        if not election.legal_hold:
            return f
        evidence = dict(f.evidence)
        evidence["legal_hold"] = True
        evidence["legal_hold_reason"] = election.legal_hold_reason or "-"
        return replace(f, evidence=evidence)  # keeps the message templates and their values

    def process(
        self, job: str, findings: Iterable[Finding], *, unread: Unread | None = None
    ) -> ProcessReport:
        """Record one job's results and queue what must be said.

        A finding missing from `findings` is taken as resolved, unless `unread`
        covers it (the job could not read its scope, its bucket or its directory):
        then it stays open, keeps its first-seen time and no "resolved" notice goes out.
        """
        unread = unread or Unread()
        now = self.time()
        alerts = self.baseline.alerts
        report = ProcessReport(job=job)
        current: dict[str, Finding] = {}
        for f in findings:
            prev = current.get(f.fingerprint)
            if prev is None or f.severity > prev.severity:
                current[f.fingerprint] = self._with_hold(f)
        report.findings = len(current)
        renotify = alerts.renotify_hours * 3600.0
        # (kind, finding, first_seen)
        said: list[tuple[str, Finding, float]] = []
        with self.spool.transaction():
            for fp, f in current.items():
                row = self.spool.get_finding(fp)
                if row is None or row.state == "resolved":
                    self.spool.open_finding(job, f, now)
                    said.append(("alert", f, now))
                    continue
                self.spool.touch_finding(job, f, now)
                worse = row.notified_severity is not None and f.severity > row.notified_severity
                if row.notified_at is None or worse or _first_outside_read(row.finding, f):
                    said.append(("alert", f, row.first_seen))
                elif renotify > 0 and now - row.notified_at >= renotify:
                    said.append(("reminder", f, row.first_seen))
            for row in self.spool.open_findings(job):
                if row.fingerprint in current or unread.covers(row.finding):
                    continue
                self.spool.resolve_finding(row.fingerprint, now)
                report.resolved += 1
                if row.notified_at is not None:
                    said.append(("resolved", row.finding, row.first_seen))

            per_dest: dict[Destination, list[tuple[str, Finding, float]]] = defaultdict(list)
            for kind, f, first_seen in said:
                dests = destinations(self.baseline, f.severity, f.election)
                if kind == "resolved":
                    # Tell whoever heard about it, by the same routes.
                    pass
                elif dests:
                    self.spool.mark_notified(f.fingerprint, f.severity, now)
                    if kind == "alert":
                        report.new += 1
                    else:
                        report.reminders += 1
                for d in dests:
                    per_dest[d].append((kind, f, first_seen))

            window = alerts.flood_window_minutes * 60.0
            for d, items in sorted(per_dest.items()):
                items.sort(key=lambda x: (-x[1].severity, x[1].rule_id, x[1].resource))
                room = max(0, alerts.flood_max_alerts - self.spool.recent_count(d, now - window))
                alone, grouped = _split_for_cycle(items)
                for kind, f, first_seen in alone[:room]:
                    self._enqueue_finding(d, kind, f, first_seen, job, now)
                    report.queued += 1
                overflow = alone[room:]
                if grouped and room > len(alone):
                    self._enqueue_grouped(d, grouped, now)
                    report.queued += 1
                else:
                    overflow += grouped
                if overflow:
                    self._enqueue_summary(d, [(k, f) for k, f, _ in overflow], now)
                    report.queued += 1
                    report.grouped += len(overflow)
        log.info("alerts queued", extra={"fields": report.as_dict()})
        return report

    def _enqueue_finding(
        self, d: Destination, kind: str, f: Finding, first_seen: float, job: str, now: float
    ) -> None:
        lang = self.language
        if kind == "resolved":
            r = messages.render_resolved(
                f, lang, job=job, first_seen=_dt(first_seen), resolved_at=_dt(now)
            )
        else:
            r = messages.render_finding(
                f, lang, first_seen=_dt(first_seen), reminder=kind == "reminder"
            )
        meta = _meta(f, first_seen)
        self.spool.enqueue(
            kind=kind,
            destination=d,
            language=lang,
            subject=r.subject,
            body=r.body,
            now=now,
            fingerprint=f.fingerprint,
            payload=self._payload(d, kind, r, meta),
            headers={
                "X-Isoloir-Severity": str(f.severity),
                "X-Isoloir-Election": f.election or "-",
                "X-Isoloir-Rule": f.rule_id,
                "X-Isoloir-Fingerprint": f.fingerprint,
            },
        )

    def _enqueue_grouped(
        self, d: Destination, items: list[tuple[str, Finding, float]], now: float
    ) -> None:
        r = messages.render_grouped(
            [(kind, f, _dt(first_seen)) for kind, f, first_seen in items], self.language
        )
        worst = max(f.severity for _, f, _ in items)
        self._enqueue_many(
            d,
            "grouped",
            r,
            {"count": len(items), "severity": str(worst)},
            {
                "X-Isoloir-Count": str(len(items)),
                "X-Isoloir-Severity": str(worst),
                "X-Isoloir-Rules": ", ".join(sorted({f.rule_id for _, f, _ in items})),
            },
            now,
        )

    def _enqueue_summary(
        self, d: Destination, items: list[tuple[str, Finding]], now: float
    ) -> None:
        a = self.baseline.alerts
        r = messages.render_summary(
            items, self.language, limit=a.flood_max_alerts, window_minutes=a.flood_window_minutes
        )
        meta = {"count": len(items), "severity": str(max(f.severity for _, f in items))}
        self._enqueue_many(d, "summary", r, meta, {"X-Isoloir-Count": str(len(items))}, now)

    def _enqueue_many(
        self,
        d: Destination,
        kind: str,
        r: messages.Rendered,
        meta: Mapping[str, Any],
        headers: Mapping[str, str],
        now: float,
    ) -> None:
        """Queue one message about several findings (grouped, summary)."""
        self.spool.enqueue(
            kind=kind,
            destination=d,
            language=self.language,
            subject=r.subject,
            body=r.body,
            now=now,
            payload=self._payload(d, kind, r, meta),
            headers=headers,
        )

    def _payload(
        self, d: Destination, kind: str, r: messages.Rendered, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not d.channel.startswith("webhook:"):
            return {}
        name = d.channel.split(":", 1)[1]
        template = next(
            (w.template for w in self.baseline.alerts.webhooks if w.name == name), "generic"
        )
        return payload(template, kind=kind, subject=r.subject, body=r.body, meta=meta)

    # -- digest ---------------------------------------------------------------

    def digest_due(self) -> bool:
        """Enabled, past today's `digest.time` (host local time) and not sent yet today."""
        alerts = self.baseline.alerts
        if not alerts.digest_enabled:
            return False
        local = datetime.fromtimestamp(self.time())  # host local time, like the schedules
        hours, minutes = (int(x) for x in alerts.digest_time.split(":")[:2])
        if (local.hour, local.minute) < (hours, minutes):
            return False
        return self.spool.get_meta("digest") != local.date().isoformat()

    def queue_digest(self) -> int:
        """One digest of the open findings per destination, at most once a day."""
        now = self.time()
        today = datetime.fromtimestamp(now).date().isoformat()  # the host's local day
        queued = 0
        with self.spool.transaction():
            if self.spool.get_meta("digest") == today:
                return 0
            rows = self.spool.open_findings()
            for d in all_destinations(self.baseline):
                mine = [
                    (r.finding, _dt(r.first_seen))
                    for r in rows
                    if d in destinations(self.baseline, r.finding.severity, r.finding.election)
                ]
                rendered = messages.render_digest(mine, self.language, now=_dt(now))
                self.spool.enqueue(
                    kind="digest",
                    destination=d,
                    language=self.language,
                    subject=rendered.subject,
                    body=rendered.body,
                    now=now,
                    payload=self._payload(d, "digest", rendered, {"count": len(mine)}),
                )
                queued += 1
            self.spool.set_meta("digest", today)
        return queued

    # -- delivering -------------------------------------------------------------

    def flush(self, *, limit: int = 200, wait_lock: float = 30.0) -> FlushReport:
        """Deliver what is due, one process at a time (a lock in the state dir)."""
        report = FlushReport()
        with FileLock(self.state_dir / "locks" / "flush.lock", wait_seconds=wait_lock):
            for item in self.spool.due(self.time(), limit):
                self._deliver_one(item.message, item.attempts, report)
            self.prune(self.keep_days)
        if report.sent or report.failed:
            log.info("alerts delivered", extra={"fields": report.as_dict()})
        return report

    def _deliver_one(self, message: Outgoing, attempts: int, report: FlushReport) -> None:
        _pause_before_send_hook(message)
        transport = self._transports().get(message.channel)
        try:
            if transport is None:
                raise DeliveryError(f"channel {message.channel} is not configured")
            transport.send(message)
        except DeliveryError as exc:
            failures = attempts + 1
            dead = failures >= MAX_ATTEMPTS
            delay = backoff_delay(failures, self.rng, exc.retry_after)
            with self.spool.transaction():
                self.spool.mark_failed(message.id, exc.detail, self.time() + delay, dead=dead)
            report.failed += 1
            report.dead += int(dead)
            report.errors.append(f"{message.channel}: {exc.detail}")
            log.warning(
                "alert delivery failed",
                extra={
                    "fields": {
                        "id": message.id,
                        "destination": Destination(message.channel, message.recipient).label,
                        "attempt": failures,
                        "retry_in_seconds": round(delay, 1),
                        "dead": dead,
                        "error": exc.detail,
                    }
                },
            )
            return
        with self.spool.transaction():
            self.spool.mark_sent(message.id, self.time())
        report.sent += 1

    def prune(self, keep_days: float = KEEP_DAYS) -> dict[str, int]:
        """Forget sent and dead messages and resolved findings settled over
        `keep_days` ago (90 by default): the spool keeps no file name forever."""
        with self.spool.transaction():
            pruned = self.spool.prune(self.time() - keep_days * 86400.0)
        if any(pruned.values()):
            log.info("alert spool pruned", extra={"fields": {**pruned, "keep_days": keep_days}})
        return pruned

    def revive_dead(self) -> int:
        with self.spool.transaction():
            return self.spool.revive_dead(self.time())

    def next_due_in(self) -> float | None:
        due = self.spool.next_due_at()
        return None if due is None else max(0.0, due - self.time())

    def stats(self) -> dict[str, Any]:
        return self.spool.stats(self.time())


def _pause_before_send_hook(message: Outgoing) -> None:
    marker = os.environ.get(PAUSE_BEFORE_SEND_ENV)
    if not marker:
        return
    Path(marker).write_text(f"{message.id}\n")
    while True:  # the test kills us here
        time.sleep(1)
