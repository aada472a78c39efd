"""`isoloir deploy --target aws`, played in the AWS path's order against the
session's emulator, with one sandbox host standing in for the EC2 instance.

Real parts: preflight against a staged account (VPC, private subnet routed to a
NAT gateway, an AMI); Terraform and the AWS provider applying the whole
configuration, the file-share host included, to the emulator (the only
difference from AWS is one extra variable file: the emulator's endpoint);
the inventory built from Terraform's outputs; Ansible over real SSH with the
vault password decrypting real ansible-vault files; the agents' first cycle run
on the host and read back.

The stand-in: moto's instance is no machine, so after the inventory step the
sandbox host's address, port and loopback-only settings replace the
instance's (its SSH options stay the aws inventory's: the host key is accepted
on first sight into the run directory). The host has no instance metadata and
no route to AWS, so the agents' first cycle fails: the deploy must say so. The
cloud-init marker appears only some seconds into the Ansible step: the deploy
must wait for it before any role.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import pwd
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.aws_policies import aws_ready_policies
from tests.integration.test_preflight import _network

from isoloir import aws
from isoloir.controller import deploy, sandbox
from isoloir.controller.emulator import Emulator
from isoloir.controller.sandbox import SandboxHost
from isoloir.policy import load_policies

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
# N4: a second election, in another region, whose host is not the stand-in's:
# the eu-west-3 host must not get its share, its group or its bucket's purge.
OTHER_REGION = "eu-west-1"
OTHER_ELECTION = "autreville-2027"
SUFFIX = "a5e1"
MARKER = "var/lib/cloud/instance/boot-finished"
MARKER_DELAY = 5.0  # seconds after Ansible starts waiting for it
WAIT_TASK = "TASK [Cloud-init has finished the first boot]"
VAULT_PASSWORD = "not-a-real-vault-password-" + uuid.uuid4().hex


def _policies(tmp_path: Path, slug: str, ami: str, subnet: str, other: tuple[str, str]) -> Path:
    # Two regions, each holding one election (fewer regions, fewer resources for
    # Terraform to apply and read back); the deployers, break-glass role,
    # smarthost and suffix TARGET=aws needs; an AMI and subnet in each region.
    root = aws_ready_policies(
        tmp_path,
        ami=ami,
        subnet=subnet,
        region=REGION,
        slug=slug,
        suffix=SUFFIX,
        regions=[REGION, OTHER_REGION],
    )
    base = root / "baseline.yml"
    text = base.read_text(encoding="utf-8")
    for old, new in (
        (
            f"image_ids: {{{REGION}: {ami}}}",
            f"image_ids: {{{REGION}: {ami}, {OTHER_REGION}: {other[0]}}}",
        ),
        (
            f"subnet_ids: {{{REGION}: {subnet}}}",
            f"subnet_ids: {{{REGION}: {subnet}, {OTHER_REGION}: {other[1]}}}",
        ),
    ):
        assert old in text, old
        text = text.replace(old, new)
    base.write_text(text, encoding="utf-8")
    election = (root / "elections" / "exempleville-2027.yml").read_text(encoding="utf-8")
    election = election.replace(
        "id: exempleville-2027\n", f"id: {OTHER_ELECTION}\nregion: {OTHER_REGION}\n"
    )
    (root / "elections" / f"{OTHER_ELECTION}.yml").write_text(election, encoding="utf-8")
    load_policies(root, target="aws")  # valid for the aws target, as the deploy checks
    return root


def _secrets(tmp_path: Path, policies: Path) -> tuple[Path, Path, dict[str, str]]:
    """The secret files the policies name, encrypted with the ansible-vault CLI."""
    password = tmp_path / "vault-password"
    password.write_text(VAULT_PASSWORD + "\n")
    password.chmod(0o600)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    alerts = load_policies(policies).baseline.alerts
    names = [Path(w.secret_file).name for w in alerts.webhooks]
    if alerts.email is not None:
        names.append(Path(alerts.email.credentials_file).name)
    clear: dict[str, str] = {}
    for name in names:
        text = json.dumps({"username": "fake", "password": uuid.uuid4().hex}) + "\n"
        (secrets / name).write_text(text)
        clear[name] = text
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password),
            *[str(secrets / n) for n in names],
        ],
        check=True,
        capture_output=True,
    )
    assert all((secrets / n).read_bytes().startswith(b"$ANSIBLE_VAULT;") for n in names)
    return password, secrets, clear


@dataclass
class StandIn(deploy.Deployment):
    """The aws deployment, with the sandbox host in place of moto's instance."""

    host: SandboxHost | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    marker_at: list[float] = field(default_factory=list)
    aws_hostvars: dict[str, Any] = field(default_factory=dict)
    # every host's variables as the aws inventory wrote them (name -> hostvars)
    all_hostvars: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def step_inventory(self) -> None:
        super().step_inventory()
        assert self.inventory is not None and self.host is not None
        inv = json.loads(self.inventory.read_text())
        group = inv["all"]["children"]["isoloir_hosts"]
        self.all_hostvars = json.loads(json.dumps(group["hosts"]))
        # One sandbox: it stands in for the eu-west-3 host; the eu-west-1 host
        # (its variables kept above) is left out of the Ansible run.
        group["hosts"] = {k: v for k, v in group["hosts"].items() if k.endswith(REGION)}
        ((name, hostvars),) = group["hosts"].items()
        self.aws_hostvars = dict(hostvars)
        stand = sandbox.inventory([self.host])["all"]["children"]["isoloir_hosts"]
        ssh_args = hostvars["ansible_ssh_common_args"]
        hostvars.update(stand["hosts"][self.host.name])
        hostvars["ansible_ssh_common_args"] = ssh_args  # the aws inventory's SSH handling
        hostvars.pop("isoloir_data_volume_id")  # no EBS volume in the sandbox
        hostvars["mail_guard_listen_addresses"] = [self.host.address]
        # No instance metadata here (the machine's own must never be reached).
        hostvars["agents_environment"] = {"AWS_EC2_METADATA_DISABLED": "true"}
        group["vars"].update(stand["vars"])
        self.inventory.write_text(json.dumps(inv, indent=2))
        threading.Thread(target=self._boot_finishes_late, daemon=True).start()

    def _boot_finishes_late(self) -> None:
        # cloud-init's last stage ends some seconds after Ansible starts waiting.
        while not any(WAIT_TASK in line for _, line in self.lines):
            if any(line.startswith("deploy failed") for _, line in self.lines):
                return
            time.sleep(0.2)
        time.sleep(MARKER_DELAY)
        assert self.host is not None
        marker = self.host.root / MARKER
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("fake cloud-init boot-finished\n")
        self.marker_at.append(time.monotonic())


@pytest.fixture(scope="module")
def played(
    emulator: Emulator, sandbox_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandIn]:
    emulator.reset()  # IAM names of the example people are global to the account
    tmp = tmp_path_factory.mktemp("aws-path")
    staged: dict[str, tuple[str, str]] = {}
    for region in (REGION, OTHER_REGION):
        ec2 = aws.client("ec2", region)
        net = _network(ec2)
        ami = ec2.register_image(
            Name=f"debian-12-amd64-stand-in-{uuid.uuid4().hex[:6]}",
            Architecture="x86_64",
            RootDeviceName="/dev/xvda",
            VirtualizationType="hvm",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        staged[region] = (ami, net["private"])
    policies = _policies(tmp, f"aw{uuid.uuid4().hex[:8]}", *staged[REGION], staged[OTHER_REGION])
    password, secrets, clear = _secrets(tmp, policies)
    emulator_vars = tmp / "emulator.tfvars.json"
    emulator_vars.write_text(
        json.dumps(
            {
                "aws_endpoint": emulator.endpoint,
                # moto lacks MonitorInstances and the S3 Control host form
                "host_detailed_monitoring": False,
                "manage_account_public_access_block": False,
                "force_destroy_logs": True,
            }
        )
    )
    host = sandbox_factory("isoloir-aws")
    assert not (host.root / MARKER).exists()
    d = StandIn(
        target="aws",
        policies_dir=policies,
        run_dir=tmp / "run",
        key_file=host.key,
        secrets_dir=secrets,
        vault_password_file=str(password),
        var_files=[emulator_vars],
        host=host,
    )
    d.out = lambda line: d.lines.append((time.monotonic(), line))
    started = time.monotonic()
    d.facts = {"clear": clear, "exit": d.run()}
    d.facts["seconds"] = time.monotonic() - started
    # The deploy's console, kept for a failed run's diagnosis.
    (tmp / "deploy.log").write_text(
        "".join(f"{t - started:8.1f} {line}\n" for t, line in d.lines), encoding="utf-8"
    )
    try:
        yield d
    finally:
        emulator.reset()  # later modules inventory every bucket of the account


def _text(d: StandIn) -> str:
    return "\n".join(line for _, line in d.lines)


def _first(d: StandIn, prefix: str) -> float:
    return next(t for t, line in d.lines if line.strip().startswith(prefix))


def test_the_steps_run_in_the_aws_order_up_to_the_agents(played: StandIn) -> None:
    text = _text(played)
    steps = [line.split("] ", 1)[1] for _, line in played.lines if line.startswith("==> [")]
    assert steps == [
        "policies",
        "preflight",
        "target",
        "terraform",
        "inventory",
        "ansible",
        "agents",
    ], text
    assert "vault password decrypts them" in text  # inputs checked first (D20)
    assert "every check passed" in text or "state backend" in text
    assert "Apply complete!" in text
    # The inventory came from Terraform's host output, with the aws SSH handling.
    aws_vars = played.aws_hostvars
    assert aws_vars["ansible_user"] == "isoloir-deploy"
    assert aws_vars["mail_guard_listen_addresses"] == ["127.0.0.1", aws_vars["ansible_host"]]
    assert "StrictHostKeyChecking=accept-new" in aws_vars["ansible_ssh_common_args"]


def test_ansible_waits_for_the_cloud_init_marker_before_any_role(played: StandIn) -> None:
    assert played.marker_at, _text(played)
    waited = _first(played, WAIT_TASK)
    first_role = _first(played, "TASK [hardening")
    assert waited + MARKER_DELAY <= played.marker_at[0] <= first_role
    # The host key was accepted on first sight, into the run directory only.
    known = played.run_dir / "known_hosts"
    assert known.read_text().count("ssh-ed25519") == 1 and played.host is not None
    host = played.host
    name = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
    found = subprocess.run(
        ["ssh-keygen", "-F", name, "-f", str(known)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stdout


def test_the_vaulted_secrets_are_installed_decrypted_0600_for_the_agents(
    played: StandIn,
) -> None:
    assert played.host is not None
    clear: dict[str, str] = played.facts["clear"]
    agents = played.host.chroot("id", "-u", "isoloir").stdout.strip()
    for name, text in clear.items():
        path = played.host.root / "etc/isoloir/secrets" / name
        st = path.stat()
        assert st.st_mode & 0o777 == 0o600, name
        assert str(st.st_uid) == agents and st.st_uid != 0, name
        assert path.read_text() == text  # decrypted on the way (N1)
    assert pwd.getpwuid(os.getuid()).pw_name == "root"
    for text in clear.values():
        assert json.loads(text)["password"] not in _text(played)


def test_the_agents_first_run_is_read_back_and_its_errors_fail_the_deploy(
    played: StandIn,
) -> None:
    text = _text(played)
    assert played.facts["exit"] == 2, text
    assert "deploy failed at step 'agents': the agents' first run failed on" in text
    ((host, rc),) = played.agent_results.items()
    assert rc not in (0, -1), text  # the cycle ran and its exit code came back
    assert f"{host}: isoloir run --once exited {rc}; its last lines:" in text
    failed_jobs = [e for e in played.agent_errors[host] if e.startswith("job ")]
    assert failed_jobs, text
    for error in failed_jobs:
        assert error in text.split("deploy failed at step 'agents'")[1]


def test_the_instance_boots_with_the_deploy_key_for_cloud_init(played: StandIn) -> None:
    """What the stand-in skips, read back from the emulator: the instance
    Terraform launched carries the deploy key's .pub in its cloud-init user
    data (the account Ansible then waits for), IMDSv2 only, in the policies'
    private subnet."""
    assert played.host is not None
    outputs = played.terraform_outputs
    instance_id = outputs["hosts"][REGION]["instance_id"]
    ec2 = aws.client("ec2", REGION)
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    user_data = yaml.safe_load(base64.b64decode(attribute["UserData"]["Value"]).decode())
    (deploy_user,) = [u for u in user_data["users"] if isinstance(u, dict)]
    public_key = Path(played.host.key + ".pub").read_text().strip()
    assert deploy_user["name"] == "isoloir-deploy"
    assert deploy_user["ssh_authorized_keys"] == [public_key]
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    (instance,) = reservation["Instances"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    subnet = load_policies(played.policies_dir).baseline.hosts.subnet_ids[REGION]
    assert instance["SubnetId"] == subnet
    # cloud-init's account: key only, no password, sudo for Ansible
    assert deploy_user["lock_passwd"] is True
    assert deploy_user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    # every volume encrypted; the data volume (its own resource) attached here
    volumes = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    described = ec2.describe_volumes(VolumeIds=volumes)["Volumes"]
    assert described and all(v["Encrypted"] for v in described)
    host = outputs["file_share_hosts"][f"isoloir-shares-{REGION}"]
    assert host["ssh_user"] == "isoloir-deploy" and host["region"] == REGION
    assert ipaddress.ip_address(host["address"]).is_private
    (data,) = ec2.describe_volumes(VolumeIds=[host["data_volume_id"]])["Volumes"]
    assert data["Encrypted"]
    assert [a["InstanceId"] for a in data["Attachments"]] == [instance_id]
    # what the aws inventory handed to Ansible before the stand-in took its place
    hostvars = played.aws_hostvars
    assert hostvars["ansible_host"] == host["address"]
    assert hostvars["ansible_user"] == "isoloir-deploy"
    assert hostvars["isoloir_data_volume_id"] == host["data_volume_id"]
    assert hostvars["mail_guard_listen_addresses"] == ["127.0.0.1", host["address"]]


def test_each_host_serves_exactly_its_regions_elections(played: StandIn) -> None:
    """N4: Terraform's per-region host list reaches the inventory, the roles and
    the agents; the eu-west-3 host never gets the eu-west-1 election."""
    assert played.host is not None
    (mine,) = [e.id for e in load_policies(played.policies_dir).elections if e.region == REGION]
    hosts = played.all_hostvars
    assert hosts[f"isoloir-shares-{REGION}"]["isoloir_host_elections"] == [mine]
    assert hosts[f"isoloir-shares-{OTHER_REGION}"]["isoloir_host_elections"] == [OTHER_ELECTION]
    root = played.host.root
    # the agents' config declares both; host.json says which this host serves
    agent = json.loads((root / "etc/isoloir/agent.json").read_text())
    assert {e["policy"]["id"] for e in agent["elections"]} == {mine, OTHER_ELECTION}
    # host.json says which this host serves, and that it (the default region's
    # host) is the one that audits the account; the other region's host is not
    assert json.loads((root / "etc/isoloir/host.json").read_text()) == {
        "elections": [mine],
        "account_audit": True,
    }
    assert hosts[f"isoloir-shares-{REGION}"]["isoloir_host_account_audit"] is True
    assert hosts[f"isoloir-shares-{OTHER_REGION}"]["isoloir_host_account_audit"] is False
    # shares and groups: this host's election only
    share_root = root / "srv/elections"
    assert (share_root / mine).is_dir()
    assert not (share_root / OTHER_ELECTION).exists()
    groups = (root / "etc/group").read_text()
    assert f"el-{mine}:" in groups and f"el-{OTHER_ELECTION}:" not in groups
    smb = (root / "etc/samba/smb.conf").read_text()
    assert f"/{mine}" in smb and OTHER_ELECTION not in smb
    # the agents load their policies as the daemon does: the other election is
    # elsewhere (its bucket is not scanned, its data not purged, here)
    loaded = played.host.chroot(
        "/opt/isoloir/venv/bin/python",
        "-c",
        "import json; from isoloir.daemon import load_policies; p = load_policies(None); "
        "print(json.dumps([[e.id for e in p.elections], [e.id for e in p.elsewhere]]))",
    )
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == [[mine], [OTHER_ELECTION]]
