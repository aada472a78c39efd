"""One scan: fetch the inventories, run the checks, apply the allowed fixes."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from isoloir import aws
from isoloir.exposure import inventory_identity, inventory_s3, inventory_shares, registry
from isoloir.exposure.model import Inventory, display_path
from isoloir.exposure.remediate import Action, JournalError, remediate
from isoloir.findings import Finding, Unread
from isoloir.i18n import N_
from isoloir.policy.model import Policies

DEFAULT_SMB_CONF = "/etc/samba/smb.conf"


@dataclass(frozen=True)
class ScanOptions:
    s3: bool = True
    shares: bool = True
    identity: bool = True
    share_root: str | None = None
    smb_conf: str | None = None  # None: /etc/samba/smb.conf when it exists
    stray_paths: tuple[str, ...] | None = None  # None: baseline.hosts.stray_data_paths
    group_file: Path = Path("/etc/group")
    passwd_file: Path = Path("/etc/passwd")
    iam: bool = True  # identity: also read IAM (not only host accounts)
    buckets: tuple[str, ...] | None = None  # None: every bucket of the account
    sample: bool = True
    # S3 access logs and the shares' full_audit log: when each exposed resource's
    # exposure began (its open finding's first-seen time, given by the daemon's scan
    # job); None: the last 30 days.
    exposure_since: Mapping[str, datetime] | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s, on in (("s3", self.s3), ("shares", self.shares),
                                     ("identity", self.identity)) if on)  # fmt: skip


@dataclass
class ScanReport:
    findings: list[Finding]
    results: list[registry.Result]
    actions: list[Action] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # partial problems (scan went on)
    fatal: dict[str, str] = field(default_factory=dict)  # a whole scope could not be read
    inventory: Inventory | None = None
    unread: Unread = field(default_factory=Unread)  # what was not observed either way
    fix_refused: str = ""  # why no fix was applied at all (the journal cannot be opened)


def collect(
    policies: Policies, now: datetime, opts: ScanOptions
) -> tuple[Inventory, dict[str, str], dict[str, str]]:
    inv = Inventory(policies=policies, now=now, host=socket.gethostname())
    errors: dict[str, str] = {}
    fatal: dict[str, str] = {}
    if opts.s3:
        inv.s3 = inventory_s3.fetch(
            policies, sample=opts.sample, only=opts.buckets, log_since=opts.exposure_since
        )
        errors.update({f"s3:{k}": v for k, v in inv.s3.errors.items()})
        for b in inv.s3.buckets:
            errors.update({f"s3:{b.name}:{op}": code for op, code in b.errors.items()})
        for key in ("sts", "list_buckets"):
            if key in inv.s3.errors:
                fatal[f"s3:{key}"] = inv.s3.errors[key]
    if opts.shares:
        smb = opts.smb_conf
        if smb is None and os.path.exists(DEFAULT_SMB_CONF):
            smb = DEFAULT_SMB_CONF
        inv.shares = inventory_shares.fetch(
            policies,
            share_root=opts.share_root,
            smb_conf=smb,
            stray_paths=opts.stray_paths,
            reads_since=opts.exposure_since,
        )
        errors.update({f"shares:{k}": v for k, v in inv.shares.errors.items()})
        if "samba" in inv.shares.errors:
            fatal["shares:samba"] = inv.shares.errors["samba"]
        for tree in inv.shares.trees:
            if tree.missing:  # an unmounted volume or a typo: the share was not seen at all
                key = f"shares:share root {display_path(tree.root)}"
                fatal[key] = tree.problem or "cannot be opened"
    if opts.identity:
        silent = None
        if opts.iam:  # AWS silent: IAM is not asked either (CLI review D32)
            if inv.s3 is not None:
                silent = inv.s3.errors["sts"] if inv.s3.unanswered else None
            else:
                silent = aws.probe()
        inv.identity = inventory_identity.fetch(
            policies,
            iam=opts.iam and silent is None and policies.audits_account,
            group_file=opts.group_file,
            passwd_file=opts.passwd_file,
        )
        if silent is not None:
            inv.identity.errors["iam:ListUsers"] = silent
        errors.update({f"identity:{k}": v for k, v in inv.identity.errors.items()})
        for key in ("iam:ListUsers", "host_users"):
            if key in inv.identity.errors:
                fatal[f"identity:{key}"] = inv.identity.errors[key]
    return inv, errors, fatal


def _rules(scope: str, prefix: str = "") -> set[str]:
    return {
        c.id for c in registry.discover().values() if c.scope == scope and c.id.startswith(prefix)
    }


def _s3_unread(inv: Inventory, rules: set[str], resources: set[str]) -> None:
    if inv.s3 is None:
        return
    if "sts" in inv.s3.errors or "list_buckets" in inv.s3.errors:
        rules |= _rules("s3")
    if inv.s3.account_pab_unread:
        rules |= {
            "s3_account_public_access_block", "s3_bucket_public_access_block",
            "s3_bucket_policy_public", "s3_bucket_public_acl", "s3_object_public_acl",
        }  # fmt: skip
    for b in inv.s3.buckets:
        if b.errors:  # partly read: its findings are neither confirmed nor gone
            resources.add(f"s3://{b.name}")


def _shares_unread(inv: Inventory, rules: set[str], resources: set[str]) -> None:
    if inv.shares is None:
        return
    if "samba" in inv.shares.errors:
        rules |= _rules("shares", "samba_")
    for tree in inv.shares.trees:
        if tree.missing:
            resources.add(display_path(tree.root))
        resources.update(display_path(p) for p in tree.unreadable)
    resources.update(display_path(p) for p in inv.shares.stray_unread)


def _identity_unread(inv: Inventory, rules: set[str], resources: set[str]) -> None:
    if inv.identity is None:
        return
    errs = inv.identity.errors
    if "iam:ListUsers" in errs:
        rules |= _rules("identity", "iam_")
    if any(k.startswith("iam:") for k in errs):
        resources.add("arn:aws:iam:")  # users partly read: their findings stay as they were
    if "iam:GetAccountPasswordPolicy" in errs:
        rules.add("iam_password_policy")
    if "iam:GetCredentialReport" in errs:  # no password dates: none is known to be fresh
        rules.add("iam_admin_password_age")
    if "host_users" in errs:
        resources.add("host-user:")


def account_rules() -> frozenset[str]:
    """The rules about the whole account rather than one host's elections: the
    IAM users and password policy, and the account's public access block."""
    return frozenset(_rules("identity", "iam_") | {"s3_account_public_access_block"})


def unread_of(inv: Inventory, errors: dict[str, str]) -> Unread:
    """What this scan did not observe either way (see `isoloir.findings.Unread`)."""
    rules: set[str] = set()
    resources: set[str] = set()
    _s3_unread(inv, rules, resources)
    _shares_unread(inv, rules, resources)
    _identity_unread(inv, rules, resources)
    return Unread(frozenset(rules), frozenset(resources), dict(errors))


def run(
    policies: Policies,
    now: datetime,
    opts: ScanOptions,
    *,
    fix: bool = False,
    dry_run: bool = False,
    state_dir: Path | None = None,
) -> ScanReport:
    if opts.share_root is not None:
        policies = inventory_shares.rebase(policies, opts.share_root)
        opts = replace(opts, share_root=None)
    inv, errors, fatal = collect(policies, now, opts)
    results = registry.run(inv, scopes=opts.scopes, observed_at=now)
    if not policies.audits_account:  # another host raises these (one alert, not one a host)
        results = [r for r in results if r.finding.rule_id not in account_rules()]
    actions: list[Action] = []
    refused = ""
    if fix or dry_run:
        if state_dir is None and not dry_run:
            raise ValueError("a state directory is needed to journal the fixes")
        try:
            actions = remediate(
                results, policies, state_dir=state_dir or Path("."), now=now, dry_run=dry_run
            )
        except JournalError as exc:
            refused = str(exc)  # no journal, no fix; the findings are still reported
    by_fp = {a.fingerprint: a for a in actions}
    findings = []
    for r in results:
        f = r.finding
        act = by_fp.get(f.fingerprint)
        if act is not None:
            state = N_("applied") if act.applied else (N_("failed") if act.error else N_("planned"))
            f = replace(f, evidence={**f.evidence, "remediation": state, "action": act.action})
        findings.append(f)
    unread = unread_of(inv, {**errors, **fatal})
    if not policies.audits_account:  # not looked at here: never announced resolved here
        unread = replace(unread, rules=unread.rules | account_rules())
    return ScanReport(findings, results, actions, errors, fatal, inv, unread, refused)


def remaining(report: ScanReport) -> list[Finding]:
    """Findings still true after the scan: those not fixed by an applied action."""
    fixed = {a.fingerprint for a in report.actions if a.applied}
    return [f for f in report.findings if f.fingerprint not in fixed]
