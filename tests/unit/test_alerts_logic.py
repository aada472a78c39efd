"""Alerting logic with in-memory transports: routing, text, de-dup, resolved, flood, retries."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from datetime import datetime
from pathlib import Path

import pytest

from isoloir.alerts import messages
from isoloir.alerts.routing import Destination, all_destinations, destinations
from isoloir.alerts.secrets import SecretError, read_secret_bytes, read_smtp_credentials
from isoloir.alerts.service import AlertService, backoff_delay
from isoloir.alerts.smtp import build_email
from isoloir.alerts.transport import DeliveryError, Outgoing
from isoloir.alerts.webhook import payload, retry_after_seconds, sign, verify
from isoloir.findings import Finding, Severity
from isoloir.policy import load_policies
from isoloir.policy.model import Policies, Route, Webhook

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
ELECTION = "exempleville-2027"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A transport that records, and fails the first `fail` sends."""

    def __init__(self, fail: int = 0, retry_after: float | None = None) -> None:
        self.sent: list[Outgoing] = []
        self.fail = fail
        self.retry_after = retry_after
        self.calls = 0

    def send(self, message: Outgoing) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise DeliveryError("smtp: SMTPDataError 451", retry_after=self.retry_after)
        self.sent.append(message)


def policies(**alerts_changes: object) -> Policies:
    p = load_policies(EXAMPLE)
    hook = Webhook("equipe", "https://chat.example/hook", "slack", "/nonexistent")
    alerts = dataclasses.replace(
        p.baseline.alerts,
        webhooks=(hook,),
        routes=(
            Route(("cfictive", "bexemple"), ("email",), "medium", ("*",)),
            Route((), ("webhook:equipe",), "high", ("*",)),
        ),
    )
    alerts = dataclasses.replace(alerts, **alerts_changes)  # type: ignore[arg-type]
    return dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, alerts=alerts))


def finding(n: int = 1, severity: Severity = Severity.CRITICAL, **kw: object) -> Finding:
    base: dict[str, object] = {
        "rule_id": "s3-public-object",
        "severity": severity,
        "resource": f"arn:aws:s3:::mouvement-exemple-{ELECTION}/prospects/liste-{n}.csv",
        "message": f"Object prospects/liste-{n}.csv is readable by anyone.",
        "election": ELECTION,
        "location": "eu-west-3",
        "remediation": "Remove the public grant and turn the bucket's public access block on.",
        "evidence": {"rows": 1042, "public_grants": 1},
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> tuple[AlertService, Clock, Recorder, Recorder]:
    clock = Clock()
    email, hook = Recorder(), Recorder()
    svc = AlertService(
        policies(),
        tmp_path,
        transports={"email": email, "webhook:equipe": hook},
        time_source=clock,
        rng=random.Random(1),
    )
    yield svc, clock, email, hook
    svc.close()


def test_routing_by_severity_and_election() -> None:
    b = policies().baseline
    crit = destinations(b, Severity.CRITICAL, ELECTION)
    assert [d.label for d in crit] == ["email:bexemple", "email:cfictive", "webhook:equipe"]
    assert all(d.address.endswith(".example") for d in crit if d.channel == "email")
    medium = destinations(b, Severity.MEDIUM, ELECTION)
    assert [d.label for d in medium] == ["email:bexemple", "email:cfictive"]
    assert destinations(b, Severity.LOW, ELECTION) == []
    scoped = dataclasses.replace(
        b.alerts, routes=(Route(("ptest",), ("email",), "info", ("autre-2028",)),)
    )
    b2 = dataclasses.replace(b, alerts=scoped)
    assert destinations(b2, Severity.CRITICAL, ELECTION) == []
    assert [d.label for d in destinations(b2, Severity.CRITICAL, "autre-2028")] == ["email:ptest"]
    assert [d.label for d in all_destinations(b2)] == ["email:ptest"]


def test_french_by_default_english_available() -> None:
    f = finding()
    fr = messages.render_finding(f, "fr", first_seen=None)
    where = f"mouvement-exemple-{ELECTION}/prospects/liste-1.csv"
    assert fr.subject == f"[Isoloir] Alerte CRITIQUE · {ELECTION} · s3-public-object · {where}"
    for label in ("Quoi : ", "Où : ", "Depuis : ", "Comment corriger : ", "Élection : "):
        assert label in fr.body
    assert f.resource in fr.body and f.remediation in fr.body and "rows : 1042" in fr.body
    en = messages.render_finding(f, "en", first_seen=None)
    assert en.subject == f"[Isoloir] Alert CRITICAL · {ELECTION} · s3-public-object · {where}"
    for label in ("What: ", "Where: ", "Since: ", "How to fix: "):
        assert label in en.body


def test_alert_never_carries_people(env: tuple[AlertService, Clock, Recorder, Recorder]) -> None:
    svc, _, email, hook = env
    svc.process("scan", [finding()])
    svc.flush()
    people = svc.baseline.people
    for m in [*email.sent, *hook.sent]:
        text = m.subject + m.body + repr(m.payload) + repr(m.headers)
        for person in people:
            assert person.email not in text and person.name not in text
    # Each email names exactly one recipient, which is the only place an address appears.
    assert sorted(m.address for m in email.sent) == sorted(
        svc.baseline.person(pid).email for pid in ("cfictive", "bexemple")
    )
    msg = build_email("isoloir@mouvement-exemple.example", email.sent[0])
    assert msg["To"] == email.sent[0].address and msg["Cc"] is None and msg["Bcc"] is None


@pytest.mark.parametrize(
    "subject",
    [
        "[Isoloir] Alerte ÉLEVÉE · toutes les élections · s3_account_public_access_block",
        "[Isoloir] Alerte ÉLEVÉE élections rétention échéance · " + "x" * 120,
    ],
)
def test_subject_survives_the_wire(subject: str) -> None:
    """What the mail client shows is the subject we wrote, spaces included."""
    import email as email_lib
    import email.policy

    out = Outgoing(
        id=1,
        kind="alert",
        channel="email",
        recipient="cfictive",
        address="claire.fictive@mouvement-exemple.example",
        subject=subject,
        body="Accès en lecture pour tous : é\n" * 20,
    )
    raw = build_email("isoloir@mouvement-exemple.example", out).as_bytes()
    assert raw.isascii()
    back = email_lib.message_from_bytes(raw, policy=email.policy.default)
    assert str(back["Subject"]) == subject
    assert back.get_content() == out.body
    assert all(len(line) <= 998 for line in raw.split(b"\n"))


def test_same_finding_many_times_one_alert_then_reminder(
    env: tuple[AlertService, Clock, Recorder, Recorder],
) -> None:
    svc, clock, email, hook = env
    for _ in range(100):
        svc.process("scan", [finding()])
        clock.t += 60
        svc.flush()
    assert len(email.sent) == 2 and len(hook.sent) == 1
    clock.t += 24 * 3600  # renotify_hours in the example policies
    svc.process("scan", [finding()])
    svc.flush()
    assert [m.kind for m in email.sent] == ["alert", "alert", "reminder", "reminder"]
    assert "Rappel" in email.sent[-1].subject


def test_worse_severity_alerts_again(env: tuple[AlertService, Clock, Recorder, Recorder]) -> None:
    svc, _, email, hook = env
    svc.process("scan", [finding(severity=Severity.MEDIUM)])
    svc.process("scan", [finding(severity=Severity.MEDIUM)])
    assert len(hook.sent) == 0
    svc.process("scan", [finding(severity=Severity.CRITICAL)])
    svc.flush()
    assert len(email.sent) == 4 and len(hook.sent) == 1


def test_resolved_notice_once_and_only_from_same_job(
    env: tuple[AlertService, Clock, Recorder, Recorder],
) -> None:
    svc, _, email, _ = env
    svc.process("scan", [finding(1), finding(2)])
    svc.process("retention", [])  # another job's empty results resolve nothing
    svc.flush()
    assert len(email.sent) == 4
    report = svc.process("scan", [finding(2)])
    assert report.resolved == 1
    svc.process("scan", [finding(2)])
    svc.flush()
    resolved = [m for m in email.sent if m.kind == "resolved"]
    assert len(resolved) == 2 and all("Résolu" in m.subject for m in resolved)
    assert all("liste-1.csv" in m.body for m in resolved)
    # It comes back: a fresh alert.
    svc.process("scan", [finding(1), finding(2)])
    svc.flush()
    assert [m.kind for m in email.sent].count("alert") == 6


def test_below_threshold_is_tracked_not_sent(
    env: tuple[AlertService, Clock, Recorder, Recorder],
) -> None:
    svc, _, email, hook = env
    svc.process("scan", [finding(severity=Severity.LOW)])
    svc.process("scan", [])
    svc.flush()
    assert email.sent == [] and hook.sent == []


def test_flood_guard_groups_beyond_the_limit(tmp_path: Path) -> None:
    clock, email, hook = Clock(), Recorder(), Recorder()
    svc = AlertService(
        policies(flood_max_alerts=5, flood_window_minutes=10),
        tmp_path,
        transports={"email": email, "webhook:equipe": hook},
        time_source=clock,
    )
    report = svc.process("scan", [finding(n) for n in range(30)])
    svc.flush()
    assert report.grouped == 25 * 3
    per_person = [m for m in email.sent if m.recipient == "cfictive"]
    assert [m.kind for m in per_person] == ["alert"] * 5 + ["summary"]
    summary = per_person[-1]
    assert "25" in summary.subject and "s3-public-object" in summary.body
    assert len(hook.sent) == 6
    # Later in the same window: still over the limit, one more summary at most.
    clock.t += 60
    svc.process("scan", [finding(n) for n in range(30, 40)] + [finding(n) for n in range(30)])
    svc.flush()
    assert [m.kind for m in email.sent if m.recipient == "cfictive"][6:] == ["summary"]
    # After the window: individual alerts again.
    clock.t += 11 * 60
    svc.process("scan", [finding(n) for n in range(41)])
    svc.flush()
    assert [m.kind for m in email.sent if m.recipient == "cfictive"][7:] == ["alert"]
    svc.close()


def test_retries_with_backoff_until_delivered_once(tmp_path: Path) -> None:
    clock, email = Clock(), Recorder(fail=3)
    p = policies(routes=(Route(("cfictive",), ("email",), "info", ("*",)),), webhooks=())
    svc = AlertService(p, tmp_path, transports={"email": email}, time_source=clock)
    svc.process("scan", [finding()])
    delays = []
    for _ in range(3):
        assert svc.flush().failed == 1
        due = svc.next_due_in()
        assert due is not None and due > 0
        delays.append(due)
        assert svc.flush().failed == 0  # not due yet: nothing attempted
        clock.t += due
    assert svc.flush().sent == 1
    assert svc.flush().sent == 0 and len(email.sent) == 1
    assert delays[0] < delays[1] < delays[2]  # exponential (jitter is +/- 20 %)
    assert svc.stats()["pending"] == 0


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    clock, hook = Clock(), Recorder(fail=1, retry_after=120)
    p = policies(routes=(Route((), ("webhook:equipe",), "info", ("*",)),))
    svc = AlertService(p, tmp_path, transports={"webhook:equipe": hook}, time_source=clock)
    svc.process("scan", [finding()])
    svc.flush()
    assert svc.next_due_in() == 120
    clock.t += 119
    assert svc.flush().sent == 0
    clock.t += 1
    assert svc.flush().sent == 1


def test_backoff_delay_bounds() -> None:
    rng = random.Random(0)
    for attempts, base in ((1, 30), (2, 60), (5, 480), (20, 3600)):
        d = backoff_delay(attempts, rng)
        assert base * 0.8 <= d <= base * 1.2
    assert backoff_delay(3, rng, retry_after=7) == 7


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("42") == 42
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_legal_hold_reason_in_every_alert(tmp_path: Path) -> None:
    p = policies()
    reason = "Recours devant le tribunal administratif"
    held = dataclasses.replace(p.elections[0], legal_hold=True, legal_hold_reason=reason)
    p = dataclasses.replace(p, elections=(held,))
    email = Recorder()
    svc = AlertService(p, tmp_path, transports={"email": email, "webhook:equipe": Recorder()})
    svc.process("retention", [finding(rule_id="retention-due")])
    svc.flush()
    assert email.sent and all(
        "Conservation pour contentieux (purge suspendue) : "
        "Recours devant le tribunal administratif" in m.body
        for m in email.sent
    )
    # A finding carrying its own reason keeps it, in English too.
    en = messages.render_finding(
        finding(evidence={"legal_hold": True, "legal_hold_reason": "Contested result"}),
        "en",
        first_seen=None,
    )
    assert "Legal hold (purge suspended): Contested result" in en.body
    svc.close()


def test_webhook_signature_and_templates() -> None:
    secret, body = b"k" * 32, b'{"a": 1}'
    sig = sign(secret, "1700000000", body)
    assert sig.startswith("sha256=") and verify(secret, "1700000000", body, sig)
    assert not verify(secret, "1700000001", body, sig)
    assert not verify(b"other", "1700000000", body, sig)
    meta = {"severity": "critical", "fingerprint": "abc"}
    generic = payload("generic", kind="alert", subject="S", body="B", meta=meta)
    assert generic["fingerprint"] == "abc" and generic["text"] == "B"
    assert payload("slack", kind="alert", subject="S", body="B", meta=meta)["text"] == "S"
    assert "#### S" in payload("mattermost", kind="alert", subject="S", body="B", meta=meta)["text"]
    teams = payload("teams", kind="alert", subject="S", body="B", meta=meta)
    assert teams["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    creds = tmp_path / "smtp.json"
    creds.write_text('{"username": "isoloir", "password": "pw-fictif"}')
    os.chmod(creds, 0o640)
    with pytest.raises(SecretError, match="group or others"):
        read_smtp_credentials(creds)
    os.chmod(creds, 0o600)
    c = read_smtp_credentials(creds)
    assert c.username == "isoloir" and "pw-fictif" not in repr(c)
    key = tmp_path / "hook.key"
    key.write_text("secret\n")
    os.chmod(key, 0o604)
    with pytest.raises(SecretError):
        read_secret_bytes(key)
    os.chmod(key, 0o600)
    assert read_secret_bytes(key) == b"secret"
    with pytest.raises(SecretError, match="does not exist"):
        read_secret_bytes(tmp_path / "missing")


def test_unconfigured_channel_fails_and_stays_queued(tmp_path: Path) -> None:
    clock = Clock()
    svc = AlertService(policies(), tmp_path, transports={}, time_source=clock)
    svc.process("scan", [finding()])
    report = svc.flush()
    assert report.failed == 3 and report.sent == 0
    assert svc.stats()["pending"] == 3 and svc.stats()["retrying"] == 3
    assert all("not configured" in e for e in report.errors)
    svc.close()


def test_spool_survives_reopen(tmp_path: Path) -> None:
    clock = Clock()
    first = AlertService(policies(), tmp_path, transports={}, time_source=clock)
    first.process("scan", [finding()])
    first.close()
    email, hook = Recorder(), Recorder()
    second = AlertService(
        policies(), tmp_path, transports={"email": email, "webhook:equipe": hook}, time_source=clock
    )
    second.process("scan", [finding()])  # already known: nothing new queued
    assert second.flush().sent == 3
    assert len(email.sent) == 2 and len(hook.sent) == 1
    second.close()


def test_destination_label_hides_address() -> None:
    d = Destination("email", "cfictive", "claire.fictive@mouvement-exemple.example")
    assert d.label == "email:cfictive"


def test_legal_hold_survives_the_flood_summary_and_digest(tmp_path: Path) -> None:
    p = policies(flood_max_alerts=1, digest_enabled=True)
    held = dataclasses.replace(
        p.elections[0], legal_hold=True, legal_hold_reason="Recours en cours"
    )
    p = dataclasses.replace(p, elections=(held,))
    clock, email = Clock(), Recorder()
    # 07:00 local time on some day: before the example's digest time (08:00).
    clock.t = datetime(2027, 3, 15, 7, 0).timestamp()
    svc = AlertService(
        p, tmp_path, transports={"email": email, "webhook:equipe": Recorder()}, time_source=clock
    )
    svc.process("retention", [finding(n) for n in range(3)])
    svc.flush()
    summary = [m for m in email.sent if m.kind == "summary"]
    assert len(summary) == 2
    assert all(
        f"Conservation pour contentieux (purge suspendue) : {ELECTION} — Recours en cours" in m.body
        for m in summary
    )
    assert not svc.digest_due()
    clock.t += 3600
    assert svc.digest_due()
    assert svc.queue_digest() == 3  # two people and the webhook
    assert not svc.digest_due() and svc.queue_digest() == 0  # once a day
    svc.flush()
    digests = [m for m in email.sent if m.kind == "digest"]
    assert len(digests) == 2
    assert all(
        "3 problème(s) ouvert(s)" in m.subject and "Recours en cours" in m.body for m in digests
    )
    clock.t += 86400
    assert svc.digest_due()
    svc.close()


def test_sink_override_is_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from isoloir.alerts.smtp import sink_address

    monkeypatch.delenv("ISOLOIR_SMTP_SINK", raising=False)
    assert sink_address() is None
    monkeypatch.setenv("ISOLOIR_SMTP_SINK", "127.0.0.1:2525")
    assert sink_address() == ("127.0.0.1", 2525)
    monkeypatch.setenv("ISOLOIR_SMTP_SINK", "smtp.example:25")
    with pytest.raises(DeliveryError, match="loopback"):
        sink_address()


def test_webhook_url_must_be_https_unless_loopback() -> None:
    from isoloir.alerts.webhook import check_url

    check_url("https://chat.example/hook")
    check_url("http://127.0.0.1:8080/hook")
    with pytest.raises(DeliveryError, match="https"):
        check_url("http://chat.example/hook")


# -- faults and hostile names (issue 13) --------------------------------------------


def test_unread_scope_is_never_resolved_and_keeps_first_seen(
    env: tuple[AlertService, Clock, Recorder, Recorder],
) -> None:
    from isoloir.findings import Unread

    svc, clock, _, _ = env
    bucket = finding(1, resource="s3://mouvement-exemple-exempleville-2027")
    obj = finding(2, resource="s3://mouvement-exemple-exempleville-2027/prospects/a.csv")
    other = finding(3, resource="/srv/elections/exempleville-2027/a.csv")
    svc.process("scan", [bucket, obj, other])
    first = {r.fingerprint: r.first_seen for r in svc.spool.open_findings("scan")}
    clock.t += 3600
    # the bucket could not be read; the share was read and `other` is gone
    unread = Unread(resources=frozenset({"s3://mouvement-exemple-exempleville-2027"}))
    report = svc.process("scan", [], unread=unread)
    assert report.resolved == 1
    still = {r.fingerprint: r.first_seen for r in svc.spool.open_findings("scan")}
    assert still == {f.fingerprint: first[f.fingerprint] for f in (bucket, obj)}
    # a whole rule unread (the scope could not be listed) keeps its findings too
    clock.t += 3600
    assert svc.process("scan", [], unread=Unread(rules=frozenset({bucket.rule_id}))).resolved == 0


def test_control_characters_are_escaped_in_alerts_and_webhooks(
    env: tuple[AlertService, Clock, Recorder, Recorder],
) -> None:
    svc, _, email, hook = env
    name = "/srv/elections/x/a.csv\n\nRésolu : rien à faire\x1b[2J\u202e"
    f = finding(1, resource=name, message=f"File {name} is open.")
    svc.process("scan", [f])
    svc.flush()
    assert email.sent and hook.sent
    for m in [*email.sent, *hook.sent]:
        text = m.subject + m.body + json.dumps(m.payload, ensure_ascii=False)
        assert "\x1b" not in text and "\u202e" not in text
        assert "\nRésolu : rien" not in m.body
        assert "\\x0a\\x0aRésolu" in m.body and "\\x1b[2J" in m.body
    # the fingerprint shown is the finding's own (the same as `scan --format json`)
    assert f.fingerprint in email.sent[0].body
    assert hook.sent[0].payload  # rendered for the webhook template


def test_spool_prunes_settled_rows_after_the_keep_period(tmp_path: Path) -> None:
    clock = Clock()
    sink = Recorder()
    svc = AlertService(
        policies(routes=(Route(("cfictive",), ("email",), "medium", ("*",)),)),
        tmp_path,
        transports={"email": sink},
        time_source=clock,
        rng=random.Random(1),
        keep_days=90,
    )
    try:
        svc.process("scan", [finding(1), finding(2)])
        svc.flush()
        clock.t += 3600
        svc.process("scan", [finding(2)])  # 1 resolved, notice queued
        svc.flush()
        clock.t += 89 * 86400
        assert svc.prune() == {"messages": 0, "findings": 0}
        clock.t += 2 * 86400
        svc.process("scan", [finding(2)])
        pruned = svc.prune()
        assert pruned["messages"] == 3 and pruned["findings"] == 1
        rows = svc.spool.db.execute("SELECT state FROM findings").fetchall()
        assert [r[0] for r in rows] == ["open"]  # the open finding is kept
        statuses = [r[0] for r in svc.spool.db.execute("SELECT status FROM outbox")]
        assert statuses == ["pending"]  # only the new reminder: nothing settled is left
    finally:
        svc.close()


def test_webhook_refuses_redirects_and_non_2xx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import threading

    from isoloir.alerts.webhook import SINK_ENV, WebhookTransport

    monkeypatch.delenv(SINK_ENV, raising=False)  # the local target's sink would take the POST

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path == "/hook":
                self.send_response(302)
                self.send_header("Location", "/moved")
            elif self.path == "/accepted-ish":
                self.send_response(204 if self.command == "GET" else 304)
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _answer

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        key = tmp_path / "hook.key"
        key.write_text("secret-de-test\n")
        key.chmod(0o600)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        message = Outgoing(
            id=1, kind="alert", channel="webhook:equipe", recipient="", address="",
            subject="s", body="b", payload={"text": "b"}, language="fr",
        )  # fmt: skip
        for path in ("/hook", "/accepted-ish"):
            hook = Webhook("equipe", base + path, "generic", str(key))
            with pytest.raises(DeliveryError):
                WebhookTransport(hook, timeout=5).send(message)
        assert seen == ["POST /hook", "POST /accepted-ish"]  # the redirect was not followed
        WebhookTransport(Webhook("equipe", base + "/ok", "generic", str(key))).send(message)
    finally:
        server.shutdown()
        server.server_close()


def test_maildir_skips_symlinks_and_fifos(tmp_path: Path) -> None:
    from isoloir.alerts.cli import read_maildir

    box = tmp_path / "md"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1.msg").write_bytes(b"Subject: ok\r\nTo: a@x.example\r\n\r\nbody\r\n")
    secret = tmp_path / "secret"
    secret.write_bytes(b"Subject: forged\r\n\r\nsecret\r\n")
    (box / "new" / "link").symlink_to(secret)
    os.mkfifo(box / "new" / "fifo")
    items = read_maildir(box)
    assert [i["key"] for i in items] == ["1.msg"]
    assert items[0]["headers"]["Subject"] == "ok"


def test_flush_never_creates_a_missing_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from isoloir import cli

    agent = tmp_path / "agent.json"
    missing = tmp_path / "nostate"
    code = cli.main(["alerts", "flush", "--config", str(agent), "--state-dir", str(missing)])
    assert code == 2 and f"state dir {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


def test_alerts_test_takes_a_policies_directory_like_scan_and_retention(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CLI review D24: `alerts test --config policies/` said "not a regular file (a
    directory)" while scan and retention take that directory."""
    from isoloir import cli
    from isoloir.alerts import cli as alerts_cli

    seen: list[str] = []

    def no_transports(baseline: object) -> dict[str, object]:
        seen.append(type(baseline).__name__)
        return {}  # nothing is sent from a unit test

    monkeypatch.setattr(alerts_cli, "build_transports", no_transports)
    policies = Path(__file__).resolve().parents[2] / "policies"
    assert cli.main(["alerts", "test", "--config", str(policies)]) == alerts_cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert seen == ["Baseline"], err  # the policies were read
    assert "not a regular file" not in err and "no alert channel is configured" in err
