"""Before its purge, an election's share stops accepting writes (issue 13 item 5, issue 22).

On the session's converged systemd host (`site`, tests/plugins/hosts.py): the
agents' user leaves the retention job's request (what `sharelock.request`
writes when the election is due; tests/unit/test_retention_share_lock.py shows
the job writing it and waiting for the lock), the host's own
`isoloir-share-lock.path` starts the root service, and then the real smbd
refuses the member's upload into the election's campaign folder and into a
folder of their own outside the datasets, while its permanent folder and the
other election still accept files. Last, the administrator's `unlock` gives
the share back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_hosts import random_password, smbclient
from tests.plugins.hosts import ELECTION_A, ELECTION_B, MEMBER_A, MEMBER_B, Site

pytestmark = [pytest.mark.integration, pytest.mark.root]

REQUEST = f"/var/lib/isoloir/purged/{ELECTION_B}"
RECORD = f"var/lib/isoloir-share-lock/{ELECTION_B}.json"
SHARELOCK = ["/opt/isoloir/venv/bin/python", "-m", "isoloir.retention.sharelock"]
UPLOAD = "depot-apres-purge.csv"


@pytest.fixture(scope="module")
def auth_files(site: Site) -> Iterator[dict[str, Path]]:
    """smbclient auth files of a member of each election."""
    files = {}
    for person in (MEMBER_A, MEMBER_B):
        pwd = random_password(16)
        site.host.chroot("smbpasswd", "-a", "-s", person, input=f"{pwd}\n{pwd}\n")
        auth = site.workdir / f"smb-lock-{person}"
        auth.write_text(f"username = {person}\npassword = {pwd}\n")
        auth.chmod(0o600)
        files[person] = auth
    yield files
    for auth in files.values():
        auth.unlink(missing_ok=True)


def put(site: Site, share: str, auth: Path, local: Path, remote: str) -> str:
    """Upload through the real smbd; smbclient's output ('' when it worked)."""
    run = smbclient(site, share, "-A", str(auth), command=f"put {local} {remote}")
    return "" if run.returncode == 0 else run.stdout + run.stderr


def wait_for(path: Path, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file():
            return True
        time.sleep(0.5)
    return False


def test_a_purged_elections_share_refuses_uploads(
    site: Site, auth_files: dict[str, Path], tmp_path: Path
) -> None:
    host = site.host
    assert host.chroot("systemctl", "is-active", "isoloir-share-lock.path").stdout.strip() == (
        "active"
    )
    local = tmp_path / UPLOAD
    local.write_text("nom;telephone\nFictif;01 99 00 12 34\n")
    b_share = host.root / "srv/elections" / ELECTION_B
    a_share = host.root / "srv/elections" / ELECTION_A
    created = [
        b_share / "prospects" / UPLOAD,
        b_share / "benevoles" / UPLOAD,
        a_share / "prospects" / UPLOAD,
    ]
    since = host.chroot("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    try:
        # Before the purge: the member of B writes into the campaign folder.
        assert put(site, ELECTION_B, auth_files[MEMBER_B], local, f"prospects/{UPLOAD}") == ""
        (b_share / "prospects" / UPLOAD).unlink()
        # A folder of the member's own, outside every declared dataset (security N8).
        host.chroot("runuser", "-u", MEMBER_B, "--", "mkdir", f"/srv/elections/{ELECTION_B}/divers")
        assert put(site, ELECTION_B, auth_files[MEMBER_B], local, f"divers/{UPLOAD}") == ""
        (b_share / "divers" / UPLOAD).unlink()

        # The retention job's request, as the agents' user writes it.
        host.chroot("runuser", "-u", "isoloir", "--", "touch", REQUEST)
        assert wait_for(host.root / RECORD), host.chroot(
            "journalctl", "-u", "isoloir-share-lock.service", "--no-pager", "-n", "20", check=False
        ).stdout
        record = json.loads((host.root / RECORD).read_text())
        assert record["election"] == ELECTION_B and record["folders"] >= 3

        refused = put(site, ELECTION_B, auth_files[MEMBER_B], local, f"prospects/{UPLOAD}")
        assert "NT_STATUS_ACCESS_DENIED" in refused, refused
        assert not (b_share / "prospects" / UPLOAD).exists()
        # Nor from a shell on the host.
        shell = host.chroot(
            "runuser",
            "-u",
            MEMBER_B,
            "--",
            "touch",
            f"/srv/elections/{ELECTION_B}/porte-a-porte/{UPLOAD}",
            check=False,
        )
        assert shell.returncode != 0 and "Permission denied" in shell.stderr
        # The member's own folder outside the datasets is locked too.
        refused = put(site, ELECTION_B, auth_files[MEMBER_B], local, f"divers/{UPLOAD}")
        assert "NT_STATUS_ACCESS_DENIED" in refused, refused
        # The permanent dataset and the other election still take files.
        assert put(site, ELECTION_B, auth_files[MEMBER_B], local, f"benevoles/{UPLOAD}") == ""
        assert put(site, ELECTION_A, auth_files[MEMBER_A], local, f"prospects/{UPLOAD}") == ""

        journal = host.chroot(
            "journalctl",
            "-u",
            "isoloir-share-lock.service",
            "--since",
            since,
            "--no-pager",
            "-o",
            "cat",
            check=False,
        ).stdout
        assert f"share lock: {ELECTION_B}: locked" in journal, journal
        assert UPLOAD not in journal  # counts, never names
        state = host.chroot("systemctl", "is-failed", "isoloir-share-lock.service", check=False)
        assert state.stdout.strip() != "failed", journal
    finally:
        unlocked = host.chroot(*SHARELOCK, "unlock", ELECTION_B, check=False)
        host.chroot("rm", "-f", REQUEST, f"/var/lib/isoloir-share-lock/{ELECTION_B}.unlocked")
        for path in created:
            path.unlink(missing_ok=True)
        (b_share / "divers" / UPLOAD).unlink(missing_ok=True)
        if (b_share / "divers").is_dir():
            (b_share / "divers").rmdir()
    assert unlocked.returncode == 0, unlocked.stderr
    # Unlocked: the member writes again.
    assert put(site, ELECTION_B, auth_files[MEMBER_B], local, f"prospects/{UPLOAD}") == ""
    (b_share / "prospects" / UPLOAD).unlink()
