"""What the agents call is declared (so the role can be checked against it).

The exposure and retention agents' source is read for the AWS API calls it
makes (`client.get_bucket_acl(...)`, `get_paginator("list_object_versions")`);
each call is turned into the IAM action AWS authorises it by ("Required
permissions for Amazon S3 API operations",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html,
and the Service Authorization Reference for IAM, KMS and STS), and must be among
the permissions the agents declare: the checks' `permissions`, the fixes'
`remediate.PERMISSIONS` and the purge's "Permissions used". That the role
grants what is declared is tested twice: on the Terraform source
(`test_infra_agent_role.py`) and on the policy as applied, read back from the
emulator and enforced by it (`tests/integration/test_agents_iam.py`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import botocore.session
import pytest

from isoloir.dpo import erase
from isoloir.exposure import registry, remediate
from isoloir.retention import purge

AGENTS = Path(__file__).resolve().parents[2] / "agents" / "isoloir"
SOURCES = ("exposure", "retention", "dpo")
SERVICES = {"s3": "s3", "s3control": "s3", "iam": "iam", "kms": "kms", "sts": "sts"}
# The agents use S3 Control for the account-level public access block and the
# access points (its other operations are for S3 on Outposts, whose names clash
# with S3's bucket operations).
S3CONTROL_USED = {"GetPublicAccessBlock", "PutPublicAccessBlock", "DeletePublicAccessBlock",
                  "ListAccessPoints", "GetAccessPoint", "GetAccessPointPolicy",
                  "GetAccessPointPolicyStatus"}  # fmt: skip
# Operations whose IAM action is not the operation's name (service -> op -> actions).
RENAMED: dict[str, dict[str, tuple[str, ...]]] = {
    "s3": {
        "HeadBucket": ("s3:ListBucket",),
        "ListObjects": ("s3:ListBucket",),
        "ListObjectsV2": ("s3:ListBucket",),
        "ListObjectVersions": ("s3:ListBucketVersions",),
        "ListBuckets": ("s3:ListAllMyBuckets",),
        "HeadObject": ("s3:GetObject",),
        "GetBucketEncryption": ("s3:GetEncryptionConfiguration",),
        "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration",),
        "GetPublicAccessBlock": ("s3:GetBucketPublicAccessBlock",),
        "PutPublicAccessBlock": ("s3:PutBucketPublicAccessBlock",),
        # AWS checks a batch delete key by key: s3:DeleteObjectVersion for a key
        # given with its version id, s3:DeleteObject without. The purge always
        # names the version (it removes versions, it never adds delete markers).
        "DeleteObjects": ("s3:DeleteObjectVersion",),
    },
    "s3control": {
        "GetPublicAccessBlock": ("s3:GetAccountPublicAccessBlock",),
        "PutPublicAccessBlock": ("s3:PutAccountPublicAccessBlock",),
    },
}
# Allowed to every principal, granted or not (STS GetCallerIdentity).
NEEDS_NO_GRANT = {"sts:GetCallerIdentity"}


def _operations() -> dict[str, list[tuple[str, str]]]:
    """python method name -> [(service, operation)] over the agents' services."""
    session = botocore.session.get_session()
    names: dict[str, list[tuple[str, str]]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        for op in model.operation_names:
            if service == "s3control" and op not in S3CONTROL_USED:
                continue
            names.setdefault(botocore.xform_name(op), []).append((service, op))
    return names


def _iam_actions(service: str, op: str) -> tuple[str, ...]:
    return RENAMED.get(service, {}).get(op, (f"{SERVICES[service]}:{op}",))


def called_operations(sources: list[Path]) -> dict[str, set[str]]:
    """Method names of AWS operations called in `sources` -> the files calling them.

    A one-word name (`sign`, `verify`) is the agents' own code (Ed25519
    certificates), never an AWS call: every AWS operation they use has two words.
    """
    ops = _operations()
    found: dict[str, set[str]] = {}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
            if name in ops and "_" in name:
                found.setdefault(name, set()).add(path.name)
    return found


def required_actions(names: set[str]) -> set[str]:
    """IAM actions of the calls: a name several services have needs each one's."""
    ops = _operations()
    return {a for n in names for service, op in ops[n] for a in _iam_actions(service, op)}


def declared() -> set[str]:
    wanted = set(registry.permissions()) | set(remediate.PERMISSIONS)
    doc = (purge.__doc__ or "").split("Permissions used:")[1]
    wanted |= set(re.findall(r"(?:s3|kms|iam|sts):[A-Za-z]+", doc))
    wanted |= set(erase.PERMISSIONS)  # a person's erasure (rights requests)
    return {p for p in wanted if not p.startswith("host:")}


def _agent_sources() -> list[Path]:
    return sorted(p for d in SOURCES for p in (AGENTS / d).rglob("*.py"))


def test_every_aws_call_of_the_agents_is_declared() -> None:
    calls = called_operations(_agent_sources())
    missing = required_actions(set(calls)) - declared() - NEEDS_NO_GRANT
    where = {a: sorted(f for n, fs in calls.items() if a in required_actions({n}) for f in fs)
             for a in missing}  # fmt: skip
    assert not missing, f"called by the agents, not declared: {where}"


def test_the_calls_found_are_the_agents_real_ones() -> None:
    """The scan sees the scan's, the fixes' and the purge's calls (not an empty set)."""
    calls = set(called_operations(_agent_sources()))
    assert {"get_login_profile", "list_object_versions", "delete_objects"} <= calls
    assert {"schedule_key_deletion", "put_bucket_policy", "delete_bucket_policy"} <= calls
    assert "sign" not in calls  # the certificate's Ed25519 signature, not KMS Sign


def test_an_undeclared_call_is_caught(tmp_path: Path) -> None:
    extra = tmp_path / "extra.py"
    extra.write_text(
        "def f(c):\n    c.put_bucket_lifecycle_configuration(Bucket='b')\n"
        "    c.get_paginator('list_multipart_uploads')\n",
        encoding="utf-8",
    )
    calls = called_operations([*_agent_sources(), extra])
    missing = required_actions(set(calls)) - declared() - NEEDS_NO_GRANT
    assert missing == {"s3:PutBucketLifecycleConfiguration", "s3:ListMultipartUploads"}


@pytest.mark.parametrize(
    ("name", "actions"),
    [
        ("get_public_access_block", {"s3:GetBucketPublicAccessBlock",
                                     "s3:GetAccountPublicAccessBlock"}),
        ("delete_objects", {"s3:DeleteObjectVersion"}),
        ("list_buckets", {"s3:ListAllMyBuckets"}),
        ("describe_key", {"kms:DescribeKey"}),
    ],
)  # fmt: skip
def test_operation_to_iam_action(name: str, actions: set[str]) -> None:
    assert required_actions({name}) == actions


def test_the_emulator_checks_s3_requests_by_their_iam_action() -> None:
    """Under enforcement the emulator asks for the same actions as this table."""
    from isoloir.controller.emulator_server import s3_checks

    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a/b.csv</Key>'
        b"<VersionId>v1</VersionId></Object><Object><Key>c</Key></Object></Delete>"
    )
    assert s3_checks("POST", "/bkt?delete", body) == [
        ("s3:DeleteObjectVersion", "arn:aws:s3:::bkt/a/b.csv"),
        ("s3:DeleteObject", "arn:aws:s3:::bkt/c"),
    ]
    assert s3_checks("PUT", "/bkt?publicAccessBlock", b"") == [
        ("s3:PutBucketPublicAccessBlock", "arn:aws:s3:::bkt")
    ]
    account = "/v20180820/configuration/publicAccessBlock"
    assert s3_checks("PUT", account, b"") == [("s3:PutAccountPublicAccessBlock", "*")]
    assert s3_checks("GET", "/v20180820/accesspoint", b"") == [("s3:ListAccessPoints", "*")]
    assert s3_checks("GET", "/v20180820/accesspoint/ap", b"") == [("s3:GetAccessPoint", "*")]
    assert s3_checks("HEAD", "/bkt", b"") == [("s3:ListBucket", "arn:aws:s3:::bkt")]
    assert s3_checks("GET", "/bkt?versions&prefix=p%2F", b"") == [
        ("s3:ListBucketVersions", "arn:aws:s3:::bkt")
    ]
    assert s3_checks("GET", "/bkt/k%20x?versionId=3", b"") == [
        ("s3:GetObjectVersion", "arn:aws:s3:::bkt/k x")
    ]
    assert s3_checks("GET", "/", b"") == [("s3:ListAllMyBuckets", "*")]
