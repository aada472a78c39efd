"""Breach evidence on the shares (issue 14): who read an exposed share file.

On the session's converged sandbox host (`site`, tests/plugins/hosts.py), the
real smbd logs every open through vfs_full_audit (set by the election_shares
role); members download a file with the real `smbclient`; the agents' scan job
runs twice under the unit's sandboxing (`isoloir run --once --job scan`): the
first run opens the finding (the exposure start), the second counts the reads
made since by accounts other than the file's owner, and the alert says so.
"""

from __future__ import annotations

import gzip
import mailbox
import os
import re
import secrets
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_host_systemd import (  # noqa: F401 - smtp_sink is a fixture
    run_once_under_the_unit,
    smtp_sink,
)
from tests.plugins.hosts import ELECTION_A, MEMBER_A, Site, changed_tasks

from isoloir.alerts import messages
from isoloir.alerts.spool import Spool, spool_path
from isoloir.exposure import sharelog
from isoloir.exposure.inventory_shares import (
    audit_log_of,
    audited,
    parse_testparm,
    written_log_level,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]

OWNER = MEMBER_A  # a member of election A from the policies: owns the exposed file
READER = "vlecteur"  # a second member of A, made for this module (fiction)
AUDIT_DIR = "var/log/samba-audit"
ARCHIVE_DIR = f"{AUDIT_DIR}/archive"
STATE_DIR = "var/lib/isoloir"


def _password() -> str:
    return "Aa1" + secrets.token_urlsafe(15)


@pytest.fixture(scope="module")
def members(site: Site) -> Iterator[dict[str, Path]]:
    """smbclient auth files of the owner and of a second member of election A."""
    host = site.host
    host.chroot("useradd", "-M", "-s", "/usr/sbin/nologin", "-G", f"el-{ELECTION_A}", READER)
    files = {}
    try:
        for person in (OWNER, READER):
            pwd = _password()
            host.chroot("smbpasswd", "-a", "-s", person, input=f"{pwd}\n{pwd}\n")
            auth = site.workdir / f"audit-smb-{person}"
            auth.write_text(f"username = {person}\npassword = {pwd}\n")
            auth.chmod(0o600)
            files[person] = auth
        yield files
    finally:
        host.chroot("smbpasswd", "-x", READER, check=False)
        host.chroot("userdel", READER, check=False)


def smb(site: Site, auth: Path, command: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        ["smbclient", f"//{site.host.address}/{ELECTION_A}", "-m", "SMB3", "-A", str(auth),
         "-c", command],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def scan_once(site: Site, port: int) -> str:
    """One scan job under the agents' unit sandboxing; its journal."""
    env = {"ISOLOIR_SMTP_SINK": f"127.0.0.1:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
    fields, journal = run_once_under_the_unit(site.host, "scan", env)
    # exited by itself (not a signal), 0 or 1 (1: no cloud here, S3 unread)
    assert fields.get("ExecMainCode") == "1", (fields, journal)
    assert fields.get("ExecMainStatus") in {"0", "1"}, (fields, journal)
    return journal


def finding_of(site: Site, resource: str, tmp: Path) -> tuple[dict[str, Any], float]:
    """The open finding on `resource` in the agents' alert spool (read from a copy,
    so nothing of root's is left beside the agents' database): evidence, first seen."""
    src = spool_path(site.host.root / STATE_DIR)
    copy = tmp / "spool-copy" / src.name
    copy.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        part = src.with_name(src.name + suffix)
        if part.exists():
            shutil.copyfile(part, copy.with_name(copy.name + suffix))
    spool = Spool(copy)
    try:
        rows = [r for r in spool.open_findings("scan") if r.finding.resource == resource]
    finally:
        spool.close()
    rows = [r for r in rows if r.finding.rule_id == "share_world_accessible"]
    assert len(rows) == 1, [r.finding.rule_id for r in rows]
    return dict(rows[0].finding.evidence), rows[0].first_seen


def bodies(maildir: Path) -> list[str]:
    return [
        str(m.get_payload(decode=True) or b"", "utf-8", "replace")
        for m in mailbox.Maildir(str(maildir), create=False)
    ]


def test_audit_log_is_configured_and_readable_by_the_agents_only(
    site: Site, members: dict[str, Path]
) -> None:
    host = site.host
    resolved = host.chroot("testparm", "-s", "-v", "--suppress-prompt").stdout
    conf = parse_testparm(resolved, "/etc/samba/smb.conf")  # as the agents resolve it
    share = next(s for s in conf.shares if s.name == ELECTION_A)
    assert audited(conf, share), share.params
    log_level = written_log_level(str(host.root / "etc/samba/smb.conf"))
    assert audit_log_of(log_level) == f"/{AUDIT_DIR}/full_audit.log", log_level
    # smbd writes a record for an SMB open, in the single-line form the agents parse
    smb(site, members[OWNER], "ls")
    text = (host.root / AUDIT_DIR / "full_audit.log").read_text(errors="replace")
    mine = [line for line in text.splitlines() if f"{OWNER}|" in line]
    assert mine, text[-2000:]
    parsed = sharelog.parse(mine, sharelog.Layout.of(share.params["full_audit:prefix"]))
    assert parsed.malformed == 0 and parsed.records, mine[-5:]
    assert {(r.user, r.share, r.op) for r in parsed.records} == {
        (OWNER, ELECTION_A, "create_file")
    }, mine[-5:]
    print(f"share audit: a record as smbd wrote it: {mine[-1]}")  # fiction: test account
    audit = host.root / AUDIT_DIR
    st = audit.stat()
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == 0
    assert host.chroot("stat", "-c", "%G", f"/{AUDIT_DIR}").stdout.strip() == "isoloir"
    # a member cannot read it; the agents' account can
    probe = host.chroot(
        "runuser", "-u", OWNER, "--", "cat", f"/{AUDIT_DIR}/full_audit.log", check=False
    )
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
    agent = host.chroot(
        "runuser", "-u", "isoloir", "--", "test", "-r", f"/{AUDIT_DIR}/full_audit.log", check=False
    )
    assert agent.returncode == 0


def test_alert_counts_the_other_members_reads_since_the_exposure(
    site: Site,
    members: dict[str, Path],
    smtp_sink: tuple[Path, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    maildir, port = smtp_sink
    host = site.host
    name = f"fuite-{secrets.token_hex(3)}.csv"
    inside = f"/srv/elections/{ELECTION_A}/prospects/{name}"
    on_disk = host.root / inside.lstrip("/")
    local = site.workdir / name
    on_disk.write_text(
        "nom;prenom;telephone\nFictif;Alice;01 99 00 12 34\nModele;Bruno;06 39 98 12 34\n"
        "Exemple;Chloe;01 99 00 12 35\nTest;Denis;06 39 98 12 35\n"
    )
    host.chroot("chown", f"{OWNER}:el-{ELECTION_A}", inside)
    host.chroot("chmod", "0660", inside)
    # Before the exposure: the other member reads the file (the group may).
    smb(site, members[READER], f"get prospects/{name} {local}")
    time.sleep(1.1)
    host.chroot("chmod", "0664", inside)  # the exposure begins: readable by every account
    exposed_at = datetime.fromtimestamp(on_disk.stat().st_ctime, UTC)
    time.sleep(1.1)
    smb(site, members[OWNER], f"get prospects/{name} {local}")  # the owner's own read
    smb(site, members[READER], f"get prospects/{name} {local}")
    smb(site, members[READER], f"ls prospects/; get prospects/{name} {local}")  # ls: no read
    journal = scan_once(site, port)  # sees the exposure, counts, alerts (and fixes it)
    evidence, first_seen = finding_of(site, inside, tmp_path)
    log = (host.root / AUDIT_DIR / "full_audit.log").read_text(errors="replace")
    assert evidence["outside_reads"] == 2, (evidence, journal, log[-3000:])
    assert evidence["outside_requesters"] == 1, evidence
    assert evidence["reads_by"] == "other_accounts"
    # the window starts when the file became readable by all (its ctime), before the scan
    assert datetime.fromisoformat(evidence["reads_since"]) == exposed_at
    assert exposed_at <= datetime.fromisoformat(evidence["first_read"])
    assert datetime.fromisoformat(evidence["last_read"]) <= datetime.fromisoformat(
        evidence["logs_read_until"]
    )
    assert "logs_truncated" not in evidence and "logs_unreadable" not in evidence
    # remediation.share_permissions (the policies') closed it in the same run
    assert not on_disk.stat().st_mode & 0o007
    # The log holds the reads, with account and address; the alert has counts only.
    assert re.search(rf"{READER}\|[^|]+\|{ELECTION_A}\|create_file\|ok\|", log), log[-2000:]
    addresses = set(re.findall(r"\|(\d+\.\d+\.\d+\.\d+)\|", log))
    assert addresses
    sentence = messages.reads_sentence(evidence, "fr", datetime.fromtimestamp(first_seen, UTC))
    assert sentence and sentence.startswith("lu 2 fois par 1 autre(s) compte(s)"), sentence
    mails = [b for b in bodies(maildir) if name in b]
    assert any(sentence in b for b in mails), (sentence, mails, journal)
    for body in mails:
        assert READER not in body and OWNER not in body, body
        assert not any(a in body for a in addresses), body
    print(f"share audit: {time.monotonic() - started:.1f}s from the file to the alert")


# -- retention past Samba's rotation (compliance review E10) ------------------------


def wait_until(check: Any, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return bool(check())


def test_a_rotated_audit_log_is_archived_and_kept_for_the_retention(site: Site) -> None:
    """Samba renames the full log to FILE.old (as root, in the 0750 folder, as
    here): the host's path unit archives it at once; the daily run deletes an
    archive past the retention and keeps a recent one."""
    host = site.host
    # the role's archive tasks change nothing on the second converge
    assert len(site.runs) == 2
    second = changed_tasks(site.runs[1].stdout)
    assert not [t for t in second if "audit" in t.lower()], second
    for unit in ("isoloir-audit-archive.path", "isoloir-audit-archive.timer"):
        assert host.chroot("systemctl", "is-active", unit).stdout.strip() == "active", unit
    script = (host.root / "usr/local/sbin/isoloir-audit-archive").read_text()
    keep = re.search(r"(?m)^KEEP_DAYS=(\d+)$", script)
    assert keep, script
    keep_days = int(keep.group(1))
    assert keep_days == 365  # the role's default meets the CNIL's six months to a year
    archive = host.root / AUDIT_DIR / "archive"
    st = archive.stat()
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == 0
    assert host.chroot("stat", "-c", "%G", f"/{ARCHIVE_DIR}").stdout.strip() == "isoloir"
    before = set(archive.iterdir())
    old = host.root / AUDIT_DIR / "full_audit.log.old"
    records = (host.root / AUDIT_DIR / "full_audit.log").read_bytes()  # as smbd wrote them
    last_record = time.time() - 2 * 86400
    made: list[Path] = []
    try:
        staged = host.root / AUDIT_DIR / ".rotation-test"
        staged.write_bytes(records)
        staged.chmod(0o644)
        os.utime(staged, (last_record, last_record))
        # Samba's rotation: a rename onto FILE.old, made inside the host as smbd does
        host.chroot("mv", "-T", f"/{AUDIT_DIR}/.rotation-test", f"/{AUDIT_DIR}/full_audit.log.old")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(last_record))
        archived = archive / f"full_audit-{stamp}.log.gz"
        made.append(archived)
        assert wait_until(lambda: archived.exists() and not old.exists()), sorted(
            p.name for p in archive.iterdir()
        )
        st = archived.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
        group = host.chroot("stat", "-c", "%G", f"/{ARCHIVE_DIR}/{archived.name}").stdout
        assert group.strip() == "isoloir"
        assert gzip.decompress(archived.read_bytes()) == records
        assert set(archive.iterdir()) - before == {archived}  # nothing else left behind
        # the agents' account can read it, a member cannot even list the folder
        agent = host.chroot(
            "runuser", "-u", "isoloir", "--", "test", "-r", f"/{ARCHIVE_DIR}/{archived.name}",
            check=False,
        )  # fmt: skip
        assert agent.returncode == 0
        member = host.chroot("runuser", "-u", OWNER, "--", "ls", f"/{ARCHIVE_DIR}", check=False)
        assert member.returncode != 0 and "Permission denied" in member.stderr
        # Retention: an archive whose last record is older than KEEP_DAYS goes, a recent stays.
        expired = archive / "full_audit-20250101T000000Z.log.gz"
        recent = archive / "full_audit-20250102T000000Z.log.gz"
        made += [expired, recent]
        for path, age_days in ((expired, keep_days + 1), (recent, keep_days - 1)):
            path.write_bytes(gzip.compress(b""))
            when = time.time() - age_days * 86400
            os.utime(path, (when, when))
        host.chroot("systemctl", "start", "isoloir-audit-archive.service")
        assert not expired.exists() and recent.exists() and archived.exists()
        result = host.chroot("systemctl", "show", "-P", "Result", "isoloir-audit-archive.service")
        assert result.stdout.strip() == "success"
        journal = host.chroot(
            "journalctl", "-u", "isoloir-audit-archive.service", "-o", "cat", "--no-pager"
        ).stdout
        assert f"deleted 1 archive(s) older than {keep_days} days" in journal, journal[-2000:]
        assert (
            "active"
            == host.chroot("systemctl", "is-active", "isoloir-audit-archive.path").stdout.strip()
        )
    finally:
        (host.root / AUDIT_DIR / ".rotation-test").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
        for path in made:
            path.unlink(missing_ok=True)
