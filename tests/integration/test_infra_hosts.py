"""The file-share host as Terraform makes it for the aws target, checked against
the emulator: a malformed deploy key is refused at plan. The host that a good key
makes (its output, its cloud-init user data, its volumes) is read back by
test_deploy_aws_path, which applies it once for the whole aws path.

Real CLI and AWS provider; the local target's stand-in image and private subnet
(docs/infra.md). A module of its own: with hosts, moto reports a public IP and a
second plan would replace the host, which test_infra's no-change plan must not see.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isoloir.controller.emulator import Emulator
from isoloir.controller.infra.runner import TerraformError
from isoloir.controller.infra.targets import local_target
from isoloir.policy.loader import load_policies
from isoloir.policy.render import terraform_vars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_a_malformed_deploy_key_is_refused_at_plan(emulator: Emulator, tmp_path: Path) -> None:
    tfvars = terraform_vars(load_policies(REPO / "policies"))
    tfvars["deploy_public_key"] = "not a key"
    vars_path = tmp_path / "terraform.tfvars.json"
    vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
    target = local_target(tmp_path, tfvars, print, create_hosts=True, emulator=emulator)
    tf = target.terraform()
    tf.init()
    with pytest.raises(TerraformError) as failed:
        tf.plan([vars_path, *target.var_files], tmp_path / "bad.tfplan")
    said = " ".join(" ".join(failed.value.tail).split())
    assert "deploy_public_key must be one OpenSSH public key line" in said
