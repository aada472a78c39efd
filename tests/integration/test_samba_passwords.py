"""Samba passwords through the sandbox host's real smbd (issue 12, SHARE-05).

A person changes their own Samba password over SMB, as a Windows client or
`smbpasswd -r` does (SAMR password change served by smbd): smbd runs the role's
`check password script` and applies the passdb account policy, so a password
below the policies' profile is refused and a strong one accepted. Repeated bad
SMB logons lock the account (passdb `bad lockout attempt`) until `lockout
duration` ends or an administrator unlocks it. The person is made for this module and removed
afterwards; the account policy is only read. Passwords are generated fiction
and never printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.plugins.hosts import ELECTION_A, Site

pytestmark = [pytest.mark.integration, pytest.mark.root]

PERSON = "mfictif"  # a member of election A made for this module (fiction)
# What smbd (Samba 4.17, srv_samr_chgpasswd.c, log level 1) logs when a change is
# refused by the passdb `min password length` policy or by the check script.
TOO_SHORT = "cannot change password - password too short"
SCRIPT_REFUSED = "check password script said new password is not good enough"


def strong_password() -> str:
    """16+ characters from the four classes, without the account name."""
    return "Aa1-" + secrets.token_urlsafe(15)


def weak_passwords() -> list[tuple[str, str, str]]:
    """(case, password, the rule that refuses it) below the profile: 14 characters,
    3 classes, no account name."""
    lower = "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))
    return [
        ("common word", "azerty", TOO_SHORT),
        ("13 characters, 3 classes", "Bb2-" + secrets.token_hex(5)[:9], TOO_SHORT),
        ("20 characters, 1 class", lower, SCRIPT_REFUSED),
        ("contains the account name", "Xy7-" + PERSON + secrets.token_hex(4), SCRIPT_REFUSED),
    ]


def smbd_log_count(site: Site, text: str) -> int:
    """How many times smbd's logs (/var/log/samba/log.*) say `text`."""
    logs = sorted((site.host.root / "var/log/samba").glob("log.*"))
    return sum(path.read_text(errors="replace").count(text) for path in logs)


@dataclass
class Account:
    """The module's person on the host, with the Samba password it has now."""

    name: str
    password: str
    workdir: Path

    def auth_file(self, password: str, tag: str) -> Path:
        path = self.workdir / f"smb-{self.name}-{tag}"
        path.write_text(f"username = {self.name}\npassword = {password}\n")
        path.chmod(0o600)
        return path


def smb_ls(site: Site, auth: Path) -> subprocess.CompletedProcess[str]:
    """An SMB3 logon to election A's share as the auth file's person."""
    return subprocess.run(
        ["smbclient", f"//{site.host.address}/{ELECTION_A}", "-m", "SMB3", "-A", str(auth),
         "-c", "ls"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip


def logs_in(site: Site, account: Account, password: str) -> subprocess.CompletedProcess[str]:
    return smb_ls(site, account.auth_file(password, "try"))


def change_over_smb(site: Site, account: Account, new: str) -> subprocess.CompletedProcess[str]:
    """The person's own change, as a client makes it: SAMR over SMB, served by smbd."""
    return subprocess.run(
        ["smbpasswd", "-r", site.host.address, "-U", account.name, "-s"],
        input=f"{account.password}\n{new}\n{new}\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def change_on_the_host(site: Site, account: Account, new: str) -> subprocess.CompletedProcess[str]:
    """The same change from the person's shell on the host: their own smbpasswd, not root's.

    Non-root smbpasswd asks the smbd of 127.0.0.1 unless told `-r`; the sandbox
    host's smbd binds its own address only (`bind interfaces only`).
    """
    run: subprocess.CompletedProcess[str] = site.host.chroot(
        "runuser", "-u", account.name, "--", "smbpasswd", "-r", site.host.address, "-s",
        input=f"{account.password}\n{new}\n{new}\n", check=False, timeout=60,
    )  # fmt: skip
    return run


def account_flags(site: Site, name: str) -> str:
    shown = site.host.chroot("pdbedit", "-v", name).stdout
    match = re.search(r"(?m)^Account Flags:\s*\[([A-Z ]*)\]", shown)
    assert match, "pdbedit -v shows no account flags"
    return match.group(1)


def bad_password_count(site: Site, name: str) -> int:
    shown = site.host.chroot("pdbedit", "-v", name).stdout
    match = re.search(r"(?m)^Bad password count\s*:\s*(\d+)", shown)
    assert match, "pdbedit -v shows no bad password count"
    return int(match.group(1))


def unlock(site: Site, name: str) -> None:
    """What an administrator does: clear the auto-lock flag, then the bad count.

    pdbedit -c sets only the N, D, H, L and X flags (keeps the others): the
    account's settable flags but L. The flag goes first: with the bad password
    time reset, Samba keeps an auto-lock as an administrative lock.
    """
    keep = "".join(flag for flag in account_flags(site, name) if flag in "NDHX")
    site.host.chroot("pdbedit", "-r", "-c", f"[{keep}]", "-u", name)
    site.host.chroot("pdbedit", "-r", "-z", "-u", name)


@pytest.fixture(scope="module")
def account(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    host = site.host
    workdir = tmp_path_factory.mktemp("smb-passwords")
    os.chmod(workdir, 0o700)
    host.chroot("useradd", "-M", "-s", "/usr/sbin/nologin", "-G", f"el-{ELECTION_A}", PERSON)
    try:
        acc = Account(name=PERSON, password=strong_password(), workdir=workdir)
        pwd = acc.password
        host.chroot("smbpasswd", "-a", "-s", PERSON, input=f"{pwd}\n{pwd}\n")
        yield acc
    finally:
        host.chroot("smbpasswd", "-x", PERSON, check=False)
        host.chroot("userdel", PERSON, check=False)


def policy(site: Site, name: str) -> int:
    shown = site.host.chroot("pdbedit", "-P", name).stdout
    match = re.search(r"value is:\s*(-?\d+)", shown)
    assert match, f"pdbedit -P {name!r} shows no value"
    return int(match.group(1))


def test_the_account_policy_is_the_policies_profile(site: Site) -> None:
    rendered = json.loads(site.vars_file.read_text())
    assert policy(site, "min password length") == rendered["isoloir_password_minlen"]
    assert policy(site, "bad lockout attempt") == rendered["isoloir_lockout_deny"]
    conf = site.host.chroot("testparm", "-s", "--parameter-name=check password script").stdout
    assert conf.strip() == "/usr/local/sbin/isoloir-smb-pwcheck"


def test_a_weak_password_change_over_smb_is_refused(site: Site, account: Account) -> None:
    assert logs_in(site, account, account.password).returncode == 0
    for case, weak, rule in weak_passwords():
        before = smbd_log_count(site, rule)
        run = change_over_smb(site, account, weak)
        assert run.returncode != 0, f"{case}: accepted"
        assert "rejected" in run.stdout + run.stderr, case
        # smbd says which rule refused it: the passdb minimum length, or the script.
        assert smbd_log_count(site, rule) == before + 1, case
        # The old password still opens the share: nothing changed.
        still = logs_in(site, account, account.password)
        assert still.returncode == 0, f"{case}: {still.stdout + still.stderr}"
    assert bad_password_count(site, account.name) == 0


def test_a_strong_password_change_over_smb_is_accepted(site: Site, account: Account) -> None:
    old, new = account.password, strong_password()
    run = change_over_smb(site, account, new)
    assert run.returncode == 0, run.stdout + run.stderr
    account.password = new
    try:
        assert logs_in(site, account, new).returncode == 0
        refused = logs_in(site, account, old)
        assert refused.returncode != 0
        assert "NT_STATUS_LOGON_FAILURE" in refused.stdout + refused.stderr
    finally:
        site.host.chroot("pdbedit", "-r", "-z", "-u", account.name)
    assert bad_password_count(site, account.name) == 0


def test_a_person_on_the_host_gets_the_same_rules(site: Site, account: Account) -> None:
    weak = "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))
    before = smbd_log_count(site, SCRIPT_REFUSED)
    run = change_on_the_host(site, account, weak)
    assert run.returncode != 0, "accepted"
    assert smbd_log_count(site, SCRIPT_REFUSED) == before + 1
    assert logs_in(site, account, account.password).returncode == 0
    new = strong_password()
    run = change_on_the_host(site, account, new)
    assert run.returncode == 0, run.stdout + run.stderr
    account.password = new
    assert logs_in(site, account, new).returncode == 0


def test_repeated_bad_smb_logons_lock_the_account(site: Site, account: Account) -> None:
    deny = json.loads(site.vars_file.read_text())["isoloir_lockout_deny"]
    assert logs_in(site, account, account.password).returncode == 0
    try:
        for attempt in range(deny):
            bad = logs_in(site, account, account.password + "x")
            assert "NT_STATUS_LOGON_FAILURE" in bad.stdout + bad.stderr, attempt
        locked = logs_in(site, account, account.password)
        assert locked.returncode != 0
        assert "NT_STATUS_ACCOUNT_LOCKED_OUT" in locked.stdout + locked.stderr
        assert "L" in account_flags(site, account.name)
        assert bad_password_count(site, account.name) == deny
    finally:
        unlock(site, account.name)
    assert "L" not in account_flags(site, account.name)
    assert bad_password_count(site, account.name) == 0
    assert logs_in(site, account, account.password).returncode == 0
