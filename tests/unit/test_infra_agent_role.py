"""The agents' role grants what the agents declare they call, and writes only to
the election buckets and keys (never the log or state buckets, never the hosts'
volume keys). Read from infra/modules/identity_policies/main.tf; the rendered
policy is evaluated in tests/unit/test_access_quotas.py."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from isoloir.dpo import erase
from isoloir.exposure import registry, remediate
from isoloir.retention import purge

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "infra" / "modules" / "identity_policies" / "main.tf"
# Allowed to every principal without a policy (STS GetCallerIdentity).
NEEDS_NO_GRANT = {"sts:GetCallerIdentity"}
_ACTION = re.compile(r'"((?:s3|kms|iam|sts):[A-Za-z*]+)"')


def _agent_document() -> str:
    text = MAIN.read_text(encoding="utf-8")
    start = text.index("  agent = {")
    end = text.index("  people_data = {")
    return text[start:end]


def _statements() -> dict[str, str]:
    """sid -> the statement's text."""
    doc = _agent_document()
    parts = re.split(r'\bSid\s*=\s*"([A-Za-z]+)"', doc)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _granted() -> set[str]:
    return set(_ACTION.findall(_agent_document()))


def _declared() -> set[str]:
    wanted = {p for chk in registry.discover().values() for p in chk.permissions}
    wanted |= set(remediate.PERMISSIONS)
    doc = purge.__doc__ or ""
    wanted |= set(re.findall(r"(?:s3|kms):[A-Za-z]+", doc.split("Permissions used:")[1]))
    wanted |= set(erase.PERMISSIONS)
    return {p for p in wanted if not p.startswith("host:")}


def test_every_declared_permission_is_granted() -> None:
    missing = _declared() - _granted() - NEEDS_NO_GRANT
    assert not missing, f"declared by the agents but not in the role: {sorted(missing)}"


def test_the_purge_declaration_is_read() -> None:
    assert {"s3:DeleteObjectVersion", "kms:ScheduleKeyDeletion"} <= _declared()


def test_writes_and_data_are_scoped_to_the_election_buckets_and_keys() -> None:
    """Constant size (aws-readiness N2): the party's prefix and the election
    keys' tags, never every bucket or every key; the access logs and the state
    excepted by an explicit Deny of every write the role holds."""
    statements = _statements()
    denied = re.findall(r'"(s3:[A-Za-z*]+)"', statements["DenyLogsAndState"])
    assert 'Effect = "Deny"' in statements["DenyLogsAndState"]
    assert "local.logs_and_state" in statements["DenyLogsAndState"]
    for sid, body in statements.items():
        destructive = re.findall(
            r'"(s3:Delete\w*|s3:Put(?!AccountPublicAccessBlock)\w*|s3:GetObject\w*'
            r'|kms:ScheduleKeyDeletion|kms:Decrypt)"',
            body,
        )
        if not destructive or _DENY.search(body):  # a Deny narrows, never grants
            continue
        if sid == "ReadAccessLogs":  # reading the access logs, nothing else
            assert set(re.findall(r'"(s3:\w+\*?)"', body)) == {"s3:GetObject"}, body
            assert "-access-logs*/*" in body, body
            continue
        assert 'Resource = "*"' not in body, f"{sid}: writes on every resource"
        if any(a.startswith("kms:") for a in destructive):
            assert "local.election_key_tags" in body, f"{sid}: keys not limited to elections'"
            continue
        assert re.search(r"Resource\s*=\s*\"?\$?\{?local\.buckets", body), sid
        for action in destructive:
            if action.startswith(("s3:Delete", "s3:Put")):
                assert any(fnmatch.fnmatchcase(action, d) for d in denied), (sid, action)
    tags = MAIN.read_text(encoding="utf-8")
    assert '"aws:ResourceTag/isoloir:election" = "false"' in tags


# Granted but never named by an agent's call: what AWS authorises a call with
# besides its own action. GetObject on an SSE-KMS object needs kms:Decrypt on
# its key (S3 User Guide, "Using server-side encryption with AWS KMS keys");
# a DeleteObjects batch is authorised as s3:DeleteObject (and per versioned key
# s3:DeleteObjectVersion; S3 API reference, DeleteObjects).
IMPLIED = {"kms:Decrypt", "s3:DeleteObject"}
_DENY = re.compile(r'Effect\s*=\s*"Deny"')


def _allowed() -> set[str]:
    """Actions of the role's Allow statements (the Denies narrow, they grant nothing)."""
    return {
        action
        for body in _statements().values()
        if not _DENY.search(body)
        for action in _ACTION.findall(body)
    }


def test_nothing_is_granted_that_the_agents_do_not_declare() -> None:
    """aws-readiness N12: the reverse inclusion. Every allowed action is one an
    agent declares it calls; a grant nobody calls is an attack surface only."""
    unused = _allowed() - _declared() - IMPLIED
    assert not unused, f"granted to the agents' role but called by no agent: {sorted(unused)}"
