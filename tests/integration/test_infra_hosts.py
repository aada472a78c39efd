"""The file-share host as Terraform makes it for the aws target, checked against
the emulator: the `file_share_hosts` output the Ansible inventory reads, and the
cloud-init user data that creates the deploy account Ansible logs in with.

Real CLI and AWS provider; the local target's stand-in image and private subnet
(docs/infra.md). A module of its own: with hosts, moto reports a public IP and a
second plan would replace the host, which test_infra's no-change plan must not see.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from isoloir import aws
from isoloir.controller import inventory
from isoloir.controller.emulator import Emulator
from isoloir.controller.infra.runner import TerraformError
from isoloir.controller.infra.targets import local_target
from isoloir.policy.loader import load_policies
from isoloir.policy.render import terraform_vars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ELECTION = "exempleville-2027"
HOST = "isoloir-shares-eu-west-3"


def _public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " isoloir-deploy@test"


def test_host_output_feeds_the_inventory_and_cloud_init_makes_the_deploy_user(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.reset()
    tfvars = terraform_vars(load_policies(REPO / "policies"))
    vars_path = tmp_path / "terraform.tfvars.json"
    vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
    public_key = _public_key()
    key_vars = tmp_path / "deploy-key.tfvars.json"
    key_vars.write_text(json.dumps({"deploy_public_key": public_key}), encoding="utf-8")

    target = local_target(tmp_path, tfvars, print, create_hosts=True, emulator=emulator)
    tf = target.terraform()
    tf.init()
    plan = tmp_path / "hosts.tfplan"
    code, summary = tf.plan([vars_path, *target.var_files, key_vars], plan)
    assert code == 2 and "module.eu_west_3[0].module.host[0].aws_instance.this" in (
        summary.addresses
    )
    tf.apply(plan)
    outputs: dict[str, Any] = tf.output()

    hosts = outputs["file_share_hosts"]
    assert list(hosts) == [HOST]
    host = hosts[HOST]
    assert host["ssh_user"] == "isoloir-deploy"
    assert host["region"] == "eu-west-3" and host["elections"] == [ELECTION]
    assert ipaddress.ip_address(host["address"]).is_private

    # what `isoloir deploy --target aws` hands to Ansible
    inv = inventory.from_terraform(
        {name: {"value": value} for name, value in outputs.items()}, key_file="/k/deploy"
    )
    hostvars = inv["all"]["children"][inventory.GROUP]["hosts"][HOST]
    assert host["data_volume_id"].startswith("vol-")
    assert hostvars == {
        "ansible_host": host["address"],
        "ansible_user": "isoloir-deploy",
        "ansible_ssh_private_key_file": "/k/deploy",
        "isoloir_data_volume_id": host["data_volume_id"],
        "mail_guard_listen_addresses": ["127.0.0.1", host["address"]],
    }

    # the deploy account, made by cloud-init at first boot: key only, no password
    ec2 = aws.client("ec2", "eu-west-3")
    instance_id = outputs["hosts"]["eu-west-3"]["instance_id"]
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()
    assert user_data.startswith("#cloud-config\n")
    users = yaml.safe_load(user_data)["users"]
    (deploy,) = [u for u in users if isinstance(u, dict)]
    assert deploy["name"] == "isoloir-deploy" and deploy["lock_passwd"] is True
    assert deploy["ssh_authorized_keys"] == [public_key]
    assert deploy["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    # IMDSv2 only, encrypted volumes (the module's other promises, read back)
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    (instance,) = reservation["Instances"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    volumes = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    described = ec2.describe_volumes(VolumeIds=volumes)["Volumes"]
    assert described and all(v["Encrypted"] for v in described)
    # the data volume (its own resource): encrypted, attached to this host
    (data,) = ec2.describe_volumes(VolumeIds=[host["data_volume_id"]])["Volumes"]
    assert data["Encrypted"]
    assert [a["InstanceId"] for a in data["Attachments"]] == [instance_id]


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
