"""The hosts part on real sandbox hosts: real sshd, PAM, smbd, Ansible over SSH.

One converge per session (two hosts on distinct loopback addresses), shared by
every test; the tests then log in, change passwords, fail logins and use the
shares as people would. Two elections: A (exempleville-2027: cfictive, dmodele)
and B (autreville-2027: ptest). All people and secrets are fake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import string
import struct
import subprocess
import time
from pathlib import Path

import pytest
from tests.plugins.hosts import (
    ELECTION_A,
    ELECTION_B,
    MEMBER_A,
    MEMBER_B,
    REMOVED,
    Site,
    changed_tasks,
    recap,
)

from isoloir.controller.sandbox import SandboxHost

pytestmark = [pytest.mark.integration, pytest.mark.root]


def totp(secret: str, at: float | None = None, step: int = 30) -> str:
    """RFC 6238 code (SHA-1, 6 digits, 30 s), as authenticator apps compute it."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def key(site: Site, person: str) -> str:
    return str(site.workdir / "keys" / person)


def ssh(
    site: Site, person: str, *command: str, code: str | None = None, host: SandboxHost | None = None
) -> subprocess.CompletedProcess[str]:
    """A real SSH login; `code` answers the keyboard-interactive (TOTP) prompt."""
    host = host or site.host
    env = dict(os.environ)
    opts = [
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "PreferredAuthentications=publickey,keyboard-interactive",
    ]
    if code is None:
        opts += ["-o", "BatchMode=yes"]
    else:
        askpass = site.workdir / "askpass"
        askpass.write_text('#!/bin/sh\nprintf "%s\\n" "$ISOLOIR_TEST_CODE"\n')
        askpass.chmod(0o700)
        env.update(
            SSH_ASKPASS=str(askpass),
            SSH_ASKPASS_REQUIRE="force",
            ISOLOIR_TEST_CODE=code,
            DISPLAY=env.get("DISPLAY", ":0"),
        )
    argv = host.ssh_command(user=person, key=key(site, person))
    return subprocess.run(
        [*argv[:-1], *opts, argv[-1], *command],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


# -- converge ------------------------------------------------------------------------


def test_converge_passes_and_second_run_changes_nothing(site: Site) -> None:
    first = site.runs[0]
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert len(site.runs) == 2
    second = site.runs[1]
    assert second.returncode == 0, second.stdout[-4000:]
    stats = recap(second)
    assert set(stats) == {site.host.name}
    for name, counts in stats.items():
        assert counts["failed"] == 0 and counts["unreachable"] == 0, name
        assert counts["changed"] == 0, (name, changed_tasks(second.stdout))


def test_several_hosts_on_their_own_loopback_addresses(site: Site) -> None:
    addresses = {h.address for h in site.hosts}
    assert len(addresses) == len(site.hosts)
    for host in site.hosts:
        assert host.address.startswith("127.")
        run = subprocess.run(
            [*host.ssh_command(), "cat", "/etc/hostname"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        # Each address leads into its own tree.
        assert run.stdout.strip() == host.name
        sshd_pid = host.machine_pid(int((host.root / "run/sshd.pid").read_text()))
        assert os.readlink(f"/proc/{sshd_pid}/root") == str(host.root.resolve())


# -- SSH with TOTP --------------------------------------------------------------------


@pytest.fixture(scope="module")
def enrolled(site: Site) -> str:
    """MEMBER_A's enrolment: one key-only login shows the secret, once."""
    first = ssh(site, MEMBER_A)
    assert first.returncode == 0, first.stderr
    match = re.search(r"(?m)^secret: ([A-Z2-7]{16,})$", first.stdout)
    assert match, "the enrolment login shows no secret"
    secret = match.group(1)
    on_host = (site.host.root / "var/lib/isoloir-totp" / MEMBER_A).read_text().splitlines()[0]
    assert secret == on_host
    mode = (site.host.root / "var/lib/isoloir-totp" / MEMBER_A).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    again = ssh(site, MEMBER_A)
    assert again.returncode != 0 and "secret" not in again.stdout
    return secret


TOTP_TALLY = "/run/faillock-totp"


# Order matters: the correct code first (a success resets the lock-out count).
def test_key_and_correct_totp_code_are_accepted(site: Site, enrolled: str) -> None:
    # Start inside a time step, not at its very end, so the code is still the
    # current one when sshd checks it.
    if 30 - time.time() % 30 < 5:
        time.sleep(30 - time.time() % 30 + 0.5)
    run = ssh(site, MEMBER_A, "id", "-nG", code=totp(enrolled))
    assert run.returncode == 0, run.stderr
    groups = run.stdout.split()
    assert f"el-{ELECTION_A}" in groups and f"el-{ELECTION_B}" not in groups


def failures(site: Site, person: str, tally_dir: str = TOTP_TALLY) -> int:
    """Failures in the SSH and sudo tally (its own directory, security N5)."""
    tally = site.host.chroot("faillock", "--dir", tally_dir, "--user", person).stdout
    return len(re.findall(r"(?m)^\d{4}-\d\d-\d\d .* V$", tally))


def test_wrong_totp_code_is_refused(site: Site, enrolled: str) -> None:
    good = {totp(enrolled, time.time() + d) for d in (-90, -60, -30, 0, 30, 60, 90)}
    wrong = next(c for c in ("000000", "123456", "999999") if c not in good)
    before = failures(site, MEMBER_A)
    run = ssh(site, MEMBER_A, "id", code=wrong)
    assert run.returncode == 255
    assert "uid=" not in run.stdout
    # Refused by the TOTP check itself: the failure counts towards the lock-out.
    assert failures(site, MEMBER_A) == before + 1


def test_key_without_totp_code_is_refused(site: Site, enrolled: str) -> None:
    run = ssh(site, MEMBER_A, "id")
    assert run.returncode == 255
    assert "Permission denied" in run.stderr
    assert "uid=" not in run.stdout


def test_root_login_is_refused_even_with_an_authorized_key(site: Site) -> None:
    root = site.host.root
    pub = (site.workdir / "keys" / f"{MEMBER_B}.pub").read_text()
    for path in (root / "root/.ssh/authorized_keys", root / "etc/ssh/authorized_keys/root"):
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(pub)
    try:
        env_argv = site.host.ssh_command(user="root", key=key(site, MEMBER_B))
        run = subprocess.run(
            [*env_argv[:-1], "-o", "BatchMode=yes", env_argv[-1], "id"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert run.returncode == 255 and "uid=0" not in run.stdout
        effective = site.host.chroot("/usr/sbin/sshd", "-T").stdout
        assert "permitrootlogin no" in effective
        assert "authenticationmethods publickey,keyboard-interactive" in effective
    finally:
        (root / "root/.ssh/authorized_keys").unlink()
        (root / "etc/ssh/authorized_keys/root").unlink()


def test_sshd_offers_only_modern_algorithms(site: Site) -> None:
    effective = site.host.chroot("/usr/sbin/sshd", "-T").stdout
    ciphers = re.search(r"(?m)^ciphers (.*)$", effective).group(1).split(",")  # type: ignore[union-attr]
    macs = re.search(r"(?m)^macs (.*)$", effective).group(1).split(",")  # type: ignore[union-attr]
    assert not [c for c in ciphers if "cbc" in c or "3des" in c]
    assert all("etm" in m for m in macs)
    run = subprocess.run(
        [*site.host.ssh_command(), "-o", "Ciphers=aes128-cbc", "true"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert run.returncode == 255 and "no matching cipher" in run.stderr


def test_sudo_asks_administrators_for_their_totp_code(site: Site) -> None:
    admin = "cfictive"  # an administrator in the example policies
    secret = (site.host.root / "var/lib/isoloir-totp" / admin).read_text().splitlines()[0]
    wrong = site.host.chroot(
        "pamtester", "sudo", admin, "authenticate", input="000000\n", check=False
    )
    assert wrong.returncode != 0
    assert "Verification code" in wrong.stderr + wrong.stdout
    if 30 - time.time() % 30 < 5:
        time.sleep(30 - time.time() % 30 + 0.5)
    right = site.host.chroot(
        "pamtester", "sudo", admin, "authenticate", input=f"{totp(secret)}\n", check=False
    )
    assert right.returncode == 0, right.stderr
    rights = site.host.chroot("sudo", "-l", "-U", admin).stdout
    assert "(ALL : ALL) ALL" in rights
    member = site.host.chroot("sudo", "-l", "-U", MEMBER_A).stdout
    assert "not allowed to run sudo" in member


# -- PAM: password quality and lock-out ----------------------------------------------


def random_password(length: int = 14) -> str:
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits]
    while True:
        chars = [secrets.choice(c) for c in classes]
        chars += [secrets.choice("".join(classes)) for _ in range(length - 3)]
        secrets.SystemRandom().shuffle(chars)
        pwd = "".join(chars)
        if not re.search(r"(.)\1\1", pwd):
            return pwd


def chauthtok(site: Site, person: str, password: str) -> subprocess.CompletedProcess[str]:
    return site.host.chroot(
        "pamtester", "passwd", person, "chauthtok", input=f"{password}\n{password}\n", check=False
    )


def authenticate(site: Site, person: str, password: str) -> subprocess.CompletedProcess[str]:
    return site.host.chroot(
        "pamtester", "login", person, "authenticate", input=f"{password}\n", check=False
    )


@pytest.fixture(scope="module")
def password(site: Site) -> str:
    pwd = random_password()
    run = chauthtok(site, MEMBER_B, pwd)
    assert run.returncode == 0, run.stderr
    return pwd


def test_pam_rejects_a_weak_password(site: Site, password: str) -> None:
    shadow_before = (site.host.root / "etc/shadow").read_text()
    run = chauthtok(site, MEMBER_B, "Campagne2026!")
    assert run.returncode != 0
    assert "BAD PASSWORD" in run.stderr
    assert (site.host.root / "etc/shadow").read_text() == shadow_before


def test_pam_accepts_a_random_14_character_3_class_password(site: Site, password: str) -> None:
    run = authenticate(site, MEMBER_B, password)
    assert run.returncode == 0, run.stderr


def test_account_locked_after_the_policy_number_of_failures(site: Site, password: str) -> None:
    deny = json.loads(site.vars_file.read_text())["isoloir_lockout_deny"]
    try:
        assert authenticate(site, MEMBER_B, password).returncode == 0
        for _ in range(deny):
            assert authenticate(site, MEMBER_B, password + "x").returncode != 0
        locked = authenticate(site, MEMBER_B, password)
        assert locked.returncode != 0
        assert "locked" in locked.stderr + locked.stdout
        tally = site.host.chroot("faillock", "--user", MEMBER_B).stdout
        assert len(re.findall(r"(?m)^\d{4}-\d\d-\d\d .* V$", tally)) == deny
    finally:
        site.host.chroot("faillock", "--user", MEMBER_B, "--reset")
    assert authenticate(site, MEMBER_B, password).returncode == 0


# -- Samba ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smb_passwords(site: Site) -> dict[str, Path]:
    """Samba credentials of the two members, as smbclient auth files."""
    files = {}
    for person in (MEMBER_A, MEMBER_B):
        pwd = random_password(16)
        site.host.chroot("smbpasswd", "-a", "-s", person, input=f"{pwd}\n{pwd}\n")
        auth = site.workdir / f"smb-{person}"
        auth.write_text(f"username = {person}\npassword = {pwd}\n")
        auth.chmod(0o600)
        files[person] = auth
    return files


def smbclient(
    site: Site, share: str, *args: str, command: str = "ls"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["smbclient", f"//{site.host.address}/{share}", "-m", "SMB3", *args, "-c", command],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_member_writes_to_own_share_and_others_cannot_read_the_file(
    site: Site, smb_passwords: dict[str, Path]
) -> None:
    local = site.workdir / "liste.csv"
    local.write_text("nom;telephone\nFictif;0600000000\n")
    run = smbclient(
        site,
        ELECTION_A,
        "-A",
        str(smb_passwords[MEMBER_A]),
        command=f"put {local} prospects/liste.csv",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    on_disk = site.host.root / "srv/elections" / ELECTION_A / "prospects/liste.csv"
    assert on_disk.read_text() == local.read_text()
    mode = on_disk.stat().st_mode
    assert mode & (stat.S_IRWXO) == 0, oct(mode)
    facl = subprocess.run(["getfacl", "-pc", str(on_disk)], capture_output=True, text=True).stdout
    assert "other::---" in facl
    # A person of another election, on the host itself, cannot read it either.
    probe = site.host.chroot(
        "runuser",
        "-u",
        MEMBER_B,
        "--",
        "cat",
        f"/srv/elections/{ELECTION_A}/prospects/liste.csv",
        check=False,
    )
    assert probe.returncode != 0 and "Permission denied" in probe.stderr


def test_member_is_denied_on_another_election_share(
    site: Site, smb_passwords: dict[str, Path]
) -> None:
    run = smbclient(site, ELECTION_B, "-A", str(smb_passwords[MEMBER_A]))
    assert run.returncode != 0
    assert "NT_STATUS_ACCESS_DENIED" in run.stdout + run.stderr
    run = smbclient(site, ELECTION_A, "-A", str(smb_passwords[MEMBER_B]))
    assert "NT_STATUS_ACCESS_DENIED" in run.stdout + run.stderr
    shares = subprocess.run(
        [
            "smbclient",
            "-L",
            f"//{site.host.address}",
            "-m",
            "SMB3",
            "-A",
            str(smb_passwords[MEMBER_A]),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert ELECTION_A in shares and ELECTION_B not in shares


def test_guest_and_anonymous_are_refused(site: Site, smb_passwords: dict[str, Path]) -> None:
    anonymous = smbclient(site, ELECTION_A, "-N")
    guest = smbclient(site, ELECTION_A, "-U", "guest%")
    for run in (anonymous, guest):
        assert run.returncode != 0
        assert re.search(r"NT_STATUS_(ACCESS_DENIED|LOGON_FAILURE)", run.stdout + run.stderr)


def test_smb1_and_unencrypted_sessions_are_refused(
    site: Site, smb_passwords: dict[str, Path]
) -> None:
    old = subprocess.run(
        [
            "smbclient",
            f"//{site.host.address}/{ELECTION_A}",
            "-m",
            "NT1",
            "--option=client min protocol=NT1",
            "-A",
            str(smb_passwords[MEMBER_A]),
            "-c",
            "ls",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert old.returncode != 0
    conf = site.host.chroot("testparm", "-s", "--parameter-name=server smb encrypt").stdout
    assert conf.strip() == "required"


def test_smbd_listens_on_loopback_only(site: Site, smb_passwords: dict[str, Path]) -> None:
    pidfile = site.host.root / "run/samba/smbd.pid"
    pid = site.host.machine_pid(int(pidfile.read_text().strip()))
    assert os.readlink(f"/proc/{pid}/root") == str(site.host.root.resolve())
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    mine = [line.split()[3] for line in listening.splitlines() if f"pid={pid}," in line]
    assert mine, "smbd has no listening socket"
    for local in mine:
        address = local.rsplit(":", 1)[0].strip("[]")
        assert address == site.host.address, local


# -- agents ---------------------------------------------------------------------------


def test_agent_unit_passes_systemd_analyze_verify(site: Site) -> None:
    unit = "/etc/systemd/system/isoloir-agent.service"
    run = site.host.chroot("systemd-analyze", "verify", unit, check=False)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
    text = (site.host.root / unit.lstrip("/")).read_text()
    for directive in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=no",  # the stray-data scan reads the host's /tmp (read-only: ProtectSystem)
        "SystemCallErrorNumber=EPERM",
        # the one capability, for the exposure agent's fix of a member's file mode
        "CapabilityBoundingSet=CAP_FOWNER\n",
        "AmbientCapabilities=CAP_FOWNER\n",
    ):
        assert directive in text
    # One quoted path per line.
    rw = re.findall(r'(?m)^ReadWritePaths="(.*)"$', text)
    contacts = json.loads(site.vars_file.read_text())["isoloir_contacts_path"]
    # The state, the shares (purge) and the permanent contacts store, nothing else.
    assert sorted(rw) == sorted(
        [
            "/var/lib/isoloir",
            contacts,
            f"/srv/elections/{ELECTION_A}",
            f"/srv/elections/{ELECTION_B}",
        ]
    )


def test_agent_installed_from_the_wheelhouse_with_its_config(site: Site) -> None:
    run = site.host.chroot(
        "runuser", "-u", "isoloir", "--", "/opt/isoloir/venv/bin/isoloir", "--version"
    )
    assert run.stdout.startswith("isoloir ")
    config = site.host.root / "etc/isoloir/agent.json"
    st = config.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
    group = site.host.chroot("stat", "-c", "%G", "/etc/isoloir/agent.json").stdout.strip()
    assert group == "isoloir"
    assert config.read_bytes() == (site.render / "agent" / "agent.json").read_bytes()


def test_agent_user_has_only_election_groups_and_reads_the_shares(
    site: Site, smb_passwords: dict[str, Path]
) -> None:
    groups = site.host.chroot("id", "-nG", "isoloir").stdout.split()
    assert sorted(groups) == sorted(["isoloir", f"el-{ELECTION_A}", f"el-{ELECTION_B}"])
    local = site.workdir / "probe.csv"
    local.write_text("nom\nFictif\n")
    put = smbclient(
        site,
        ELECTION_B,
        "-A",
        str(smb_passwords[MEMBER_B]),
        command=f"put {local} porte-a-porte/probe.csv",
    )
    assert put.returncode == 0, put.stdout + put.stderr
    for path in (
        f"/srv/elections/{ELECTION_B}/porte-a-porte/probe.csv",
        f"/srv/elections/{ELECTION_A}/prospects",
    ):
        probe = site.host.chroot("runuser", "-u", "isoloir", "--", "ls", "-l", path, check=False)
        assert probe.returncode == 0, probe.stderr
    read = site.host.chroot(
        "runuser",
        "-u",
        "isoloir",
        "--",
        "cat",
        f"/srv/elections/{ELECTION_B}/porte-a-porte/probe.csv",
    )
    assert read.stdout == local.read_text()
    # One real scan of the shares, as the agents' user: a file opened to others
    # on disk is found, the files created over SMB are not.
    leak = site.host.root / "srv/elections" / ELECTION_B / "porte-a-porte/ouvert.csv"
    leak.write_text("nom\nFictif\n")
    leak.chmod(0o664)
    subprocess.run(["setfacl", "-m", "o::r", str(leak)], check=True)
    try:
        scan = site.host.chroot(
            "runuser",
            "-u",
            "isoloir",
            "--",
            "/opt/isoloir/venv/bin/isoloir",
            "scan",
            "--shares",
            "--format",
            "json",
            check=False,
        )
    finally:
        leak.unlink()
    assert scan.returncode in (0, 1), scan.stderr
    findings = [json.loads(line) for line in scan.stdout.splitlines() if line.startswith("{")]
    resources = {f["resource"] for f in findings}
    assert f"/srv/elections/{ELECTION_B}/porte-a-porte/ouvert.csv" in resources
    assert f"/srv/elections/{ELECTION_B}/porte-a-porte/probe.csv" not in resources


# -- people removed from the policies (runs last: it changes the host) ----------------


def test_person_removed_from_the_policies_is_locked_not_deleted(site: Site) -> None:
    people = [p for p in site.test_vars["isoloir_people"] if p["id"] != REMOVED]  # type: ignore[attr-defined]
    site.test_vars = {**site.test_vars, "isoloir_people": people}
    run = site.playbook("--tags", "users")
    assert run.returncode == 0, run.stdout[-3000:]
    root = site.host.root
    passwd = site.host.chroot("getent", "passwd", REMOVED).stdout
    assert passwd.rstrip().endswith(":/usr/sbin/nologin")
    status = site.host.chroot("passwd", "--status", REMOVED).stdout.split()
    assert status[1] == "L"
    expiry = site.host.chroot("chage", "-l", REMOVED).stdout
    assert re.search(r"Account expires\s*:\s*Jan 0[12], 1970", expiry)
    assert site.host.chroot("id", "-nG", REMOVED).stdout.split() == [REMOVED, "isoloir-former"]
    assert not (root / "etc/ssh/authorized_keys" / REMOVED).exists()
    assert not (root / "var/lib/isoloir-totp" / REMOVED).exists()
    assert (root / "home" / REMOVED).is_dir()
    login = ssh(site, REMOVED, "id")
    assert login.returncode == 255
