"""The access model's sizes, computed from the policies before any apply.

Each election's bucket policy and key policy name its members (Terraform:
infra/modules/election_policies); the identity policies of the people and of
the agents' role have one size whatever the number of elections
(infra/modules/identity_policies). This module builds the two per-election
documents exactly as the Terraform module renders them (`jsonencode`: keys
sorted, no white space; tests/unit/test_access_quotas.py compares both
byte for byte) so that `isoloir policy validate` refuses an election whose
policy AWS would refuse at apply time, and nothing else.

Limits (docs/infra.md, "The access model", cites each one):
S3 User Guide, "Bucket policies and user policies": a bucket policy is
limited to 20 KB; KMS Developer Guide, "Key policy format": up to
32 kilobytes (32,768 bytes); IAM User Guide, "IAM and AWS STS quotas":
managed policies 6,144 characters, a role's inline policies 10,240 in all,
a group's 5,120, white space not counted; 10 groups per user, 300 groups per
account by default (500 at most), 5,000 users per account, 10 managed
policies attached per group or role by default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

S3_BUCKET_POLICY_MAX = 20 * 1024  # bytes
KMS_KEY_POLICY_MAX = 32 * 1024  # bytes
IAM_MANAGED_POLICY_MAX = 6144  # characters, white space not counted
IAM_ROLE_INLINE_MAX = 10240  # all inline policies of a role together
IAM_GROUP_INLINE_MAX = 5120
IAM_USERS_PER_ACCOUNT = 5000
IAM_GROUPS_PER_USER = 10
IAM_GROUPS_DEFAULT_QUOTA = 300
IAM_MANAGED_POLICIES_PER_GROUP = 10
IAM_MANAGED_POLICIES_PER_ROLE = 10

# What validation cannot know before the account exists: the account id (12
# digits), the key id (a UUID, 36 characters). Same lengths as the real ones.
PLACEHOLDER_ACCOUNT = "000000000000"
PLACEHOLDER_KEY_ID = "00000000-0000-0000-0000-000000000000"
# On the emulator an empty deployer list means the plan's own principal
# (infra/main.tf): counted as one role ARN of this length.
PLACEHOLDER_DEPLOYER = (
    f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/isoloir-deploy-placeholder-principal"
)

OBJECT_ACTIONS = [
    "s3:AbortMultipartUpload",
    "s3:DeleteObject*",
    "s3:GetObject*",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutObject*",
    "s3:RestoreObject",
]


def rendered(document: Mapping[str, Any]) -> str:
    """The JSON Terraform's jsonencode() writes: keys sorted, no white space."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def size(document: Mapping[str, Any] | str) -> int:
    """Bytes of the document as sent (ASCII: bytes = characters)."""
    text = document if isinstance(document, str) else rendered(document)
    return len(text.encode("utf-8"))


def _agent_before_due(agent_role_arn: str, retention_date: str, legal_hold: bool) -> dict[str, Any]:
    condition: dict[str, Any] = {"ArnLike": {"aws:PrincipalArn": [agent_role_arn]}}
    if not legal_hold:
        condition["DateLessThan"] = {"aws:CurrentTime": f"{retention_date}T00:00:00Z"}
    return condition


def _sorted(values: Iterable[str]) -> list[str]:
    return sorted(dict.fromkeys(values))


def bucket_policy(
    *,
    bucket_arn: str,
    kms_key_arn: str,
    kms_key_id: str,
    kms_alias_name: str,
    kms_alias_arn: str,
    member_arns: Iterable[str],
    agent_role_arn: str,
    admin_principal_arns: Iterable[str],
    retention_date: str,
    legal_hold: bool,
) -> dict[str, Any]:
    """infra/modules/election_policies, local.bucket."""
    objects = f"{bucket_arn}/*"
    members, admins = _sorted(member_arns), _sorted(admin_principal_arns)
    everyone = {"AWS": "*"}
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": everyone,
            "Action": "s3:*",
            "Resource": [bucket_arn, objects],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyPutsNotSseKms",
            "Effect": "Deny",
            "Principal": everyone,
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"},
            },
        },
        {
            "Sid": "DenyPutsWithAnotherKey",
            "Effect": "Deny",
            "Principal": everyone,
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {
                "StringNotEquals": {
                    "s3:x-amz-server-side-encryption-aws-kms-key-id": [
                        kms_key_arn,
                        kms_key_id,
                        kms_alias_name,
                        kms_alias_arn,
                    ]
                },
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
            },
        },
        {
            "Sid": "DenyAnyoneButElectionAgentAndAdmins",
            "Effect": "Deny",
            "Principal": everyone,
            "Action": [*OBJECT_ACTIONS, "s3:ListBucket"],
            "Resource": [bucket_arn, objects],
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": [*members, agent_role_arn, *admins]}},
        },
    ]
    if admins:
        statements.append(
            {
                "Sid": "DenyDataToAdmins",
                "Effect": "Deny",
                "Principal": everyone,
                "Action": OBJECT_ACTIONS,
                "Resource": [bucket_arn, objects],
                "Condition": {"ArnLike": {"aws:PrincipalArn": admins}},
            }
        )
    statements += [
        {
            "Sid": "DenyAgentDeletionUnderLegalHold"
            if legal_hold
            else "DenyAgentDeletionBeforeRetention",
            "Effect": "Deny",
            "Principal": everyone,
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": objects,
            "Condition": _agent_before_due(agent_role_arn, retention_date, legal_hold),
        },
        {
            "Sid": "DenyAgentPolicyChange",
            "Effect": "Deny",
            "Principal": everyone,
            "Action": ["s3:DeleteBucketPolicy", "s3:PutBucketPolicy"],
            "Resource": bucket_arn,
            "Condition": {"ArnLike": {"aws:PrincipalArn": [agent_role_arn]}},
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def key_policy(
    *,
    account_id: str,
    member_arns: Iterable[str],
    agent_role_arn: str,
    retention_date: str,
    legal_hold: bool,
    partition: str = "aws",
) -> dict[str, Any]:
    """infra/modules/election_policies, local.key."""
    everyone = {"AWS": "*"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountIamDelegation",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "DenyKeyUseToAnyoneButElectionAndAgent",
                "Effect": "Deny",
                "Principal": everyone,
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
                "Resource": "*",
                "Condition": {
                    "ArnNotLike": {"aws:PrincipalArn": [*_sorted(member_arns), agent_role_arn]}
                },
            },
            {
                "Sid": "DenyAgentShreddingUnderLegalHold"
                if legal_hold
                else "DenyAgentShreddingBeforeRetention",
                "Effect": "Deny",
                "Principal": everyone,
                "Action": "kms:ScheduleKeyDeletion",
                "Resource": "*",
                "Condition": _agent_before_due(agent_role_arn, retention_date, legal_hold),
            },
        ],
    }


def user_arn(person_id: str, account_id: str = PLACEHOLDER_ACCOUNT) -> str:
    """infra/modules/account_baseline: users live under the path /isoloir/."""
    return f"arn:aws:iam::{account_id}:user/isoloir/{person_id}"


def agent_role_arn(slug: str, account_id: str = PLACEHOLDER_ACCOUNT) -> str:
    return f"arn:aws:iam::{account_id}:role/isoloir/isoloir-{slug}-agent"


def election_documents(
    *,
    slug: str,
    election_id: str,
    region: str,
    bucket_name: str,
    members: Iterable[str],
    admin_principal_arns: Iterable[str],
    retention_date: str,
    legal_hold: bool,
    account_id: str = PLACEHOLDER_ACCOUNT,
    key_id: str = PLACEHOLDER_KEY_ID,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bucket policy, key policy) of one election, as Terraform will write them."""
    agent = agent_role_arn(slug, account_id)
    admins = list(admin_principal_arns) or [PLACEHOLDER_DEPLOYER]
    member_arns = [user_arn(m, account_id) for m in members]
    alias = f"alias/isoloir/{election_id}"
    bucket = bucket_policy(
        bucket_arn=f"arn:aws:s3:::{bucket_name}",
        kms_key_arn=f"arn:aws:kms:{region}:{account_id}:key/{key_id}",
        kms_key_id=key_id,
        kms_alias_name=alias,
        kms_alias_arn=f"arn:aws:kms:{region}:{account_id}:{alias}",
        member_arns=member_arns,
        agent_role_arn=agent,
        admin_principal_arns=admins,
        retention_date=retention_date,
        legal_hold=legal_hold,
    )
    key = key_policy(
        account_id=account_id,
        member_arns=member_arns,
        agent_role_arn=agent,
        retention_date=retention_date,
        legal_hold=legal_hold,
    )
    return bucket, key


__all__ = [
    "IAM_GROUPS_DEFAULT_QUOTA",
    "IAM_GROUPS_PER_USER",
    "IAM_GROUP_INLINE_MAX",
    "IAM_MANAGED_POLICIES_PER_GROUP",
    "IAM_MANAGED_POLICIES_PER_ROLE",
    "IAM_MANAGED_POLICY_MAX",
    "IAM_ROLE_INLINE_MAX",
    "IAM_USERS_PER_ACCOUNT",
    "KMS_KEY_POLICY_MAX",
    "S3_BUCKET_POLICY_MAX",
    "agent_role_arn",
    "bucket_policy",
    "election_documents",
    "key_policy",
    "rendered",
    "size",
    "user_arn",
]
