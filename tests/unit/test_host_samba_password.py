"""F1: Samba passwords, the only passwords people use, follow the policies.

The election_shares role sets smb.conf `check password script` to a script
running `isoloir.smb_password` (min_length and min_classes of the policies'
CNIL profile), and the passdb account policy (lock-out, minimum length) with
pdbedit. smbd refuses a person's `smbpasswd` change when the script exits
non-zero. Here: the rules, the installed script run as smbd runs it (password
on stdin), the smb.conf line checked by testparm, and the account policy values.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _host_templates import render, variable

from isoloir import smb_password

GOOD = "Fictif-Exemple-2027"  # 19 characters, 4 classes


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("azerty", "shorter than 14"),
        ("Campagne2026!", "shorter than 14"),  # 13 characters
        ("correcthorsebatterystaple", "1 of the 4"),  # long, one class
        ("motdepasselong2027", "2 of the 4"),
        ("Cfictive-Secret-2027", "account name"),
    ],
)
def test_weak_passwords_are_refused(password: str, why: str) -> None:
    found = smb_password.problems(password, min_length=14, min_classes=3, account="cfictive")
    assert any(why in p for p in found), found
    assert all(password not in p for p in found)  # never quoted back


def test_profile_passwords_are_accepted() -> None:
    assert smb_password.problems(GOOD, min_length=14, min_classes=3, account="cfictive") == []
    # length counts characters, not bytes; accented letters are letters
    assert smb_password.problems("Élection-été2027", min_length=14, min_classes=3) == []
    assert smb_password.character_classes("aB3!") == 4


def _script(tmp_path: Path) -> Path:
    text = render(
        "election_shares",
        "usr/local/sbin/isoloir-smb-pwcheck.j2",
        election_shares_pwcheck_python=sys.executable,
        isoloir_password_minlen=14,
        isoloir_password_minclass=3,
    )
    path = tmp_path / "isoloir-smb-pwcheck"
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("stdin", "code"),
    [
        (GOOD.encode(), 0),
        (GOOD.encode() + b"\n", 0),
        (b"azerty", 1),
        (b"Campagne2026!\n", 1),
        (b"\xff" * 20, 1),  # not UTF-8
        (b"A1-" * 400, 1),  # larger than any password
    ],
)
def test_installed_script_as_smbd_runs_it(tmp_path: Path, stdin: bytes, code: int) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "SAMBA_CPS_ACCOUNT_NAME": "dmodele"}
    run = subprocess.run(
        [_script(tmp_path)], input=stdin, capture_output=True, env=env, cwd=tmp_path
    )
    assert run.returncode == code, run.stderr
    assert stdin.strip() not in run.stderr + run.stdout or not stdin.strip()


def test_script_ignores_a_module_planted_in_its_working_directory(tmp_path: Path) -> None:
    """smbd may run it from anywhere: `python -I` never imports from the cwd."""
    planted = tmp_path / "isoloir"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "smb_password.py").write_text("import sys\nsys.exit(0)\n")
    run = subprocess.run([_script(tmp_path)], input=b"azerty", capture_output=True, cwd=tmp_path)
    assert run.returncode == 1


def test_smb_conf_names_the_script_and_testparm_accepts_it(tmp_path: Path) -> None:
    text = render(
        "election_shares",
        "etc/samba/smb.conf.j2",
        isoloir_elections=[
            {"id": "exempleville-2027", "label": "Municipales", "group": "el-exempleville-2027",
             "path": "/srv/elections/exempleville-2027"}
        ],
    )  # fmt: skip
    assert "\tcheck password script = /usr/local/sbin/isoloir-smb-pwcheck\n" in text
    testparm = shutil.which("testparm")
    if testparm is None:
        pytest.skip("testparm (samba-common-bin) is not installed on this machine")
    conf = tmp_path / "smb.conf"
    conf.write_text(text)
    run = subprocess.run(
        [testparm, "-s", "--parameter-name", "check password script", str(conf)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "/usr/local/sbin/isoloir-smb-pwcheck"


def test_account_policy_values_from_the_lockout_profile() -> None:
    wanted = variable(
        "election_shares",
        "election_shares_account_policy_wanted",
        isoloir_password_minlen=14,
        isoloir_lockout_deny=3,
        isoloir_lockout_fail_interval=900,
        isoloir_lockout_unlock_time=1000,  # rounded up to whole minutes
    )
    assert {w["name"]: int(w["value"]) for w in wanted} == {
        "min password length": 14,
        "bad lockout attempt": 3,
        "lockout duration": 17,
        "reset count minutes": 15,
    }
