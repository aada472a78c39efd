"""A held message is a critical finding of the scan job until an administrator
releases or deletes it; then the alert is resolved."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

from tests.unit.test_alerts_logic import Clock, Recorder, policies

from isoloir.alerts import messages
from isoloir.alerts.service import AlertService
from isoloir.findings import Severity
from isoloir.mailguard import decisions
from isoloir.mailguard.guard import Verdict
from isoloir.mailguard.held import RULE_ID, held_findings

NOW = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)


def _hold(state: Path, queue_id: str) -> None:
    verdict = Verdict(
        "hold",
        "attachment_outside",
        250,
        "2.0.0",
        "held",
        counts={"recipients_outside": 2, "attachments_personal": 1, "recipients": 3},
        election="exempleville-2027",
    )
    decisions.record_held(state, queue_id, verdict, now=NOW)


def test_each_open_hold_is_a_critical_finding_with_counts_only(tmp_path: Path) -> None:
    _hold(tmp_path, "4XyZ9Q1abc")
    _hold(tmp_path, "4XyZ9Q1abc")  # the same queue id twice: one hold
    (finding,) = held_findings(tmp_path, NOW, host="relais")
    assert finding.rule_id == RULE_ID and finding.severity == Severity.CRITICAL
    assert finding.resource == "mail-hold/4XyZ9Q1abc" and finding.election == "exempleville-2027"
    assert finding.evidence["recipients_outside"] == 2
    assert "@" not in json.dumps(finding.to_dict())
    fr = messages.render_finding(finding, "fr", first_seen=NOW).body
    assert "retenu par le garde-courriel" in fr and "isoloir mailguard release 4XyZ9Q1abc" in fr
    assert "Retenu depuis" in fr


def test_release_or_delete_settles_the_hold(tmp_path: Path) -> None:
    _hold(tmp_path, "AAAAA11111")
    _hold(tmp_path, "BBBBB22222")
    decisions.settle(tmp_path, "AAAAA11111", "released", now=NOW)
    assert [f.resource for f in held_findings(tmp_path, NOW)] == ["mail-hold/BBBBB22222"]
    decisions.settle(tmp_path, "BBBBB22222", "deleted", now=NOW)
    assert held_findings(tmp_path, NOW) == []


def test_no_log_no_finding_and_nothing_created(tmp_path: Path) -> None:
    assert held_findings(tmp_path, NOW) == []
    assert not decisions.db_path(tmp_path).exists()


def test_a_queue_id_is_never_a_path(tmp_path: Path) -> None:
    for bad in ("../x", "a/b/c/d/e", "..", ""):
        try:
            decisions.settle(tmp_path, bad, "deleted", now=NOW)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_the_alert_goes_out_alone_and_is_resolved_once_settled(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _hold(state, "CCCCC33333")
    clock, email = Clock(), Recorder()
    svc = AlertService(
        policies(),
        state,
        transports={"email": email, "webhook:equipe": Recorder()},
        time_source=clock,
        rng=random.Random(1),
    )
    svc.process("scan", held_findings(state, NOW))
    svc.flush()
    mine = [m for m in email.sent if m.recipient == "cfictive"]
    assert [m.kind for m in mine] == ["alert"] and "mail-hold/CCCCC33333" in mine[0].subject
    decisions.settle(state, "CCCCC33333", "released", now=NOW)
    clock.t += 600
    svc.process("scan", held_findings(state, NOW))
    svc.flush()
    assert [m.kind for m in email.sent if m.recipient == "cfictive"] == ["alert", "resolved"]
    svc.close()
