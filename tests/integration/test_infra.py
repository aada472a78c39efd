"""Terraform against the emulator: the real CLI and AWS provider, one apply shared
by the module, then boto3 reads back what AWS would report.

The example policies are rendered as `isoloir policy render` does, plus one
fictitious election in a second EU region (to exercise the provider aliases).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.plugins.lifecycle import Executor

from isoloir import aws
from isoloir.controller.emulator import Emulator
from isoloir.controller.infra.evaluate import (
    Decision,
    Request,
    evaluate,
    evaluate_key,
    identity_policies_of_user,
)
from isoloir.controller.infra.runner import Terraform
from isoloir.controller.infra.targets import local_target
from isoloir.policy.loader import load_policies
from isoloir.policy.render import terraform_vars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECOND = "autreville-2026"
BACKSTOP_DAYS = 14  # infra/variables.tf lifecycle_backstop_days' default


@dataclass
class Deployed:
    tf: Terraform
    tfvars: dict[str, Any]
    var_files: list[Path]
    workdir: Path
    outputs: dict[str, Any]

    def write_vars(self, data: dict[str, Any], name: str) -> Path:
        path = self.workdir / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path


# Declared in the baseline's aws: section (N6): a second deploying role and an
# IAM Identity Center permission set, whose role suffix changes on re-provisioning.
SECOND_DEPLOYER = "arn:aws:iam::123456789012:role/isoloir-deploy-second"
SSO_DEPLOYERS = (
    "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-3/"
    "AWSReservedSSO_IsoloirDeploy_*"
)
BREAK_GLASS = "arn:aws:iam::123456789012:role/isoloir-break-glass"


def _policies_with_deployers(workdir: Path) -> Path:
    """The example policies plus an aws: section naming the deploying principals:
    a second role and an IAM Identity Center set (not the emulator's caller, who
    applies here: only the evaluator enforces the bucket policies)."""
    root = workdir / "policies"
    shutil.copytree(REPO / "policies", root, symlinks=True)
    with (root / "baseline.yml").open("a", encoding="utf-8") as f:
        f.write(
            "\naws:\n  deployer_principals:\n"
            f"    - {SECOND_DEPLOYER}\n    - {SSO_DEPLOYERS}\n"
            f"  break_glass_roles: [{BREAK_GLASS}]\n"
        )
    return root


def _tfvars(policies: Path) -> dict[str, Any]:
    data = terraform_vars(load_policies(policies))
    slug = data["org_slug"]
    data["allowed_regions"] = sorted({*data["allowed_regions"], "eu-central-1"})
    data["elections"][SECOND] = {
        "label": "Municipale fictive d'Autreville 2026",
        "region": "eu-central-1",
        "bucket_name": f"{slug}-{SECOND}",
        "retention_date": "2026-12-31",
        "legal_hold": False,
        "members": ["ptest"],
        "dataset_prefixes": ["prospects/"],
        "campaign_prefixes": ["prospects/"],
    }
    return data


@pytest.fixture(scope="module")
def deployed(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform CLI not on PATH")
    emulator.reset()
    workdir = tmp_path_factory.mktemp("infra")
    tfvars = _tfvars(_policies_with_deployers(workdir))
    vars_path = workdir / "terraform.tfvars.json"
    vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
    target = local_target(workdir, tfvars, print, create_hosts=False, emulator=emulator)
    tf = target.terraform()
    tf.init()
    var_files = [vars_path, *target.var_files]
    code, summary = tf.plan(var_files, workdir / "first.tfplan")
    assert code == 2 and summary.add > 0 and summary.destroy == 0
    tf.apply(workdir / "first.tfplan")
    yield Deployed(tf, tfvars, var_files, workdir, tf.output())


def _elections(d: Deployed) -> dict[str, dict[str, Any]]:
    elections: dict[str, dict[str, Any]] = d.tfvars["elections"]
    return elections


@pytest.mark.parametrize("election_id", ["exempleville-2027", SECOND])
def test_election_storage_as_the_api_reports_it(deployed: Deployed, election_id: str) -> None:
    e = _elections(deployed)[election_id]
    out = deployed.outputs["elections"][election_id]
    region, bucket = e["region"], e["bucket_name"]
    assert out["region"] == region and out["bucket_name"] == bucket
    s3 = aws.client("s3", region)
    kms = aws.client("kms", region)

    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == region

    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    assert default["KMSMasterKeyID"] == out["kms_key_arn"]
    assert rule["BucketKeyEnabled"] is True
    key = kms.describe_key(KeyId=out["kms_key_arn"])["KeyMetadata"]
    assert key["Arn"].split(":")[3] == region
    assert kms.get_key_rotation_status(KeyId=out["kms_key_arn"])["KeyRotationEnabled"] is True
    # One key per election: no other election's bucket uses it.
    outs = deployed.outputs["elections"]
    others = [o["kms_key_arn"] for k, o in outs.items() if k != election_id]
    assert out["kms_key_arn"] not in others

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert pab == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    owner = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert owner == [{"ObjectOwnership": "BucketOwnerEnforced"}]

    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    tls = [s for s in policy["Statement"] if s.get("Sid") == "DenyInsecureTransport"]
    assert len(tls) == 1
    assert tls[0]["Effect"] == "Deny" and tls[0]["Action"] == "s3:*"
    assert tls[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(tls[0]["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]

    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    # One backstop rule per campaign prefix, dated after the retention date; none
    # expiring a current version over the whole bucket or a permanent dataset; old
    # versions of every object expire (noncurrent-versions).
    backstop = date.fromisoformat(e["retention_date"]) + timedelta(days=BACKSTOP_DAYS)
    assert e["campaign_prefixes"]
    assert set(rules) == {f"retention:{p}" for p in e["campaign_prefixes"]} | {
        "noncurrent-versions",
        "housekeeping",
    }
    for prefix in e["campaign_prefixes"]:
        retention = rules[f"retention:{prefix}"]
        assert retention["Status"] == "Enabled"
        assert retention["Filter"] == {"Prefix": prefix}
        assert retention["Expiration"]["Date"].date() == backstop
        assert retention["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 1
    old_versions = rules["noncurrent-versions"]
    assert old_versions["Status"] == "Enabled" and "Expiration" not in old_versions
    assert old_versions["Filter"] in ({}, {"Prefix": ""})
    assert old_versions["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7
    housekeeping = rules["housekeeping"]
    assert housekeeping["Status"] == "Enabled"
    assert housekeeping["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    assert housekeeping["Expiration"]["ExpiredObjectDeleteMarker"] is True

    logging = s3.get_bucket_logging(Bucket=bucket)["LoggingEnabled"]
    assert logging["TargetBucket"] == deployed.outputs["log_buckets"][region]
    # the agents know the log buckets by the same names (not shadow buckets)
    known = load_policies(REPO / "policies").baseline.log_bucket_names
    assert deployed.outputs["log_buckets"] == known

    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags["isoloir:election"] == election_id
    assert tags["isoloir:retention-due"] == e["retention_date"]
    assert tags["isoloir:legal-hold"] == str(e["legal_hold"]).lower()


def test_account_password_policy_is_the_policies(deployed: Deployed) -> None:
    want = deployed.tfvars["password_policy"]
    got = aws.client("iam").get_account_password_policy()["PasswordPolicy"]
    assert got["MinimumPasswordLength"] == want["minimum_length"]
    assert got["RequireLowercaseCharacters"] == want["require_lowercase"]
    assert got["RequireUppercaseCharacters"] == want["require_uppercase"]
    assert got["RequireNumbers"] == want["require_numbers"]
    assert got["RequireSymbols"] == want["require_symbols"]
    assert got["PasswordReusePrevention"] == want["reuse_prevention"]
    # max_age_days 0: no forced periodic change (CNIL 2022).
    assert want["max_age_days"] == 0 and got.get("ExpirePasswords") is False
    assert got.get("MaxPasswordAge", 0) == 0


def test_mfa_policy_is_attached_to_every_human_group(deployed: Deployed) -> None:
    iam = aws.client("iam")
    mfa_arn = deployed.outputs["mfa_policy_arn"]
    groups = deployed.outputs["human_groups"]
    # Two groups whatever the elections (aws-readiness N3): no group per election.
    assert set(groups) == {"people", "admins"}
    assert "group" not in next(iter(deployed.outputs["elections"].values()))
    for name in groups.values():
        attached = iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]
        assert mfa_arn in [a["PolicyArn"] for a in attached], name
    # Every person is in the people group, so no human escapes the MFA rule.
    members = iam.get_group(GroupName=groups["people"])["Users"]
    assert sorted(u["UserName"] for u in members) == sorted(deployed.tfvars["people"])


def test_second_plan_shows_no_change(deployed: Deployed) -> None:
    code, summary = deployed.tf.plan(deployed.var_files, deployed.workdir / "again.tfplan")
    assert (code, summary.changed) == (0, False), summary.addresses


def _all_versions(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, str, bool]]:
    """(key, version id, is delete marker) of every version under prefix."""
    got = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [(v["Key"], v["VersionId"], False) for v in got.get("Versions", [])] + [
        (m["Key"], m["VersionId"], True) for m in got.get("DeleteMarkers", [])
    ]


def test_lifecycle_run_at_its_dates_expires_campaign_data_only(deployed: Deployed) -> None:
    """The rules Terraform created, executed with S3's semantics (tests/plugins/lifecycle.py):
    on the due day (the agent's turn) only the permanent file's old version is gone
    (non-current for more than 7 days), the campaign prefixes are expired at the
    backstop date and gone a week later, the permanent dataset's current version stays.
    moto applies bucket policies without their conditions (docs/infra.md), so the
    policy is lifted while objects are seeded and put back as it was."""
    e = _elections(deployed)["exempleville-2027"]
    bucket, s3 = e["bucket_name"], aws.client("s3", e["region"])
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    try:
        keys = ["prospects/contacts.csv", "porte-a-porte/tournee.csv", "benevoles/liste.csv"]
        # the permanent file's first version, then its current one (an erasure's rewrite)
        s3.put_object(Bucket=bucket, Key=keys[2], Body=b"id;consentement\n1;oui\n2;oui\n")
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=b"id;consentement\n1;oui\n")
        due = datetime.combine(date.fromisoformat(e["retention_date"]), time(0), tzinfo=UTC)
        backstop = due + timedelta(days=BACKSTOP_DAYS)
        lifecycle = Executor(s3, bucket)

        on_due_day = lifecycle.run(due + timedelta(hours=23))
        assert on_due_day.delete_markers_added == []
        # only the permanent file's old version (noncurrent-versions, 7 days)
        assert [k for k, _ in on_due_day.versions_deleted] == [keys[2]]
        expired = lifecycle.run(backstop)
        assert sorted(expired.delete_markers_added) == sorted(keys[:2])
        lifecycle.run(backstop + timedelta(days=8))  # non-current versions: 7 days
        lifecycle.run(backstop + timedelta(days=9))  # lone delete markers (housekeeping)

        assert _all_versions(s3, bucket, "prospects/") == []
        assert _all_versions(s3, bucket, "porte-a-porte/") == []
        kept = _all_versions(s3, bucket, "benevoles/")
        assert [(k, marker) for k, _, marker in kept] == [("benevoles/liste.csv", False)]
        body = s3.get_object(Bucket=bucket, Key="benevoles/liste.csv")["Body"].read()
        assert body == b"id;consentement\n1;oui\n"
    finally:
        for key, version, _ in _all_versions(s3, bucket):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)


ADMINISTRATOR = [json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]})]  # fmt: skip


def _bucket_policies(d: Deployed) -> dict[str, tuple[str, str]]:
    """election id -> (bucket ARN, its policy as the API returns it)."""
    return {
        election_id: (
            f"arn:aws:s3:::{e['bucket_name']}",
            aws.client("s3", e["region"]).get_bucket_policy(Bucket=e["bucket_name"])["Policy"],
        )
        for election_id, e in _elections(d).items()
    }


def test_a_second_declared_deployer_can_refresh_and_an_undeclared_one_cannot(
    deployed: Deployed,
) -> None:
    """aws-readiness N6: the principals declared in the policies (aws.deployer_principals),
    not whoever ran the last apply, may refresh. Terraform's refresh of a bucket
    starts with HeadBucket, authorised as s3:ListBucket; evaluated with the
    project's evaluator on the bucket policies the emulator holds."""
    declared = sorted([SECOND_DEPLOYER, SSO_DEPLOYERS])
    assert deployed.tfvars["deployer_principal_arns"] == declared
    # the declared principals, not whoever ran this apply
    assert deployed.outputs["admin_principal_arns"] == sorted([*declared, BREAK_GLASS])
    reprovisioned = SSO_DEPLOYERS.replace("_*", "_0123456789abcdef")
    undeclared = [
        "arn:aws:iam::123456789012:role/another-admin",
        # the SSO wildcard is one permission set's, not every set's
        SSO_DEPLOYERS.replace("IsoloirDeploy_*", "AdministratorAccess_0123456789abcdef"),
    ]
    tls = {"aws:SecureTransport": "true"}
    for election_id, (bucket, policy) in _bucket_policies(deployed).items():
        for who in (SECOND_DEPLOYER, reprovisioned, BREAK_GLASS):
            head = Request(who, "s3:ListBucket", bucket, tls)
            got = evaluate(head, ADMINISTRATOR, policy)
            assert got.decision is Decision.ALLOW, (election_id, who, got)
        outsider = aws.client("iam").get_user(UserName="ptest")["User"]["Arn"]
        others = undeclared + (
            [] if "ptest" in _elections(deployed)[election_id]["members"] else [outsider]
        )
        for who in others:
            got = evaluate(Request(who, "s3:ListBucket", bucket, tls), ADMINISTRATOR, policy)
            assert got.decision is Decision.EXPLICIT_DENY, (election_id, who)
            assert got.reasons == ("resource:DenyAnyoneButElectionAgentAndAdmins",)


@pytest.mark.parametrize(
    "action",
    ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
     "s3:DeleteObjectVersion", "s3:RestoreObject"],
)  # fmt: skip
def test_admin_principals_never_touch_an_elections_objects(deployed: Deployed, action: str) -> None:
    """aws-readiness N10: the deployers and break-glass roles list the bucket and
    manage its policy, but its objects stay denied to them (even with
    AdministratorAccess); the agents' role keeps them."""
    agent = deployed.outputs["agent_role_arn"]
    for election_id, (bucket, policy) in _bucket_policies(deployed).items():
        due = _elections(deployed)[election_id]["retention_date"]
        ctx = {"aws:SecureTransport": "true", "aws:CurrentTime": f"{due}T00:00:00Z"}
        obj = f"{bucket}/prospects/fichier.csv"
        for who in (SECOND_DEPLOYER, BREAK_GLASS):
            got = evaluate(Request(who, action, obj, ctx), ADMINISTRATOR, policy)
            assert got.decision is Decision.EXPLICIT_DENY, (election_id, who, action)
            assert got.reasons == ("resource:DenyDataToAdmins",)
            for manage in ("s3:PutBucketPolicy", "s3:GetBucketPolicy"):
                managed = evaluate(Request(who, manage, bucket, ctx), ADMINISTRATOR, policy)
                assert managed.decision is Decision.ALLOW, (election_id, who, manage)
        # the agent is not denied by the bucket policy from the retention date on
        got = evaluate(Request(agent, action, obj, ctx), ADMINISTRATOR, policy)
        assert got.decision is Decision.ALLOW, (election_id, action)
        # ... and before it, only its deletions are (aws-readiness N11)
        second_before = datetime.combine(date.fromisoformat(due), time(0), tzinfo=UTC)
        second_before -= timedelta(seconds=1)
        before = {**ctx, "aws:CurrentTime": second_before.strftime("%Y-%m-%dT%H:%M:%SZ")}
        got = evaluate(Request(agent, action, obj, before), ADMINISTRATOR, policy)
        if action.startswith("s3:Delete"):
            assert got.reasons == ("resource:DenyAgentDeletionBeforeRetention",), action
        else:
            assert got.decision is Decision.ALLOW, (election_id, action)


def test_adding_and_archiving_elections_touch_only_their_resources(deployed: Deployed) -> None:
    """One plan adds an election and archives another: every create belongs to
    the new one, every destroy to the archived one, nothing else changes."""
    data = copy.deepcopy(deployed.tfvars)
    new_id = "nouvelleville-2028"
    data["elections"][new_id] = {
        "label": "Municipale fictive de Nouvelleville 2028",
        "region": "eu-central-1",
        "bucket_name": f"{data['org_slug']}-{new_id}",
        "retention_date": "2028-06-30",
        "legal_hold": False,
        "members": ["dmodele"],
        "dataset_prefixes": ["prospects/"],
        "campaign_prefixes": ["prospects/"],
    }
    del data["elections"]["exempleville-2027"]
    files = [deployed.write_vars(data, "changed.tfvars.json"), *deployed.var_files[1:]]
    code, summary = deployed.tf.plan(files, deployed.workdir / "changed.tfplan", refresh=False)
    assert code == 2
    # No update: the agents' role and the people's policy do not name elections
    # (docs/infra.md, "The access model"); the account keeps its two groups.
    updated = [a for a, acts in summary.addresses.items() if acts == ("update",)]
    assert updated == [], updated
    assert not [a for a in summary.addresses if "account_baseline" in a], summary.addresses
    summary = dataclasses.replace(
        summary, addresses={a: x for a, x in summary.addresses.items() if a not in updated}
    )
    created = [a for a, acts in summary.addresses.items() if "create" in acts]
    destroyed = [a for a, acts in summary.addresses.items() if "delete" in acts]
    assert not set(created) & set(destroyed), "nothing is replaced"
    assert len(created) >= 10 and len(destroyed) >= 10
    assert all(new_id in a for a in created), created
    # eu-west-3 then holds no election, but its log bucket stays.
    assert all("exempleville-2027" in a for a in destroyed), destroyed
    assert not any(SECOND in a for a in summary.addresses)


def _request(user_arn: str, bucket: str, *, mfa: bool = True, tls: bool = True) -> Request:
    return Request(
        principal_arn=user_arn,
        action="s3:GetObject",
        resource=f"arn:aws:s3:::{bucket}/prospects/fichier.csv",
        context={
            "aws:SecureTransport": str(tls).lower(),
            "aws:MultiFactorAuthPresent": str(mfa).lower(),
            "aws:username": user_arn.rsplit("/", 1)[1],
        },
    )


def test_member_of_one_election_cannot_read_another_elections_bucket(deployed: Deployed) -> None:
    """Evaluated with isoloir.controller.infra.evaluate over the policies read back from the API."""
    iam = aws.client("iam")
    a_bucket = _elections(deployed)["exempleville-2027"]["bucket_name"]
    b_bucket = _elections(deployed)[SECOND]["bucket_name"]
    a_member = "dmodele"  # member of exempleville-2027 only
    assert a_member not in _elections(deployed)[SECOND]["members"]
    user_arn = iam.get_user(UserName=a_member)["User"]["Arn"]
    identity = identity_policies_of_user(iam, a_member)
    policy_a = aws.client("s3", "eu-west-3").get_bucket_policy(Bucket=a_bucket)["Policy"]
    policy_b = aws.client("s3", "eu-central-1").get_bucket_policy(Bucket=b_bucket)["Policy"]

    # Positive control: the same user, signed in with MFA over TLS, reads its own bucket.
    own = evaluate(_request(user_arn, a_bucket), identity, policy_a)
    assert own.decision is Decision.ALLOW, own

    other = evaluate(_request(user_arn, b_bucket), identity, policy_b)
    assert other.decision is Decision.EXPLICIT_DENY
    assert other.reasons == ("resource:DenyAnyoneButElectionAgentAndAdmins",)
    # The identity policies are the party's (constant size, aws-readiness N2):
    # the bucket policy, which names the members, is what keeps B's bucket.
    assert evaluate(_request(user_arn, b_bucket), identity, None).allowed
    # The same for the keys, with the key policies read back.
    kms_a, kms_b = aws.client("kms", "eu-west-3"), aws.client("kms", "eu-central-1")
    for client, election_id, allowed in (
        (kms_a, "exempleville-2027", True),
        (kms_b, SECOND, False),
    ):
        key = deployed.outputs["kms_key_arns"][election_id]
        key_policy = client.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
        ctx = {
            "aws:ResourceTag/isoloir:org": deployed.tfvars["org_slug"],
            "aws:ResourceTag/isoloir:election": election_id,
            "aws:MultiFactorAuthPresent": "true",
        }
        got = evaluate_key(Request(user_arn, "kms:Decrypt", key, ctx), identity, key_policy)
        if allowed:
            assert got.decision is Decision.ALLOW, got
        else:
            assert got.reasons == ("key:DenyKeyUseToAnyoneButElectionAndAgent",), got
    # And the guards hold on the member's own bucket too.
    assert not evaluate(_request(user_arn, a_bucket, mfa=False), identity, policy_a).allowed
    assert not evaluate(_request(user_arn, a_bucket, tls=False), identity, policy_a).allowed
