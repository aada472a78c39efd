"""`isoloir preflight --target aws`: read-only checks of the account before
anything is created (docs/aws.md).

Each check is one row of a table: what was checked, pass / FAIL / warn / skip,
and what was found or how to fix it. Nothing is created or changed: the calls
are STS GetCallerIdentity, EC2 DescribeRegions, DescribeImages,
DescribeSubnets, DescribeRouteTables, IAM GetAccountSummary, ListGroups,
ListUsers, S3 HeadBucket and GetBucketTagging. Clients come from `isoloir.aws`
(emulator endpoint honoured, connect and read timeouts bounded).

Exit 0 when every check passes (warnings allowed), 1 when one fails, 2 on bad
input (invalid policies, a backend configuration file that cannot be read).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws
from isoloir.controller.infra.runner import (
    BACKEND_CONFIG_ENV,
    BACKEND_CONFIG_FILE,
    declared_backend,
    default_infra_dir,
)
from isoloir.policy import PolicyError, load_policies
from isoloir.policy.loader import iam_group_count, iam_groups_of
from isoloir.policy.model import Policies
from isoloir.safeio import UnreadableFile, read_regular

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

PASS, FAIL, WARN, SKIP = "pass", "FAIL", "warn", "skip"
# The Debian cloud team's AWS account (Debian wiki, "Cloud/AmazonEC2Image").
DEBIAN_OWNER = "136693071363"
ENABLED = ("opt-in-not-required", "opted-in")
ISOLOIR_PATH = "/isoloir/"

Clients = Callable[[str, str | None], Any]


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


class BadInput(Exception):
    """The command's input cannot be used (exit 2)."""


def missing_host_keys(p: Policies) -> list[tuple[str, str]]:
    """(policy key, what is missing) for each region holding elections without
    an AMI or a subnet in `hosts.aws`: its file-share host cannot be created."""
    missing = []
    hosts = p.baseline.hosts
    for region in sorted({e.region for e in p.elections}):
        if region not in hosts.image_ids:
            missing.append((f"hosts.aws.image_ids.{region}", "a Debian 12 AMI id"))
        if region not in hosts.subnet_ids:
            missing.append((f"hosts.aws.subnet_ids.{region}", "a private subnet id"))
    return missing


def missing_host_settings(p: Policies) -> list[str]:
    """The same, one line each, for the deploy's refusal."""
    return [
        f"baseline.yml: {key}: missing; the region holds elections and its file-share "
        f"host needs {what} (docs/aws.md, step 5)"
        for key, what in missing_host_keys(p)
    ]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


def _status_code(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"{_error_code(exc)} ({exc.operation_name})"
    return type(exc).__name__


BACKEND_CONFIG_MAX_BYTES = 64 * 1024
_HCL_STRING = re.compile(r'^\s*([a-z_]+)\s*=\s*"([^"\n]*)"\s*$', re.MULTILINE)


def read_backend_config(path: Path) -> dict[str, str]:
    """The string settings of a partial S3 backend configuration (bucket, region...)."""
    try:
        text = read_regular(path, "backend configuration", BACKEND_CONFIG_MAX_BYTES).decode()
    except UnreadableFile as exc:
        raise BadInput(str(exc)) from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text, not a backend configuration") from None
    values = dict(_HCL_STRING.findall(text))
    if not values.get("bucket"):
        raise BadInput(f"{path}: bucket: missing (the state bucket's name)")
    return values


def _session_clients() -> Clients:
    """isoloir.aws clients sharing one boto3 session (its loaded service models)."""
    sess = aws.session()

    def make(service: str, region: str | None) -> Any:
        return aws.client(service, region, sess=sess)

    return make


class Preflight:
    """The checks, in order; `run()` returns the rows."""

    def __init__(
        self,
        policies: Policies,
        *,
        clients: Clients | None = None,
        backend: str = "local",
        backend_config: Path | None = None,
    ) -> None:
        self.p = policies
        self._make_client = clients or _session_clients()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self.backend = backend
        self.backend_config = backend_config
        self.enabled: set[str] = set()

    def clients(self, service: str, region: str | None) -> Any:
        """One client per service and region (building one costs a few hundred ms)."""
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._make_client(service, region)
        return self._clients[key]

    # ------------------------------------------------------------------ run
    def run(self) -> list[Check]:
        rows = list(self.host_settings())
        identity = self.credentials()
        rows.append(identity)
        if identity.status != PASS:
            rows.append(Check("other checks", SKIP, "not run: no working credentials"))
            return rows
        for check in (
            self.regions,
            self.hosts,
            self.quotas,
            self.buckets,
            self.state_backend,
        ):
            rows.extend(check())
        return rows

    @property
    def election_regions(self) -> list[str]:
        return sorted({e.region for e in self.p.elections})

    # --------------------------------------------------------------- checks
    def host_settings(self) -> Iterator[Check]:
        for key, what in missing_host_keys(self.p):
            yield Check(
                f"policy {key}",
                FAIL,
                f"missing: the file-share host there needs {what}",
                f"set {key} in policies/baseline.yml (docs/aws.md, step 5)",
            )

    def credentials(self) -> Check:
        try:
            who = self.clients("sts", None).get_caller_identity()
        except (ClientError, BotoCoreError) as exc:
            return Check(
                "credentials",
                FAIL,
                f"STS GetCallerIdentity failed: {_why(exc)}",
                "sign in to the deploy role (AWS_PROFILE=..., aws sso login) and set AWS_REGION",
            )
        kind = str(who.get("Arn", "")).split(":")[-1].split("/")[0] or "?"
        return Check("credentials", PASS, f"account {who.get('Account')} ({kind})")

    def regions(self) -> Iterator[Check]:
        try:
            answer = self.clients("ec2", None).describe_regions(AllRegions=True)
        except (ClientError, BotoCoreError) as exc:
            yield Check(
                "regions enabled",
                FAIL,
                f"EC2 DescribeRegions failed: {_why(exc)}",
                "the deploy role needs ec2:DescribeRegions",
            )
            return
        status = {r["RegionName"]: r.get("OptInStatus", "") for r in answer.get("Regions", [])}
        for region in sorted(self.p.baseline.regions.allowed):
            state = status.get(region, "unknown")
            if state in ENABLED:
                self.enabled.add(region)
                yield Check(f"region {region} enabled", PASS, state)
            else:
                yield Check(
                    f"region {region} enabled",
                    FAIL,
                    f"{state}: every call there fails, Terraform's included",
                    "enable it (console: Account > AWS Regions > Enable; or "
                    f"aws account enable-region --region-name {region}) and wait until it "
                    "shows Enabled, or remove it from regions.allowed",
                )

    def hosts(self) -> Iterator[Check]:
        for region in self.election_regions:
            if region not in self.enabled:
                yield Check(f"host {region}", SKIP, "region not enabled")
                continue
            ec2 = self.clients("ec2", region)
            ami = self.p.baseline.hosts.image_ids.get(region)
            if ami:
                yield self.image(ec2, region, ami)
            subnet = self.p.baseline.hosts.subnet_ids.get(region)
            if subnet:
                yield from self.subnet(ec2, region, subnet)

    def image(self, ec2: Any, region: str, ami: str) -> Check:
        name = f"AMI {region} {ami}"
        fix = (
            "give an available Debian 12 AMI of this region in hosts.aws.image_ids "
            f"(aws ec2 describe-images --region {region} --owners {DEBIAN_OWNER} "
            "--filters Name=name,Values='debian-12-amd64-*')"
        )
        try:
            images = ec2.describe_images(ImageIds=[ami]).get("Images", [])
        except ClientError as exc:
            if _error_code(exc).startswith("InvalidAMIID"):
                return Check(name, FAIL, f"not found in {region}", fix)
            return Check(name, FAIL, f"DescribeImages failed: {_why(exc)}", fix)
        except BotoCoreError as exc:
            return Check(name, FAIL, f"DescribeImages failed: {_why(exc)}", fix)
        if not images:
            return Check(name, FAIL, f"not found in {region}", fix)
        image = images[0]
        state = image.get("State", "available")
        if state != "available":
            return Check(name, FAIL, f"state {state}", fix)
        found = f"{image.get('Name', '?')}, owner {image.get('OwnerId', '?')}"
        if image.get("OwnerId") != DEBIAN_OWNER:
            found += f" (not Debian's {DEBIAN_OWNER}: your own image must be Debian 12)"
        return Check(name, PASS, found)

    def subnet(self, ec2: Any, region: str, subnet_id: str) -> Iterator[Check]:
        name = f"subnet {region} {subnet_id}"
        reason = f"not found in {region}"
        try:
            subnets = ec2.describe_subnets(SubnetIds=[subnet_id]).get("Subnets", [])
        except (ClientError, BotoCoreError) as exc:
            subnets = []
            if not (isinstance(exc, ClientError) and "NotFound" in _error_code(exc)):
                reason = f"DescribeSubnets failed: {_why(exc)}"
        if not subnets:
            yield Check(
                f"{name} private",
                FAIL,
                reason,
                "give a private subnet of this region in hosts.aws.subnet_ids",
            )
            return
        subnet = subnets[0]
        if subnet.get("MapPublicIpOnLaunch"):
            yield Check(
                f"{name} private",
                FAIL,
                "MapPublicIpOnLaunch is true: the host would get a public address",
                "use a private subnet (aws ec2 modify-subnet-attribute "
                f"--subnet-id {subnet_id} --no-map-public-ip-on-launch, and no route to "
                "an internet gateway)",
            )
        else:
            yield Check(f"{name} private", PASS, "no public IP on launch")
        yield self.route_out(ec2, name, subnet)

    def route_out(self, ec2: Any, name: str, subnet: dict[str, Any]) -> Check:
        """A 0.0.0.0/0 route to a NAT gateway in the subnet's route table (its
        own, else the VPC's main table)."""
        check = f"{name} route out"
        fix = (
            "add a NAT gateway (in a public subnet of the same AZ) and a 0.0.0.0/0 route "
            "to it in this subnet's route table. Without NAT: S3 gateway endpoint, KMS and "
            "STS interface endpoints, and an HTTPS proxy for IAM (its only VPC endpoint is "
            "in us-east-1), apt and the webhooks; this check then stays FAIL, deploy with "
            "--no-preflight once every other row passes (docs/aws.md)"
        )
        try:
            tables = ec2.describe_route_tables(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}]
            ).get("RouteTables", [])
            if not tables:
                tables = ec2.describe_route_tables(
                    Filters=[
                        {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                        {"Name": "association.main", "Values": ["true"]},
                    ]
                ).get("RouteTables", [])
        except (ClientError, BotoCoreError) as exc:
            return Check(check, FAIL, f"DescribeRouteTables failed: {_why(exc)}", fix)
        routes = [
            r
            for t in tables
            for r in t.get("Routes", [])
            if r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("State") != "blackhole"
        ]
        if not routes:
            return Check(check, FAIL, "no 0.0.0.0/0 route: apt, S3, KMS, IAM unreachable", fix)
        route = routes[0]
        if route.get("NatGatewayId"):
            return Check(check, PASS, f"0.0.0.0/0 via NAT gateway {route['NatGatewayId']}")
        gateway = str(route.get("GatewayId", ""))
        if gateway.startswith("igw-"):
            return Check(
                check,
                FAIL,
                f"0.0.0.0/0 goes to internet gateway {gateway}: a public subnet",
                fix,
            )
        target = next(
            (
                str(route[k])
                for k in ("TransitGatewayId", "NetworkInterfaceId", "InstanceId", "GatewayId")
                if route.get(k)
            ),
            "?",
        )
        return Check(
            check,
            WARN,
            f"0.0.0.0/0 via {target}, not a NAT gateway",
            "make sure it forwards HTTPS (443) and SMTP submission (587) to the internet",
        )

    def quotas(self) -> Iterator[Check]:
        iam = self.clients("iam", None)
        slug = self.p.baseline.organisation.slug
        try:
            summary = iam.get_account_summary()["SummaryMap"]
            ours_groups = sum(
                1
                for page in iam.get_paginator("list_groups").paginate(PathPrefix=ISOLOIR_PATH)
                for g in page.get("Groups", [])
                if str(g.get("GroupName", "")).startswith(f"isoloir-{slug}-")
            )
            people = {x.id for x in self.p.baseline.people}
            ours_users = sum(
                1
                for page in iam.get_paginator("list_users").paginate(PathPrefix=ISOLOIR_PATH)
                for u in page.get("Users", [])
                if u.get("UserName") in people
            )
        except (ClientError, BotoCoreError, KeyError) as exc:
            yield Check(
                "IAM quotas",
                FAIL,
                f"IAM GetAccountSummary/ListGroups failed: {_why(exc)}",
                "the deploy role needs iam:GetAccountSummary, iam:ListGroups, iam:ListUsers",
            )
            return
        yield from quota_checks(self.p, summary, ours_groups, ours_users)

    def buckets(self) -> Iterator[Check]:
        b = self.p.baseline
        predictable = predictable_bucket_names(self.p)
        if predictable:
            yield Check(
                "bucket names",
                WARN,
                f"{len(predictable)} default name(s) anyone can predict, e.g. {predictable[0]}",
                "set organisation.bucket_suffix (4 to 12 lower-case letters or digits, e.g. "
                f"{secrets.token_hex(3)}) before the first deploy; never change it afterwards",
            )
        names = {e.bucket_name: e.region for e in self.p.elections}
        names.update({name: region for region, name in b.log_bucket_names.items()})
        for name, region in sorted(names.items()):
            if region not in self.enabled:
                yield Check(f"bucket {name}", SKIP, "region not enabled")
                continue
            yield self.bucket(name, region)

    def bucket(self, name: str, region: str) -> Check:
        check = f"bucket {name}"
        fix = (
            "the name is taken: S3 bucket names are global across every account. "
            "Choose another election id or bucket (it must still start with the "
            "organisation slug), or delete that bucket if it is yours"
        )
        s3 = self.clients("s3", region)
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            status = _status_code(exc)
            if status == 404 or _error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return Check(check, PASS, "free")
            if status == 403:
                return Check(check, FAIL, "exists in another account (HeadBucket 403)", fix)
            return Check(check, FAIL, f"HeadBucket failed: {_why(exc)}", fix)
        except BotoCoreError as exc:
            return Check(check, FAIL, f"HeadBucket failed: {_why(exc)}", fix)
        slug = self.p.baseline.organisation.slug
        try:
            tags = s3.get_bucket_tagging(Bucket=name).get("TagSet", [])
        except ClientError as exc:
            if _error_code(exc) != "NoSuchTagSet":
                return Check(check, FAIL, f"exists; GetBucketTagging: {_why(exc)}", fix)
            tags = []
        except BotoCoreError as exc:
            return Check(check, FAIL, f"exists; GetBucketTagging: {_why(exc)}", fix)
        if any(t.get("Key") == "isoloir:org" and t.get("Value") == slug for t in tags):
            return Check(check, PASS, f"already ours (tag isoloir:org = {slug})")
        return Check(
            check,
            FAIL,
            f"exists and is reachable, but without the tag isoloir:org = {slug}: "
            "not created by this deployment",
            fix,
        )

    def state_backend(self) -> Iterator[Check]:
        if self.backend_config is None:
            if self.backend == "local":
                yield Check(
                    "state backend",
                    WARN,
                    "local: the state stays on this machine, unencrypted and unlocked",
                    "use the S3 backend: infra/backend.s3.tf.example and "
                    "infra/backend.aws.hcl.example (docs/aws.md, step 4)",
                )
            else:
                yield Check(
                    "state backend",
                    FAIL,
                    f"infra/ declares the {self.backend} backend but no configuration file",
                    "copy infra/backend.aws.hcl.example to infra/backend.aws.hcl "
                    "(or set ISOLOIR_TF_BACKEND_CONFIG) with the state bucket's name",
                )
            return
        values = read_backend_config(self.backend_config)
        bucket = values["bucket"]
        region = values.get("region") or aws.default_region()
        check = f"state bucket {bucket}"
        fix = (
            "create the state bucket once, outside this configuration: versioned, "
            "SSE-KMS, public access blocked (docs/aws.md, step 4), and let the deploy "
            "role use it"
        )
        try:
            self.clients("s3", region).head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = _status_code(exc)
            if status == 404:
                yield Check(check, FAIL, "does not exist", fix)
            elif status == 403:
                yield Check(check, FAIL, "access denied (another account's, or no permission)", fix)
            else:
                yield Check(check, FAIL, f"HeadBucket failed: {_why(exc)}", fix)
            return
        except BotoCoreError as exc:
            yield Check(check, FAIL, f"HeadBucket failed: {_why(exc)}", fix)
            return
        yield Check(check, PASS, f"reachable ({region})")


def predictable_bucket_names(p: Policies) -> list[str]:
    """The buckets named `<slug>-<election id>` (or the log buckets) with no
    suffix: another account can create them first (S3 names are global)."""
    if p.baseline.organisation.bucket_suffix:
        return []
    slug = p.baseline.organisation.slug
    names = [e.bucket_name for e in p.elections if e.bucket_name == f"{slug}-{e.id}"]
    return sorted(names) + [p.baseline.log_bucket_name]


def quota_checks(
    p: Policies, summary: dict[str, Any], ours_groups: int, ours_users: int
) -> list[Check]:
    """Groups and users after the deploy against the account's quotas
    (IAM GetAccountSummary), and groups per user."""
    rows = []
    needed = iam_group_count(p)
    quota = int(summary.get("GroupsQuota", 300))
    after = int(summary.get("Groups", 0)) - ours_groups + needed
    detail = (
        f"{summary.get('Groups', 0)} groups now ({ours_groups} of them Isoloir's), "
        f"{needed} needed: {after} of {quota}"
    )
    if after > quota:
        rows.append(
            Check(
                "IAM groups per account",
                FAIL,
                detail,
                "ask for a higher 'Groups per account' quota (Service Quotas > IAM), "
                "or delete groups Isoloir does not use (it needs two, whatever the elections)",
            )
        )
    elif p.baseline.iam_groups_quota > quota:
        rows.append(
            Check(
                "IAM groups per account",
                FAIL,
                f"the policies say the quota is {p.baseline.iam_groups_quota}; "
                f"the account's is {quota}",
                "set aws.iam_groups_quota to the account's quota, or have it raised first",
            )
        )
    else:
        rows.append(Check("IAM groups per account", PASS, detail))
    users_quota = int(summary.get("UsersQuota", 5000))
    users_after = int(summary.get("Users", 0)) - ours_users + len(p.baseline.people)
    users_detail = f"{summary.get('Users', 0)} users now, {users_after} of {users_quota} after"
    rows.append(
        Check("IAM users", PASS, users_detail)
        if users_after <= users_quota
        else Check("IAM users", FAIL, users_detail, "remove people, or clean up unused users")
    )
    per_user = int(summary.get("GroupsPerUserQuota", 10))
    most = max((len(iam_groups_of(p, x)) for x in p.baseline.people), default=0)
    per_detail = f"at most {most} groups for one person, quota {per_user}"
    rows.append(
        Check("IAM groups per user", PASS, per_detail)
        if most <= per_user
        else Check(
            "IAM groups per user",
            FAIL,
            per_detail,
            "remove that person from other groups of the account (not adjustable)",
        )
    )
    return rows


# ----------------------------------------------------------------- output


def table(rows: list[Check]) -> list[str]:
    width = max([len("CHECK")] + [len(r.name) for r in rows])
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {r.status:<6}  {r.detail}")
        if r.fix and r.status != PASS:
            lines.append(f"{'':<{width}}          fix: {r.fix}")
    return lines


def exit_code(rows: list[Check]) -> int:
    return EXIT_FAILED if any(r.status in (FAIL, SKIP) for r in rows) else EXIT_OK


def backend_settings(infra_dir: Path, named: str | None) -> tuple[str, Path | None]:
    """(declared backend type, its configuration file) as the deploy will use them."""
    if named:
        path = Path(named)
        if not path.exists():
            raise BadInput(f"{path}: no such backend configuration file")
        return "s3", path
    try:
        kind = declared_backend(infra_dir)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if kind == "local":
        return kind, None
    env = os.environ.get(BACKEND_CONFIG_ENV)
    if env:
        if not Path(env).is_file():
            raise BadInput(f"{BACKEND_CONFIG_ENV}={env}: no such file")
        return kind, Path(env)
    default = infra_dir / BACKEND_CONFIG_FILE
    return kind, default if default.is_file() else None


def preflight(
    policies: Policies,
    *,
    infra_dir: Path | None = None,
    backend_config: str | None = None,
    clients: Clients | None = None,
) -> list[Check]:
    kind, path = backend_settings(infra_dir or default_infra_dir(), backend_config)
    if path is not None:
        read_backend_config(path)  # bad input is refused before any AWS call
    checker = Preflight(policies, clients=clients, backend=kind, backend_config=path)
    return checker.run()


def cmd_preflight(args: argparse.Namespace) -> int:
    try:
        policies = load_policies(args.policies)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"isoloir preflight: {len(exc.problems)} problem(s) in the policies", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rows = preflight(
            policies,
            infra_dir=Path(args.infra_dir) if args.infra_dir else None,
            backend_config=args.backend_config,
        )
    except BadInput as exc:
        print(f"isoloir preflight: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in table(rows):
        print(line)
    print(summary(rows))
    return exit_code(rows)


def summary(rows: list[Check]) -> str:
    failed = sum(1 for r in rows if r.status == FAIL)
    skipped = sum(1 for r in rows if r.status == SKIP)
    if not failed and not skipped:
        return "every check passed: nothing was created"
    not_run = f", {skipped} not run (they depend on a failed one)" if skipped else ""
    deploy = "`isoloir deploy --target aws` (make deploy TARGET=aws)"
    return f"{failed} check(s) failed{not_run}: fix them before {deploy}"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "preflight", help="read-only checks of the AWS account before the first deploy"
    )
    p.add_argument("--target", choices=("aws",), default="aws")
    p.add_argument("--policies", default="policies")
    p.add_argument("--infra-dir", help="the Terraform configuration (default: infra/)")
    p.add_argument(
        "--backend-config",
        help="partial S3 backend configuration to check (default: as the deploy finds it)",
    )
    p.set_defaults(func=cmd_preflight)
