"""The breach register: permanent (the spool's 90-day prune does not erase it), the
CNIL notification form's fields, the decision to notify recorded, reminders at 24 h
and 48 h and after the 72 hours. A real spool (SQLite), fake findings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from isoloir.alerts.spool import Spool, spool_path
from isoloir.cli import main
from isoloir.dpo import breaches
from isoloir.dpo.requests import RequestError
from isoloir.exposure.breach import register_draft
from isoloir.exposure.pii import PiiReport
from isoloir.findings import Finding, Severity

AWARE = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def breach_finding() -> Finding:
    report = PiiReport({"email": 40, "phone": 38}, 40, 900, 1024, "text")
    draft = register_draft(
        report,
        resource="/srv/elections/exempleville-2027/prospects/export-contacts.csv",
        exposure="file on a share readable by every account of the host",
        election="exempleville-2027",
        aware_at=AWARE,
        measures="chmod o-rwx",
    )
    return Finding(
        "share_world_accessible",
        Severity.CRITICAL,
        "/srv/elections/exempleville-2027/prospects/export-contacts.csv",
        "File is open to others.",
        election="exempleville-2027",
        evidence={"breach_register_draft": draft},
    )


def test_a_resolved_breach_outlives_the_spool_prune(tmp_path: Path) -> None:
    f = breach_finding()
    spool = Spool(spool_path(tmp_path))
    spool.open_finding("scan", f, AWARE.timestamp())
    spool.open_finding(
        "scan", Finding("s3_bucket_versioning", Severity.MEDIUM, "s3://b", "x"), AWARE.timestamp()
    )
    (entry,) = breaches.sync(tmp_path)  # only the finding with a draft
    assert entry.aware_at == AWARE.isoformat() and entry.ended_at == ""
    end = AWARE + timedelta(hours=3)
    spool.resolve_finding(f.fingerprint, end.timestamp())
    (entry,) = breaches.sync(tmp_path)
    assert entry.ended_at == end.isoformat()
    # 90 days later the spool forgets it; the register does not
    assert spool.prune((end + timedelta(days=91)).timestamp())["findings"] == 1
    spool.close()
    assert [b.id for b in breaches.sync(tmp_path)] == [entry.id]
    assert oct(breaches.register_path(tmp_path).stat().st_mode & 0o777) == "0o600"


def test_the_form_the_decision_and_the_reminders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = Spool(spool_path(tmp_path))
    spool.open_finding("scan", breach_finding(), AWARE.timestamp())
    spool.close()
    (entry,) = breaches.sync(tmp_path)
    # undecided: nothing before 24 h, high at 24 h and 48 h, critical after 72 h
    assert breaches.reminders([entry], AWARE + timedelta(hours=23)) == []
    day = breaches.reminders([entry], AWARE + timedelta(hours=25))
    assert [(r.rule_id, str(r.severity)) for r in day] == [("DPO-BREACH-UNDECIDED", "high")]
    late = breaches.reminders([entry], AWARE + timedelta(hours=73))
    assert [str(r.severity) for r in late] == ["critical"]
    fields = breaches.form(entry, "Mouvement Exemple", "dpo@mouvement-exemple.example", "fr")
    assert list(fields) == [k for k, _label in breaches.FORM["fr"]]
    assert fields["data_categories"] == (
        "numéros de téléphone, adresses électroniques, opinions politiques présumées (RGPD art. 9)"
    )
    assert fields["records"] == "900" and fields["ended_at"] == "en cours"
    assert fields["decision"] == "à décider"
    assert fields["inform_persons"] == "à décider (recommandé : oui)"
    assert fields["notify_by"] == (AWARE + timedelta(hours=72)).isoformat()
    with pytest.raises(RequestError, match="justification"):
        breaches.decide(
            tmp_path,
            entry.id,
            notify=True,
            why=" ",
            by="DPO",
            inform_persons=True,
            persons_why="",
            now=AWARE,
        )
    code = main(
        [
            "breach",
            "decide",
            entry.id,
            "--notify",
            "--why",
            "fichier d'adhérents exposé",
            "--by",
            "dpo",
            "--inform-persons",
            "yes",
            "--state-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    (entry,) = breaches.sync(tmp_path)
    assert entry.decision["notify_cnil"] is True and entry.decision["decided_by"] == "dpo"
    assert breaches.reminders([entry], AWARE + timedelta(hours=80)) == []
    capsys.readouterr()
    assert (
        main(["breach", "show", entry.id, "--config", str(POLICIES), "--state-dir", str(tmp_path)])
        == 0
    )
    shown = capsys.readouterr().out
    assert "Décision de notifier la CNIL : oui — fichier d'adhérents exposé" in shown
    assert "Information des personnes concernées : oui" in shown
    assert "Violation transfrontalière : non" in shown


def test_the_reminders_and_deadline_alerts_read_in_french(tmp_path: Path) -> None:
    from tests.unit.test_i18n import assert_no_english

    from isoloir.alerts import messages
    from isoloir.dpo import requests

    spool = Spool(spool_path(tmp_path))
    spool.open_finding("scan", breach_finding(), AWARE.timestamp())
    spool.close()
    (late,) = breaches.reminders(breaches.sync(tmp_path), AWARE + timedelta(hours=73))
    log = requests.RequestLog(tmp_path)
    log.open("erasure", date(2027, 3, 1), AWARE)
    (due,) = requests.findings(log.all(), date(2027, 3, 30), AWARE)
    for finding, words in (
        (late, "le délai de 72 heures pour notifier la CNIL a expiré le 04/03/2027 10:00 UTC"),
        (due, "(art. 17) doit recevoir une réponse au plus tard le 01/04/2027 : 2 jour(s)"),
    ):
        body = messages.render_finding(finding, "fr", first_seen=AWARE).body
        assert words in body, body
        assert_no_english(body)
        assert finding.to_json()  # the parameters serialise
