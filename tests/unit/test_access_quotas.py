"""National scale (issue 21): 577 elections and 3,000 people in one account fit
AWS's quotas, and the access model is proven with the evaluator.

The policies are built and validated as `isoloir policy validate` does, rendered
into the Terraform variables as `isoloir policy render` does, and the access
model's documents are rendered by the real Terraform modules
(infra/modules/identity_policies and election_policies: no provider, no
resource, nothing applied). Every document's size and every IAM count is then
compared with AWS's documented limits (isoloir.policy.access, docs/infra.md
"The access model"), and the rendered documents are evaluated with
isoloir.controller.infra.evaluate: a member of one election cannot read
another's objects or use its key; the agents' role cannot delete objects or
versions, change the bucket policy or schedule the key's deletion before the
retention date (never under a legal hold), and can from that date on.

moto does not enforce any of this (conditional bucket-policy statements are left
out of its evaluation, key policies are not evaluated: docs/infra.md), which is
why the proof is made here on the documents Terraform writes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from isoloir.controller.infra.evaluate import Decision, Request, evaluate, evaluate_key
from isoloir.policy import access, load_policies
from isoloir.policy import model as m
from isoloir.policy.render import terraform_vars

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "infra" / "modules"
ACCOUNT = access.PLACEHOLDER_ACCOUNT
KEY_ID = access.PLACEHOLDER_KEY_ID
ELECTIONS = 577
PEOPLE = 3000
BIG = 150  # members of the largest election (a large city's municipal campaign)
DEPLOYERS = [
    f"arn:aws:iam::{ACCOUNT}:role/isoloir-deploy",
    f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-3/"
    "AWSReservedSSO_IsoloirDeploy_*",
]
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/isoloir-break-glass"


def _person_id(i: int) -> str:
    # 31 characters, the longest id the schema accepts: the worst case for sizes.
    return f"m{i:05d}".ljust(31, "x")


def _national_policies(root: Path) -> Path:
    """The example policies with 3,000 people, 577 elections (576 legislative
    constituencies besides the example's; some under legal hold) and the aws:
    section naming two deployers and a break-glass role."""
    shutil.copytree(REPO / "policies", root, symlinks=True)
    base = root / "baseline.yml"
    text = base.read_text(encoding="utf-8")
    people = "".join(
        f"  - id: {_person_id(i)}\n    name: Personne {i}\n"
        f"    email: p{i}@mouvement-exemple.example\n"
        for i in range(PEOPLE - 4)  # the example holds 4
    )
    assert text.count("people:\n") == 1
    text = text.replace("people:\n", "people:\n" + people)
    text += (
        "\naws:\n  deployer_principals:\n"
        + "".join(f"    - {d}\n" for d in DEPLOYERS)
        + f"  break_glass_roles: [{BREAK_GLASS}]\n"
    )
    base.write_text(text, encoding="utf-8")
    example = (root / "elections" / "exempleville-2027.yml").read_text(encoding="utf-8")
    assert example.count("members: [cfictive, dmodele]") == 1
    assert example.count('legal_hold:\n  active: false\n  reason: ""') == 1
    per = (PEOPLE - 4) // (ELECTIONS - 1)
    for n in range(ELECTIONS - 1):
        eid = f"legislatives-2027-circo-{n:03d}"
        count = BIG if n == 0 else per
        members = [_person_id((n * per + k) % (PEOPLE - 4)) for k in range(count)]
        body = example.replace("id: exempleville-2027", f"id: {eid}")
        body = body.replace("members: [cfictive, dmodele]", f"members: [{', '.join(members)}]")
        if n % 50 == 7:  # a few constituencies under a legal hold (a contested result)
            body = body.replace(
                'legal_hold:\n  active: false\n  reason: ""',
                "legal_hold:\n  active: true\n  reason: recours devant le Conseil constitutionnel",
            )
        (root / "elections" / f"{eid}.yml").write_text(body, encoding="utf-8")
    return root


ROOT_TF = """
variable "org_slug" { type = string }
variable "elections" { type = any }

module "identity" {
  source     = "%(modules)s/identity_policies"
  org_slug   = var.org_slug
  account_id = "%(account)s"
}

module "election" {
  source   = "%(modules)s/election_policies"
  for_each = var.elections

  bucket_arn           = "arn:aws:s3:::${each.value.bucket_name}"
  kms_key_arn          = "arn:aws:kms:${each.value.region}:%(account)s:key/%(key)s"
  kms_key_id           = "%(key)s"
  kms_alias_name       = "alias/isoloir/${each.key}"
  kms_alias_arn        = "arn:aws:kms:${each.value.region}:%(account)s:alias/isoloir/${each.key}"
  member_arns          = each.value.member_arns
  agent_role_arn       = each.value.agent_role_arn
  admin_principal_arns = each.value.admin_principal_arns
  retention_date       = each.value.retention_date
  legal_hold           = each.value.legal_hold
  account_id           = "%(account)s"
}

output "identity" { value = module.identity }
output "elections" { value = module.election }
"""


def _terraform(workdir: Path, *args: str) -> str:
    terraform = shutil.which("terraform")
    assert terraform, "the terraform CLI is needed (make setup, docs/infra.md)"
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    done = subprocess.run(
        [terraform, *args], cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@dataclass
class National:
    policies: m.Policies
    tfvars: dict[str, Any]
    identity: dict[str, str]
    buckets: dict[str, str]
    keys: dict[str, str]


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> National:
    work = tmp_path_factory.mktemp("national")
    policies = load_policies(_national_policies(work / "policies"))  # validates
    tfvars = terraform_vars(policies)
    slug = tfvars["org_slug"]
    # As infra/main.tf wires them.
    admins = sorted(set(tfvars["deployer_principal_arns"] + tfvars["break_glass_role_arns"]))
    elections = {
        eid: {
            "bucket_name": e["bucket_name"],
            "region": e["region"],
            "member_arns": [access.user_arn(x) for x in sorted(e["members"])],
            "agent_role_arn": access.agent_role_arn(slug),
            "admin_principal_arns": admins,
            "retention_date": e["retention_date"],
            "legal_hold": e["legal_hold"],
        }
        for eid, e in tfvars["elections"].items()
    }
    root = work / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        ROOT_TF % {"modules": MODULES, "account": ACCOUNT, "key": KEY_ID}, encoding="utf-8"
    )
    (root / "vars.tfvars.json").write_text(
        json.dumps({"org_slug": slug, "elections": elections}), encoding="utf-8"
    )
    _terraform(root, "init", "-input=false", "-no-color")
    _terraform(
        root, "apply", "-auto-approve", "-input=false", "-no-color", "-var-file=vars.tfvars.json"
    )
    out = json.loads(_terraform(root, "output", "-json", "-no-color"))
    rendered = out["elections"]["value"]
    return National(
        policies=policies,
        tfvars=tfvars,
        identity=out["identity"]["value"],
        buckets={k: v["bucket"] for k, v in rendered.items()},
        keys={k: v["key"] for k, v in rendered.items()},
    )


def _chars(document: str) -> int:
    """IAM counts characters without white space (IAM and AWS STS quotas)."""
    return len(re.sub(r"\s", "", document))


# ------------------------------------------------------------ quotas


def test_the_national_policies_validate(national: National) -> None:
    p = national.policies
    assert len(p.elections) == ELECTIONS and len(p.baseline.people) == PEOPLE
    assert max(len(e.members) for e in p.elections) == BIG
    assert sum(e.legal_hold for e in p.elections) >= 10


def test_validation_computes_the_sizes_terraform_renders(national: National) -> None:
    """isoloir.policy.access builds the same bytes as the Terraform module, so
    `policy validate` refuses exactly what S3 and KMS would refuse."""
    p = national.policies
    assert set(national.buckets) == {e.id for e in p.elections}
    for e in p.elections:
        bucket, key = access.election_documents(
            slug=p.baseline.organisation.slug,
            election_id=e.id,
            region=e.region,
            bucket_name=e.bucket_name,
            members=e.members,
            admin_principal_arns=[*p.baseline.deployer_principals, *p.baseline.break_glass_roles],
            retention_date=e.retention_due.isoformat(),
            legal_hold=e.legal_hold,
        )
        assert access.rendered(bucket) == national.buckets[e.id], e.id
        assert access.rendered(key) == national.keys[e.id], e.id


def test_every_resource_policy_fits_at_577_elections(national: National) -> None:
    biggest_bucket = max(access.size(d) for d in national.buckets.values())
    biggest_key = max(access.size(d) for d in national.keys.values())
    assert biggest_bucket <= access.S3_BUCKET_POLICY_MAX, biggest_bucket
    assert biggest_key <= access.KMS_KEY_POLICY_MAX, biggest_key
    # The 150-member election is the largest; a 6-member one is small.
    assert biggest_bucket == max(
        access.size(national.buckets[e.id])
        for e in national.policies.elections
        if len(e.members) == BIG
    )
    print(f"largest bucket policy {biggest_bucket} bytes, largest key policy {biggest_key} bytes")


def test_identity_policies_fit_and_do_not_grow(national: National) -> None:
    ident = national.identity
    assert _chars(ident["agent"]) <= access.IAM_ROLE_INLINE_MAX  # the role's one inline policy
    assert _chars(ident["people_data"]) <= access.IAM_MANAGED_POLICY_MAX
    assert _chars(ident["mfa_required"]) <= access.IAM_MANAGED_POLICY_MAX
    # Nothing per election or per person reaches them: their only inputs.
    declared = (MODULES / "identity_policies" / "variables.tf").read_text(encoding="utf-8")
    assert re.findall(r'^variable "(\w+)"', declared, re.MULTILINE) == [
        "org_slug",
        "account_id",
        "partition",
    ]
    for eid in list(national.buckets)[:3]:
        assert eid not in ident["agent"]
    # the figures docs/infra.md's quota table gives
    table = (REPO / "docs" / "infra.md").read_text(encoding="utf-8")
    assert f"agents' role: {_chars(ident['agent']):,}, one inline policy" in table
    assert f"people's data policy {_chars(ident['people_data']):,}, MFA policy " in table
    print(
        f"agents' role {_chars(ident['agent'])} characters, people's data policy "
        f"{_chars(ident['people_data'])}, MFA policy {_chars(ident['mfa_required'])}"
    )


def _resources(module: str) -> str:
    return (MODULES / module / "main.tf").read_text(encoding="utf-8")


def test_iam_counts_are_constant(national: National) -> None:
    """Counted from infra/modules/account_baseline: what IAM holds per account,
    per user, per group and per role, against IAM's quotas."""
    text = _resources("account_baseline")
    assert "for_each = var.elections" not in text and "var.elections" not in text
    groups = re.findall(r'^resource "aws_iam_group" "(\w+)"', text, re.MULTILINE)
    assert sorted(groups) == ["admins", "people"]
    assert len(groups) <= access.IAM_GROUPS_DEFAULT_QUOTA
    per_user = max(
        1 + int(x.admin) for x in national.policies.baseline.people
    )  # people, and admins for an administrator
    assert per_user <= 2 <= access.IAM_GROUPS_PER_USER
    assert len(national.policies.baseline.people) <= access.IAM_USERS_PER_ACCOUNT
    attachments = re.findall(
        r'resource "aws_iam_group_policy_attachment" "\w+" \{\s*'
        r"group\s*=\s*aws_iam_group\.(\w+)\.name",
        text,
    )
    assert sorted(attachments) == ["admins", "people", "people"]
    assert max(attachments.count(g) for g in groups) <= access.IAM_MANAGED_POLICIES_PER_GROUP
    assert text.count('resource "aws_iam_role_policy" ') == 1  # inline: 10,240 in all
    assert 'resource "aws_iam_role_policy_attachment"' not in text
    assert text.count('resource "aws_iam_policy" ') == 2
    assert 'resource "aws_iam_group_policy" ' not in text  # no group inline policy
    assert "aws_iam_role_policy" not in _resources("election_storage")


# ------------------------------------------------------------ the evaluator's proofs


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _ctx(when: datetime, **extra: str) -> dict[str, str]:
    return {
        "aws:SecureTransport": "true",
        "aws:MultiFactorAuthPresent": "true",
        "aws:CurrentTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }


def _key_ctx(n: National, e: m.Election, when: datetime) -> dict[str, str]:
    return _ctx(
        when,
        **{
            "aws:ResourceTag/isoloir:org": n.tfvars["org_slug"],
            "aws:ResourceTag/isoloir:election": e.id,
        },
    )


def _pair(n: National) -> tuple[m.Election, m.Election, str]:
    """Two elections without a common member, and a member of the first."""
    a, b = (e for e in n.policies.elections if e.id.endswith(("circo-001", "circo-002")))
    member = next(x for x in a.members if x not in b.members)
    return a, b, member


def test_a_member_of_one_election_cannot_read_or_decrypt_another(national: National) -> None:
    n = national
    a, b, member = _pair(n)
    who = access.user_arn(member)
    people = [n.identity["people_data"], n.identity["mfa_required"]]
    now = datetime(2027, 6, 1, tzinfo=UTC)
    for election, allowed in ((a, True), (b, False)):
        obj = f"arn:aws:s3:::{election.bucket_name}/prospects/contacts.csv"
        got = evaluate(Request(who, "s3:GetObject", obj, _ctx(now)), people, n.buckets[election.id])
        listing = evaluate(
            Request(who, "s3:ListBucket", f"arn:aws:s3:::{election.bucket_name}", _ctx(now)),
            people,
            n.buckets[election.id],
        )
        key = f"arn:aws:kms:{election.region}:{ACCOUNT}:key/{KEY_ID}"
        decrypt = evaluate_key(
            Request(who, "kms:Decrypt", key, _key_ctx(n, election, now)),
            people,
            n.keys[election.id],
        )
        if allowed:
            assert got.allowed and listing.allowed and decrypt.allowed, (got, listing, decrypt)
        else:
            assert got.reasons == ("resource:DenyAnyoneButElectionAgentAndAdmins",)
            assert listing.reasons == ("resource:DenyAnyoneButElectionAgentAndAdmins",)
            assert decrypt.reasons == ("key:DenyKeyUseToAnyoneButElectionAndAgent",)
    # Without MFA, not even their own.
    own = f"arn:aws:s3:::{a.bucket_name}/prospects/contacts.csv"
    ctx = {**_ctx(now), "aws:MultiFactorAuthPresent": "false"}
    assert not evaluate(Request(who, "s3:GetObject", own, ctx), people, n.buckets[a.id]).allowed


def test_admins_list_and_manage_but_never_read(national: National) -> None:
    n = national
    a, _, _ = _pair(n)
    admin_identity = [
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    ]
    bucket = f"arn:aws:s3:::{a.bucket_name}"
    now = datetime(2027, 6, 1, tzinfo=UTC)
    sso = DEPLOYERS[1].replace("_*", "_0123456789abcdef")
    for who in (DEPLOYERS[0], sso, BREAK_GLASS):
        head = evaluate(
            Request(who, "s3:ListBucket", bucket, _ctx(now)), admin_identity, n.buckets[a.id]
        )
        assert head.allowed, (who, head)
        put = evaluate(
            Request(who, "s3:PutBucketPolicy", bucket, _ctx(now)), admin_identity, n.buckets[a.id]
        )
        assert put.allowed, who
        read = evaluate(
            Request(who, "s3:GetObject", f"{bucket}/prospects/x.csv", _ctx(now)),
            admin_identity,
            n.buckets[a.id],
        )
        assert read.reasons == ("resource:DenyDataToAdmins",), who


@pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion"])
def test_the_agents_cannot_delete_before_the_retention_date(
    national: National, action: str
) -> None:
    n = national
    agent = access.agent_role_arn(n.tfvars["org_slug"])
    role = [n.identity["agent"]]
    a, _, _ = _pair(n)
    assert not a.legal_hold
    obj = f"arn:aws:s3:::{a.bucket_name}/prospects/contacts.csv"
    due = _midnight(a.retention_due)
    for when, allowed in (
        (due - timedelta(days=400), False),
        (due - timedelta(seconds=1), False),
        (due, True),
        (due + timedelta(days=3), True),
    ):
        got = evaluate(Request(agent, action, obj, _ctx(when)), role, n.buckets[a.id])
        if allowed:
            assert got.decision is Decision.ALLOW, (when, got)
        else:
            assert got.reasons == ("resource:DenyAgentDeletionBeforeRetention",), (when, got)
    # and it cannot lift the date by rewriting or dropping the policy
    bucket = f"arn:aws:s3:::{a.bucket_name}"
    for change in ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy"):
        got = evaluate(Request(agent, change, bucket, _ctx(due)), role, n.buckets[a.id])
        assert got.reasons == ("resource:DenyAgentPolicyChange",), change


def test_the_agents_cannot_shred_a_key_before_the_retention_date(national: National) -> None:
    n = national
    agent = access.agent_role_arn(n.tfvars["org_slug"])
    role = [n.identity["agent"]]
    a, _, _ = _pair(n)
    key = f"arn:aws:kms:{a.region}:{ACCOUNT}:key/{KEY_ID}"
    due = _midnight(a.retention_due)
    before = evaluate_key(
        Request(agent, "kms:ScheduleKeyDeletion", key, _key_ctx(n, a, due - timedelta(seconds=1))),
        role,
        n.keys[a.id],
    )
    assert before.reasons == ("key:DenyAgentShreddingBeforeRetention",)
    after = evaluate_key(
        Request(agent, "kms:ScheduleKeyDeletion", key, _key_ctx(n, a, due)), role, n.keys[a.id]
    )
    assert after.decision is Decision.ALLOW, after
    # A host's volume key: no election tag, the default key policy (the account).
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    default = {
        "Statement": [{"Effect": "Allow", "Principal": root, "Action": "kms:*", "Resource": "*"}]
    }
    volume_ctx = _ctx(due, **{"aws:ResourceTag/isoloir:org": n.tfvars["org_slug"]})
    volume = evaluate_key(Request(agent, "kms:ScheduleKeyDeletion", key, volume_ctx), role, default)
    assert volume.decision is Decision.IMPLICIT_DENY


def test_under_a_legal_hold_the_agents_never_destroy(national: National) -> None:
    n = national
    agent = access.agent_role_arn(n.tfvars["org_slug"])
    role = [n.identity["agent"]]
    held = next(e for e in n.policies.elections if e.legal_hold)
    obj = f"arn:aws:s3:::{held.bucket_name}/prospects/contacts.csv"
    key = f"arn:aws:kms:{held.region}:{ACCOUNT}:key/{KEY_ID}"
    for years in (0, 1, 50):
        when = _midnight(held.retention_due) + timedelta(days=365 * years)
        got = evaluate(
            Request(agent, "s3:DeleteObjectVersion", obj, _ctx(when)), role, n.buckets[held.id]
        )
        assert got.reasons == ("resource:DenyAgentDeletionUnderLegalHold",)
        shred = evaluate_key(
            Request(agent, "kms:ScheduleKeyDeletion", key, _key_ctx(n, held, when)),
            role,
            n.keys[held.id],
        )
        assert shred.reasons == ("key:DenyAgentShreddingUnderLegalHold",)
    # Reading (the scan) is untouched.
    read = evaluate(
        Request(agent, "s3:GetObject", obj, _ctx(_midnight(held.retention_due))),
        role,
        n.buckets[held.id],
    )
    assert read.decision is Decision.ALLOW


def test_the_agents_never_write_the_access_logs_or_read_the_state(national: National) -> None:
    n = national
    slug = n.tfvars["org_slug"]
    agent = access.agent_role_arn(slug)
    role = [n.identity["agent"]]
    now = _ctx(datetime(2030, 1, 1, tzinfo=UTC))
    logs = f"arn:aws:s3:::{slug}-access-logs/s3/x/2027-01-01"
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject"):
        assert evaluate(Request(agent, action, logs, now), role, None).reasons == (
            "identity[0]:DenyLogsAndState",
        )
    assert evaluate(Request(agent, "s3:GetObject", logs, now), role, None).allowed
    state = f"arn:aws:s3:::{slug}-tfstate/isoloir/terraform.tfstate"
    assert evaluate(Request(agent, "s3:GetObject", state, now), role, None).reasons == (
        "identity[0]:DenyReadingState",
    )
    people = [n.identity["people_data"], n.identity["mfa_required"]]
    member = access.user_arn(_person_id(0))
    assert evaluate(Request(member, "s3:GetObject", logs, now), people, None).reasons == (
        "identity[0]:DenyLogsAndState",
    )
