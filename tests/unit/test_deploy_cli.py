"""`isoloir deploy`'s command line: what reaches the deployment, and the refusals
that happen before anything is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from isoloir.controller import deploy


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


def test_secrets_must_be_vault_encrypted_on_aws(tmp_path: Path) -> None:
    from isoloir.policy import load_policies

    policies = load_policies(Path(__file__).resolve().parents[2] / "policies")
    alerts = policies.baseline.alerts
    names = [Path(w.secret_file).name for w in alerts.webhooks]
    if alerts.email is not None:
        names.append(Path(alerts.email.credentials_file).name)
    assert names, "the example policies name secret files"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in names:
        (secrets / name).write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    (secrets / names[0]).write_text('{"username": "u", "password": "in clear"}\n')

    def deployment(vault: str | None) -> deploy.Deployment:
        d = deploy.Deployment(
            target="aws",
            policies_dir=tmp_path,
            run_dir=tmp_path,
            secrets_dir=secrets,
            vault_password_file=vault,
        )
        d.policies = policies
        return d

    found, problems = deployment("/k/vault")._secret_files()
    assert len(problems) == 1 and "not encrypted with ansible-vault" in problems[0]
    assert names[0] in problems[0]
    (secrets / names[0]).write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    assert deployment(None)._vault_problems({"x": str(secrets / names[0])}) == [
        "the secret files are encrypted: give --vault-password-file "
        "(make deploy ... VAULT_PASSWORD_FILE=...)"
    ]
    found, problems = deployment("/k/vault")._secret_files()
    assert problems == [] and sorted(found) == sorted(names)
