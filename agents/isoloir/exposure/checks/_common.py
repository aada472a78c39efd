"""Helpers shared by the checks (pure functions over inventory data)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from isoloir.exposure.model import Bucket, Inventory, S3Inventory, SambaConfig, SambaShare

READ_S3 = ("s3:ListAllMyBuckets", "s3:GetBucketLocation", "s3:GetBucketTagging")

# Condition keys that narrow "Principal: *" to a network, an organisation or an
# account: a statement restricted by one of them is not public.
RESTRICTING_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:SourceIp",
        "aws:SourceVpce",
        "aws:SourceVpc",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:userid",
        "aws:username",
        "s3:DataAccessPointAccount",
        "s3:DataAccessPointArn",
    )
)
_OPEN_NETWORKS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def s3_buckets(inv: Inventory) -> Iterator[tuple[S3Inventory, Bucket, str | None]]:
    """Each bucket with the election that declares it (None: undeclared).

    A bucket whose location could not be read was not read at all (every other
    call needs its region): it is skipped, so no check takes its empty fields for
    "no encryption", "no versioning", "no lifecycle"...
    """
    if inv.s3 is None:
        return
    declared = inv.policies.bucket_names
    for bucket in inv.s3.buckets:
        if "location" in bucket.errors:
            continue
        yield inv.s3, bucket, declared.get(bucket.name)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def principal_is_everyone(statement: Mapping[str, Any]) -> bool:
    if "NotPrincipal" in statement:
        return True  # "everyone except ..." is everyone for an Allow
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return "*" in as_list(principal.get("AWS"))
    return False


def _value_is_open(key: str, value: Any) -> bool:
    text = str(value).strip()
    if text in {"", "*"}:
        return True
    if key == "aws:sourceip":
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return False
        return any(net == n for n in _OPEN_NETWORKS) or net.prefixlen == 0
    return False


def condition_restricts(condition: Mapping[str, Any] | None) -> bool:
    """True when the condition narrows who can use the statement.

    Negated operators (NotIpAddress, StringNotEquals...) and ...IfExists
    operators do not restrict anonymous requests (the key is absent or any
    other value passes); wildcard values and 0.0.0.0/0 do not restrict either.
    """
    if not condition:
        return False
    for operator, pairs in condition.items():
        op = str(operator)
        op_base = op.split(":", 1)[1] if ":" in op else op
        if op.lower().startswith("forallvalues:"):
            continue  # passes when the key is absent
        low = op_base.lower()
        if low.endswith("ifexists") or "not" in low:
            continue
        if not isinstance(pairs, Mapping):
            continue
        for key, values in pairs.items():
            k = str(key).lower()
            if k not in RESTRICTING_KEYS:
                continue
            vals = as_list(values)
            if vals and not any(_value_is_open(k, v) for v in vals):
                return True
    return False


def public_statements(policy: Mapping[str, Any] | None) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, statement) of every Allow statement open to everyone."""
    if not policy:
        return []
    out = []
    for i, st in enumerate(as_list(policy.get("Statement"))):
        if not isinstance(st, Mapping) or st.get("Effect") != "Allow":
            continue
        if principal_is_everyone(st) and not condition_restricts(st.get("Condition")):
            out.append((i, st))
    return out


def tls_only(policy: Mapping[str, Any] | None) -> bool:
    """True when a Deny statement refuses requests without TLS."""
    if not policy:
        return False
    for st in as_list(policy.get("Statement")):
        if not isinstance(st, Mapping) or st.get("Effect") != "Deny":
            continue
        if not principal_is_everyone(st):
            continue
        for operator, pairs in (st.get("Condition") or {}).items():
            if str(operator).lower() not in {"bool", "boolifexists"}:
                continue
            for key, values in pairs.items():
                if str(key).lower() == "aws:securetransport" and any(
                    str(v).lower() == "false" for v in as_list(values)
                ):
                    return True
    return False


def effective_pab(s3: S3Inventory, bucket: Bucket) -> dict[str, bool]:
    """The public access block that applies: bucket OR account, flag by flag."""
    from isoloir.exposure.model import PAB_FLAGS

    account = s3.account_public_access_block or {}
    own = bucket.public_access_block or {}
    return {f: bool(account.get(f)) or bool(own.get(f)) for f in PAB_FLAGS}


def pab_unknown(s3: S3Inventory, bucket: Bucket, flag: str) -> bool:
    """The effective flag is off as far as was read, but a block that could turn it on
    was not read (the account's, or the bucket's own): nothing can be said about it."""
    if effective_pab(s3, bucket)[flag]:
        return False
    return s3.account_pab_unread or "public_access_block" in bucket.errors


SHARE_PERMS = ("host:read share trees (root or the share groups)",)
SAMBA_PERMS = ("host:run testparm on smb.conf",)
IAM_PERMS = ("iam:ListUsers",)


def election_label(election: str | None) -> str:
    return f" of {election}" if election else ""


SYSTEM_SHARES = frozenset({"global", "homes", "printers", "print$", "ipc$"})


def samba_shares(inv: Inventory) -> Iterator[tuple[SambaConfig, SambaShare]]:
    if inv.shares is None or inv.shares.samba is None:
        return
    for share in inv.shares.samba.shares:
        if share.name.lower() not in SYSTEM_SHARES:
            yield inv.shares.samba, share


def share_election(inv: Inventory, share: SambaShare) -> str | None:
    """The election whose share path (or id) the Samba share serves."""
    path = share.params.get("path", "").rstrip("/")
    for e in inv.policies.elections:
        if path == e.share_path.rstrip("/") or share.name == e.id:
            return e.id
    return None


def yes(value: str) -> bool:
    return value.strip().lower() in {"yes", "true", "1", "on"}
