"""Issue 11 item 8: the aws hosts' encrypted EBS data volume.

- the agents' at-rest check, on canned /proc/mounts and /sys/block trees: with
  `hosts.at_rest: cloud`, a share on the EBS data volume mounted on the share
  root is encrypted by the platform; a share on the root volume is still
  reported; the default (`host`, the sandbox) is unchanged;
- the policy key (schema default, validation, the rendered agent config);
- the inventory passes the volume id from Terraform's output to Ansible;
- the Ansible tasks find the volume by its EBS serial, never reformat, and
  mount it before the share directories exist (structure; the sandbox host has
  no EBS volume, so the tasks never run there).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from isoloir.controller import inventory
from isoloir.exposure import inventory_shares, registry
from isoloir.exposure.model import Inventory, SharesInventory
from isoloir.policy import load_policies
from isoloir.policy.loader import PolicyError, from_normalised, normalise
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "playbooks" / "roles" / "election_shares"
CHECK = "share_unencrypted_filesystem"
DATA_VOL = "vol0123456789abcdef0"  # the NVMe serial: the volume id without its dash
ROOT_VOL = "vol0aaaabbbbccccdddd1"
EBS_MODEL = "Amazon Elastic Block Store" + " " * 14 + "\n"  # sysfs pads the model


@pytest.fixture(scope="module")
def policies() -> Policies:
    return load_policies(ROOT / "policies")


def _at_rest(policies: Policies, value: str) -> Policies:
    hosts = dataclasses.replace(policies.baseline.hosts, at_rest=value)
    return dataclasses.replace(
        policies, baseline=dataclasses.replace(policies.baseline, hosts=hosts)
    )


def _disk(sys_block: Path, name: str, model: str | None, serial: str) -> Path:
    dev = sys_block / name / "device"
    dev.mkdir(parents=True)
    if model is not None:
        (dev / "model").write_text(model)
    (dev / "serial").write_text(serial + "\n")
    return sys_block / name


def _host(tmp_path: Path, policies: Policies, *, data_mounted: bool, ebs: bool = True) -> Path:
    """Share dirs under tmp/elections, a canned mounts file and /sys/block tree."""
    share_root = tmp_path / "elections"
    for e in policies.elections:
        Path(inventory_shares.share_dir(e, policies, str(share_root))).mkdir(parents=True)
    sys_block = tmp_path / "block"
    root_disk = _disk(sys_block, "nvme0n1", EBS_MODEL if ebs else None, ROOT_VOL)
    (root_disk / "nvme0n1p1").mkdir()  # the root file system is on a partition
    _disk(sys_block, "nvme1n1", EBS_MODEL if ebs else None, DATA_VOL)
    lines = ["/dev/nvme0n1p1 / ext4 rw,relatime 0 0"]
    if data_mounted:
        lines.append(f"/dev/nvme1n1 {share_root} ext4 rw,nosuid,nodev,noexec 0 0")
    (tmp_path / "mounts").write_text("\n".join(lines) + "\n")
    return share_root


def _scan(tmp_path: Path, policies: Policies, share_root: Path) -> SharesInventory:
    return inventory_shares.fetch(
        policies,
        share_root=str(share_root),
        smb_conf=None,
        stray_paths=[],
        mounts=tmp_path / "mounts",
        sys_block=tmp_path / "block",
    )


def _hits(policies: Policies, shares: SharesInventory) -> list[registry.Hit]:
    inv = Inventory(policies=policies, now=datetime(2027, 3, 1, tzinfo=UTC), shares=shares)
    return list(registry.discover()[CHECK].evaluate(inv))


def test_cloud_share_on_the_ebs_data_volume_is_encrypted_by_the_platform(
    tmp_path: Path, policies: Policies
) -> None:
    cloud = _at_rest(policies, "cloud")
    shares = _scan(tmp_path, cloud, _host(tmp_path, cloud, data_mounted=True))
    assert shares.trees and not any(t.missing for t in shares.trees)
    for tree in shares.trees:
        assert tree.device == "/dev/nvme1n1"
        assert tree.ebs_volume == "vol-0123456789abcdef0"
        assert tree.platform_encrypted is True and tree.encrypted is True
    assert _hits(cloud, shares) == []


def test_cloud_share_on_the_root_volume_is_still_reported(
    tmp_path: Path, policies: Policies
) -> None:
    cloud = _at_rest(policies, "cloud")
    shares = _scan(tmp_path, cloud, _host(tmp_path, cloud, data_mounted=False))
    found = _hits(cloud, shares)
    assert len(found) == len(cloud.elections) >= 1
    for hit in found:
        assert hit.evidence["mount"] == "/"
        assert hit.evidence["ebs_volume"] == "vol-0aaaabbbbccccdddd1"  # partition -> its disk
        assert hit.evidence["platform_encrypted"] is False
        assert "not on the encrypted data volume" in hit.message


def test_cloud_share_on_a_device_that_is_not_ebs_is_still_reported(
    tmp_path: Path, policies: Policies
) -> None:
    cloud = _at_rest(policies, "cloud")
    shares = _scan(tmp_path, cloud, _host(tmp_path, cloud, data_mounted=True, ebs=False))
    found = _hits(cloud, shares)
    assert len(found) == len(cloud.elections)
    assert all("ebs_volume" not in h.evidence for h in found)


def test_default_host_at_rest_is_unchanged_even_on_ebs(tmp_path: Path, policies: Policies) -> None:
    assert policies.baseline.hosts.at_rest == "host"
    shares = _scan(tmp_path, policies, _host(tmp_path, policies, data_mounted=True))
    found = _hits(policies, shares)
    assert len(found) == len(policies.elections)
    for hit in found:
        assert dict(hit.evidence) == {
            "device": "/dev/nvme1n1",
            "fs_type": "ext4",
            "mount": str(tmp_path / "elections"),
        }
        assert hit.message.endswith("not on dm-crypt.")
    assert all(t.ebs_volume == "" and not t.platform_encrypted for t in shares.trees)


def test_ebs_volume_of_reads_the_nvme_serial(tmp_path: Path) -> None:
    sys_block = tmp_path / "block"
    _disk(sys_block, "nvme1n1", EBS_MODEL, DATA_VOL)
    _disk(sys_block, "nvme2n1", "Amazon EC2 NVMe Instance Storage\n", "AWS1234")
    assert inventory_shares.ebs_volume_of("/dev/nvme1n1", sys_block) == "vol-0123456789abcdef0"
    assert inventory_shares.ebs_volume_of("/dev/nvme2n1", sys_block) == ""  # instance store
    assert inventory_shares.ebs_volume_of("/dev/vdb", sys_block) == ""


# ------------------------------------------------------------ the policy key


def _policies_copy(tmp_path: Path, at_rest: str) -> Path:
    out = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", out)
    base = out / "baseline.yml"
    text = base.read_text()
    assert "\nhosts:\n" in text
    base.write_text(text.replace("\nhosts:\n", f"\nhosts:\n  at_rest: {at_rest}\n", 1))
    return out


def test_policy_at_rest_cloud_is_loaded_and_rendered(tmp_path: Path) -> None:
    loaded = load_policies(_policies_copy(tmp_path, "cloud"))
    assert loaded.baseline.hosts.at_rest == "cloud"
    again = from_normalised(normalise(loaded))  # the agents' rendered config
    assert again.baseline.hosts.at_rest == "cloud"


def test_policy_at_rest_other_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        load_policies(_policies_copy(tmp_path, "disk"))
    assert "at_rest" in str(err.value) or any(
        "at_rest" in str(p) for p in getattr(err.value, "problems", [])
    )


# ------------------------------------------------------------ inventory


def _outputs(**extra: Any) -> dict[str, Any]:
    host = {"address": "10.20.1.5", "ssh_user": "isoloir-deploy", "elections": [], **extra}
    return {"file_share_hosts": {"value": {"isoloir-shares-eu-west-3": host}}}


def test_inventory_passes_the_data_volume_id_as_a_host_var() -> None:
    data = inventory.from_terraform(_outputs(data_volume_id="vol-0123456789abcdef0"))
    hosts = data["all"]["children"][inventory.GROUP]["hosts"]
    assert hosts["isoloir-shares-eu-west-3"]["isoloir_data_volume_id"] == "vol-0123456789abcdef0"
    bare = inventory.from_terraform(_outputs())["all"]["children"][inventory.GROUP]["hosts"]
    assert "isoloir_data_volume_id" not in bare["isoloir-shares-eu-west-3"]


def test_terraform_outputs_carry_the_data_volume_id() -> None:
    root = (ROOT / "infra" / "outputs.tf").read_text()
    region = (ROOT / "infra" / "modules" / "region" / "outputs.tf").read_text()
    host = (ROOT / "infra" / "modules" / "file_share_host" / "main.tf").read_text()
    assert re.search(r"data_volume_id\s*=\s*h\.data_volume_id", root)
    assert "module.host[0].data_volume_id" in region
    assert not re.search(r"ebs_block_device\s*\{", host)  # a resize must not replace the host
    assert re.search(r'resource "aws_ebs_volume" "data"', host)


# ------------------------------------------------------------ Ansible


def _tasks(name: str) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load((ROLE / "tasks" / name).read_text())
    return loaded


def _module(task: dict[str, Any], name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = task.get(name)
    return found


def test_data_volume_is_mounted_before_the_share_directories_and_only_on_aws() -> None:
    names = [t.get("ansible.builtin.import_tasks") for t in _tasks("shares.yml")]
    assert names.index("data_volume.yml") < names.index("directories.yml")
    (step,) = [
        t
        for t in _tasks("shares.yml")
        if t.get("ansible.builtin.import_tasks") == "data_volume.yml"
    ]
    assert "election_shares_data_volume_id" in step["when"] and "length > 0" in step["when"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert (
        defaults["election_shares_data_volume_id"] == "{{ isoloir_data_volume_id | default('') }}"
    )


def test_data_volume_found_by_serial_formatted_once_and_mounted_hardened() -> None:
    text = (ROLE / "tasks" / "data_volume.yml").read_text()
    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert variables["election_shares_data_by_id_prefix"] == (
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"
    )
    assert "/dev/xvd" not in text and "/dev/sd" not in text and "/dev/nvme" not in text
    tasks = _tasks("data_volume.yml")
    (fs,) = [t for t in tasks if _module(t, "community.general.filesystem")]
    assert fs["community.general.filesystem"]["force"] is False
    assert fs["community.general.filesystem"]["fstype"] == "ext4"
    assert "stdout" in fs["when"]  # only when blkid found no file system
    (mount,) = [t for t in tasks if _module(t, "ansible.posix.mount")]
    assert tasks.index(fs) < tasks.index(mount)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert {"nodev", "nosuid", "noexec"} <= set(defaults["election_shares_data_mount_options"])
    assert any(_module(t, "ansible.builtin.wait_for") for t in tasks[: tasks.index(fs)])
