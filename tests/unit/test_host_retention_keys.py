"""F10: the retention keys are created at deploy, never lazily by the purge.

Under the agents' unit the secrets directory is read-only (ProtectSystem=strict),
so a purge that had to create a key failed every day. Now `init` (run by the
agents role as the agents' user) creates both keys, 0600, once; the purge and
the unit's start check refuse, naming the file, when one is missing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from isoloir.retention import keys


def test_purge_side_never_creates_a_key_and_names_the_missing_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    with pytest.raises(keys.SecretError, match=r"retention-hmac\.key is missing"):
        keys.hmac_key(secrets)
    with pytest.raises(keys.SecretError, match=r"retention-signing\.key is missing"):
        keys.signing_key(secrets)
    assert list(secrets.iterdir()) == []  # nothing written


def test_purge_on_a_read_only_secrets_dir_fails_with_the_file_name(tmp_path: Path) -> None:
    """What production saw: EROFS/EACCES from a lazy create. Now: a clear refusal."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o500)  # read-only, like /etc under ProtectSystem=strict
    try:
        with pytest.raises(keys.SecretError) as caught:
            keys.check(secrets)
    finally:
        secrets.chmod(0o700)
    assert str(secrets / keys.HMAC_KEY_FILE) in str(caught.value)


def test_init_creates_both_keys_private_once(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    created = keys.init(secrets)
    assert sorted(p.name for p in created) == sorted([keys.HMAC_KEY_FILE, keys.SIGNING_KEY_FILE])
    for name in (keys.HMAC_KEY_FILE, keys.SIGNING_KEY_FILE):
        st = (secrets / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    before = {p.name: p.read_bytes() for p in secrets.iterdir()}
    assert keys.init(secrets) == []  # idempotent: a second deploy changes nothing
    assert {p.name: p.read_bytes() for p in secrets.iterdir()} == before
    keys.check(secrets)
    assert len(keys.hmac_key(secrets)) == 32


def test_command_init_then_check_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "secrets"
    assert keys.main(["check", str(secrets)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "retention-hmac.key is missing" in err
    assert keys.main(["init", str(secrets)]) == 0
    out = capsys.readouterr().out
    assert out.count("created ") == 2  # the role's changed_when reads this
    assert keys.main(["init", str(secrets)]) == 0
    assert capsys.readouterr().out == ""
    assert keys.main(["check", str(secrets)]) == 0
    os.chmod(secrets / keys.SIGNING_KEY_FILE, 0o640)
    assert keys.main(["check", str(secrets)]) == 2
    assert "readable by others" in capsys.readouterr().err


def test_missing_key_advice_fits_a_workstation(tmp_path: Path) -> None:
    """CLI review N9: on the workstation of runbook step 6 the advice was `init`, which
    mints a key that cannot match the host's suppression list."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    with pytest.raises(keys.SecretError) as caught:
        keys.hmac_key(secrets)
    text = str(caught.value)
    assert text.startswith(f"{secrets / keys.HMAC_KEY_FILE} is missing; on a workstation, copy")
    assert "/etc/isoloir/secrets/retention-hmac.key" in text and "would not match" in text
    assert "on the file-share host the deploy creates it" in text  # init only there
    with pytest.raises(keys.SecretError, match="--public-key or --fingerprint"):
        keys.signing_key(secrets)
    afile = tmp_path / "afile"  # ISOLOIR_SECRETS_DIR=afile
    afile.write_text("x")
    with pytest.raises(keys.SecretError) as caught:
        keys.hmac_key(afile)
    assert str(caught.value) == (
        f"{afile} is not a directory: ISOLOIR_SECRETS_DIR must name the folder holding "
        f"{keys.HMAC_KEY_FILE}"
    )
    assert afile.read_text() == "x" and list(secrets.iterdir()) == []


def test_keys_and_the_whole_cli_are_isoloir_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CLI review N9: the keys were made only by `python -m isoloir.retention.keys`,
    `python -m isoloir` failed, and preflight pointed at a make target only."""
    import subprocess
    import sys

    from isoloir.cli import main
    from isoloir.controller import preflight

    secrets = tmp_path / "secrets"
    assert main(["retention", "keys", "check", str(secrets)]) == 2
    assert "isoloir retention keys init" in capsys.readouterr().err
    assert main(["retention", "keys", "init", str(secrets)]) == 0
    assert capsys.readouterr().out.count("created ") == 2
    assert main(["retention", "keys", "check", str(secrets)]) == 0
    ran = subprocess.run(
        [sys.executable, "-m", "isoloir", "--version"], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0 and ran.stdout.startswith("isoloir "), ran.stderr
    rows = [preflight.Check("x", preflight.FAIL, "d")]
    assert "`isoloir deploy --target aws`" in preflight.summary(rows)
