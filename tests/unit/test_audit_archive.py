"""The Samba audit log outlives Samba's rotation (compliance review E10).

The election_shares role's root script and units are rendered as Ansible does
(its filters, trim_blocks); the script runs for real on a temporary folder
(these unit tests run as root: chown, like the unit's CAP_CHOWN) and the
units pass `systemd-analyze verify`.
"""

from __future__ import annotations

import grp
import gzip
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import FilterModule

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "election_shares"
UNITS = [f"isoloir-audit-archive.{kind}" for kind in ("service", "path", "timer")]
DAY = 86400
GROUP = "daemon"  # any group but root's: the archives must get the agents' group


def render(template: str, **variables: Any) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    for name, func in FilterModule().filters().items():
        env.filters.setdefault(name, func)
    return env.get_template(template).render(ansible_managed="managed", **variables)


def role_vars(log: Path, keep_days: int = 365) -> dict[str, Any]:
    return {
        "election_shares_audit_log": str(log),
        "election_shares_audit_archive_dir": str(log.parent / "archive"),
        "election_shares_audit_group": GROUP,
        "election_shares_audit_keep_days": keep_days,
        "election_shares_audit_archive_script": "/usr/local/sbin/isoloir-audit-archive",
    }


@pytest.fixture
def audit(tmp_path: Path) -> tuple[Path, Path]:
    """The audit folder as the role leaves it (archive folder made), and the script."""
    folder = tmp_path / "samba-audit"
    (folder / "archive").mkdir(parents=True)
    log = folder / "full_audit.log"
    script = tmp_path / "isoloir-audit-archive"
    script.write_text(render("usr/local/sbin/isoloir-audit-archive.j2", **role_vars(log, 200)))
    script.chmod(0o755)
    return log, script


def run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script)], capture_output=True, text=True, timeout=60)


def rotate(log: Path, text: str, mtime: float) -> None:
    """What smbd does at `max log size`: the full log becomes FILE.old."""
    old = log.with_name(log.name + ".old")
    old.write_text(text)
    os.utime(old, (mtime, mtime))


def test_the_defaults_meet_the_cnils_six_months() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    role = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert role["election_shares_audit_min_keep_days"] >= 183
    minimum = role["election_shares_audit_min_keep_days"]
    assert defaults["election_shares_audit_keep_days"] >= minimum
    tasks = (ROLE / "tasks" / "samba.yml").read_text()
    assert "election_shares_audit_keep_days | int) >= (election_shares_audit_min_keep_days" in tasks


def test_a_rotated_log_is_archived_compressed_for_the_agents_only(audit: tuple[Path, Path]) -> None:
    log, script = audit
    last_record = time.time() - 3 * DAY
    rotate(log, "record 1\nrecord 2\n", last_record)
    log.write_text("record 3\n")
    done = run(script)
    assert done.returncode == 0, done.stderr
    assert "archived 1 rotated log(s), deleted 0 archive(s)" in done.stdout
    assert not log.with_name("full_audit.log.old").exists()
    assert log.read_text() == "record 3\n"  # smbd's current log is never touched
    archives = sorted((log.parent / "archive").iterdir())
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(last_record))
    assert [a.name for a in archives] == [f"full_audit-{stamp}.log.gz"]
    st = archives[0].stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and stat.S_ISREG(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, grp.getgrnam(GROUP).gr_gid)
    assert abs(st.st_mtime - last_record) < 1  # the retention counts from the last record
    assert gzip.decompress(archives[0].read_bytes()) == b"record 1\nrecord 2\n"


def test_two_rotations_with_the_same_last_second_keep_both(audit: tuple[Path, Path]) -> None:
    log, script = audit
    when = time.time() - DAY
    for text in ("first\n", "second\n"):
        rotate(log, text, when)
        assert run(script).returncode == 0
    archives = sorted((log.parent / "archive").iterdir())
    assert len(archives) == 2
    assert sorted(gzip.decompress(a.read_bytes()) for a in archives) == [b"first\n", b"second\n"]


def test_archives_past_the_retention_are_deleted_recent_ones_kept(
    audit: tuple[Path, Path],
) -> None:
    log, script = audit  # keep 200 days
    archive = log.parent / "archive"
    expired = archive / "full_audit-20250101T000000Z.log.gz"
    recent = archive / "full_audit-20250601T000000Z.log.gz"
    other = archive / "notes.txt"  # not an archive of the script: left alone
    for path, age in ((expired, 201), (recent, 199), (other, 900)):
        path.write_bytes(gzip.compress(b"x\n"))
        os.utime(path, (time.time() - age * DAY, time.time() - age * DAY))
    done = run(script)
    assert done.returncode == 0, done.stderr
    assert "deleted 1 archive(s) older than 200 days" in done.stdout
    assert not expired.exists() and recent.exists() and other.exists()


def test_a_symbolic_link_is_never_followed(audit: tuple[Path, Path], tmp_path: Path) -> None:
    log, script = audit
    target = tmp_path / "elsewhere.txt"
    target.write_text("not a log\n")
    log.with_name("full_audit.log.old").symlink_to(target)
    done = run(script)
    assert done.returncode == 1 and "symbolic link" in done.stderr
    assert target.read_text() == "not a log\n" and not target.is_symlink()
    assert not os.path.lexists(log.with_name("full_audit.log.old"))  # no path unit loop
    assert list((log.parent / "archive").iterdir()) == []


def test_a_rotated_log_left_by_an_interrupted_run_is_archived(audit: tuple[Path, Path]) -> None:
    log, script = audit
    archive = log.parent / "archive"
    (archive / ".rotated-20260101T000000Z.abcdef").write_text("kept\n")
    (archive / ".gz-20260101T000000Z.abcdef").write_bytes(b"\x1f\x8b half")
    assert run(script).returncode == 0
    names = [p.name for p in archive.iterdir()]
    assert len(names) == 1 and names[0].startswith("full_audit-") and names[0].endswith(".log.gz")
    assert gzip.decompress((archive / names[0]).read_bytes()) == b"kept\n"


def test_a_missing_archive_folder_fails_loudly(audit: tuple[Path, Path]) -> None:
    log, script = audit
    (log.parent / "archive").rmdir()
    rotate(log, "record\n", time.time())
    done = run(script)
    assert done.returncode == 1 and "is not a folder" in done.stderr
    assert log.with_name("full_audit.log.old").exists()  # nothing lost


def test_the_service_may_only_write_the_audit_folder() -> None:
    text = render(
        "etc/systemd/system/isoloir-audit-archive.service.j2",
        **role_vars(Path('/var/log/a "b%c/full_audit.log')),
    )
    assert 'ReadWritePaths="/var/log/a \\"b%%c"\n' in text
    for directive in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateNetwork=yes",
        "CapabilityBoundingSet=CAP_CHOWN\n",
    ):
        assert directive in text
    path = render("etc/systemd/system/isoloir-audit-archive.path.j2", **role_vars(Path("/l/f.log")))
    assert "PathExists=/l/f.log.old\n" in path


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_accepts_the_audit_archive_units(tmp_path: Path, unit: str) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of the test machine (systemd)"
    script = tmp_path / "isoloir-audit-archive"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    variables = {
        **role_vars(Path("/var/log/samba-audit/full_audit.log")),
        "election_shares_audit_archive_script": str(script),
    }
    for name in UNITS:
        (tmp_path / name).write_text(render(f"etc/systemd/system/{name}.j2", **variables))
    done = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
