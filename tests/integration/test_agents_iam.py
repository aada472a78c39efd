"""The agents under IAM enforcement, with the credentials of the role Terraform made.

The example policies are applied with Terraform to the session's emulator
(enforcement off: Terraform uses the emulator's fake key). Then an
administrator user is made, the agents' role is assumed (moto does not check
the role's EC2 trust policy while enforcement is off, see docs/infra.md), and
moto's IAM enforcement is switched on for this module: from there every
request is checked against the caller's IAM policies, the administrator's
(everything) for the test's own setup and checks, the role's for the agents.
For the role's sessions the emulator also applies the bucket and key policies'
Deny statements with their conditions, `aws:CurrentTime` being the emulator's
clock, which the module sets after the example's retention date (one test moves
it to either side of that date).

Each test drives a public entry point (the scan and its fixes through
`isoloir.exposure.scan.run`, the purge through `isoloir retention run`) with
the role's session, and asserts both that nothing was refused and that the
effect is there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult
from tests.plugins.emulator import credentials, iam_enforced
from tests.plugins.lifecycle import Executor
from tests.unit.test_agent_permissions import declared

from isoloir import aws
from isoloir.controller.emulator import Emulator
from isoloir.controller.infra.targets import local_target
from isoloir.exposure import remediate
from isoloir.exposure.scan import ScanOptions, ScanReport, run
from isoloir.policy.loader import load_policies
from isoloir.policy.render import terraform_vars
from isoloir.retention import keys

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EID = "exempleville-2027"
REGION = "eu-west-3"
NOW = "2027-06-01T04:00:00+00:00"  # after the example's retention date (2027-05-21)
PAB_ON = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
PUBLIC_READ = {
    "Sid": "PublicRead",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "",  # the bucket's objects, filled in
}


@dataclass
class Deployed:
    root: Path
    policies: Path
    outputs: dict[str, Any]
    admin: dict[str, str]
    agent: dict[str, str]
    emulator: Emulator

    @property
    def bucket(self) -> str:
        return str(self.outputs["bucket_names"][EID])

    @property
    def key_arn(self) -> str:
        return str(self.outputs["kms_key_arns"][EID])

    def client(self, service: str, who: dict[str, str]) -> Any:
        """A client as the agents make them (`isoloir.aws`), with `who`'s credentials."""
        with credentials(who):
            return aws.client(service, REGION)


def _policies_copy(root: Path) -> Path:
    """The example policies, with the share root and contacts store under `root`."""
    target = root / "policies"
    shutil.copytree(REPO / "policies", target)
    baseline = target / "baseline.yml"
    text = baseline.read_text(encoding="utf-8")
    text = text.replace("path: /srv/isoloir/contacts", f"path: {root / 'contacts'}")
    text = text.replace("share_root: /srv/elections", f"share_root: {root / 'shares'}")
    baseline.write_text(text, encoding="utf-8")
    for d in ("contacts", "shares", "state", "secrets"):
        (root / d).mkdir()
    return target


@pytest.fixture(scope="module")
def deployed(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform CLI not on PATH")
    emulator.reset()
    root = tmp_path_factory.mktemp("agents-iam")
    policies = _policies_copy(root)
    tfvars = terraform_vars(load_policies(policies))
    tfvars["allowed_regions"] = [REGION]  # the election's region: one log bucket, faster
    vars_path = root / "terraform.tfvars.json"
    vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
    target = local_target(root, tfvars, print, create_hosts=False, emulator=emulator)
    tf = target.terraform()
    tf.init()
    code, _summary = tf.plan([vars_path, *target.var_files], root / "plan.tfplan")
    assert code == 2
    tf.apply(root / "plan.tfplan")
    outputs = tf.output()
    admin = emulator.create_admin()
    agent = emulator.assume_role(str(outputs["agent_role_arn"]), admin)
    # AWS's clock (aws:CurrentTime in the bucket and key policies) stands where
    # the agents' clock does: after the example's retention date
    emulator.set_clock(datetime.fromisoformat(NOW))
    with iam_enforced(emulator, admin):
        yield Deployed(root, policies, outputs, admin, agent, emulator)
    emulator.reset()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _scan(d: Deployed, *, fix: bool) -> ScanReport:
    opts = ScanOptions(s3=True, shares=False, identity=True, sample=False)
    with credentials(d.agent):
        return run(
            load_policies(d.policies),
            datetime.fromisoformat(NOW).astimezone(UTC),
            opts,
            fix=fix,
            state_dir=d.root / "state",
        )


def _refused(report: ScanReport) -> dict[str, str]:
    found = {**report.errors, **report.fatal}
    return {where: code for where, code in found.items() if "AccessDenied" in code}


# ------------------------------------------------------------ enforcement


def test_enforcement_is_on_outside_the_role_calls_are_refused(deployed: Deployed) -> None:
    iam = deployed.client("iam", deployed.agent)
    s3 = deployed.client("s3", deployed.agent)
    kms = deployed.client("kms", deployed.agent)
    # the same session is served where the role allows it (positive control)
    assert (
        deployed.client("sts", deployed.agent)
        .get_caller_identity()["Arn"]
        .startswith("arn:aws:sts::")
    )
    assert any(u["UserName"] == "cfictive" for u in iam.list_users()["Users"])
    s3.get_bucket_policy(Bucket=deployed.bucket)
    with pytest.raises(ClientError) as err:
        iam.create_user(UserName="intrus")
    assert _code(err.value) == "AccessDenied"
    # a bucket the role reads but must not change: the access-log bucket
    log_bucket = str(deployed.outputs["log_buckets"][REGION])
    s3.get_bucket_acl(Bucket=log_bucket)
    with pytest.raises(ClientError) as err:
        s3.put_bucket_policy(Bucket=log_bucket, Policy=json.dumps({"Statement": []}))
    assert _code(err.value) == "AccessDenied"
    with pytest.raises(ClientError) as err:
        s3.delete_object(Bucket=log_bucket, Key="any")
    assert _code(err.value) == "AccessDenied"
    with pytest.raises(ClientError) as err:  # their only object write (a person's erasure)
        s3.put_object(Bucket=log_bucket, Key="x.csv", Body=b"x")  # is never in the logs
    assert _code(err.value) == "AccessDenied"
    with pytest.raises(ClientError) as err:  # nor keys (moto answers KMS's denial in IAM's XML)
        kms.create_key(Description="intrus")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # the emulator's fake key is unknown to IAM: nothing gets through unsigned by IAM
    fake = {**deployed.admin, **deployed.emulator.env()}
    with pytest.raises(ClientError) as err:
        deployed.client("iam", fake).list_users()
    assert _code(err.value) == "InvalidClientTokenId"


_OBJECT_ACTIONS = {"s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectVersion", "s3:PutObjectAcl",
                   "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject"}  # fmt: skip
_ACCOUNT_ACTIONS = {"s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock",
                    "s3:PutAccountPublicAccessBlock"}  # fmt: skip


def _resource(d: Deployed, action: str) -> str:
    """Where the agents use `action`: the election's bucket, objects or key, or `*`."""
    if action in _OBJECT_ACTIONS:
        return f"arn:aws:s3:::{d.bucket}/prospects/liste.csv"
    if action.startswith("s3:") and action not in _ACCOUNT_ACTIONS:
        return f"arn:aws:s3:::{d.bucket}"
    if action.startswith("kms:"):
        return d.key_arn
    return "*"


def test_the_role_as_applied_grants_what_the_agents_declare(deployed: Deployed) -> None:
    """The role's policy read back from the emulator, evaluated as the emulator does."""
    iam = deployed.client("iam", deployed.admin)
    role = str(deployed.outputs["agent_role_arn"]).rsplit("/", 1)[1]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    documents = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names]
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    policies = [IAMPolicy(json.dumps(doc)) for doc in documents]

    def allowed(action: str, resource: str) -> bool:
        results = {p.is_action_permitted(action, resource) for p in policies}
        return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results

    wanted = declared() - {"sts:GetCallerIdentity"}
    refused = sorted(a for a in wanted if not allowed(a, _resource(deployed, a)))
    assert not refused, f"declared by the agents, not granted by the role: {refused}"
    logs = str(deployed.outputs["log_buckets"][REGION])
    assert allowed("s3:GetObject", f"arn:aws:s3:::{logs}/x")  # counting outside reads
    for action in ("s3:DeleteObjectVersion", "s3:PutObject", "s3:PutBucketPolicy"):
        assert not allowed(action, f"arn:aws:s3:::{logs}/x"), action
        assert not allowed(action, f"arn:aws:s3:::{logs}"), action

    def denied(action: str, resource: str) -> bool:
        return any(p.is_action_permitted(action, resource) == PermissionResult.DENIED
                   for p in policies)  # fmt: skip

    # explicitly, whatever a later statement allows: access logs and Terraform state
    state = logs.removesuffix("-access-logs") + "-isoloir-tfstate"
    for resource in (f"{logs}/x", f"{logs}-eu-west-1/x", f"{state}/terraform.tfstate"):
        assert denied("s3:DeleteObjectVersion", f"arn:aws:s3:::{resource}"), resource
        assert denied("s3:PutObject", f"arn:aws:s3:::{resource}"), resource
    assert denied("s3:GetObject", f"arn:aws:s3:::{state}/terraform.tfstate")
    assert denied("s3:PutLifecycleConfiguration", f"arn:aws:s3:::{logs}")
    assert not denied("s3:GetBucketAcl", f"arn:aws:s3:::{logs}")  # settings stay readable


# ------------------------------------------------------------ scan and fixes


def test_scan_with_the_role_is_refused_nothing(deployed: Deployed) -> None:
    iam = deployed.client("iam", deployed.admin)
    iam.create_login_profile(UserName="dmodele", Password="Fictif-Mot-De-Passe-2026!")
    report = _scan(deployed, fix=False)
    assert not _refused(report), _refused(report)
    assert report.inventory is not None
    assert {b.name for b in report.inventory.s3.buckets} >= {deployed.bucket}
    # GetLoginProfile is granted: the console user without MFA is seen
    rules = {(f.rule_id, f.resource) for f in report.findings}
    assert any(r == "iam_user_no_mfa" and "dmodele" in res for r, res in rules), rules


def test_the_role_dates_an_administrators_password(deployed: Deployed) -> None:
    """iam_admin_password_age (compliance review E8): the role generates and reads
    the credential report. The emulator dates a password at its user's creation,
    months before NOW: past a 30-day limit it is reported, within the example's
    365 days it is not, and an ordinary person's never is."""
    iam = deployed.client("iam", deployed.admin)
    iam.create_login_profile(UserName="cfictive", Password="Fictif-Mot-De-Passe-2026!")
    policies = load_policies(deployed.policies)
    now = datetime.fromisoformat(NOW).astimezone(UTC)
    opts = ScanOptions(s3=False, shares=False, identity=True, sample=False)

    def scan(days: int) -> ScanReport:
        pw = dataclasses.replace(policies.baseline.passwords, admin_max_age_days=days)
        base = dataclasses.replace(policies.baseline, passwords=pw)
        with credentials(deployed.agent):
            return run(dataclasses.replace(policies, baseline=base), now, opts, fix=False,
                       state_dir=deployed.root / f"state-pw-{days}")  # fmt: skip

    strict = scan(30)
    assert not _refused(strict), _refused(strict)
    assert not any("iam:" in k for k in {**strict.errors, **strict.fatal}), strict.errors
    assert strict.inventory is not None and strict.inventory.identity is not None
    assert strict.inventory.identity.credential_report_time is not None
    aged = [f for f in strict.findings if f.rule_id == "iam_admin_password_age"]
    assert [f.resource.rsplit("/", 1)[1] for f in aged] == ["cfictive"]
    assert aged[0].evidence["age_days"] > 30
    yearly = scan(365)
    assert not _refused(yearly), _refused(yearly)
    assert not [f for f in yearly.findings if f.rule_id == "iam_admin_password_age"]


def test_each_enabled_fix_succeeds_with_the_role(deployed: Deployed) -> None:
    s3 = deployed.client("s3", deployed.admin)
    control = deployed.client("s3control", deployed.admin)
    account = str(deployed.outputs["account_id"])
    bucket = deployed.bucket
    s3.delete_public_access_block(Bucket=bucket)
    control.delete_public_access_block(AccountId=account)
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    kept = len(policy["Statement"])
    public = {**PUBLIC_READ, "Resource": f"arn:aws:s3:::{bucket}/*"}
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({**policy, "Statement": [*policy["Statement"], public]})
    )
    # a bucket no election declares, under the party's prefix, made public the same way
    stray = f"{bucket}-copie"
    s3.create_bucket(Bucket=stray, CreateBucketConfiguration={"LocationConstraint": REGION})
    stray_public = {**PUBLIC_READ, "Resource": f"arn:aws:s3:::{stray}/*"}
    s3.put_bucket_policy(Bucket=stray, Policy=json.dumps({"Statement": [stray_public]}))

    try:
        report = _scan(deployed, fix=True)

        assert not _refused(report), _refused(report)
        done = {(a.rule_id, a.resource): (a.applied, a.error) for a in report.actions}
        for rule, resource in (
            ("s3_bucket_public_access_block", f"s3://{bucket}"),
            ("s3_bucket_policy_public", f"s3://{bucket}"),
            ("s3_bucket_policy_public", f"s3://{stray}"),
            ("s3_account_public_access_block", f"aws-account:{account}"),
        ):
            assert done.get((rule, resource)) == (True, ""), (rule, done)
        assert not [a for a in report.actions if a.error], report.actions
        assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == PAB_ON
        assert (
            control.get_public_access_block(AccountId=account)["PublicAccessBlockConfiguration"]
            == PAB_ON
        )
        # The election's bucket policy denies the role any change to it (as on
        # AWS): the public statement stays for an administrator, neutralised by
        # the bucket's block, and the action says so.
        (locked,) = [
            a
            for a in report.actions
            if (a.rule_id, a.resource) == ("s3_bucket_policy_public", f"s3://{bucket}")
        ]
        assert locked.action == remediate.POLICY_LOCKED
        after = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert len(after["Statement"]) == kept + 1
        # the stray bucket's policy is not locked: its public statement is removed
        with pytest.raises(ClientError) as err:
            s3.get_bucket_policy(Bucket=stray)
        assert _code(err.value) == "NoSuchBucketPolicy"
        # and the next scan finds neither exposed
        again = {(f.rule_id, f.resource) for f in _scan(deployed, fix=False).findings}
        assert ("s3_bucket_policy_public", f"s3://{bucket}") not in again
        assert ("s3_bucket_policy_public", f"s3://{stray}") not in again
    finally:
        s3.delete_bucket_policy(Bucket=stray)
        s3.delete_bucket(Bucket=stray)
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


# ------------------------------------------------------------ the purge


def _as_agent(
    d: Deployed, *args: str, now: str, secrets: Path, state: Path, policies: Path
) -> subprocess.CompletedProcess[str]:
    """`isoloir ARGS` with the role's session, its host clock at `now`."""
    env = {
        **os.environ,
        **d.agent,
        "ISOLOIR_NOW": now,
        "ISOLOIR_SECRETS_DIR": str(secrets),
        "ISOLOIR_STATE_DIR": str(state),
        "ISOLOIR_CONFIG": str(policies),
    }
    return subprocess.run(
        [sys.executable, "-m", "isoloir.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _retention_run(d: Deployed, secrets: Path, state: Path, policies: Path) -> tuple[int, str]:
    """`isoloir retention run` with the role's session, its host clock at NOW."""
    result = _as_agent(
        d, "retention", "run", now=NOW, secrets=secrets, state=state, policies=policies
    )
    return result.returncode, result.stdout + result.stderr


def _due(d: Deployed) -> datetime:
    """Midnight UTC of the example election's retention date."""
    (election,) = [e for e in load_policies(d.policies).elections if e.id == EID]
    return datetime.combine(election.retention_due, datetime.min.time(), tzinfo=UTC)


def test_the_role_destroys_nothing_before_the_retention_date(deployed: Deployed) -> None:
    """N11 on the emulator: the bucket and key policies' dated Denies refuse the
    agents' deletions and key deletion one second before the retention date,
    whatever the host's clock says; one second after, the same call passes."""
    admin_s3 = deployed.client("s3", deployed.admin)
    admin_kms = deployed.client("kms", deployed.admin)
    bucket = deployed.bucket
    key = "porte-a-porte/avant-la-date.txt"
    version = admin_s3.put_object(Bucket=bucket, Key=key, Body=b"v1")["VersionId"]
    s3 = deployed.client("s3", deployed.agent)
    kms = deployed.client("kms", deployed.agent)
    due = _due(deployed)
    try:
        deployed.emulator.set_clock(due - timedelta(seconds=1))
        with pytest.raises(ClientError) as err:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        assert _code(err.value) == "AccessDenied"
        with pytest.raises(ClientError) as err:
            s3.delete_object(Bucket=bucket, Key=key)  # not even a delete marker
        assert _code(err.value) == "AccessDenied"
        with pytest.raises(ClientError) as err:  # the key policy refuses too
            kms.schedule_key_deletion(KeyId=deployed.key_arn, PendingWindowInDays=7)
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(ClientError) as err:  # nor may the role lift the date
            s3.delete_bucket_policy(Bucket=bucket)
        assert _code(err.value) == "AccessDenied"
        # the purge itself, its host's clock saying the date has passed: AWS
        # refuses (its own state, secrets and contacts store: the purge test's
        # are left as they were)
        early = deployed.root / "early"
        early.mkdir()
        policies = _policies_copy(early)
        keys.init(early / "secrets")
        code, out = _retention_run(deployed, early / "secrets", early / "state", policies)
        assert code != 0, out
        heads = admin_s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        assert [v["VersionId"] for v in heads] == [version], out
        state = admin_kms.describe_key(KeyId=deployed.key_arn)["KeyMetadata"]["KeyState"]
        assert state == "Enabled"
        # one second after midnight of the date, the same deletion is allowed
        deployed.emulator.set_clock(due + timedelta(seconds=1))
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        assert not admin_s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions")
    finally:
        deployed.emulator.set_clock(datetime.fromisoformat(NOW))


def _versions(s3: Any, bucket: str, prefix: str) -> int:
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    return sum(len(p.get("Versions", [])) + len(p.get("DeleteMarkers", [])) for p in pages)


def test_retention_purge_of_the_example_election_with_the_role(deployed: Deployed) -> None:
    s3 = deployed.client("s3", deployed.admin)
    kms = deployed.client("kms", deployed.admin)
    bucket = deployed.bucket
    rows = "prenom,nom,email,telephone,commune,consentement,desinscrit\r\n"
    rows += "Alix,Fictif,alix@exemple.example,01 99 00 12 34,Exempleville,oui,\r\n"
    rows += "Brune,Modele,brune@exemple.example,06 39 98 00 01,Exempleville,non,oui\r\n"
    for version in (1, 2):
        s3.put_object(Bucket=bucket, Key="prospects/liste.csv", Body=rows.encode())
        s3.put_object(Bucket=bucket, Key="porte-a-porte/secteur.txt", Body=b"v%d" % version)
    s3.put_object(Bucket=bucket, Key="benevoles/liste.txt", Body=b"benevole")
    s3.delete_object(Bucket=bucket, Key="porte-a-porte/secteur.txt")  # a delete marker
    share = deployed.root / "shares" / EID
    for ds in ("prospects", "porte-a-porte", "benevoles"):
        (share / ds).mkdir(parents=True, exist_ok=True)
    secrets = deployed.root / "secrets"
    keys.init(secrets)
    code, out = _retention_run(deployed, secrets, deployed.root / "state", deployed.policies)
    assert code == 0, out
    assert "AccessDenied" not in out, out
    assert "alix@exemple.example" not in out
    assert _versions(s3, bucket, "prospects/") == 0
    assert _versions(s3, bucket, "porte-a-porte/") == 0
    certificates = list((deployed.root / "state" / "retention" / "certificates").glob(f"{EID}--*"))
    assert certificates, out
    kept = list((deployed.root / "contacts").glob(f"{EID}--prospects--*.csv"))
    assert len(kept) == 1 and b"Alix" in kept[0].read_bytes()
    state = kms.describe_key(KeyId=deployed.key_arn)["KeyMetadata"]["KeyState"]
    permanent = _versions(s3, bucket, "benevoles/")
    # the permanent dataset stays; with it in the bucket the key is kept (not shredded)
    assert permanent == 1, permanent
    assert state in {"Enabled", "PendingDeletion"}


def test_an_erasure_before_the_retention_date_leaves_old_versions_to_the_lifecycle(
    deployed: Deployed,
) -> None:
    """A person's erasure (`isoloir person erase`) three weeks before the retention
    date, with the role: AWS refuses it the deletion of the earlier versions (the
    dated Deny), so the command writes the current version without the person and
    leaves the earlier ones to the bucket's `noncurrent-versions` rule, which S3's
    lifecycle (tests/plugins/lifecycle.py, run on the rules Terraform made) then
    applies: the old versions go, the current one stays."""
    admin_s3 = deployed.client("s3", deployed.admin)
    bucket = deployed.bucket
    key = "benevoles/erasure-liste.csv"  # a permanent dataset: no campaign rule over it
    header = "prenom,nom,email,telephone,commune\r\n"
    gone = "Cyan,Fictif,cyan@exemple.example,01 99 00 55 66,Exempleville\r\n"
    stays = "Dora,Modele,dora@exemple.example,01 99 00 77 88,Exempleville\r\n"
    for body in (header + gone, header + gone + stays):
        admin_s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    before = admin_s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(before) == 2
    early = _due(deployed) - timedelta(days=20)
    where = deployed.root / "erasure"
    where.mkdir()
    _policies_copy(where)
    keys.init(where / "secrets")
    dirs = {"secrets": where / "secrets", "state": where / "state", "policies": where / "policies"}
    deployed.emulator.set_clock(early)
    try:
        opened = _as_agent(
            deployed, "person", "request", "open", "--kind", "erasure",
            "--received", early.date().isoformat(), now=early.isoformat(), **dirs,
        )  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        request = opened.stdout.split(":", 1)[0]
        erased = _as_agent(
            deployed, "person", "erase", "--request", request,
            "--email", "cyan@exemple.example", now=early.isoformat(), **dirs,
        )  # fmt: skip
    finally:
        deployed.emulator.set_clock(datetime.fromisoformat(NOW))
    out = erased.stdout + erased.stderr
    assert erased.returncode == 0, out
    assert "cyan@exemple.example" not in out and "Fictif" not in out
    assert "lifecycle" in out, out
    # the current version: without the person, the other row kept
    current = admin_s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert "cyan@exemple.example" not in current and "dora@exemple.example" in current
    # the earlier versions: AWS refused their deletion, they are still there
    after = admin_s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert {v["VersionId"] for v in before} <= {v["VersionId"] for v in after}
    record_path = next((where / "state" / "dpo" / "erasures").glob(f"{request}--*.json"))
    record = json.loads(record_path.read_text(encoding="utf-8"))["certificate"]
    left = [a for a in record["actions"] if "lifecycle" in a["action"]]
    assert sorted(a["version_id"] for a in left) == sorted(v["VersionId"] for v in before)
    assert all("noncurrent-versions" in a["action"] for a in left), left
    assert record["totals"]["versions_left_to_lifecycle"] == 2
    assert record["totals"]["versions_deleted"] == 0
    # S3's lifecycle, on the rules Terraform made, once the old versions are
    # non-current for longer than the rule's days: they go, the current one stays
    try:
        lifecycle = Executor(admin_s3, bucket)
        lifecycle.run(datetime.now(UTC) + timedelta(days=9))
        remaining = admin_s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
        assert [v["IsLatest"] for v in remaining] == [True]
        final = admin_s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert final == current
    finally:  # the other tests count the permanent dataset's versions
        for v in admin_s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []):
            admin_s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
