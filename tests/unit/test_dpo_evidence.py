"""`isoloir evidence`: the bundle for a CNIL inspection, made from a real state
folder (a signed certificate and an edited copy, a breach in the alert spool, a
rights request, mail-guard decisions and opt-outs, an audit report): every
file is there, its hash in the manifest, folder 0700 and files 0600; what is
missing is said; an existing folder is never written into."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from tests.unit.test_certificate_cli import _body
from tests.unit.test_dpo_breaches import AWARE, breach_finding

from isoloir.alerts.spool import Spool, spool_path
from isoloir.cli import main
from isoloir.dpo import requests
from isoloir.mailguard import decisions, unsubscribe
from isoloir.mailguard.guard import Verdict
from isoloir.retention import certificate, keys, purge

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOW = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)


def state_with_everything(root: Path) -> Path:
    state = root / "state"
    secrets = root / "secrets"
    keys.init(secrets)
    key = keys.signing_key(secrets)
    folder = purge.certificates_dir(state)
    good = folder / "exempleville-2027--20270601T040000000000Z.json"
    body = _body(keys.public_key_id(key.public_key()))
    certificate.write(good, certificate.sign(body, key), key.public_key())
    edited = folder / "exempleville-2027--20270602T040000000000Z.json"
    edited.write_bytes(good.read_bytes().replace(b'"steps": 3', b'"steps": 4'))
    spool = Spool(spool_path(state))
    spool.open_finding("scan", breach_finding(), AWARE.timestamp())
    spool.close()
    requests.RequestLog(state).open("erasure", date(2027, 5, 20), NOW)
    for action, rule in (("accept", "ok"), ("accept", "ok"), ("reject", "transparency")):
        verdict = Verdict(action, rule, 250, "2.0.0", "x", counts={"recipients": 1})
        decisions.record(state, verdict, now=NOW)
    with unsubscribe.MailOptOuts(unsubscribe.optouts_path(state)) as optouts:
        optouts.add("d" * 64, authenticated=False, now=NOW)
    return state


def test_the_bundle_holds_every_piece_with_its_hash(tmp_path: Path) -> None:
    state = state_with_everything(tmp_path)
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "audit-20270601T080000Z.json").write_text('{"hosts": []}\n')
    (audit / "audit-20270601T080000Z.md").write_text("# Audit\n")
    (audit / "elsewhere.json").symlink_to(tmp_path / "secrets" / "nothing.json")
    out = tmp_path / "bundle"
    argv = ["evidence", "--out", str(out), "--config", str(POLICIES), "--state-dir", str(state)]
    assert main([*argv, "--audit", str(audit)]) == 0

    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    manifest = json.loads((out / "MANIFEST.json").read_text())
    for entry in manifest["files"]:
        path = out / entry["file"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    names = {e["file"] for e in manifest["files"]}
    assert {
        "register.fr.txt",
        "register.json",
        "certificates.json",
        "requests.json",
        "breaches.json",
        "mailguard.json",
        "audit/audit-20270601T080000Z.json",
        "audit/audit-20270601T080000Z.md",
        f"certificates/{certificate.PUBLIC_KEY_FILE}",
    } <= names
    assert "audit/elsewhere.json" not in names  # a symbolic link is not followed
    assert manifest["counts"] == {
        "certificates": 2,
        "erasures": 0,
        "requests": 1,
        "breaches": 1,
        "mail_decisions": 3,
        "audit_files": 2,
    }
    assert manifest["not_found"] == ["erasure records: no erasure was run"]
    # the register in the CNIL template's order
    assert "Responsable du traitement" in (out / "register.fr.txt").read_text()
    # each certificate's signature checked: the edited copy does not verify
    checked = {c["file"]: c for c in json.loads((out / "certificates.json").read_text())}
    assert checked["certificates/exempleville-2027--20270601T040000000000Z.json"][
        "signature_verifies"
    ]
    assert not checked["certificates/exempleville-2027--20270602T040000000000Z.json"][
        "signature_verifies"
    ]
    (breach,) = json.loads((out / "breaches.json").read_text())
    assert breach["form"] and breach["decision"] == {}
    mail = json.loads((out / "mailguard.json").read_text())
    assert mail["decisions_whole_log"]["rules"] == {"ok": 2, "transparency": 1}
    assert mail["mail_optouts"] == {"recorded": 1, "authenticated": 0}
    (request,) = json.loads((out / "requests.json").read_text())
    assert request["kind"] == "erasure"


def test_an_empty_state_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    state = tmp_path / "state"
    argv = ["evidence", "--out", str(out), "--config", str(POLICIES), "--state-dir", str(state)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for what in ("deletion certificates", "erasure records", "mail guard decisions", "audit"):
        assert f"not found: {what}" in printed
    assert (out / "register.fr.txt").is_file()


def test_an_existing_folder_is_never_written_into(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    argv = ["evidence", "--out", str(out), "--config", str(POLICIES)]
    assert main([*argv, "--state-dir", str(tmp_path / "state")]) == 2  # EXIT_ERROR
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_a_missing_audit_folder_leaves_no_half_bundle(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    argv = ["evidence", "--out", str(out), "--config", str(POLICIES)]
    argv += ["--state-dir", str(tmp_path / "state"), "--audit", str(tmp_path / "none")]
    assert main(argv) == 2  # EXIT_ERROR
    assert not out.exists()
