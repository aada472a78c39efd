"""The Terraform driver's `init`: the S3 backend can be initialised (no local
`path=`, a backend config file, `-reconfigure` on a backend change), and the
read-only lock file is a choice with a clear error."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from isoloir.controller.infra.runner import (
    LOCKFILE_ENV,
    Terraform,
    TerraformError,
    declared_backend,
)
from isoloir.controller.infra.targets import aws_target, local_target

REPO = Path(__file__).resolve().parents[2]
S3_BACKEND = 'terraform {\n  backend "s3" {}\n}\n'


@pytest.fixture(autouse=True)
def _no_lockfile_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCKFILE_ENV, raising=False)
    monkeypatch.delenv("ISOLOIR_TF_BACKEND_CONFIG", raising=False)


def _s3_infra(tmp_path: Path) -> Path:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "backend.tf").write_text(S3_BACKEND, encoding="utf-8")
    (infra / "main.tf").write_text('# backend "local" {} in a comment is ignored\n', "utf-8")
    (infra / "backend.aws.hcl").write_text('bucket = "x"\nuse_lockfile = true\n', "utf-8")
    return infra


def test_aws_target_with_the_s3_backend_passes_its_config_file_not_a_path(
    tmp_path: Path,
) -> None:
    infra = _s3_infra(tmp_path)
    assert declared_backend(infra) == "s3"
    tf = aws_target(tmp_path / "run", None).terraform(infra_dir=infra)
    args = tf.init_args()
    assert not any(a.startswith("-backend-config=path=") for a in args), args
    assert f"-backend-config={infra / 'backend.aws.hcl'}" in args
    assert "-lockfile=readonly" in args
    assert "-reconfigure" not in args


def test_backend_config_file_can_be_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = _s3_infra(tmp_path)
    other = tmp_path / "prod.hcl"
    monkeypatch.setenv("ISOLOIR_TF_BACKEND_CONFIG", str(other))
    args = aws_target(tmp_path / "run", None).terraform(infra_dir=infra).init_args()
    assert f"-backend-config={other}" in args


def test_reconfigure_when_the_data_dir_was_set_up_for_another_backend(tmp_path: Path) -> None:
    infra = _s3_infra(tmp_path)
    tf = aws_target(tmp_path / "run", None).terraform(infra_dir=infra)
    tf.data_dir.mkdir(parents=True)
    (tf.data_dir / "terraform.tfstate").write_text(
        json.dumps({"version": 3, "backend": {"type": "local", "config": {}}}), "utf-8"
    )
    assert "-reconfigure" in tf.init_args()


def test_local_state_with_resources_is_not_left_behind(tmp_path: Path) -> None:
    infra = _s3_infra(tmp_path)
    tf = aws_target(tmp_path / "run", None).terraform(infra_dir=infra)
    assert tf.state_path is not None
    tf.state_path.write_text(json.dumps({"resources": [{"type": "aws_s3_bucket"}]}), "utf-8")
    with pytest.raises(TerraformError, match="init -migrate-state"):
        tf.init_args()


def test_local_backend_keeps_the_state_path(tmp_path: Path) -> None:
    tf = aws_target(tmp_path / "run", None).terraform(infra_dir=REPO / "infra")
    args = tf.init_args()
    assert f"-backend-config=path={tf.state_path}" in args
    assert tf.backend_config is None


def test_lockfile_readonly_is_a_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tf = aws_target(tmp_path / "run", None).terraform(infra_dir=REPO / "infra")
    monkeypatch.setenv(LOCKFILE_ENV, "update")
    assert "-lockfile=readonly" not in tf.init_args()
    monkeypatch.setenv(LOCKFILE_ENV, "sometimes")
    with pytest.raises(TerraformError, match="expected one of readonly, update"):
        tf.init_args()


def test_a_platform_missing_from_the_lock_file_gets_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "terraform"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'Error: Failed to install provider'\n"
        "echo 'the local package for registry.terraform.io/hashicorp/aws 5.100.0 "
        "doesn'\"'\"'t match any of the checksums previously recorded in the dependency "
        "lock file'\n"
        "exit 1\n",
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    tf = Terraform(
        infra_dir=REPO / "infra",
        data_dir=tmp_path / "data",
        env={"PATH": os.environ.get("PATH", "")},
        state_path=tmp_path / "state" / "terraform.tfstate",
        binary=str(fake),
        log=lambda line: None,
    )
    with pytest.raises(TerraformError) as failed:
        tf.init()
    assert "providers lock -platform=" in str(failed.value)
    assert LOCKFILE_ENV in str(failed.value)


def test_local_target_never_gets_a_backend_config_file(tmp_path: Path) -> None:
    class _Emu:
        endpoint = "https://127.0.0.1:1"

        def env(self, region: str) -> dict[str, str]:
            return {"AWS_DEFAULT_REGION": region}

    target = local_target(
        tmp_path / "run",
        {"allowed_regions": []},
        print,
        create_hosts=False,
        emulator=_Emu(),  # type: ignore[arg-type]
    )
    tf = target.terraform(infra_dir=_s3_infra(tmp_path))
    assert tf.backend_config is None


def test_python_terraform_is_not_a_dependency() -> None:
    """The thin runner replaced it (docs/infra.md): it must not be installed."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    assert "python-terraform" not in pyproject
    assert not any(line.startswith("python-terraform") for line in lock.splitlines())
