"""`isoloir preflight --target aws` against the emulator: all green on a good
setup (a VPC with a private subnet whose default route goes to a NAT gateway, an
AMI, free bucket names, a reachable state bucket), then one clear failure per
broken prerequisite the emulator can stage. And `isoloir deploy --target aws`
runs it first and refuses a region without an AMI or a subnet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from tests.aws_policies import aws_ready_policies

from isoloir import aws
from isoloir.cli import main
from isoloir.controller import deploy, preflight
from isoloir.controller.emulator import Emulator
from isoloir.policy import load_policies

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
OTHER_ACCOUNT = "111111111111"


@dataclass
class Account:
    """What the test built in the emulator for one party."""

    slug: str
    vpc: str
    private_subnet: str
    private_table: str
    nat: str
    igw: str
    ami: str
    policies: Path
    # buckets made by the test, deleted afterwards: the exposure tests inventory
    # every bucket of the emulator's account
    made: list[tuple[Any, str]] = field(default_factory=list)

    def make_bucket(self, s3: Any, name: str, tags: dict[str, str]) -> None:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.made.append((s3, name))
        if tags:
            tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_set})

    @property
    def bucket(self) -> str:
        return f"{self.slug}-exempleville-2027-{SUFFIX}"


def _network(ec2: Any) -> dict[str, str]:
    """A VPC with a public subnet (IGW, NAT gateway) and a private subnet whose
    route table sends 0.0.0.0/0 to the NAT gateway."""
    second = uuid.uuid4().int % 200 + 20
    vpc = ec2.create_vpc(CidrBlock=f"10.{second}.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{second}.0.0/24")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=public, MapPublicIpOnLaunch={"Value": True})
    public_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_table, SubnetId=public)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{second}.1.0/24")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=private, MapPublicIpOnLaunch={"Value": False})
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=table, SubnetId=private)
    return {"vpc": vpc, "igw": igw, "nat": nat, "private": private, "table": table}


SUFFIX = "7f3a9c"  # organisation.bucket_suffix of the test policies


def _policies(tmp_path: Path, slug: str, ami: str, subnet: str) -> Path:
    return aws_ready_policies(
        tmp_path, ami=ami, subnet=subnet, region=REGION, slug=slug, suffix=SUFFIX
    )


@pytest.fixture()
def account(emulator: Emulator, tmp_path: Path) -> Iterator[Account]:
    ec2 = aws.client("ec2", REGION)
    net = _network(ec2)
    ami = ec2.register_image(
        Name=f"debian-12-amd64-test-{uuid.uuid4().hex[:6]}",
        Architecture="x86_64",
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    slug = f"pf{uuid.uuid4().hex[:10]}"
    made = Account(
        slug=slug,
        vpc=net["vpc"],
        private_subnet=net["private"],
        private_table=net["table"],
        nat=net["nat"],
        igw=net["igw"],
        ami=ami,
        policies=_policies(tmp_path, slug, ami, net["private"]),
    )
    yield made
    for s3, name in made.made:
        s3.delete_bucket(Bucket=name)


def run(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run the command; return its exit code, {check: (status, rest of the row)}, and
    the whole output."""
    code = main(["preflight", "--target", "aws", *args])
    captured = capsys.readouterr()
    rows: dict[str, tuple[str, str]] = {}
    for line in captured.out.splitlines()[1:]:
        for status in (" pass ", " FAIL ", " warn ", " skip "):
            if status in line:
                name, _, rest = line.partition(status)
                rows[name.strip()] = (status.strip(), rest.strip())
                break
    return code, rows, captured.out + captured.err


def failed(rows: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: rest for name, (status, rest) in rows.items() if status == "FAIL"}


def test_a_good_setup_is_all_green(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = f"{account.slug}-isoloir-tfstate"
    account.make_bucket(aws.client("s3", REGION), state, {})
    config = tmp_path / "backend.aws.hcl"
    config.write_text(f'bucket = "{state}"\nregion = "{REGION}"\nuse_lockfile = true\n')
    code, rows, out = run(
        capsys, "--policies", str(account.policies), "--backend-config", str(config)
    )
    assert code == 0, out
    assert {status for status, _ in rows.values()} == {"pass"}, out
    assert rows["credentials"][1].startswith("account 123456789012")
    for region in ("eu-west-3", "eu-west-1", "eu-central-1"):
        assert rows[f"region {region} enabled"][0] == "pass"
    subnet = f"subnet {REGION} {account.private_subnet}"
    assert rows[f"{subnet} private"][0] == "pass"
    assert account.nat in rows[f"{subnet} route out"][1]
    assert rows[f"AMI {REGION} {account.ami}"][0] == "pass"
    assert rows[f"bucket {account.bucket}"] == ("pass", "free")
    assert rows[f"bucket {account.slug}-access-logs-{SUFFIX}"] == ("pass", "free")
    assert "of 300" in rows["IAM groups per account"][1]
    assert rows[f"state bucket {state}"][0] == "pass"
    assert "every check passed" in out


def _public_subnet(a: Account) -> None:
    aws.client("ec2", REGION).modify_subnet_attribute(
        SubnetId=a.private_subnet, MapPublicIpOnLaunch={"Value": True}
    )


def _no_route_out(a: Account) -> None:
    aws.client("ec2", REGION).delete_route(
        RouteTableId=a.private_table, DestinationCidrBlock="0.0.0.0/0"
    )


def _route_to_igw(a: Account) -> None:
    aws.client("ec2", REGION).replace_route(
        RouteTableId=a.private_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=a.igw
    )


def _ami_gone(a: Account) -> None:
    aws.client("ec2", REGION).deregister_image(ImageId=a.ami)


def _other_account_s3() -> Any:
    creds = aws.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/someone-else", RoleSessionName="squatter"
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )
    return aws.client("s3", REGION, sess=session)


def _bucket_taken(a: Account) -> None:
    a.make_bucket(_other_account_s3(), a.bucket, {"project": "someone-else"})


def _region_disabled(a: Account) -> None:
    base = a.policies / "baseline.yml"
    text = base.read_text(encoding="utf-8")
    base.write_text(
        text.replace(
            "allowed: [eu-west-3, eu-west-1, eu-central-1]",
            "allowed: [eu-west-3, eu-west-1, eu-central-1, eu-south-2]",
        ),
        encoding="utf-8",
    )


def _ami_not_declared(a: Account) -> None:
    base = a.policies / "baseline.yml"
    text = base.read_text(encoding="utf-8")
    base.write_text(text.replace(f"{{{REGION}: {a.ami}}}", "{}"), encoding="utf-8")


# (name, how to break it, the failing check (format with the account), words of its detail)
BROKEN = [
    ("public subnet", _public_subnet, "subnet {region} {subnet} private", "MapPublicIpOnLaunch"),
    ("no route out", _no_route_out, "subnet {region} {subnet} route out", "no 0.0.0.0/0 route"),
    ("route to an IGW", _route_to_igw, "subnet {region} {subnet} route out", "internet gateway"),
    ("AMI missing", _ami_gone, "AMI {region} {ami}", "not found in eu-west-3"),
    ("AMI not declared", _ami_not_declared, "policy hosts.aws.image_ids.{region}", "missing"),
    ("bucket name taken", _bucket_taken, "bucket {bucket}", "without the tag isoloir:org"),
    ("region disabled", _region_disabled, "region eu-south-2 enabled", "not-opted-in"),
]


def test_predictable_bucket_names_are_a_warning(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    base = account.policies / "baseline.yml"
    base.write_text(base.read_text().replace(f"\n  bucket_suffix: {SUFFIX} ", " "))
    code, rows, out = run(capsys, "--policies", str(account.policies))
    status, rest = rows["bucket names"]
    assert status == "warn" and f"{account.slug}-exempleville-2027" in rest, out
    assert "organisation.bucket_suffix" in out
    # the names checked are then the predictable ones
    assert f"bucket {account.slug}-exempleville-2027" in rows
    assert "bucket names" not in failed(rows)


@pytest.mark.parametrize(("name", "breaks", "check", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_prerequisite_fails_clearly(
    account: Account,
    capsys: pytest.CaptureFixture[str],
    name: str,
    breaks: Any,
    check: str,
    words: str,
) -> None:
    breaks(account)
    code, rows, out = run(capsys, "--policies", str(account.policies))
    assert code == 1, out
    wanted = check.format(
        region=REGION, subnet=account.private_subnet, ami=account.ami, bucket=account.bucket
    )
    assert list(failed(rows)) == [wanted], out
    assert words in failed(rows)[wanted]
    assert "fix: " in out
    assert "1 check(s) failed" in out


def test_our_own_bucket_passes(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.make_bucket(aws.client("s3", REGION), account.bucket, {"isoloir:org": account.slug})
    code, rows, out = run(capsys, "--policies", str(account.policies))
    assert code == 0, out
    assert rows[f"bucket {account.bucket}"][1].startswith("already ours")


def test_state_backend_missing_and_declared(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "backend.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    # infra/ declares S3 but gives no configuration file
    code, rows, out = run(capsys, "--policies", str(account.policies), "--infra-dir", str(infra))
    assert code == 1
    assert "no configuration file" in failed(rows)["state backend"]
    # a configuration naming a bucket that does not exist
    (infra / "backend.aws.hcl").write_text(f'bucket = "{account.slug}-no-state"\n')
    code, rows, out = run(capsys, "--policies", str(account.policies), "--infra-dir", str(infra))
    assert code == 1
    assert failed(rows) == {f"state bucket {account.slug}-no-state": "does not exist"}, out
    # the repository's infra/ (local backend): a warning, not a failure
    code, rows, out = run(capsys, "--policies", str(account.policies))
    assert code == 0
    assert rows["state backend"][0] == "warn"


def test_bad_input_exits_2(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, out = run(
        capsys, "--policies", str(account.policies), "--backend-config", str(tmp_path / "none")
    )
    assert code == 2 and "no such backend configuration file" in out
    (account.policies / "elections" / "exempleville-2027.yml").write_text("id: [\n")
    code, _, out = run(capsys, "--policies", str(account.policies))
    assert code == 2 and "exempleville-2027.yml:" in out
    assert "Traceback" not in out


def test_no_credentials_fails_and_runs_nothing_else(account: Account) -> None:
    calls: list[str] = []

    def clients(service: str, region: str | None) -> Any:
        calls.append(service)

        class NoCredentials:
            def get_caller_identity(self) -> None:
                raise NoCredentialsError()

        return NoCredentials()

    rows = preflight.preflight(load_policies(account.policies), clients=clients)
    assert [(r.name, r.status) for r in rows] == [
        ("credentials", "FAIL"),
        ("other checks", "skip"),
    ]
    assert "NoCredentialsError" in rows[0].detail and "AWS_PROFILE" in rows[0].fix
    assert calls == ["sts"]
    assert preflight.exit_code(rows) == 1


def test_a_head_bucket_403_is_a_name_taken_by_another_account(account: Account) -> None:
    """The emulator answers 200 to another account's bucket (it keeps no
    cross-account permissions); AWS answers 403. The 403 path, with a stub S3."""
    from botocore.exceptions import ClientError

    class Forbidden:
        def head_bucket(self, Bucket: str) -> None:  # noqa: N803 - boto3's name
            raise ClientError(
                {"Error": {"Code": "403"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                "HeadBucket",
            )

    checker = preflight.Preflight(load_policies(account.policies), clients=lambda s, r: Forbidden())
    row = checker.bucket(account.bucket, REGION)
    assert (row.status, row.detail) == ("FAIL", "exists in another account (HeadBucket 403)")
    assert "global across every account" in row.fix


def test_quotas_against_the_account_summary(account: Account) -> None:
    p = load_policies(account.policies)  # people and admins: 2 groups, whatever the elections
    summary = {
        "Groups": 299,
        "GroupsQuota": 300,
        "Users": 10,
        "UsersQuota": 5000,
        "GroupsPerUserQuota": 10,
    }
    rows = {r.name: r for r in preflight.quota_checks(p, summary, 0, 0)}
    assert rows["IAM groups per account"].status == "FAIL"
    assert (
        "299 groups now (0 of them Isoloir's), 2 needed: 301 of 300"
        in rows["IAM groups per account"].detail
    )
    assert "Service Quotas" in rows["IAM groups per account"].fix
    # The same account where the 2 groups already exist (a second deploy): fine.
    rows = {r.name: r for r in preflight.quota_checks(p, summary, 2, 0)}
    assert rows["IAM groups per account"].status == "pass"
    assert rows["IAM users"].status == "pass" and rows["IAM groups per user"].status == "pass"


def test_deploy_to_aws_refuses_a_region_without_ami_or_subnet(
    emulator: Emulator, tmp_path: Path
) -> None:
    lines: list[str] = []
    policies = aws_ready_policies(tmp_path, ami=None, subnet=None)  # no hosts.aws section
    d = deploy.Deployment(
        target="aws", policies_dir=policies, run_dir=tmp_path / "run", out=lines.append
    )
    assert d.run() == 2
    text = "\n".join(lines)
    assert "baseline.yml: hosts.aws.image_ids.eu-west-3: missing" in text
    assert "baseline.yml: hosts.aws.subnet_ids.eu-west-3: missing" in text
    assert "deploy failed at step 'policies'" in text
    assert "==> [2/" not in text
    assert not (tmp_path / "run" / "rendered").exists()


def _deploy_inputs(tmp_path: Path, policies: Path) -> dict[str, Any]:
    """A deploy key pair, the policies' secret files vault-encrypted, the vault password."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    key = tmp_path / "isoloir-deploy"
    key.write_text("fake private key\n")
    key.chmod(0o600)
    key.with_name("isoloir-deploy.pub").write_text("ssh-ed25519 AAAAC3Nza test\n")
    password = tmp_path / "vault-password"
    password.write_text("fake vault password\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    alerts = load_policies(policies).baseline.alerts
    names = [w.secret_file for w in alerts.webhooks]
    if alerts.email is not None:
        names.append(alerts.email.credentials_file)
    vault = VaultLib([("default", VaultSecret(b"fake vault password"))])
    for name in names:
        (secrets / Path(name).name).write_bytes(vault.encrypt(b"fake secret\n"))
    return {"key_file": str(key), "secrets_dir": secrets, "vault_password_file": str(password)}


def test_deploy_to_aws_runs_preflight_first(account: Account, tmp_path: Path) -> None:
    _region_disabled(account)
    lines: list[str] = []
    d = deploy.Deployment(
        target="aws",
        policies_dir=account.policies,
        run_dir=tmp_path / "run",
        out=lines.append,
        **_deploy_inputs(tmp_path, account.policies),
    )
    assert d.run() == 2
    text = "\n".join(lines)
    assert "==> [2/8] preflight" in text
    assert "region eu-south-2 enabled" in text and "FAIL" in text
    assert "deploy failed at step 'preflight': preflight: 1 check(s) failed" in text
    assert "terraform" not in text.split("deploy failed")[0].split("preflight")[-1]
    assert not (tmp_path / "run" / "infra").exists()
