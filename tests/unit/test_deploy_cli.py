"""`isoloir deploy`'s command line: what reaches the deployment, and the refusals
that happen before anything is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from isoloir import deploy


def test_aws_without_a_key_file_is_refused_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    code = deploy.main(["deploy", "--target", "aws", "--run-dir", str(run_dir)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--key-file" in err and "Nothing was done" in err
    assert not run_dir.exists()


def test_options_reach_the_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(self: deploy.Deployment) -> int:
        seen.update(vars(self))
        return 0

    monkeypatch.setattr(deploy.Deployment, "run", fake_run)
    argv = [
        "deploy",
        "--target",
        "aws",
        "--run-dir",
        str(tmp_path / "run"),
        "--key-file",
        str(tmp_path / "id_ed25519"),
        "--secrets-dir",
        str(tmp_path / "secrets"),
        "--vault-password-file",
        str(tmp_path / "vault-pass"),
        "--no-agents",
    ]
    assert deploy.main(argv) == 0
    assert seen["target"] == "aws"
    assert seen["key_file"] == str(tmp_path / "id_ed25519")
    assert seen["secrets_dir"] == tmp_path / "secrets"
    assert seen["vault_password_file"] == str(tmp_path / "vault-pass")
    assert seen["run_agents"] is False


def test_deploy_key_public_half_is_read_beside_the_private_key(tmp_path: Path) -> None:
    key = tmp_path / "isoloir-deploy"
    (tmp_path / "isoloir-deploy.pub").write_text("ssh-ed25519 AAAAC3Nza test\n")
    d = deploy.Deployment(target="aws", policies_dir=tmp_path, run_dir=tmp_path, key_file=str(key))
    assert d._deploy_public_key() == "ssh-ed25519 AAAAC3Nza test"
    missing = deploy.Deployment(
        target="aws", policies_dir=tmp_path, run_dir=tmp_path, key_file=str(tmp_path / "none")
    )
    with pytest.raises(deploy.StepError) as refused:
        missing._deploy_public_key()
    assert "none.pub" in str(refused.value)
