"""Remediation: the fixes the policies allow (baseline.remediation), rule by rule.

It never deletes data: it re-enables the public access block, removes public
grants and public policy statements, removes the permissions of others
(chmod o-rwx) and gives files back to their election's group. Before each S3
change the previous ACL, policy or block is saved in the journal (SQLite,
`<state dir>/exposure-journal.sqlite`). With `dry_run` nothing is changed and
every object an action would touch is listed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws
from isoloir.exposure.checks._common import public_statements
from isoloir.exposure.inventory_s3 import control_client
from isoloir.exposure.model import ShareTarget
from isoloir.exposure.registry import Result
from isoloir.i18n import N_
from isoloir.policy.model import Policies

JOURNAL = "exposure-journal.sqlite"
# How long a fix stays in the journal: long enough to undo it after the alert has
# been read and discussed; its paths often carry people's names, so not forever
# (security review N12). The same 90 days as the alert spool.
JOURNAL_KEEP_DAYS = 90
# What the fixes need on top of the checks' read permissions.
PERMISSIONS = (
    "s3:PutBucketPublicAccessBlock",
    "s3:PutAccountPublicAccessBlock",
    "s3:PutBucketAcl",
    "s3:PutObjectAcl",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "host:chmod and chgrp under the share roots (root)",
)
PAB_ON = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


@dataclass(frozen=True)
class Action:
    rule_id: str
    resource: str
    action: str  # what is (or would be) done, in words
    fingerprint: str
    applied: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "resource": self.resource,
            "action": self.action,
            "fingerprint": self.fingerprint,
            "applied": self.applied,
            "error": self.error,
        }


class JournalError(OSError):
    """The journal cannot be opened: no fix may be applied without it."""


class Journal:
    """What the agent changed and what was there before (owner-only file, 0600)."""

    def __init__(self, state_dir: Path) -> None:
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path = state_dir / JOURNAL
            # It names files (often people's names) and ACLs: owner only.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
            self.db = sqlite3.connect(self.path)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS actions ("
                " id INTEGER PRIMARY KEY, at TEXT NOT NULL, rule_id TEXT NOT NULL,"
                " resource TEXT NOT NULL, action TEXT NOT NULL, previous TEXT,"
                " outcome TEXT NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"{state_dir / JOURNAL}: not a usable SQLite database ({exc}; corrupt?): move "
                "it aside and run again; the record of earlier fixes (what to undo) is lost"
            ) from None
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = state_dir / JOURNAL
            if isinstance(exc, FileExistsError | NotADirectoryError):
                reason = f"{state_dir} is not a directory"  # CLI review D30
            raise JournalError(f"cannot open the journal {where} ({reason})") from None

    def record(
        self, at: datetime, rule_id: str, resource: str, action: str, previous: Any, outcome: str
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO actions (at, rule_id, resource, action, previous, outcome)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    at.isoformat(),
                    rule_id,
                    resource,
                    action,
                    None if previous is None else json.dumps(previous, default=str),
                    outcome,
                ),
            )

    def prune(self, now: datetime, keep_days: float = JOURNAL_KEEP_DAYS) -> int:
        """Forget the fixes older than `keep_days`; their rows are overwritten and the
        file compacted, so the paths do not linger in free pages. Returns the count."""
        cutoff = (now - timedelta(days=keep_days)).isoformat()
        self.db.execute("PRAGMA secure_delete = ON")
        with self.db:
            gone = self.db.execute("DELETE FROM actions WHERE at < ?", (cutoff,)).rowcount
        if gone:
            self.db.execute("VACUUM")
        return int(gone)

    def entries(self) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT at, rule_id, resource, action, previous, outcome FROM actions ORDER BY id"
        )
        cols = ["at", "rule_id", "resource", "action", "previous", "outcome"]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        self.db.close()


# ------------------------------------------------------------ S3 actions


def _bucket_pab(bucket: str, journal: Journal, at: datetime, rule: str) -> None:
    c = aws.client("s3")
    try:
        prev: Any = c.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError:
        prev = None
    journal.record(at, rule, f"s3://{bucket}", "put_public_access_block", prev, "saved")
    c.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PAB_ON)


def _account_pab(journal: Journal, at: datetime, rule: str) -> None:
    account = aws.client("sts").get_caller_identity()["Account"]
    ctl = control_client()
    try:
        prev: Any = ctl.get_public_access_block(AccountId=account)["PublicAccessBlockConfiguration"]
    except ClientError:
        prev = None
    journal.record(at, rule, f"aws-account:{account}", "put_public_access_block", prev, "saved")
    ctl.put_public_access_block(AccountId=account, PublicAccessBlockConfiguration=PAB_ON)


def _private_grants(acl: Mapping[str, Any]) -> list[Any]:
    public = {
        "http://acs.amazonaws.com/groups/global/AllUsers",
        "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
    }
    return [g for g in acl.get("Grants", []) if g.get("Grantee", {}).get("URI") not in public]


def _bucket_acl(bucket: str, journal: Journal, at: datetime, rule: str) -> None:
    c = aws.client("s3")
    acl = c.get_bucket_acl(Bucket=bucket)
    prev = {"Owner": acl["Owner"], "Grants": acl["Grants"]}
    journal.record(at, rule, f"s3://{bucket}", "put_bucket_acl", prev, "saved")
    c.put_bucket_acl(
        Bucket=bucket,
        AccessControlPolicy={"Owner": acl["Owner"], "Grants": _private_grants(acl)},
    )


def _object_acl(bucket: str, key: str, journal: Journal, at: datetime, rule: str) -> None:
    c = aws.client("s3")
    acl = c.get_object_acl(Bucket=bucket, Key=key)
    prev = {"Owner": acl["Owner"], "Grants": acl["Grants"]}
    journal.record(at, rule, f"s3://{bucket}/{key}", "put_object_acl", prev, "saved")
    c.put_object_acl(
        Bucket=bucket,
        Key=key,
        AccessControlPolicy={"Owner": acl["Owner"], "Grants": _private_grants(acl)},
    )


@dataclass(frozen=True)
class Instead:
    """A fix made another way than described: what was done, in words."""

    action: str


# An election's bucket policy denies the agents' role any change to it
# (DenyAgentPolicyChange: the role could otherwise lift the dated deletion
# deny), so on AWS the role cannot remove a public statement someone added there.
POLICY_LOCKED = N_(
    "the bucket policy forbids the agents to change it: the bucket's public access block "
    "was turned on instead (RestrictPublicBuckets makes its public statements ineffective); "
    "an administrator must remove them"
)


def _bucket_policy(bucket: str, journal: Journal, at: datetime, rule: str) -> Instead | None:
    c = aws.client("s3")
    policy = json.loads(c.get_bucket_policy(Bucket=bucket)["Policy"])
    journal.record(at, rule, f"s3://{bucket}", "put_bucket_policy", policy, "saved")
    drop = {i for i, _ in public_statements(policy)}
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = [st for i, st in enumerate(statements) if i not in drop]
    try:
        if kept:
            c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": kept}))
        else:
            c.delete_bucket_policy(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "AccessDenied":
            raise
        _bucket_pab(bucket, journal, at, rule)
        return Instead(POLICY_LOCKED)
    return None


# ------------------------------------------------------------ host actions


_STEP_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class ChangedSinceScan(OSError):
    """The path no longer leads, inside the share, to the inode the scan saw."""


def _components(target: ShareTarget) -> list[bytes]:
    root = target.root.rstrip(b"/")
    if target.path.rstrip(b"/") == root:
        return []
    if not target.path.startswith(root + b"/"):
        raise ChangedSinceScan(f"not under its share root: {target.path!r}")
    parts = target.path[len(root) + 1 :].split(b"/")
    if any(p in (b"", b".", b"..") for p in parts):
        raise ChangedSinceScan(f"unexpected path component in {target.path!r}")
    return parts


def _pin(target: ShareTarget) -> int:
    """An O_PATH descriptor of the scanned entry, reached from the share root.

    The root is opened with O_NOFOLLOW, then each component relative to its
    parent's descriptor with O_NOFOLLOW: a directory (at any depth) swapped for a
    symlink after the scan stops the walk instead of leading out of the share. The
    inode reached must be the scanned one (st_dev, st_ino), or nothing is changed.
    The change is then made through /proc/self/fd/N, which names that inode, and
    nothing is opened for reading (FIFOs do not block).
    """
    parts = _components(target)
    fd = os.open(target.root, _ROOT_FLAGS)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = (
                (os.O_PATH | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)) if last else _STEP_FLAGS
            )
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if stat.S_ISLNK(st.st_mode):
        os.close(fd)
        raise ChangedSinceScan(f"refusing a symlink: {target.path!r}")
    if (st.st_dev, st.st_ino) != (target.dev, target.ino):
        os.close(fd)
        raise ChangedSinceScan(f"not the file the scan saw: {target.path!r}")
    return fd


def chmod_o_rwx(target: ShareTarget) -> dict[str, Any]:
    """Remove every permission of others; returns the previous mode."""
    fd = _pin(target)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        os.chmod(f"/proc/self/fd/{fd}", mode & ~0o007)
    finally:
        os.close(fd)
    return {"mode": oct(mode)}


def chgrp(target: ShareTarget, gid: int) -> dict[str, Any]:
    """Give the entry to group `gid`; returns the previous group id."""
    fd = _pin(target)
    try:
        st = os.fstat(fd)
        os.chown(f"/proc/self/fd/{fd}", -1, gid)
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode))  # chown may clear setgid
    finally:
        os.close(fd)
    return {"gid": st.st_gid}


# ------------------------------------------------------------ dispatch


def _describe(rule: str, target: Any) -> str | None:
    if rule == "s3_account_public_access_block":
        return N_("turn on the four account-level public access block flags")
    if rule == "s3_bucket_public_access_block":
        return N_("turn on the four bucket-level public access block flags")
    if rule == "s3_bucket_public_acl":
        return N_("remove the AllUsers/AuthenticatedUsers grants of the bucket ACL")
    if rule == "s3_object_public_acl":
        return N_("remove the AllUsers/AuthenticatedUsers grants of the object ACL")
    if rule == "s3_bucket_policy_public":
        return N_('remove the bucket-policy statements allowing Principal "*"')
    if rule == "share_world_accessible":
        return "chmod o-rwx"
    if rule == "share_foreign_group" and isinstance(target, tuple) and target[1] is not None:
        return f"chgrp to gid {target[1]}"
    return None


def _apply(rule: str, target: Any, journal: Journal, at: datetime) -> Any:
    """Do it; S3 actions journal the previous state themselves, host actions return it."""
    if rule == "s3_account_public_access_block":
        _account_pab(journal, at, rule)
    elif rule == "s3_bucket_public_access_block":
        _bucket_pab(str(target), journal, at, rule)
    elif rule == "s3_bucket_public_acl":
        _bucket_acl(str(target), journal, at, rule)
    elif rule == "s3_object_public_acl":
        _object_acl(target[0], target[1], journal, at, rule)
    elif rule == "s3_bucket_policy_public":
        return _bucket_policy(str(target), journal, at, rule)
    elif rule == "share_world_accessible":
        return chmod_o_rwx(target)
    elif rule == "share_foreign_group":
        return chgrp(target[0], int(target[1]))
    else:  # pragma: no cover - _describe filters unknown rules
        raise ValueError(rule)
    return None


def allowed(policies: Policies, fix: str | None) -> bool:
    return fix is not None and bool(getattr(policies.baseline.remediation, fix, False))


def remediate(
    results: Iterable[Result],
    policies: Policies,
    *,
    state_dir: Path,
    now: datetime,
    dry_run: bool,
) -> list[Action]:
    """Apply (or, with dry_run, list) the allowed fixes of `results`."""
    actions: list[Action] = []
    journal = None if dry_run else Journal(state_dir)
    try:
        if journal is not None:
            journal.prune(now)
        for r in results:
            if not allowed(policies, r.check.fix) or r.target is None:
                continue
            text = _describe(r.check.id, r.target)
            if text is None:
                continue
            f = r.finding
            if journal is None:
                actions.append(Action(r.check.id, f.resource, text, f.fingerprint, False))
                continue
            try:
                previous = _apply(r.check.id, r.target, journal, now)
            except (ClientError, BotoCoreError, OSError, KeyError, ValueError) as exc:
                code = (
                    str(exc.response.get("Error", {}).get("Code"))
                    if isinstance(exc, ClientError)
                    else type(exc).__name__
                )
                journal.record(now, r.check.id, f.resource, text, None, f"failed: {code}")
                actions.append(Action(r.check.id, f.resource, text, f.fingerprint, False, code))
                continue
            if isinstance(previous, Instead):
                text, previous = previous.action, None
            journal.record(now, r.check.id, f.resource, text, previous, "applied")
            actions.append(Action(r.check.id, f.resource, text, f.fingerprint, True))
    finally:
        if journal is not None:
            journal.close()
    return actions
