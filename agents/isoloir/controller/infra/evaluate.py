"""A small, strict evaluator of AWS access policies (one account, S3 and KMS).

Used to prove segregation ("a member of election A cannot read election B's
bucket") from the policies Terraform actually created, read back from the API.
Why not the emulator: moto's server checks identity policies only by action
and resource, ignores most condition operators, and, in bucket policies,
applies any Deny whose action and resource match whatever its condition says
(docs/infra.md). Why not IAM's policy simulator: it is not in moto, and on AWS
it evaluates identity policies only unless the bucket policy is passed to it.

The logic is AWS's for requests within one account:
an explicit Deny in any applicable policy wins; otherwise an Allow in an
identity policy or in the resource policy (naming the principal) allows;
otherwise the request is implicitly denied. Conditions follow the IAM
reference: a missing key makes a positive operator false and a negated one
true, except `...IfExists` (missing -> true) and `Null`. An operator this
module does not know raises an error instead of guessing.

Date operators compare instants (ISO 8601, or seconds since the epoch, as the
IAM reference allows), Numeric operators numbers. `evaluate_key` applies
KMS's rule for a key policy: the key policy is the root of trust, so identity
policies count only when the key policy allows the account (its `root`
principal); an explicit Deny in either wins (KMS Developer Guide, "Key policies
in AWS KMS" and "Allows access to the AWS account and enables IAM policies").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not evaluate."""


@dataclass(frozen=True)
class Request:
    principal_arn: str
    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    def key(self, name: str) -> list[str] | None:
        lowered = {k.lower(): v for k, v in self.context.items()}
        if name.lower() == "aws:principalarn":
            return [self.principal_arn]
        value = lowered.get(name.lower())
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    """IAM wildcards: * any run, ? one character (no other special characters)."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    # Action names are case-insensitive.
    return any(_glob(p, action, case=False) for p in patterns)


def _resource_matches(patterns: Iterable[str], resource: str) -> bool:
    return any(_glob(p, resource) for p in patterns)


def _principal_matches(principal: Any, arn: str) -> bool:
    if principal is None:
        return True  # identity policy: the attached principal
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        for kind, ids in principal.items():
            for ident in _as_list(ids):
                if kind == "AWS" and (ident == "*" or ident == arn):
                    return True
                if kind == "AWS" and re.fullmatch(r"[0-9]{12}", str(ident)):
                    if arn.split(":")[4] == ident:
                        return True
                if kind == "AWS" and str(ident).endswith(":root"):
                    if arn.split(":")[4] == str(ident).split(":")[4]:
                        return True
        return False
    raise UnsupportedPolicy(f"principal {principal!r}")


def _eq(p: str, v: str) -> bool:
    return p == v


def _eq_nocase(p: str, v: str) -> bool:
    return p.lower() == v.lower()


def _like(p: str, v: str) -> bool:
    return _glob(p, v)


_STRING_OPS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_eq, False),
    "StringNotEquals": (_eq, True),
    "StringEqualsIgnoreCase": (_eq_nocase, False),
    "StringNotEqualsIgnoreCase": (_eq_nocase, True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    "ArnEquals": (_eq, False),
    "ArnNotEquals": (_eq, True),
    "ArnLike": (_like, False),
    "ArnNotLike": (_like, True),
    "Bool": (_eq_nocase, False),
}


def _instant(text: str) -> datetime:
    """An IAM date value: ISO 8601 (a date, or a date and time) or epoch seconds."""
    text = text.strip()
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        return datetime.fromtimestamp(float(text), tz=UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UnsupportedPolicy(f"date value {text!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise UnsupportedPolicy(f"numeric value {text!r}") from exc


def _compare(
    cast: Callable[[str], Any], test: Callable[[Any, Any], bool]
) -> Callable[[str, str], bool]:
    """(policy value, request value) -> does the request's value pass the test."""
    return lambda p, v: bool(test(cast(v), cast(p)))


_ORDER_TESTS: dict[str, tuple[Callable[[Any, Any], bool], bool]] = {
    "Equals": (lambda a, b: a == b, False),
    "NotEquals": (lambda a, b: a == b, True),
    "LessThan": (lambda a, b: a < b, False),
    "LessThanEquals": (lambda a, b: a <= b, False),
    "GreaterThan": (lambda a, b: a > b, False),
    "GreaterThanEquals": (lambda a, b: a >= b, False),
}
for _suffix, (_test, _negated) in _ORDER_TESTS.items():
    _STRING_OPS[f"Date{_suffix}"] = (_compare(_instant, _test), _negated)
    _STRING_OPS[f"Numeric{_suffix}"] = (_compare(_number, _test), _negated)


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        raise UnsupportedPolicy(f"set operator {operator}")
    values = request.key(key)
    wanted = [str(x) for x in _as_list(expected)]
    if operator == "Null":
        # "true": the key must be absent; "false": it must be present.
        return (values is None) == (wanted[0].lower() == "true")
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    if base not in _STRING_OPS:
        raise UnsupportedPolicy(f"condition operator {operator}")
    match, negated = _STRING_OPS[base]
    if values is None:
        return True if if_exists else negated
    if negated:
        # True when no value of the request matches any value of the policy.
        return not any(match(w, v) for w in wanted for v in values)
    return any(match(w, v) for w in wanted for v in values)


def _statement_applies(stmt: Mapping[str, Any], request: Request, resource_policy: bool) -> bool:
    if "NotPrincipal" in stmt:
        raise UnsupportedPolicy("NotPrincipal")
    if resource_policy and not _principal_matches(stmt.get("Principal"), request.principal_arn):
        return False
    if "Action" in stmt:
        if not _action_matches(_as_list(stmt["Action"]), request.action):
            return False
    elif "NotAction" in stmt:
        if _action_matches(_as_list(stmt["NotAction"]), request.action):
            return False
    else:
        raise UnsupportedPolicy("statement without Action or NotAction")
    if "Resource" in stmt:
        if not _resource_matches(_as_list(stmt["Resource"]), request.resource):
            return False
    elif "NotResource" in stmt:
        if _resource_matches(_as_list(stmt["NotResource"]), request.resource):
            return False
    for operator, pairs in stmt.get("Condition", {}).items():
        for key, expected in pairs.items():
            if not _condition_holds(operator, key, expected, request):
                return False
    return True


def _statements(policy: str | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    doc = json.loads(policy) if isinstance(policy, str) else policy
    return [s for s in _as_list(doc.get("Statement"))]


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    reasons: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def evaluate(
    request: Request,
    identity_policies: Sequence[str | Mapping[str, Any]],
    resource_policy: str | Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate one request against the caller's identity policies and the
    resource's policy (same account)."""
    allowed: list[str] = []
    for index, policy in enumerate(identity_policies):
        for stmt in _statements(policy):
            if _statement_applies(stmt, request, resource_policy=False):
                sid = f"identity[{index}]:{stmt.get('Sid', '?')}"
                if stmt.get("Effect") == "Deny":
                    return Evaluation(Decision.EXPLICIT_DENY, (sid,))
                allowed.append(sid)
    if resource_policy is not None:
        for stmt in _statements(resource_policy):
            if _statement_applies(stmt, request, resource_policy=True):
                sid = f"resource:{stmt.get('Sid', '?')}"
                if stmt.get("Effect") == "Deny":
                    return Evaluation(Decision.EXPLICIT_DENY, (sid,))
                allowed.append(sid)
    if allowed:
        return Evaluation(Decision.ALLOW, tuple(allowed))
    return Evaluation(Decision.IMPLICIT_DENY, ())


def _is_account(principal: Any, arn: str) -> bool:
    """The statement's principal is the caller's account (its root or its id)."""
    if not isinstance(principal, Mapping):
        return False
    account = arn.split(":")[4]
    for ident in _as_list(principal.get("AWS")):
        text = str(ident)
        if text == account or (text.endswith(":root") and text.split(":")[4] == account):
            return True
    return False


def evaluate_key(
    request: Request,
    identity_policies: Sequence[str | Mapping[str, Any]],
    key_policy: str | Mapping[str, Any],
) -> Evaluation:
    """Evaluate one KMS request on a key, same account: an explicit Deny in the
    key policy or an identity policy wins; an Allow naming the caller in the key
    policy allows; an Allow to the account in the key policy lets the identity
    policies decide; nothing else allows (KMS ignores identity policies unless
    the key policy enables them)."""
    direct: list[str] = []
    enabled = False
    for stmt in _statements(key_policy):
        if not _statement_applies(stmt, request, resource_policy=True):
            continue
        sid = f"key:{stmt.get('Sid', '?')}"
        if stmt.get("Effect") == "Deny":
            return Evaluation(Decision.EXPLICIT_DENY, (sid,))
        if _is_account(stmt.get("Principal"), request.principal_arn):
            enabled = True
        else:
            direct.append(sid)
    through_iam = evaluate(request, identity_policies, None)
    if through_iam.decision is Decision.EXPLICIT_DENY:
        return through_iam
    if direct:
        return Evaluation(Decision.ALLOW, tuple(direct))
    if enabled and through_iam.allowed:
        return through_iam
    return Evaluation(Decision.IMPLICIT_DENY, ())


def identity_policies_of_user(iam: Any, user_name: str) -> list[str]:
    """The policies that apply to an IAM user: inline and attached, its own and
    its groups' (read through the API, as AWS would apply them)."""
    docs: list[str] = []

    def managed(arn: str) -> str:
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
        return _doc(doc["Document"])

    for name in iam.list_user_policies(UserName=user_name)["PolicyNames"]:
        docs.append(
            _doc(iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"])
        )
    for att in iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]:
        docs.append(managed(att["PolicyArn"]))
    for group in iam.list_groups_for_user(UserName=user_name)["Groups"]:
        gname = group["GroupName"]
        for name in iam.list_group_policies(GroupName=gname)["PolicyNames"]:
            docs.append(
                _doc(iam.get_group_policy(GroupName=gname, PolicyName=name)["PolicyDocument"])
            )
        for att in iam.list_attached_group_policies(GroupName=gname)["AttachedPolicies"]:
            docs.append(managed(att["PolicyArn"]))
    return docs


def _doc(value: Any) -> str:
    """Policy documents come back URL-decoded JSON strings or already parsed."""
    if isinstance(value, str):
        from urllib.parse import unquote

        text = value if value.lstrip().startswith("{") else unquote(value)
        return text
    return json.dumps(value)


__all__ = [
    "Decision",
    "Evaluation",
    "Request",
    "UnsupportedPolicy",
    "evaluate",
    "evaluate_key",
    "identity_policies_of_user",
]
