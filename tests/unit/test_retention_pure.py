"""Pure parts of the retention agent: planning, CSV splitting, normalisation,
the journal, the share walk, the suppression list and the certificate."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from isoloir.policy import load_policies
from isoloir.policy.model import ColumnRule, Tabular
from isoloir.retention import certificate, keys, planning, share, tabular
from isoloir.retention.journal import Journal
from isoloir.retention.suppression import SuppressionList, filter_table

REPO = Path(__file__).resolve().parents[2]
TAB = Tabular(
    consent=ColumnRule("consentement", ("oui", "yes", "1")),
    opt_out=ColumnRule("desinscrit", ("oui", "1")),
    email_column="email",
    phone_column="telephone",
)
COLUMNS = ("prenom", "email", "telephone")


# ------------------------------------------------------------------ planning
@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(45, None), (30, 30), (20, 30), (7, 7), (5, 7), (1, 1), (0, None), (-3, None)],
)
def test_warning_thresholds(days_left: int, expected: int | None) -> None:
    assert planning.warning_threshold(days_left, (30, 7, 1)) == expected


def test_status_of_the_example_election() -> None:
    e = load_policies(REPO / "policies").election("exempleville-2027")
    assert e.retention_due == date(2027, 5, 21)
    assert planning.status(e, date(2027, 4, 21), (30, 7, 1)).phase == planning.WARNING
    assert planning.status(e, date(2027, 5, 21), (30, 7, 1)).phase == planning.DUE
    assert planning.status(e, date(2027, 1, 1), (30, 7, 1)).phase == planning.ACTIVE
    assert planning.status(e, date(2027, 6, 1), (30, 7, 1), purged=True).phase == planning.PURGED
    assert [d.name for d in planning.campaign_datasets(e)] == ["porte-a-porte", "prospects"]
    assert [d.name for d in planning.kept_datasets(e)] == ["benevoles"]


# ------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("612345678", "+33612345678"),
        ("33612345678", "+33612345678"),
        ("+32 470 12 34 56", "+32470123456"),
        ("tel:+33612345678", "+33612345678"),
        ("12 34", None),
        ("n/a", None),
        ("", None),
    ],
)
def test_phone_e164(raw: str, expected: str | None) -> None:
    assert tabular.normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alix.Fictive@Exemple.INVALID ", "alix.fictive@exemple.invalid"),
        ("mailto:a@b.example", "a@b.example"),
        ("pas une adresse", None),
        ("a@b", None),
        ("", None),
    ],
)
def test_email_normalisation(raw: str, expected: str | None) -> None:
    assert tabular.normalise_email(raw) == expected


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_detection(delimiter: str) -> None:
    text = delimiter.join(["prenom", "email", "telephone"]) + "\r\n"
    text += delimiter.join(["Alix", "a@b.example", "06 12 34 56 78"]) + "\r\n"
    assert tabular.detect_delimiter(text) == delimiter
    header, rows = tabular.read_table(text.encode())
    assert header == ["prenom", "email", "telephone"] and rows[0]["telephone"] == "06 12 34 56 78"


def test_windows_1252_and_bom() -> None:
    data = "prénom;commune\r\nGaëlle;Exempleville\r\n".encode("cp1252")
    assert tabular.read_table(data)[1] == [{"prénom": "Gaëlle", "commune": "Exempleville"}]
    bom = "\ufeffprenom,nom\r\nA,B\r\n".encode()
    assert tabular.read_table(bom)[0] == ["prenom", "nom"]


def test_split_keeps_explicit_consent_only_and_opt_out_wins() -> None:
    csv_text = (
        "Prenom;EMAIL;Telephone;Consentement;desinscrit;bureau\r\n"
        "Alix;alix@exemple.invalid;06 00 00 00 01;oui;;1\r\n"  # kept
        "Basile;basile@exemple.invalid;06 00 00 00 02; YES ;;2\r\n"  # kept (case, blanks)
        "Cyrielle;cyr@exemple.invalid;06 00 00 00 03;peut-être;;3\r\n"  # not explicit
        "Dorian;dorian@exemple.invalid;06 00 00 00 04;;oui;4\r\n"  # opt-out
        "Elsa;ELSA@exemple.invalid;;oui;1;5\r\n"  # both: opt-out wins
        'Fabien;=HYPERLINK("x");06 00 00 00 06;1;;6\r\n'  # formula neutralised
    )
    header, rows = tabular.read_table(csv_text.encode())
    split = tabular.split_rows(header, rows, TAB, ("prenom", "email", "telephone", "commune"))
    assert split.rows == 6
    assert split.kept == [
        ("Alix", "alix@exemple.invalid", "06 00 00 00 01", ""),
        ("Basile", "basile@exemple.invalid", "06 00 00 00 02", ""),
        ("Fabien", '\'=HYPERLINK("x")', "06 00 00 00 06", ""),
    ]
    assert split.opted_out == 2 and split.consent_and_opt_out == 1
    assert split.emails == {"dorian@exemple.invalid", "elsa@exemple.invalid"}
    assert split.phones == {"+33600000004"}


def test_split_skips_people_already_suppressed() -> None:
    header, rows = tabular.read_table(
        b"email,consentement\r\na@b.example,oui\r\nc@d.example,oui\r\n"
    )
    split = tabular.split_rows(header, rows, TAB, ("email",), lambda e, _p, _a: e == "a@b.example")
    assert split.kept == [("c@d.example",)] and split.already_suppressed == 1


# ---------------------------------------------------------------- suppression
def test_suppression_list_and_filter(tmp_path: Path) -> None:
    keys.init(tmp_path / "secrets")
    key = keys.hmac_key(tmp_path / "secrets")
    assert oct((tmp_path / "secrets" / keys.HMAC_KEY_FILE).stat().st_mode & 0o777) == "0o600"
    assert keys.hmac_key(tmp_path / "secrets") == key  # created once
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with SuppressionList(tmp_path / "s.sqlite", key) as store:
        added = store.add(["a@b.example"], ["+33600000001"], election="e", run_id="r", now=now)
        assert added == 2
        # replayed: the same count, no duplicate
        assert store.add(["a@b.example"], ["+33600000001"], election="e", run_id="r", now=now) == 2
        assert store.count() == 2
        assert store.contains(" A@B.example", None) and store.contains(None, "06 00 00 00 01")
        assert not store.contains("x@b.example", "06 00 00 00 02")
        data = (
            b"nom;courriel;tel\r\nA;A@B.EXAMPLE;\r\nB;b@b.example;06 00 00 00 01\r\n"
            b"C;c@b.example;0600000003\r\nD;;\r\n"
        )
        out, result = filter_table(data, store)
    assert (result.rows, result.removed, result.kept, result.without_identifier) == (4, 2, 2, 1)
    assert out.decode().splitlines() == ["nom;courriel;tel", "C;c@b.example;0600000003", "D;;"]
    raw = (tmp_path / "s.sqlite").read_bytes()
    assert b"a@b.example" not in raw and b"+3360" not in raw


def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    keys.init(tmp_path)
    os.chmod(tmp_path / keys.HMAC_KEY_FILE, 0o644)
    with pytest.raises(keys.SecretError):
        keys.hmac_key(tmp_path)


# ------------------------------------------------------------------- journal
def test_journal_records_before_and_replays(tmp_path: Path) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with Journal(tmp_path / "j.sqlite") as j:
        run = j.start_run("e", now)
        seq = j.plan(run.run_id, "s3-batch", "d", {"entries": [["k", "v", False, 3]]})
        j.plan(run.run_id, "s3-batch", "d", {"entries": []})
        j.done(seq, {"errors": []})
    with Journal(tmp_path / "j.sqlite") as j:  # as after a crash
        reopened = j.open_run("e")
        assert reopened is not None and reopened.run_id == run.run_id
        pending = list(j.steps(run.run_id, status="planned"))
        assert [s.seq for s in pending] == [seq + 1]
        digest, n = j.digest(run.run_id)
        assert n == 2 and len(digest) == 64
        j.done(pending[0].seq, {"errors": []})
        assert j.digest(run.run_id)[0] != digest
        j.finish_run(run.run_id, now, "/c.json")
        assert j.open_run("e") is None and j.last_complete("e") is not None
    assert "wal" in str(
        __import__("sqlite3")
        .connect(tmp_path / "j.sqlite")
        .execute("PRAGMA journal_mode")
        .fetchone()
    )


# --------------------------------------------------------------------- share
def test_share_walk_never_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "share"
    outside = tmp_path / "outside"
    (root / "ds" / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (root / "ds" / "a.txt").write_text("aa")
    (root / "ds" / "sub" / "b.txt").write_text("b")
    (root / "ds" / "link-file").symlink_to(outside / "secret.txt")
    (root / "ds" / "link-dir").symlink_to(outside)
    (root / "evil").symlink_to(outside)
    files = share.list_files(str(root), "ds")
    assert [(f.path, f.is_link) for f in files] == [
        ("a.txt", False),
        ("link-dir", True),
        ("link-file", True),
        ("sub/b.txt", False),
    ]
    with pytest.raises(share.ShareError):
        share.list_files(str(root), "evil")  # the dataset directory is a symlink
    with pytest.raises(share.ShareError):
        share.list_files(str(root), "../outside")
    with pytest.raises(share.ShareError):
        share.list_files(str(root), "/etc")
    assert share.read_file(str(root), "ds", "link-file", 100) is None
    assert share.remove_files(str(root), "ds", [f.path for f in files]) == 4
    assert share.remove_dirs(str(root), "ds", share.list_dirs(str(root), "ds")) == 1
    assert list((root / "ds").iterdir()) == []
    assert (outside / "secret.txt").read_text() == "x"
    assert share.list_files(str(root), "missing") == []


# --------------------------------------------------------------- certificate
def _body(signer: str) -> dict[str, object]:
    ds = {name: 1 for name in certificate.DATASET_COUNTS}
    ds["name"] = "prospects"
    return {
        "format": certificate.FORMAT,
        "run_id": "e@1",
        "election": {"id": "e", "label": "Élection fictive", "retention_due": "2026-05-22"},
        "organisation": {"controller": "Mouvement Exemple", "dpo_contact": "dpo@exemple.invalid"},
        "datasets": [ds],
        "totals": certificate.totals([ds]),
        "kept": {"contacts_store": "/srv/contacts", "contacts_columns": ["email"]},
        "key": {"key_id": "k", "deletion_date": "2026-07-01T04:00:00+00:00", "window_days": 30},
        "started_at": "2026-06-01T04:00:00+00:00",
        "finished_at": "2026-06-01T04:01:00+00:00",
        "host": "h",
        "agent_version": "0.1.0",
        "journal": {"sha256": "0" * 64, "steps": 3},
        "signer": {"algorithm": "Ed25519", "public_key_sha256": signer},
    }


def test_certificate_signs_verifies_and_any_changed_byte_fails(tmp_path: Path) -> None:
    keys.init(tmp_path / "secrets")
    key = keys.signing_key(tmp_path / "secrets")
    assert oct((tmp_path / "secrets" / keys.SIGNING_KEY_FILE).stat().st_mode & 0o777) == "0o600"
    doc = certificate.sign(_body(keys.public_key_id(key.public_key())), key)
    path = tmp_path / "certs" / "e.json"
    certificate.write(path, doc, key.public_key())
    assert certificate.verify_file(path).ok
    data = path.read_bytes()
    public = key.public_key()
    for pos in range(len(data)):  # every byte, one bit flipped
        tampered = data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]
        assert not certificate.verify_bytes(tampered, public).ok, pos
    # re-signed by another key: refused with the agent's public key
    keys.init(tmp_path / "other")
    other = keys.signing_key(tmp_path / "other")
    forged = certificate.render_file(certificate.sign(json.loads(data)["certificate"], other))
    assert not certificate.verify_bytes(forged, public).ok
    # content checks: totals must add up even under a valid signature
    bad = _body(keys.public_key_id(public))
    bad["totals"] = {**certificate.totals(bad["datasets"]), "versions": 99}  # type: ignore[arg-type]
    result = certificate.verify_bytes(certificate.render_file(certificate.sign(bad, key)), public)
    assert not result.ok and "totals do not add up to the datasets" in result.reasons


def test_french_rendering() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    doc = certificate.sign(_body(keys.public_key_id(key.public_key())), key)
    text = certificate.render(doc, "fr", verified=True)
    assert text.startswith("# Certificat de destruction — Élection fictive")
    assert "22 mai 2026" in text and "1er juillet 2026 à 04:00 UTC" in text
    assert "Signature et contenu **vérifiés**" in text
    # E9: the certificate says what it cannot prove, before what was kept
    scope = text.index("Portée : ce certificat ne couvre que le stockage géré par Isoloir")
    assert scope < text.index("## Données conservées")
    assert "ni les blocs de disque" in text
    english = certificate.render(doc, "en")
    assert "Deletion certificate" in english and "Scope: this certificate covers only" in english


# ------------------------------------------------------------------ findings
def test_warnings_once_per_threshold_and_holds_say_why(tmp_path: Path) -> None:
    from dataclasses import replace

    from isoloir.findings import Finding
    from isoloir.policy.model import Policies
    from isoloir.retention.jobs import evaluate

    policies = load_policies(REPO / "policies")
    e = policies.election("exempleville-2027")
    held = replace(e, legal_hold=True, legal_hold_reason="Recours fictif n° 1")

    def run(p: Policies, day: str) -> list[Finding]:
        findings, outcomes = evaluate(
            p,
            state_dir=tmp_path / "state",
            secrets_dir=tmp_path / "secrets",
            now=datetime.fromisoformat(day + "T04:00:00+00:00"),
            dry_run=True,
        )
        assert outcomes == []
        return findings

    assert run(policies, "2027-01-01") == []
    (j30,) = run(policies, "2027-04-25")
    (j7,) = run(policies, "2027-05-16")
    (j1,) = run(policies, "2027-05-20")
    assert [f.evidence["threshold"] for f in (j30, j7, j1)] == [30, 7, 1]
    assert len({f.fingerprint for f in (j30, j7, j1)}) == 3
    (due,) = run(policies, "2027-05-21")
    assert due.rule_id == "RET-DUE"
    with_hold = replace(policies, elections=(held,))
    (warn,) = run(with_hold, "2027-05-20")
    assert "Recours fictif n° 1" in warn.message
    (hold,) = run(with_hold, "2027-06-01")
    assert hold.rule_id == "RET-HOLD" and "Nothing was deleted" in hold.message
    assert not (tmp_path / "secrets").exists()  # a dry run creates no key
