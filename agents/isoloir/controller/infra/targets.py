"""Targets of `isoloir infra`: `local` (the emulator) and `aws` (the real account).

The modules never know which: the local target only sets root variables
(`aws_endpoint`, stand-in image ids) and the provider follows.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from isoloir import aws
from isoloir.controller.emulator import Emulator
from isoloir.controller.infra import guards
from isoloir.controller.infra.runner import (
    BACKEND_CONFIG_ENV,
    BACKEND_CONFIG_FILE,
    Log,
    Terraform,
    declared_backend,
    default_infra_dir,
    terraform_env,
)

TFVARS = Path("terraform/terraform.tfvars.json")
STAND_IN_IMAGE_NAME = "isoloir-debian-12-stand-in"
EMULATOR_RECORD = "emulator.json"


@dataclass
class Target:
    name: str
    run_dir: Path
    env: dict[str, str]
    var_files: list[Path]
    emulator: Emulator | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "infra" / self.name

    def backend_config(self, infra_dir: Path) -> Path | None:
        """The aws target's partial backend configuration, when infra/ declares a
        non-local backend: $ISOLOIR_TF_BACKEND_CONFIG, else infra/backend.aws.hcl."""
        try:
            if self.name != "aws" or declared_backend(infra_dir) == "local":
                return None
        except ValueError:
            return None  # init reports it
        named = os.environ.get(BACKEND_CONFIG_ENV)
        if named:
            return Path(named)
        default = infra_dir / BACKEND_CONFIG_FILE
        return default if default.is_file() else None

    def terraform(self, infra_dir: Path | None = None, log: Log | None = None) -> Terraform:
        tf_env = terraform_env(self.run_dir, self.state_dir / "tf-data")
        tf_env.update(self.env)
        infra = infra_dir or default_infra_dir()
        tf = Terraform(
            infra_dir=infra,
            data_dir=self.state_dir / "tf-data",
            env=tf_env,
            state_path=self.state_dir / "terraform.tfstate",
            backend_config=self.backend_config(infra),
        )
        tf.before_plan = self.refuse_shredded
        if log is not None:
            tf.log = log
        return tf

    def refuse_shredded(self, var_files: Sequence[Path]) -> None:
        """guards.refuse_shredded against this target's account (its environment)."""
        saved = _with_env(self.env)
        try:
            guards.refuse_shredded(var_files, self.state_dir / guards.RECORD)
        finally:
            _restore(saved)


def load_tfvars(rendered: Path) -> dict[str, Any]:
    path = rendered / TFVARS
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `isoloir policy render --out {rendered}` first"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def regions_in_use(tfvars: Mapping[str, Any]) -> list[str]:
    return sorted({str(e["region"]) for e in tfvars.get("elections", {}).values()})


# ------------------------------------------------------------ local target


def _recorded_emulator(run_dir: Path) -> Emulator | None:
    record = run_dir / "infra" / "local" / EMULATOR_RECORD
    if not record.is_file():
        return None
    data = json.loads(record.read_text(encoding="utf-8"))
    emu = Emulator(endpoint=data["endpoint"], ca_bundle=Path(data["ca_bundle"]), pid=data["pid"])
    return emu if emu.alive() else None


def ensure_emulator(run_dir: Path, log: Log) -> Emulator:
    """The emulator named by the environment, else the one this target started
    earlier, else a new one that outlives this command (recorded by pid)."""
    emu = Emulator.from_env()
    if emu is not None:
        return emu
    emu = _recorded_emulator(run_dir)
    if emu is not None:
        return emu
    state_dir = run_dir / "infra" / "local"
    state_dir.mkdir(parents=True, exist_ok=True)
    stale = state_dir / "terraform.tfstate"
    if stale.exists():
        # A new emulator is empty: the old state describes resources that are gone.
        stale.rename(stale.with_suffix(".tfstate.stale"))
        log("previous local state set aside: the emulator it described is gone")
    emu = Emulator.start(state_dir / "emulator", log_path=state_dir / "emulator.log", timeout=90)
    (state_dir / EMULATOR_RECORD).write_text(
        json.dumps({"endpoint": emu.endpoint, "ca_bundle": str(emu.ca_bundle), "pid": emu.pid}),
        encoding="utf-8",
    )
    emu.detach()
    log(f"emulator started at {emu.endpoint} (pid {emu.pid})")
    return emu


def stop_recorded_emulator(run_dir: Path) -> int | None:
    record = run_dir / "infra" / "local" / EMULATOR_RECORD
    if not record.is_file():
        return None
    pid = int(json.loads(record.read_text(encoding="utf-8"))["pid"])
    Emulator.stop_pid(pid)
    record.unlink()
    return pid


def _with_env(env: Mapping[str, str]) -> dict[str, str | None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return saved


def _restore(saved: Mapping[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def stand_in_images(env: Mapping[str, str], regions: list[str]) -> dict[str, str]:
    """Register (once) an image standing for Debian 12 in each region of the emulator.

    The emulator holds no Debian image and the provider looks the AMI up before
    launching; the instance it records is not a real machine anyway.
    """
    saved = _with_env(env)
    try:
        ids: dict[str, str] = {}
        for region in regions:
            ec2 = aws.client("ec2", region)
            found = ec2.describe_images(
                Owners=["self"], Filters=[{"Name": "name", "Values": [STAND_IN_IMAGE_NAME]}]
            )["Images"]
            if found:
                ids[region] = found[0]["ImageId"]
                continue
            image = ec2.register_image(
                Name=STAND_IN_IMAGE_NAME,
                Description="Stand-in for the Debian 12 image on the emulator",
                Architecture="x86_64",
                RootDeviceName="/dev/xvda",
                VirtualizationType="hvm",
                BlockDeviceMappings=[
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}}
                ],
            )
            ids[region] = image["ImageId"]
        return ids
    finally:
        _restore(saved)


PRIVATE_SUBNET_NAME = "isoloir-private-stand-in"
PRIVATE_SUBNET_CIDR = "172.31.240.0/24"


def private_subnets(env: Mapping[str, str], regions: list[str]) -> dict[str, str]:
    """Create (once) a private subnet in each region's default VPC of the emulator.

    Default subnets give every instance a public IP; the root refuses them for
    the file-share hosts, as it would on AWS.
    """
    saved = _with_env(env)
    try:
        ids: dict[str, str] = {}
        for region in regions:
            ec2 = aws.client("ec2", region)
            found = ec2.describe_subnets(
                Filters=[{"Name": "tag:Name", "Values": [PRIVATE_SUBNET_NAME]}]
            )["Subnets"]
            if found:
                ids[region] = found[0]["SubnetId"]
                continue
            vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
            subnet = ec2.create_subnet(
                VpcId=vpc["VpcId"],
                CidrBlock=PRIVATE_SUBNET_CIDR,
                TagSpecifications=[
                    {
                        "ResourceType": "subnet",
                        "Tags": [{"Key": "Name", "Value": PRIVATE_SUBNET_NAME}],
                    }
                ],
            )["Subnet"]
            ec2.modify_subnet_attribute(
                SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": False}
            )
            ids[region] = subnet["SubnetId"]
        return ids
    finally:
        _restore(saved)


ACCOUNT_PAB_XML = (
    '<PublicAccessBlockConfiguration xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">'
    "<BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>"
    "<BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets>"
    "</PublicAccessBlockConfiguration>"
)


def set_account_public_access_block(env: Mapping[str, str]) -> None:
    """Local target only: the account-level block, by one signed S3 Control call.

    The S3 Control clients (the provider's and boto3's endpoint rules alike)
    put the account id in front of the endpoint's host (`123456789012.127.0.0.1`),
    which cannot resolve. The same API call is sent here to the emulator's
    address with the account in the `x-amz-account-id` header, as AWS accepts
    it. On AWS the root module manages this block itself.
    """
    saved = _with_env(env)
    try:
        account = aws.client("sts").get_caller_identity()["Account"]
        region = aws.default_region()
        endpoint = aws.endpoint_url()
        if endpoint is None:
            raise RuntimeError("set_account_public_access_block is for the emulator only")
        url = f"{endpoint}/v20180820/configuration/publicAccessBlock"
        request = AWSRequest(
            method="PUT",
            url=url,
            data=ACCOUNT_PAB_XML.encode(),
            headers={"x-amz-account-id": account, "Content-Type": "application/xml"},
        )
        credentials = aws.session(region).get_credentials()
        SigV4Auth(credentials, "s3", region).add_auth(request)
        context = ssl.create_default_context(cafile=aws.ca_bundle())
        http_request = urllib.request.Request(  # noqa: S310 - https to the emulator
            url, data=request.body, method="PUT", headers=dict(request.headers.items())
        )
        with urllib.request.urlopen(http_request, context=context, timeout=30) as resp:  # noqa: S310
            if resp.status != 200:
                raise RuntimeError(f"PutPublicAccessBlock answered {resp.status}")
    finally:
        _restore(saved)


def local_target(
    run_dir: Path,
    tfvars: Mapping[str, Any],
    log: Log,
    *,
    create_hosts: bool = True,
    emulator: Emulator | None = None,
) -> Target:
    emu = emulator or ensure_emulator(run_dir, log)
    env = emu.env(str(tfvars.get("default_region", "eu-west-3")))
    state_dir = run_dir / "infra" / "local"
    state_dir.mkdir(parents=True, exist_ok=True)
    regions = sorted(tfvars.get("allowed_regions", []))
    images = stand_in_images(env, regions) if create_hosts else {}
    subnets = private_subnets(env, regions) if create_hosts else {}
    settings = {
        "aws_endpoint": emu.endpoint,
        "create_hosts": create_hosts,
        "host_image_ids": images,
        "subnet_ids": subnets,
        "manage_account_public_access_block": False,
        # moto does not implement MonitorInstances: the provider would retry forever.
        "host_detailed_monitoring": False,
        # The emulator's logs are throw-away: let `destroy` remove their buckets.
        "force_destroy_logs": True,
    }
    var_file = state_dir / "target.tfvars.json"
    var_file.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Target("local", run_dir, env, [var_file], emulator=emu)


# ------------------------------------------------------------ aws target


def aws_target(
    run_dir: Path,
    extra_var_file: Path | None,
    *,
    create_hosts: bool = True,
    deploy_public_key: str = "",
) -> Target:
    """Real AWS: credentials and region from the usual chain; nothing overridden
    but `create_hosts` and the deploy account's public key (the host image ids and
    subnets come from `extra_var_file`)."""
    state_dir = run_dir / "infra" / "aws"
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = state_dir / "target.tfvars.json"
    values: dict[str, Any] = {"create_hosts": create_hosts}
    if deploy_public_key:
        values["deploy_public_key"] = deploy_public_key
    settings.write_text(json.dumps(values) + "\n", encoding="utf-8")
    var_files = [settings] + ([extra_var_file] if extra_var_file is not None else [])
    return Target("aws", run_dir, {}, var_files)
