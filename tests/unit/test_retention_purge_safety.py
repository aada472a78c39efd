"""The purge never hangs, wedges, lies or destroys too early (issue 13, items 1-3, 5, 6b, 7).

In-process: temporary share trees and moto's `mock_aws` for S3. All data is fiction.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from moto import mock_aws

from isoloir import aws, findings
from isoloir.cli import main
from isoloir.policy import load_policies
from isoloir.policy.model import Policies
from isoloir.retention import keys, planning, purge, share
from isoloir.retention.jobs import evaluate
from isoloir.retention.journal import Journal
from isoloir.retention.journal import db_path as journal_db

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
EID = "ville-2026"
HEADER = ["prenom", "nom", "email", "telephone", "commune", "consentement", "desinscrit"]


# ------------------------------------------------------------------ helpers
def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


PEOPLE = _csv(
    [
        ["Alix", "Fictif", "alix@exemple.example", "06 39 98 00 01", "Exempleville", "oui", ""],
        ["Basile", "Test", "basile@exemple.example", "06 39 98 00 02", "Exempleville", "", "oui"],
    ]
)


class World:
    """Policies, share root, contacts store, state and secrets under one tmp dir."""

    def __init__(
        self, root: Path, due: date, *, share: bool = True, permanent: bool = False
    ) -> None:
        self.root = root
        self.share_root = root / "srv" / "elections"
        self.contacts = root / "srv" / "contacts"
        self.state = root / "state"
        self.secrets = root / "secrets"
        self.policies_dir = root / "policies"
        (self.policies_dir / "elections").mkdir(parents=True)
        self.share_root.mkdir(parents=True)
        self.contacts.mkdir(parents=True)
        keys.init(self.secrets)
        # The policies keep the shipped paths (a share root under /tmp is refused as a
        # system directory); policies() points them at the temporary tree.
        text = (REPO / "policies" / "baseline.yml").read_text(encoding="utf-8")
        (self.policies_dir / "baseline.yml").write_text(text, encoding="utf-8")
        self.bucket = "mouvement-exemple-test-ville-2026"
        rounds = [due - timedelta(days=60), due - timedelta(days=53)]
        lines = [
            f"id: {EID}",
            "label: Élection fictive",
            "kind: municipales",
            f"rounds: [{rounds[0].isoformat()}, {rounds[1].isoformat()}]",
            "retention:",
            f"  date: {due.isoformat()}",
            "legal_hold:",
            "  active: false",
            '  reason: ""',
            "members: [cfictive]",
            f"bucket: {self.bucket}",
            "datasets:",
        ]
        for name, tab in (("prospects", True), ("reunions", False)):
            lines += [
                f"  - name: {name}",
                f"    bucket_prefix: {name}/",
                f"    share_path: {name}",
                "    origin: opt_in_form",
                "    legal_basis: legitimate_interest",
                "    category: campaign",
            ]
            if tab:
                lines += [
                    "    tabular:",
                    "      consent: {column: consentement, accepted: [oui]}",
                    "      opt_out: {column: desinscrit, accepted: [oui]}",
                    "      email_column: email",
                    "      phone_column: telephone",
                ]
            else:
                lines.append("    no_opt_outs: comptes rendus de réunion")
        if permanent:  # the party's volunteers: kept, and writable after the lock
            lines += [
                "  - name: benevoles",
                "    bucket_prefix: benevoles/",
                "    share_path: benevoles",
                "    origin: opt_in_form",
                "    legal_basis: consent",
                "    category: permanent",
            ]
        (self.policies_dir / "elections" / f"{EID}.yml").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
        self.election_share = self.share_root / EID
        if share:
            for ds in ("prospects", "reunions"):
                (self.election_share / ds).mkdir(parents=True)

    def policies(self) -> Policies:
        p = load_policies(self.policies_dir)
        b = p.baseline
        baseline = replace(
            b,
            retention=replace(b.retention, contacts_path=str(self.contacts)),
            hosts=replace(b.hosts, share_root=str(self.share_root)),
        )
        elections = tuple(replace(e, share_path=str(self.share_root / e.id)) for e in p.elections)
        return replace(p, baseline=baseline, elections=elections)

    def seed_bucket(self, s3: Any) -> None:
        s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=self.bucket, Key="prospects/liste.csv", Body=PEOPLE)
        s3.put_object(Bucket=self.bucket, Key="reunions/cr.md", Body=b"compte rendu")

    def purger(self, **kw: Any) -> purge.Purger:
        # PAST_DUE was never warned (real clock): these tests confirm, as an admin would
        kw.setdefault("confirm_unwarned", True)
        p = self.policies()
        return purge.Purger(
            p, p.election(EID), state_dir=self.state, secrets_dir=self.secrets, **kw
        )

    def evaluate(
        self, now: datetime | None = None, *, confirm: bool = True
    ) -> tuple[list[Any], list[purge.Outcome]]:
        return evaluate(
            self.policies(),
            state_dir=self.state,
            secrets_dir=self.secrets,
            now=now or datetime.now(UTC),
            dry_run=False,
            confirm_unwarned=confirm,
        )

    def certificates(self) -> list[Path]:
        return sorted(purge.certificates_dir(self.state).glob(f"{EID}--*.json"))


def _versions(s3: Any, bucket: str) -> int:
    page = s3.list_object_versions(Bucket=bucket)
    return len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("ISOLOIR_AWS_ENDPOINT", "AWS_CA_BUNDLE", "ISOLOIR_NOW", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield aws.client("s3", REGION)


@pytest.fixture()
def alarm() -> Iterator[None]:
    """Fail, rather than hang, when the code under test blocks for more than 20 s."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("blocked for more than 20 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


PAST_DUE = date(2026, 5, 22)  # the real clock is past this date plus the grace day


# ----------------------------------------------- 1. non-regular files (F3)
def test_a_fifo_named_csv_never_blocks_and_counts_as_unreadable(
    tmp_path: Path, aws_env: Any, alarm: None
) -> None:
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    fifo = w.election_share / "prospects" / "piege.csv"
    os.mkfifo(fifo)
    (w.election_share / "prospects" / "vrai.csv").write_bytes(PEOPLE)

    assert share.read_file(str(w.election_share), "prospects", "piege.csv", 1 << 20) is None
    listed = {f.path: f for f in share.list_files(str(w.election_share), "prospects")}
    assert listed["piege.csv"].special and not listed["vrai.csv"].special

    p = w.policies()
    e = p.election(EID)
    tables, unreadable = purge.read_tables(aws_env, e, e.dataset("prospects"))
    assert unreadable == 1
    assert len(tables) == 2  # the bucket's CSV and the real share file
    surveyed = {s.name: s for s in purge.survey(p, e, aws_env)}
    assert surveyed["prospects"].files == 2


# ------------------------------------------- 2. replays converge (F9)
def _interrupted_run(w: World, kind: str, payload: dict[str, Any]) -> None:
    """A run that journaled `kind` as planned, then died (the extract is done)."""
    with Journal(journal_db(w.state)) as j:
        run = j.start_run(EID, datetime.now(UTC))
        seq = j.plan(run.run_id, "extract", "prospects", {})
        j.done(seq, {"tables_read": 0})
        j.plan(run.run_id, kind, "reunions", payload)


def test_a_file_written_into_a_planned_share_dirs_step_does_not_wedge_the_replay(
    tmp_path: Path, aws_env: Any, alarm: None
) -> None:
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    sub = w.election_share / "reunions" / "sous-dossier"
    sub.mkdir()
    _interrupted_run(w, "share-dirs", {"dirs": ["sous-dossier"]})
    (sub / "Thumbs.db").write_bytes(b"written during the purge")  # rmdir: ENOTEMPTY

    outcome = w.purger().run()  # before the fix: OSError ENOTEMPTY, on every replay
    assert outcome.resumed
    assert list((w.election_share / "reunions").iterdir()) == []
    body = outcome.document["certificate"]
    (reunions,) = [d for d in body["datasets"] if d["name"] == "reunions"]
    assert reunions["directories"] == 1 and reunions["files"] == 1


def test_a_share_batch_path_that_became_a_directory_is_listed_again(
    tmp_path: Path, aws_env: Any, alarm: None
) -> None:
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    _interrupted_run(w, "share-batch", {"files": [["notes.txt", 5, False]]})
    (w.election_share / "reunions" / "notes.txt").mkdir()  # EISDIR on unlink
    (w.election_share / "reunions" / "notes.txt" / "f.txt").write_bytes(b"x")

    w.purger().run()
    assert list((w.election_share / "reunions").iterdir()) == []


def test_a_permission_error_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "share"
    (root / "ds" / "sub").mkdir(parents=True)
    (root / "ds" / "sub" / "f.txt").write_bytes(b"x")
    real_unlink = os.unlink

    def denied(path: Any, *, dir_fd: int | None = None) -> None:
        if path == "f.txt":
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", denied)
    with pytest.raises(share.ShareError, match=r"ds/sub/f\.txt: Permission denied"):
        share.remove_files(str(root), "ds", ["sub/f.txt"])


# ------------------------------------------- 3. the clock guard (F14)
def test_a_host_clock_jump_refuses_before_anything_is_deleted(tmp_path: Path, aws_env: Any) -> None:
    real_today = datetime.now(UTC).date()
    w = World(tmp_path, real_today + timedelta(days=40))  # the campaign is on
    w.seed_bucket(aws_env)
    (w.election_share / "reunions" / "cr.txt").write_bytes(b"x")
    before = _versions(aws_env, w.bucket)
    jumped = datetime.now(UTC) + timedelta(days=400)  # a bad RTC, a spoofed NTP

    with pytest.raises(purge.ClockGuardError, match="disagree"):
        w.purger(now=lambda: jumped).run()
    assert _versions(aws_env, w.bucket) == before
    assert (w.election_share / "reunions" / "cr.txt").exists()
    with Journal(journal_db(w.state)) as j:
        assert j.open_run(EID) is None and j.last_complete(EID) is None


def test_the_override_skips_the_independent_clock_for_the_demo_and_tests(
    tmp_path: Path, aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path, date(2030, 5, 22))
    w.seed_bucket(aws_env)
    monkeypatch.setenv("ISOLOIR_NOW", "2030-06-01T04:00:00+00:00")
    from isoloir import clock

    outcome = w.purger(now=clock.now).run()
    assert _versions(aws_env, w.bucket) == 0 and outcome.certificate.exists()


def test_check_clock_and_response_date() -> None:
    now = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
    purge.check_clock(now, now + timedelta(minutes=4))
    with pytest.raises(purge.ClockGuardError):
        purge.check_clock(now, now + timedelta(minutes=6))
    with pytest.raises(purge.ClockGuardError):
        purge.check_clock(now, None)
    headers = {"ResponseMetadata": {"HTTPHeaders": {"date": "Mon, 01 Jun 2026 04:00:00 GMT"}}}
    assert purge.response_date(headers) == now


def _sent_warning(w: World, sent_at: datetime) -> None:
    from isoloir.alerts.spool import Spool, spool_path

    w.state.mkdir(parents=True, exist_ok=True)
    Spool(spool_path(w.state)).close()
    fp = findings.fingerprint("RET-WARN", planning.warning_resource(EID, 1))
    db = sqlite3.connect(spool_path(w.state))
    db.execute(
        "INSERT INTO outbox (kind, fingerprint, channel, recipient, address, language, subject,"
        " body, payload, headers, created_at, next_attempt_at, status, sent_at)"
        " VALUES ('alert', ?, 'email', 'cfictive', 'claire@exemple.example', 'fr', 's', 'b',"
        " '{}', '{}', ?, ?, 'sent', ?)",
        (fp, sent_at.timestamp(), sent_at.timestamp(), sent_at.timestamp()),
    )
    db.commit()
    db.close()


def test_on_the_due_day_the_purge_waits_for_a_warning_sent_24_hours_before(
    tmp_path: Path, aws_env: Any
) -> None:
    w = World(tmp_path, datetime.now(UTC).date())  # due today
    w.seed_bucket(aws_env)
    before = _versions(aws_env, w.bucket)
    found, outcomes = w.evaluate(confirm=False)
    assert outcomes == []
    (due,) = found
    assert due.rule_id == "RET-DUE" and "J-1 warning was never sent" in due.message
    assert _versions(aws_env, w.bucket) == before

    _sent_warning(w, datetime.now(UTC) - timedelta(hours=2))  # too recent
    found, outcomes = w.evaluate(confirm=False)
    assert outcomes == [] and "less than 24 h ago" in found[0].message

    _sent_warning(w, datetime.now(UTC) - timedelta(hours=25))
    found, outcomes = w.evaluate(confirm=False)
    assert len(outcomes) == 1 and _versions(aws_env, w.bucket) == 0


def test_a_year_typo_never_purges_a_live_campaign_without_confirmation(
    tmp_path: Path,
    aws_env: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CLI review N3: rounds a year early make the campaign 'overdue' on its first run:
    no warning ever went out, so nothing is deleted until an administrator confirms."""
    from isoloir.retention import sharelock

    w = World(tmp_path, PAST_DUE)  # meant a year later: never warned
    w.seed_bucket(aws_env)
    lock_dir = tmp_path / "share-lock"
    lock_dir.mkdir()
    monkeypatch.setenv("ISOLOIR_SHARE_LOCK_DIR", str(lock_dir))
    monkeypatch.setattr(purge, "LOCK_WAIT", 0.0)
    before = _versions(aws_env, w.bucket)
    found, outcomes = w.evaluate(confirm=False)
    assert outcomes == [] and [f.rule_id for f in found] == ["RET-DUE"]
    assert "nobody was warned" in found[0].message and "--confirm-unwarned" in found[0].message
    assert _versions(aws_env, w.bucket) == before
    # ... and the live campaign's members are not locked out of their share either
    assert not sharelock.request_path(w.state, EID).exists()
    monkeypatch.delenv("ISOLOIR_SHARE_LOCK_DIR")

    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(w.secrets))
    monkeypatch.setattr("isoloir.retention.cli._policies", lambda args: w.policies())
    base = ["retention", "run", "--state-dir", str(w.state)]
    assert main(base) == 1  # the daemon's way, and the CLI's without the flag
    assert "nobody was warned" in capsys.readouterr().out
    assert _versions(aws_env, w.bucket) == before
    assert main([*base, "--confirm-unwarned"]) == 2  # one election at a time
    assert main([*base, "--election", EID, "--confirm-unwarned"]) == 0
    assert _versions(aws_env, w.bucket) == 0


# ----------------------------------- 4. files written after the purge (L2)
def test_files_written_into_a_purged_dataset_are_reported_and_purged_again(
    tmp_path: Path, aws_env: Any
) -> None:
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    found, outcomes = w.evaluate()
    assert [o.election for o in outcomes] == [EID]
    (first,) = w.certificates()
    first_bytes = first.read_bytes()

    (w.election_share / "reunions" / "apres.txt").write_bytes(b"written after the purge")
    aws_env.put_object(Bucket=w.bucket, Key="prospects/tardif.txt", Body=b"late")
    found, outcomes = w.evaluate()
    residue = [f for f in found if f.rule_id == "RET-RESIDUE"]
    assert len(residue) == 1 and len(outcomes) == 1
    assert "1 file(s)" in residue[0].message and "1 object version(s)" in residue[0].message
    assert "apres.txt" not in residue[0].message  # counts, never names
    assert not (w.election_share / "reunions" / "apres.txt").exists()
    assert _versions(aws_env, w.bucket) == 0
    assert len(w.certificates()) == 2 and first.read_bytes() == first_bytes

    found, outcomes = w.evaluate()  # nothing reappeared: purged, quiet
    assert outcomes == [] and not [f for f in found if f.rule_id == "RET-RESIDUE"]


# ---------------------------------- 6b. a missing share is a failure (D28)
@pytest.mark.parametrize("missing", ["share", "dataset"])
def test_a_missing_share_or_dataset_folder_fails_and_deletes_nothing(
    tmp_path: Path, aws_env: Any, missing: str
) -> None:
    w = World(tmp_path, PAST_DUE, share=missing != "share")
    if missing == "dataset":
        (w.election_share / "reunions").rmdir()
    w.seed_bucket(aws_env)
    before = _versions(aws_env, w.bucket)

    found, outcomes = w.evaluate()
    assert outcomes == []
    (failed,) = [f for f in found if f.rule_id == "RET-FAILED"]
    assert "not found: is the volume mounted? nothing was deleted" in failed.message
    shown = str(w.election_share) + ("" if missing == "share" else "/reunions")
    assert shown in failed.message
    assert [f.rule_id for f in found if f.rule_id == "RET-DUE"] == ["RET-DUE"]
    assert _versions(aws_env, w.bucket) == before
    assert w.certificates() == []
    with Journal(journal_db(w.state)) as j:
        assert j.last_complete(EID) is None
    p = w.policies()
    surveyed = {s.name: s for s in purge.survey(p, p.election(EID), aws_env)}
    assert "not found" in surveyed["reunions"].error


# ----------------------------- 7. nothing kept is ever overwritten (L8)
def test_a_rerun_after_a_lost_journal_keeps_contacts_and_certificates(
    tmp_path: Path, aws_env: Any
) -> None:
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    w.purger().run()
    (contacts,) = sorted(w.contacts.glob(f"{EID}--prospects--*.csv"))
    kept = contacts.read_bytes()
    assert b"alix@exemple.example" in kept
    (cert,) = w.certificates()
    cert_bytes = cert.read_bytes()

    journal_db(w.state).unlink()  # the state directory was rebuilt
    for extra in ("-wal", "-shm"):
        Path(str(journal_db(w.state)) + extra).unlink(missing_ok=True)
    w.purger().run()
    assert contacts.read_bytes() == kept
    assert len(sorted(w.contacts.glob(f"{EID}--prospects--*.csv"))) == 2
    assert cert.read_bytes() == cert_bytes and len(w.certificates()) == 2


def test_write_contacts_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "e--d--1.csv"
    path.write_bytes(b"prenom\r\nAlix\r\n")
    written = purge._write_contacts(path, ("prenom",), [])
    assert written != path and path.read_bytes() == b"prenom\r\nAlix\r\n"
    assert written.read_bytes() == b"prenom\r\n"
    assert purge._write_contacts(path, ("prenom",), []) == written  # same content: kept


# ------------------------------------ 8. setup mistakes are one line (D26)
def test_retention_cli_setup_mistakes_are_one_line_exit_2(
    tmp_path: Path,
    aws_env: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = World(tmp_path, PAST_DUE)
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(w.secrets))
    cases = [
        (["retention", "run", "--config", str(w.policies_dir), "--state-dir", str(afile)], {}),
        (
            ["retention", "run", "--config", str(w.policies_dir), "--state-dir", str(w.state)],
            {"ISOLOIR_NOW": "yesterday"},
        ),
    ]
    for argv, env in cases:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
        for name in env:
            monkeypatch.delenv(name)
    assert json.loads(json.dumps(cases))  # the cases themselves hold no personal data


def test_plan_with_a_missing_share_exits_2_naming_it(
    tmp_path: Path, aws_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    w = World(tmp_path, PAST_DUE)  # the policies' share root, /srv/elections, is absent here
    assert not Path("/srv/elections/ville-2026").exists()
    w.seed_bucket(aws_env)
    argv = ["retention", "plan", "--config", str(w.policies_dir), "--state-dir", str(w.state)]
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert "share /srv/elections/ville-2026 not found: is the volume mounted?" in out


def test_a_replayed_certificate_step_keeps_the_certificate_it_wrote(
    tmp_path: Path, aws_env: Any
) -> None:
    from isoloir.retention import certificate

    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    cert = w.purger().run().certificate
    data = cert.read_bytes()
    # a crash after the certificate was written, before the journal said so
    db = sqlite3.connect(journal_db(w.state))
    db.execute("UPDATE steps SET status = 'planned', result = NULL WHERE kind = 'certificate'")
    db.execute("UPDATE runs SET status = 'running', finished_at = NULL, certificate = NULL")
    db.commit()
    db.close()
    (cert.parent / certificate.PUBLIC_KEY_FILE).unlink()

    again = w.purger().run()
    assert again.resumed and again.certificate == cert
    assert cert.read_bytes() == data  # kept, not re-signed with another end time
    assert (cert.parent / certificate.PUBLIC_KEY_FILE).exists()


# -------------------------------- property: odd trees never hang or escape
_NAMES = ["a", "b.csv", "c", "d.txt"]
_KINDS = ["file", "fifo", "socket", "link-file", "link-dir", "link-up", "non-utf8", "dir"]


def _tree_state(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            body = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            out[str(p.relative_to(root))] = (st.st_mode, body)
    return out


def _make_parents(dataset: Path, parts: list[str]) -> bool:
    """Create the directories, never through a link or a file (the tree stays in the share)."""
    current = dataset
    for part in parts:
        current = current / part
        if current.is_symlink() or (os.path.lexists(current) and not current.is_dir()):
            return False
        current.mkdir(exist_ok=True)
    return True


def _build(dataset: Path, outside: Path, entries: list[tuple[str, list[str]]]) -> None:
    import stat as st

    for kind, parts in entries:
        if not _make_parents(dataset, parts[:-1]):
            continue
        parent = dataset.joinpath(*parts[:-1])
        target = parent / parts[-1]
        if os.path.lexists(target):
            continue
        if kind == "file":
            target.write_bytes(b"prenom;email\r\nAlix;alix@exemple.example\r\n")
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "socket":
            os.mknod(target, st.S_IFSOCK | 0o600)
        elif kind == "link-file":
            target.symlink_to(outside / "secret.txt")
        elif kind == "link-dir":
            target.symlink_to(outside, target_is_directory=True)
        elif kind == "link-up":
            target.symlink_to("../" * (len(parts) + 2) + "outside")
        elif kind == "non-utf8":
            os.close(os.open(os.fsencode(str(parent)) + b"/caf\xe9.csv", os.O_CREAT | os.O_WRONLY))
        else:
            target.mkdir()


def test_odd_share_trees_never_hang_never_escape_and_fail_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as hs

    for name in ("ISOLOIR_AWS_ENDPOINT", "AWS_CA_BUNDLE", "ISOLOIR_NOW", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    entry = hs.tuples(
        hs.sampled_from(_KINDS), hs.lists(hs.sampled_from(_NAMES), min_size=1, max_size=3)
    )

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(entries=hs.lists(entry, max_size=8), writer=hs.booleans())
    def check(entries: list[tuple[str, list[str]]], writer: bool) -> None:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp, mock_aws():
            root = Path(tmp)
            w = World(root, PAST_DUE)
            outside = root / "outside"
            (outside / "dir").mkdir(parents=True)
            (outside / "secret.txt").write_bytes(b"not in the share")
            for ds in ("prospects", "reunions"):
                _build(w.election_share / ds, outside, entries)
            s3 = aws.client("s3", REGION)
            w.seed_bucket(s3)
            before = _tree_state(outside)
            real_remove_dirs = share.remove_dirs
            calls = {"n": 0}

            def racing(share_root: str, rel: str, paths: Any, declared: Any = None) -> int:
                calls["n"] += 1
                if writer and calls["n"] == 1 and paths:  # a member saves a file meanwhile
                    Path(share_root, rel, paths[0], "Thumbs.db").write_bytes(b"new")
                return real_remove_dirs(share_root, rel, paths, declared)

            monkeypatch.setattr(share, "remove_dirs", racing)
            signal.alarm(60)
            try:
                p = w.policies()
                purge.survey(p, p.election(EID), s3)
                w.purger(s3=s3).run()
            except (purge.PurgeError, share.ShareError) as exc:
                assert str(exc) and "\n" not in str(exc)  # a clear one-line failure
            else:
                for ds in ("prospects", "reunions"):
                    assert os.listdir(w.election_share / ds) == []
            finally:
                signal.alarm(0)
                monkeypatch.setattr(share, "remove_dirs", real_remove_dirs)
            assert _tree_state(outside) == before

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the purge blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    try:
        check()
    finally:
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------- 15. a certified run keeps no file name
def test_a_certified_run_keeps_only_hmacs_of_names_in_the_journal(
    tmp_path: Path, aws_env: Any
) -> None:
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    (w.election_share / "reunions" / "Compte rendu Alix Fictif.md").write_bytes(b"cr")
    _, outcomes = w.evaluate()
    assert [o.election for o in outcomes] == [EID]
    db = journal_db(w.state)
    raw = b"".join(
        Path(str(db) + extra).read_bytes()
        for extra in ("", "-wal")
        if Path(str(db) + extra).exists()
    )
    for name in (b"liste.csv", b"cr.md", b"Alix Fictif", b"Compte rendu"):
        assert name not in raw, name
    with Journal(db) as j:
        run = j.last_complete(EID)
        assert run is not None and run.certificate
        steps = list(j.steps(run.run_id))
        batches = [s for s in steps if s.kind in ("s3-batch", "share-batch")]
        assert batches and all("hmac:" in json.dumps(s.payload) for s in batches)
        cert = j.find(run.run_id, "certificate", "")
        assert cert is not None and cert.payload["path"] == run.certificate  # kept in clear
        assert j.redact_completed(keys.hmac_key(w.secrets)) == 0  # idempotent


def test_an_opt_out_only_in_an_older_version_is_recorded_before_it_is_destroyed(
    tmp_path: Path, aws_env: Any
) -> None:
    """CLI review N4: v1 has Basile's opt-out, v2 (a volunteer 'removed' him) has not."""
    from isoloir.retention.suppression import SuppressionList
    from isoloir.retention.suppression import db_path as suppression_db

    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)  # prospects/liste.csv v1: Alix consents, Basile opts out
    alix = ["Alix", "Fictif", "alix@exemple.example", "06 39 98 00 01", "Exempleville", "oui", ""]
    aws_env.put_object(Bucket=w.bucket, Key="prospects/liste.csv", Body=_csv([alix]))
    p = w.policies()
    (plan,) = [s for s in purge.survey(p, p.election(EID), aws_env) if s.name == "prospects"]
    assert (plan.contacts_to_keep, plan.opt_outs) == (1, 1)

    found, outcomes = w.evaluate()
    assert [o.election for o in outcomes] == [EID], [f.message for f in found]
    assert _versions(aws_env, w.bucket) == 0
    with SuppressionList(suppression_db(w.state), keys.hmac_key(w.secrets)) as store:
        assert store.contains("basile@exemple.example", None)
        assert store.contains(None, "+33639980002")
        assert not store.contains("alix@exemple.example", None)
    cert = json.loads(w.certificates()[0].read_text())["certificate"]
    (prospects,) = [d for d in cert["datasets"] if d["name"] == "prospects"]
    assert (prospects["contacts_kept"], prospects["opt_outs"]) == (1, 1)


def test_plan_lists_the_share_when_aws_is_unreachable(tmp_path: Path) -> None:
    """CLI review D18: with S3 down, the readable share part was not listed at all."""
    import boto3
    from botocore.config import Config

    w = World(tmp_path, PAST_DUE)
    (w.election_share / "prospects" / "liste.csv").write_bytes(PEOPLE)
    s3 = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    p = w.policies()
    surveys = {s.name: s for s in purge.survey(p, p.election(EID), s3)}
    prospects = surveys["prospects"]
    assert prospects.files == 1 and prospects.share_bytes == len(PEOPLE)
    assert prospects.error == "bucket: AWS S3 unreachable (EndpointConnectionError)"
    assert "127.0.0.1" not in prospects.error


def test_opt_outs_that_cannot_be_recorded_are_said_by_the_finding_and_the_certificate(
    tmp_path: Path, aws_env: Any
) -> None:
    """CLI review D29: the run and the certificate's rendering were silent about them."""
    from isoloir.retention import certificate

    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    anonymous = ["Dana", "Sansnom", "", "", "Exempleville", "", "oui"]
    (w.election_share / "prospects" / "porte.csv").write_bytes(_csv([anonymous]))
    found, outcomes = w.evaluate()
    assert [o.election for o in outcomes] == [EID]
    (purged,) = [f for f in found if f.rule_id == "RET-PURGED"]
    assert "1 opt-out row(s) had no usable email, phone, or name and address" in purged.message
    document = json.loads(w.certificates()[0].read_text())
    fr = certificate.render(document, "fr", verified=True)
    assert "sans adresse électronique ni numéro de téléphone utilisable : 1" in fr
    en = certificate.render(document, "en", verified=True)
    assert "Opt-out rows without a usable e-mail address or phone number: 1" in en


def test_a_deferred_key_names_where_the_other_objects_are_and_the_command(
    tmp_path: Path, aws_env: Any
) -> None:
    """CLI review D24: RET-KEY never named the undeclared prefix nor the command."""
    w = World(tmp_path, PAST_DUE)
    w.seed_bucket(aws_env)
    key_id = aws.client("kms", REGION).create_key()["KeyMetadata"]["KeyId"]
    aws_env.put_bucket_encryption(
        Bucket=w.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_id,
                    }
                }
            ]
        },
    )
    aws_env.put_object(Bucket=w.bucket, Key="prospects-archive/keep.csv", Body=b"x")
    found, outcomes = w.evaluate()
    assert [o.election for o in outcomes] == [EID]
    (key,) = [f for f in found if f.rule_id == "RET-KEY"]
    assert "under prospects-archive/" in key.message and "keep.csv" not in key.message
    assert f"aws kms schedule-key-deletion --key-id {key_id}" in key.message
