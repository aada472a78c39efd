"""The policy evaluator used to prove segregation: AWS's rules on small policies."""

from __future__ import annotations

import json

import pytest

from isoloir.controller.infra.evaluate import (
    Decision,
    Request,
    UnsupportedPolicy,
    evaluate,
    evaluate_key,
)
from isoloir.controller.infra.runner import PlanSummary, find_provider_mirror, summarise_plan

USER_A = "arn:aws:iam::123456789012:user/isoloir/alice"
USER_B = "arn:aws:iam::123456789012:user/isoloir/bob"
BUCKET = "arn:aws:s3:::parti-ville-2027"

GROUP_A = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "UseOwnObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{BUCKET}/*",
        },
    ],
}
BUCKET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": [BUCKET, f"{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOthers",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["s3:GetObject*"],
            "Resource": [BUCKET, f"{BUCKET}/*"],
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": [USER_A]}},
        },
        {
            "Sid": "DenyOtherKey",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:PutObject",
            "Resource": f"{BUCKET}/*",
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k1"},
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
            },
        },
    ],
}
MFA = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyWithoutMfa",
            "Effect": "Deny",
            "NotAction": ["iam:ChangePassword"],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ],
}


def req(
    user: str,
    *,
    action: str = "s3:GetObject",
    tls: bool = True,
    mfa: bool | None = True,
    **extra: str,
) -> Request:
    ctx = {"aws:SecureTransport": str(tls).lower(), **extra}
    if mfa is not None:
        ctx["aws:MultiFactorAuthPresent"] = str(mfa).lower()
    return Request(user, action, f"{BUCKET}/f.csv", ctx)


def test_member_allowed_over_tls_with_mfa() -> None:
    result = evaluate(req(USER_A), [GROUP_A, MFA], BUCKET_POLICY)
    assert result.decision is Decision.ALLOW
    assert result.reasons == ("identity[0]:UseOwnObjects",)


def test_other_principal_is_explicitly_denied_by_the_bucket_policy() -> None:
    # Even if bob's own policies allowed it.
    result = evaluate(req(USER_B), [GROUP_A, MFA], BUCKET_POLICY)
    assert result.decision is Decision.EXPLICIT_DENY
    assert result.reasons == ("resource:DenyOthers",)


def test_no_allow_anywhere_is_an_implicit_deny() -> None:
    assert evaluate(req(USER_A), [MFA], None).decision is Decision.IMPLICIT_DENY


def test_plain_http_is_denied() -> None:
    result = evaluate(req(USER_A, tls=False), [GROUP_A], BUCKET_POLICY)
    assert result.reasons == ("resource:DenyInsecureTransport",)


@pytest.mark.parametrize("mfa", [False, None])
def test_without_mfa_everything_but_self_service_is_denied(mfa: bool | None) -> None:
    # BoolIfExists: a missing key (long-term access keys) counts as "no MFA".
    result = evaluate(req(USER_A, mfa=mfa), [GROUP_A, MFA], BUCKET_POLICY)
    assert result.reasons == ("identity[1]:DenyWithoutMfa",)
    change = evaluate(req(USER_A, action="iam:ChangePassword", mfa=mfa), [MFA], None)
    assert change.decision is Decision.IMPLICIT_DENY  # not denied, just not granted here


def test_negated_operator_is_true_when_the_key_is_missing() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:SourceVpc": "vpc-1"}},
            }
        ]
    }
    assert evaluate(req(USER_A), [GROUP_A, policy], None).decision is Decision.EXPLICIT_DENY


def test_put_with_another_key_is_denied_but_default_encryption_is_not() -> None:
    allow_put = {
        "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{BUCKET}/*"}]
    }
    other = req(
        USER_A, action="s3:PutObject", **{"s3:x-amz-server-side-encryption-aws-kms-key-id": "k2"}
    )
    assert evaluate(other, [allow_put], BUCKET_POLICY).reasons == ("resource:DenyOtherKey",)
    default = req(USER_A, action="s3:PutObject")
    assert evaluate(default, [allow_put], BUCKET_POLICY).decision is Decision.ALLOW


def test_unknown_operator_is_refused_rather_than_guessed() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            }
        ]
    }
    with pytest.raises(UnsupportedPolicy):
        evaluate(req(USER_A), [json.dumps(policy)], None)


def test_plan_summary_counts_replacements_as_add_and_destroy() -> None:
    plan = {
        "resource_changes": [
            {"address": "a.x", "mode": "managed", "change": {"actions": ["create"]}},
            {"address": "a.y", "mode": "managed", "change": {"actions": ["update"]}},
            {"address": "a.z", "mode": "managed", "change": {"actions": ["delete", "create"]}},
            {"address": "a.n", "mode": "managed", "change": {"actions": ["no-op"]}},
            {"address": "data.d", "mode": "data", "change": {"actions": ["read"]}},
        ]
    }
    summary = summarise_plan(plan)
    assert (summary.add, summary.change, summary.destroy) == (2, 1, 1)
    assert summary.line() == "Plan: 2 to add, 1 to change, 1 to destroy."
    assert set(summary.addresses) == {"a.x", "a.y", "a.z"}
    assert not PlanSummary(0, 0, 0).changed


def test_provider_mirror_is_found_by_its_layout(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ISOLOIR_TF_MIRROR", raising=False)
    binary = (
        tmp_path
        / "m"
        / "registry.terraform.io"
        / "hashicorp"
        / "aws"
        / "5.100.0"
        / "linux_amd64"
        / "terraform-provider-aws_v5.100.0_x5"
    )
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"")
    assert find_provider_mirror([str(tmp_path)]) == tmp_path / "m"
    assert find_provider_mirror([str(tmp_path / "nowhere")]) is None


DEPLOYER = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-3/Deploy"
ADMIN_IDENTITY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]}  # fmt: skip


def _data_deny(*excepted: str) -> dict[str, object]:
    """The module's DenyDataToAnyoneButElectionAndAgent statement, as rendered."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyDataToAnyoneButElectionAndAgent",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": ["s3:GetObject*", "s3:ListBucket*", "s3:PutObject*"],
                "Resource": [BUCKET, f"{BUCKET}/*"],
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": list(excepted)}},
            }
        ],
    }


def test_deployer_can_head_bucket_and_a_non_member_is_still_denied() -> None:
    head = Request(DEPLOYER, "s3:ListBucket", BUCKET, {"aws:SecureTransport": "true"})
    # without the deployer in the exception, its administrator rights do not help
    assert evaluate(head, [ADMIN_IDENTITY], _data_deny(USER_A)).decision is (Decision.EXPLICIT_DENY)
    policy = _data_deny(USER_A, DEPLOYER)
    assert evaluate(head, [ADMIN_IDENTITY], policy).decision is Decision.ALLOW
    other = Request(USER_B, "s3:ListBucket", BUCKET, {"aws:SecureTransport": "true"})
    assert evaluate(other, [ADMIN_IDENTITY], policy).decision is Decision.EXPLICIT_DENY


# ---- Date and Numeric operators, KMS key policies (issue 21, N11)

AGENT = "arn:aws:iam::123456789012:role/isoloir/isoloir-parti-agent"
KEY = "arn:aws:kms:eu-west-3:123456789012:key/00000000-0000-0000-0000-000000000000"
DATED_DENY = {
    "Statement": [
        {
            "Sid": "DenyBefore",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:DeleteObjectVersion",
            "Resource": f"{BUCKET}/*",
            "Condition": {
                "ArnLike": {"aws:PrincipalArn": [AGENT]},
                "DateLessThan": {"aws:CurrentTime": "2027-05-21T00:00:00Z"},
            },
        }
    ]
}
ALLOW_DELETE = {
    "Statement": [{"Effect": "Allow", "Action": "s3:DeleteObjectVersion", "Resource": "*"}]
}


@pytest.mark.parametrize(
    ("when", "decision"),
    [
        ("2027-05-20T23:59:59Z", Decision.EXPLICIT_DENY),
        ("2027-05-21T00:00:00Z", Decision.ALLOW),
        ("2027-05-21T02:00:00+02:00", Decision.ALLOW),  # the same instant
        ("2027-05-21T01:59:59+02:00", Decision.EXPLICIT_DENY),
        ("1811635200", Decision.ALLOW),  # epoch seconds: 2027-05-30
        ("1810000000", Decision.EXPLICIT_DENY),  # 2027-05-11
    ],
)
def test_date_less_than_compares_instants(when: str, decision: Decision) -> None:
    got = Request(AGENT, "s3:DeleteObjectVersion", f"{BUCKET}/f", {"aws:CurrentTime": when})
    assert evaluate(got, [ALLOW_DELETE], DATED_DENY).decision is decision


def test_a_dated_deny_does_not_apply_to_other_principals_or_without_the_date() -> None:
    other = Request(
        USER_A, "s3:DeleteObjectVersion", f"{BUCKET}/f", {"aws:CurrentTime": "2020-01-01"}
    )
    assert evaluate(other, [ALLOW_DELETE], DATED_DENY).allowed
    # A positive operator with its key missing is false: the Deny does not apply.
    undated = Request(AGENT, "s3:DeleteObjectVersion", f"{BUCKET}/f", {})
    assert evaluate(undated, [ALLOW_DELETE], DATED_DENY).allowed


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [
        ("DateGreaterThan", "2027-05-21", True),
        ("DateGreaterThanEquals", "2027-06-01T00:00:00Z", True),
        ("DateLessThanEquals", "2027-06-01T00:00:00Z", True),
        ("DateEquals", "2027-06-01T00:00:00Z", True),
        ("DateNotEquals", "2027-06-01T00:00:00Z", False),
        ("NumericLessThan", "3600", False),
        ("NumericGreaterThanEquals", "7200", True),
        ("NumericEquals", "7200.0", True),
        ("NumericNotEquals", "7200", False),
        ("NumericLessThanEqualsIfExists", "100", False),
    ],
)
def test_date_and_numeric_operators(operator: str, value: str, holds: bool) -> None:
    key = "aws:CurrentTime" if operator.startswith("Date") else "aws:MultiFactorAuthAge"
    policy = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                             "Condition": {operator: {key: value}}}]}  # fmt: skip
    ctx = {"aws:CurrentTime": "2027-06-01T00:00:00Z", "aws:MultiFactorAuthAge": "7200"}
    got = evaluate(Request(USER_A, "s3:GetObject", f"{BUCKET}/f", ctx), [policy], None)
    assert got.allowed is holds


def test_a_malformed_date_is_refused_rather_than_guessed() -> None:
    condition = {"DateLessThan": {"aws:CurrentTime": "mai 2027"}}
    policy = {
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}]
    }
    with pytest.raises(UnsupportedPolicy):
        evaluate(
            Request(USER_A, "s3:GetObject", BUCKET, {"aws:CurrentTime": "2027-01-01"}), [policy]
        )


ROOT = {"AWS": "arn:aws:iam::123456789012:root"}
USE_KEY = {"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY}]}


def test_a_key_policy_without_the_account_ignores_identity_policies() -> None:
    """KMS: identity policies count only when the key policy allows the account."""
    only_b = {"Statement": [{"Sid": "B", "Effect": "Allow", "Principal": {"AWS": USER_B},
                             "Action": "kms:Decrypt", "Resource": "*"}]}  # fmt: skip
    decrypt = Request(USER_A, "kms:Decrypt", KEY, {})
    assert evaluate_key(decrypt, [USE_KEY], only_b).decision is Decision.IMPLICIT_DENY
    assert evaluate_key(Request(USER_B, "kms:Decrypt", KEY, {}), [], only_b).reasons == ("key:B",)
    delegated = {
        "Statement": [{"Effect": "Allow", "Principal": ROOT, "Action": "kms:*", "Resource": "*"}]
    }
    assert evaluate_key(decrypt, [USE_KEY], delegated).allowed
    assert evaluate_key(decrypt, [], delegated).decision is Decision.IMPLICIT_DENY


def test_a_deny_in_the_key_policy_beats_the_delegation() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Principal": ROOT, "Action": "kms:*", "Resource": "*"},
            {
                "Sid": "DenyOthers",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": [USER_A]}},
            },
        ]
    }
    assert evaluate_key(Request(USER_A, "kms:Decrypt", KEY, {}), [USE_KEY], policy).allowed
    other = evaluate_key(Request(USER_B, "kms:Decrypt", KEY, {}), [USE_KEY], policy)
    assert other.reasons == ("key:DenyOthers",)
