"""One message per recipient per check run: criticals alone, the rest grouped."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from tests.unit.test_alerts_logic import ELECTION, Clock, Recorder, finding, policies

from isoloir.alerts import messages
from isoloir.alerts.service import AlertService
from isoloir.findings import Severity


def _service(tmp_path: Path, **alerts: object) -> tuple[AlertService, Clock, Recorder]:
    clock, email = Clock(), Recorder()
    svc = AlertService(
        policies(**alerts),
        tmp_path,
        transports={"email": email, "webhook:equipe": Recorder()},
        time_source=clock,
        rng=random.Random(1),
    )
    return svc, clock, email


def _user(name: str):  # type: ignore[no-untyped-def]
    return finding(
        rule_id="iam_user_no_mfa",
        severity=Severity.HIGH,
        resource=f"arn:aws:iam::123456789012:user/{name}",
        message=f"User {name} has no MFA device.",
        election=None,
    )


def test_criticals_alone_the_rest_in_one_message_per_recipient(tmp_path: Path) -> None:
    svc, _, email = _service(tmp_path)
    found = [finding(1), finding(2), _user("dmodele"), _user("ptest"), finding(3, Severity.MEDIUM)]
    report = svc.process("scan", found)
    svc.flush()
    per_person = Counter((m.recipient, m.kind) for m in email.sent)
    for person in ("cfictive", "bexemple"):
        assert per_person[(person, "alert")] == 2  # the two critical ones, each alone
        assert per_person[(person, "grouped")] == 1  # the three others, together
    assert report.queued == 2 * 3 + 3  # two admins by email, and the webhook's 2 + 1
    grouped = next(m for m in email.sent if m.kind == "grouped" and m.recipient == "cfictive")
    heads = [line for line in grouped.body.splitlines() if line.startswith("- [")]
    assert len(heads) == 3
    for resource in ("user/dmodele", "user/ptest", "liste-3.csv"):
        assert sum(line.endswith(resource) for line in heads) == 1
    assert "3 problème(s)" in grouped.subject and ELECTION in grouped.subject
    assert "liste-1.csv" not in grouped.body  # a critical one is never buried in a summary
    assert grouped.headers["X-Isoloir-Rules"] == "iam_user_no_mfa, s3-public-object"
    alerts = [m for m in email.sent if m.kind == "alert" and m.recipient == "cfictive"]
    assert {m.subject.rsplit("/", 1)[-1] for m in alerts} == {"liste-1.csv", "liste-2.csv"}
    svc.close()


def test_a_single_non_critical_item_goes_alone(tmp_path: Path) -> None:
    svc, _, email = _service(tmp_path)
    svc.process("scan", [_user("dmodele")])
    svc.flush()
    assert [m.kind for m in email.sent if m.recipient == "cfictive"] == ["alert"]
    svc.close()


def test_resolved_notices_join_the_grouped_message(tmp_path: Path) -> None:
    svc, clock, email = _service(tmp_path)
    svc.process("scan", [finding(1), _user("dmodele"), _user("ptest")])
    svc.flush()
    clock.t += 60
    sent_before = len(email.sent)
    svc.process("scan", [finding(1)])  # both users fixed
    svc.flush()
    new = [m for m in email.sent[sent_before:] if m.recipient == "cfictive"]
    assert [m.kind for m in new] == ["grouped"]
    assert "Résolu" in new[0].body and "Comment corriger" not in new[0].body
    svc.close()


def test_two_people_two_subjects() -> None:
    subjects = {
        messages.render_finding(_user(n), "fr", first_seen=None).subject
        for n in ("dmodele", "ptest")
    }
    assert len(subjects) == 2


def test_short_resource_keeps_the_file_name() -> None:
    long_a = "s3://mouvement-exemple-exempleville-2027/" + "x" * 80 + "/fichier-a.csv"
    long_b = long_a.replace("fichier-a", "fichier-b")
    a, b = messages.short_resource(long_a), messages.short_resource(long_b)
    assert a != b and a.endswith("fichier-a.csv") and len(a) <= messages.SUBJECT_RESOURCE_MAX
    assert messages.short_resource("arn:aws:s3:::bucket/key.csv") == "bucket/key.csv"


def test_flood_guard_still_caps_the_cycle(tmp_path: Path) -> None:
    svc, _, email = _service(tmp_path, flood_max_alerts=3, flood_window_minutes=10)
    found = [finding(n) for n in range(5)] + [_user("dmodele"), _user("ptest")]
    svc.process("scan", found)
    svc.flush()
    kinds = [m.kind for m in email.sent if m.recipient == "cfictive"]
    assert kinds == ["alert", "alert", "alert", "summary"]
    svc.close()
