"""Translations (issue 14): every catalogue entry translated, the template up to date
with the sources, no English sentence in a French render and no French one in an
English render (alerts for every check, retention warnings, certificate, status),
evidence shown as labelled, readable values."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from isoloir import i18n
from isoloir.alerts import details, messages
from isoloir.daemon import status_text
from isoloir.exposure import registry
from isoloir.exposure.breach import breach_sentence, register_draft
from isoloir.exposure.pii import PiiReport
from isoloir.findings import Finding
from isoloir.i18n import Msg
from isoloir.policy import load_policies
from isoloir.retention import certificate, jobs, keys, planning

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "agents" / "isoloir"
POT = PACKAGE / "locale" / "isoloir.pot"
NOW = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)


def _catalogue(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        return {str(m.id): str(m.string) for m in read_po(fh) if m.id}


FR = _catalogue(PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "isoloir.po")


# ------------------------------------------------------------------ (a) catalogues


def test_every_msgid_has_a_french_translation() -> None:
    template = _catalogue(POT)
    missing = [m for m in template if not FR.get(m)]
    assert template and not missing, missing
    assert set(FR) == set(template)  # no stale entry left in the French catalogue


def test_template_is_up_to_date_with_the_sources() -> None:
    extracted = {
        str(msg[2])
        for msg in extract_from_dir(str(PACKAGE), [("**.py", "python")])
        if isinstance(msg[2], str)
    }
    assert extracted == set(_catalogue(POT)), "run `make locale` and commit the .po files"


def test_placeholders_survive_translation() -> None:
    names = string.Formatter()
    for msgid, msgstr in FR.items():
        want = {f[1] for f in names.parse(msgid) if f[1]}
        got = {f[1] for f in names.parse(msgstr) if f[1]}
        assert want == got, msgid


def test_a_missing_catalogue_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translator.cache_clear()
    try:
        with pytest.raises(i18n.CatalogueError, match="isoloir.mo"):
            i18n.translator("fr")
    finally:
        i18n.translator.cache_clear()
        monkeypatch.undo()
    assert i18n.translator("fr").gettext("yes") == "oui"


# ------------------------------------------------------------------ (b) no leftovers

_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def _fragments(texts: list[str], other: list[str]) -> set[str]:
    """Literal pieces of `texts` long enough to be a sentence (two words or more),
    and not shared with the other language (commands, AWS names)."""
    other_text = "\n".join(other)
    out = set()
    for text in texts:
        for piece in _PLACEHOLDER.split(text):
            piece = piece.strip(" .,:;()«»'\"-—")
            if len(piece) >= 12 and " " in piece and piece not in other_text:
                out.add(piece)
    return out


ENGLISH = _fragments([m for m, s in FR.items() if s != m], list(FR.values()))
FRENCH = _fragments([s for m, s in FR.items() if s != m], list(FR))


def assert_no_english(text: str) -> None:
    found = sorted(f for f in ENGLISH if f in text)
    assert not found, f"untranslated in the French render: {found}"


def assert_no_french(text: str) -> None:
    found = sorted(f for f in FRENCH if f in text)
    assert not found, f"French in the English render: {found}"


def _report() -> PiiReport:
    return PiiReport(
        counts={"phone": 3, "email": 2},
        records_sampled=10,
        estimated_records=900,
        sampled_bytes=1024,
    )


def _value_for(name: str) -> Any:
    """A plausible value per placeholder: names, counts, dates, lists, nested messages."""
    if name == "breach":
        return breach_sentence(_report())
    if name in {"weak", "grants"}:
        return [Msg("minimum length {found} < {wanted}", {"found": 8, "wanted": 12})]
    if name in {"what", "why", "problem"}:
        return Msg("the whole bucket") if name == "what" else Msg("no output rule refuses it")
    if name in {"due", "since", "expires", "when"}:
        return "2026-11-30T14:05:00+00:00"
    if name in {"flags", "statements", "prefixes", "groups", "found", "locations"}:
        return ["BlockPublicAcls", "IgnorePublicAcls"]
    if name in {"age", "limit", "days", "records", "hours", "count", "wanted", "uids"}:
        return 7
    return f"x-{name}"


def _templates_of(check: registry.Check) -> list[str]:
    """The message templates of a check: the catalogue entries extracted from its file."""
    module = check.evaluate.__module__.rsplit(".", 1)[-1]
    with POT.open("rb") as fh:
        entries = [m for m in read_po(fh) if m.id]
    return [
        str(m.id)
        for m in entries
        if any(loc.endswith(f"checks/{module}.py") for loc, _ in m.locations)
        and m.id not in {check.title, check.remediation}
    ]


def _finding(check: registry.Check, template: str) -> Finding:
    names = {f[1] for f in string.Formatter().parse(template) if f[1]}
    params = {n: _value_for(n) for n in names}
    hit = registry.Hit(resource=f"s3://x-{check.id}", message=template, params=params)
    return Finding(
        rule_id=check.id,
        severity=check.severity,
        resource=hit.resource,
        message=hit.text("en"),
        remediation=check.remediation,
        message_id=template,
        remediation_id=check.remediation,
        params=i18n.params_to_json(params),
        evidence={
            "public_grants": 2,
            "flags_off": ["BlockPublicAcls"],
            "legal_hold": False,
            "retention_due": "2026-11-30",
            "breach_register_draft": register_draft(
                _report(),
                resource=hit.resource,
                exposure="object readable by anyone on the internet",
                election="x-election",
                aware_at=NOW,
                measures="object ACL reset to private",
            ),
        },
    )


@pytest.mark.parametrize("check", list(registry.discover().values()), ids=lambda c: c.id)
def test_every_check_renders_in_french_and_english(check: registry.Check) -> None:
    templates = _templates_of(check)
    assert templates, f"{check.id}: no message template in the catalogue"
    assert FR[check.title] and FR[check.remediation]
    for template in templates:
        f = _finding(check, template)
        assert json.loads(f.to_json())["message_id"] == template  # nested messages too
        fr = messages.render_finding(f, "fr", first_seen=NOW)
        en = messages.render_finding(f, "en", first_seen=NOW)
        assert_no_english(fr.subject + fr.body)
        assert_no_french(en.subject + en.body)
        assert i18n.render("fr", template, f.params) in fr.body
        assert f.message in en.body  # the English text JSON keeps is what English readers see
        assert FR[check.remediation] in fr.body


def test_the_stored_finding_keeps_english_text_and_its_template() -> None:
    f = _finding(registry.discover()["s3_bucket_policy_public"], "Bucket {bucket} accepts ACLs.")
    data = f.to_dict()
    assert data["message"] == f.message and data["message_id"] == f.message_id
    again = Finding.from_dict(data)
    assert again.fingerprint == f.fingerprint  # the fingerprint ignores the text
    assert details.message_text(again, "fr") == details.message_text(f, "fr")


def test_retention_warnings_hold_and_purge_in_both_languages(tmp_path: Path) -> None:
    import dataclasses

    e = load_policies(ROOT / "policies").election("exempleville-2027")
    e = dataclasses.replace(e, legal_hold=True, legal_hold_reason="x-reason")
    st = planning.ElectionStatus(e, date(2026, 12, 7), 7, planning.WARNING, 7)
    found = [
        jobs.warning_finding(st, NOW),
        jobs.hold_finding(st, NOW),
        jobs.due_finding(st, NOW, Msg("dry run, nothing deleted")),
        jobs.failed_finding(e, NOW, RuntimeError("x-error")),
    ]
    for f in found:
        fr = messages.render_finding(f, "fr", first_seen=NOW)
        en = messages.render_finding(f, "en", first_seen=NOW)
        assert_no_english(fr.body)
        assert_no_french(en.body)
    warning = messages.render_finding(found[0], "fr", first_seen=NOW).body
    assert "doivent être détruites le 07/12/2026 (reste 7 jour(s))" in warning
    assert "on 2026-12-07 (7 day(s) left)." in found[0].message


# ------------------------------------------------------------------ (c) details


def test_details_are_labelled_readable_lines() -> None:
    evidence = {
        "legal_hold": True,
        "log_bucket": False,
        "retention_due": "2026-11-30",
        "logs_read_until": "2026-11-30T14:05:00+00:00",
        "flags_off": ["BlockPublicAcls", "RestrictPublicBuckets"],
        "public_grants": 3,
        "pii_counts": {"phone": 3, "email": 1},
        "versioning": None,
    }
    fr = details.evidence_lines(evidence, "fr")
    en = details.evidence_lines(evidence, "en")
    assert fr == [
        "  - Conservation pour contentieux : oui",
        "  - Compartiment des journaux d'accès : non",
        "  - Fin de la durée de conservation : 30/11/2026",
        "  - Journaux lus jusqu'au : 30/11/2026 14:05 UTC",
        "  - Paramètres de blocage de l'accès public désactivés : "
        "BlockPublicAcls, RestrictPublicBuckets",
        "  - Autorisations ACL publiques : 3",
        "  - Données personnelles trouvées dans l'échantillon : "
        "numéros de téléphone : 3; adresses électroniques : 1",
        "  - Versionnage : —",
    ]
    assert en[0] == "  - Legal hold: yes" and en[1] == "  - Access-log bucket: no"
    assert en[2] == "  - Retention date: 2026-11-30"
    assert en[3] == "  - Logs read until: 2026-11-30 14:05 UTC"
    for line in fr + en:
        assert "True" not in line and "False" not in line and "{" not in line and "[" not in line


def test_every_evidence_key_the_checks_use_has_a_label() -> None:
    sources = "\n".join(p.read_text() for p in (PACKAGE / "exposure" / "checks").glob("*.py"))
    block = re.findall(r"evidence=\{(.*?)\}", sources, re.S)
    keys_used = {k for b in block for k in re.findall(r'"([a-z_]+)":', b)}
    keys_used |= set(_report().to_evidence())
    missing = sorted(k for k in keys_used if k not in details.LABELS)
    assert not missing, missing


def test_alert_draft_block_and_json_machine_form() -> None:
    check = registry.discover()["s3_object_public_acl"]
    f = _finding(check, "Object {object} is public through its ACL: {breach}.")
    body = messages.render_finding(f, "fr", first_seen=NOW).body
    block = body.split("Brouillon pour le registre des violations :\n", 1)[1]
    assert "  - Nature de la violation : perte de confidentialité\n" in block
    assert "  - Notifier la CNIL au plus tard le : 03/12/2026 14:05 UTC\n" in block
    # E1: a party's file reveals presumed political opinions: high risk, inform (art. 34)
    assert "  - Informer les personnes concernées : oui\n" in block
    assert "  - Risque pour les personnes : risque élevé\n" in block
    assert "opinions politiques présumées (RGPD art. 9)" in block
    assert "informez-les (RGPD art. 34)" in body
    assert "{'nature'" not in body
    draft = f.to_dict()["evidence"]["breach_register_draft"]
    assert draft["nature"] == "loss of confidentiality"  # JSON keeps the machine form
    assert draft["inform_data_subjects"] is True


# ------------------------------------------------------------------ (d) certificate, status


def test_certificate_show_in_both_languages() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from tests.unit.test_retention_pure import _body  # noqa: PLC0415

    key = Ed25519PrivateKey.generate()
    doc = certificate.sign(_body(keys.public_key_id(key.public_key())), key)
    fr = certificate.render(doc, "fr", verified=True, key_note="abc (pinned)")
    en = certificate.render(doc, "en", verified=True, key_note="abc (pinned)")
    assert fr.startswith("# Certificat de destruction") and "**vérifiés**" in fr
    assert en.startswith("# Deletion certificate") and "**verified**" in en
    assert "22 May 2026" in en and "22 mai 2026" in fr
    assert_no_english(fr)
    assert_no_french(en)
    bad_fr = certificate.render(doc, "fr", verified=False, reasons=["x"])
    assert bad_fr.startswith("> **⚠ CE CERTIFICAT N'EST PAS VALIDE** : x.")
    assert_no_english(bad_fr)


def test_a_failed_verification_is_french_throughout() -> None:
    """CLI review N8: the banner's reasons, the key note and a deferred key deletion
    were English inside the French certificate."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from tests.unit.test_retention_pure import _body  # noqa: PLC0415

    key = Ed25519PrivateKey.generate()
    body = _body(keys.public_key_id(key.public_key()))
    body["key"] = {"deferred_reason": "the bucket has no SSE-KMS default key", "window_days": 30}
    doc = certificate.sign(body, key)
    doc["certificate"]["totals"]["objects"] += 1  # tampered after signing
    result = certificate.verify_bytes(certificate.render_file(doc), key.public_key())
    # stderr and logs keep the English text
    assert "signature does not match the content" in result.reasons
    assert "totals do not add up to the datasets" in result.reasons
    note = certificate.Reason(
        i18n.N_("{fingerprint} ({source})"),
        fingerprint="sha256:ab",
        source=certificate.Reason(i18n.N_("{path}, next to the certificate"), path="/c/k.pem"),
    )
    assert note == "sha256:ab (/c/k.pem, next to the certificate)"
    fr = certificate.render(doc, "fr", verified=False, reasons=result.reasons, key_note=note)
    banner = fr.splitlines()[0]
    assert "la signature ne correspond pas au contenu" in banner
    assert "les totaux ne correspondent pas aux jeux de données" in banner
    assert "/c/k.pem, à côté du certificat" in fr
    assert "le compartiment n'a pas de clé SSE-KMS par défaut" in fr
    assert_no_english(fr)
    en = certificate.render(doc, "en", verified=False, reasons=result.reasons, key_note=note)
    assert "signature does not match the content" in en.splitlines()[0]
    assert "the bucket has no SSE-KMS default key" in en
    assert_no_french(en)


def test_a_failed_job_is_french_in_status() -> None:
    data: dict[str, Any] = {
        "state_dir": "/var/lib/isoloir",
        "clock_overridden": False,
        "clock_now": None,
        "heartbeat": None,
        "jobs": {
            "scan": {
                "running": False,
                "last": {
                    "ok": False,
                    "error": "incomplete",
                    "findings": 0,
                    "finished": "2026-11-30T14:00:00+00:00",
                },
            },
        },
        "spool": None,
    }
    fr = status_text(data, "fr")
    assert "(incomplet)" in fr and "incomplete" not in fr
    assert "(incomplete)" in status_text(data, "en")


def test_status_in_both_languages() -> None:
    data: dict[str, Any] = {
        "state_dir": "/var/lib/isoloir",
        "clock_overridden": False,
        "clock_now": None,
        "heartbeat": {
            "age_seconds": 12.0,
            "pid": 42,
            "state": "idle",
            "current_job": None,
            "next_runs": {"scan": "2026-11-30T15:00:00+00:00"},
        },
        "jobs": {
            "scan": {
                "running": False,
                "last": {"ok": True, "findings": 2, "finished": "2026-11-30T14:00:00+00:00"},
            },
            "retention": {"running": False, "last": None},
        },
        "spool": {"pending": 1, "retrying": 0, "dead": 0, "sent": 4, "open_findings": 2},
    }
    fr = status_text(data, "fr")
    en = status_text(data, "en")
    assert "démon : en attente, pid 42" in fr and "tâche retention : jamais exécutée" in fr
    assert "daemon: idle, pid 42" in en and "job retention: never run" in en
    assert_no_english(fr)
    assert_no_french(en)


# ------------------------------------------------------------------ through the service


def test_a_queued_alert_under_legal_hold_is_french_end_to_end(tmp_path: Path) -> None:
    """The spool stores the finding as JSON and the legal-hold note rebuilds it: the
    templates and their values survive both, so the sent alert is French."""
    import dataclasses
    import random

    from tests.unit.test_alerts_logic import Clock, Recorder

    from isoloir.alerts.service import AlertService
    from isoloir.policy.model import Route

    p = load_policies(ROOT / "policies")
    held = tuple(
        dataclasses.replace(e, legal_hold=True, legal_hold_reason="x-affaire") for e in p.elections
    )
    alerts = dataclasses.replace(
        p.baseline.alerts, webhooks=(), routes=(Route(("cfictive",), ("email",), "medium", ("*",)),)
    )
    p = dataclasses.replace(
        p, elections=held, baseline=dataclasses.replace(p.baseline, alerts=alerts)
    )
    check = registry.discover()["s3_bucket_tls_only"]
    f = dataclasses.replace(
        _finding(check, "Bucket {bucket} accepts requests without TLS."), election=held[0].id
    )
    email = Recorder()
    svc = AlertService(
        p, tmp_path, transports={"email": email}, time_source=Clock(), rng=random.Random(1)
    )
    try:
        svc.process("scan", [f])
        svc.flush()
    finally:
        svc.close()
    (sent,) = email.sent
    assert "Quoi : Le compartiment x-bucket accepte des requêtes sans TLS." in sent.body
    assert f"Comment corriger : {FR[check.remediation]}" in sent.body
    assert "Conservation pour contentieux (purge suspendue) : x-affaire" in sent.body
    assert_no_english(sent.subject + sent.body)


def test_every_kind_of_message_in_both_languages() -> None:
    check = registry.discover()["s3_bucket_versioning"]
    f = _finding(check, "Bucket {bucket} versioning is {state}.")
    f = Finding.from_dict({**f.to_dict(), "params": {"bucket": "x-b", "state": "off"}})
    for lang, check_text in (("fr", assert_no_english), ("en", assert_no_french)):
        rendered = [
            messages.render_resolved(f, lang, job="scan", first_seen=NOW, resolved_at=NOW),
            messages.render_summary([("alert", f)], lang, limit=5, window_minutes=10),
            messages.render_digest([(f, NOW)], lang, now=NOW),
            messages.render_test(lang, channel="email", now=NOW),
            messages.render_grouped([("alert", f, NOW)], lang),
            messages.render_finding(f, lang, first_seen=NOW, reminder=True),
        ]
        for r in rendered:
            check_text(r.subject + r.body)
    grouped = messages.render_grouped([("alert", f, NOW)], "fr").body
    assert "Le versionnage du compartiment x-b est désactivé." in grouped
    assert "Depuis : 30/11/2026 14:05 UTC" in grouped
