"""Render the policies into what each part reads (docs/contracts.md).

Output is deterministic: same policies, same bytes. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isoloir.policy.loader import PolicyError, Problem, normalise
from isoloir.policy.model import Election, Policies
from isoloir.policy.outfiles import write_all

TERRAFORM_VARS = Path("terraform/terraform.tfvars.json")
ANSIBLE_VARS = Path("ansible/isoloir_vars.json")
AGENT_CONFIG = Path("agent/agent.json")


# EU regions AWS launched after March 2019: disabled in an account until an
# administrator enables them (AWS Account Management guide, "Specify which AWS
# Regions your account can use"). infra/providers.tf skips their credential check.
OPT_IN_REGIONS = ("eu-south-1", "eu-south-2")


def opt_in_warnings(p: Policies) -> list[str]:
    """One line per allowed opt-in region: enable it before deploying there."""
    return [
        f"warning: regions.allowed lists {r}, an opt-in region: enable it in the AWS "
        "console (Account > AWS Regions) before deploying, or remove it"
        for r in sorted(p.baseline.regions.allowed)
        if r in OPT_IN_REGIONS
    ]


def campaign_prefixes(e: Election) -> list[str]:
    """The bucket prefixes S3 lifecycle may expire (as a backstop after the agent):
    the campaign datasets' only. A campaign prefix that would also cover a
    permanent dataset's prefix (or the whole bucket) is refused: its expiry rule
    would destroy data the party keeps."""
    permanent = [d.bucket_prefix for d in e.datasets if not d.campaign_specific]
    prefixes = sorted({d.bucket_prefix for d in e.datasets if d.campaign_specific})
    problems = [
        Problem(
            e.source,
            0,
            "datasets",
            f"campaign prefix {c!r} also covers the permanent "
            f"dataset prefix {k!r}: its lifecycle expiry would delete it",
        )
        for c in prefixes
        for k in permanent
        if k.startswith(c)
    ]
    problems += [
        Problem(
            e.source,
            0,
            "datasets",
            "a campaign dataset has an empty bucket_prefix: "
            "its lifecycle expiry would cover the whole bucket",
        )
        for c in prefixes
        if not c
    ]
    if problems:
        raise PolicyError(problems)
    return prefixes


def terraform_vars(p: Policies) -> dict[str, Any]:
    b = p.baseline
    classes = b.passwords.min_classes
    return {
        "org_slug": b.organisation.slug,
        "default_region": b.regions.default,
        "allowed_regions": sorted(b.regions.allowed),
        "password_policy": {
            "minimum_length": b.passwords.min_length,
            # AWS cannot say "any 3 of 4": 3 classes means lower, upper and digits.
            "require_lowercase": classes >= 2,
            "require_uppercase": classes >= 3,
            "require_numbers": classes >= 1,
            "require_symbols": classes >= 4,
            "reuse_prevention": b.passwords.reuse_prevention,
            "max_age_days": b.passwords.max_age_days,
        },
        "kms_deletion_window_days": b.retention.kms_deletion_window_days,
        "admin_networks": list(b.hosts.admin_networks),
        # hosts.aws in the baseline (TARGET=aws); the local target's var file overrides them
        "host_image_ids": dict(b.hosts.image_ids),
        "subnet_ids": dict(b.hosts.subnet_ids),
        "log_bucket_name": b.log_bucket_name,
        # aws.* in the baseline: who may list the election buckets (refresh) and
        # manage their settings, never their objects (docs/infra.md)
        "deployer_principal_arns": sorted(b.deployer_principals),
        "break_glass_role_arns": sorted(b.break_glass_roles),
        # the mail guard on the file-share hosts: 587 in from the admin networks,
        # SMTP out to the upstream's port and to the alerts' server's
        "mail_guard_enabled": b.mail.enabled,
        "mail_upstream": (
            {"host": b.mail.upstream.host, "port": b.mail.upstream.port}
            if b.mail.upstream is not None
            else None
        ),
        "alert_smtp_port": b.alerts.email.port if b.alerts.email is not None else None,
        "administrators": sorted(x.id for x in b.admins),
        "people": sorted(x.id for x in b.people),
        "elections": {
            e.id: {
                "label": e.label,
                "region": e.region,
                "bucket_name": e.bucket_name,
                "retention_date": e.retention_due.isoformat(),
                "legal_hold": e.legal_hold,
                "members": sorted(e.members),
                "dataset_prefixes": sorted(d.bucket_prefix for d in e.datasets),
                "campaign_prefixes": campaign_prefixes(e),
            }
            for e in p.elections
        },
    }


def ansible_vars(p: Policies) -> dict[str, Any]:
    b = p.baseline
    return {
        "isoloir_org_slug": b.organisation.slug,
        "isoloir_password_minlen": b.passwords.min_length,
        "isoloir_password_minclass": b.passwords.min_classes,
        "isoloir_password_dictcheck": b.passwords.dictionary_check,
        "isoloir_lockout_deny": b.lockout.attempts,
        "isoloir_lockout_fail_interval": b.lockout.window_seconds,
        "isoloir_lockout_unlock_time": b.lockout.unlock_seconds,
        "isoloir_share_root": b.hosts.share_root,
        "isoloir_contacts_path": b.retention.contacts_path,
        "isoloir_admin_networks": list(b.hosts.admin_networks),
        "isoloir_stray_data_paths": list(b.hosts.stray_data_paths),
        "isoloir_fix_share_permissions": (
            b.remediation.share_permissions or b.remediation.share_group_ownership
        ),
        "isoloir_people": [
            {"id": x.id, "name": x.name, "admin": x.admin, "ssh_keys": list(x.ssh_keys)}
            for x in sorted(b.people, key=lambda x: x.id)
        ],
        "isoloir_elections": [
            {
                "id": e.id,
                "label": e.label,
                "group": e.share_group,
                "path": e.share_path,
                "members": sorted(e.members),
                "share_paths": sorted(d.share_path for d in e.datasets),
            }
            for e in p.elections
        ],
    }


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered(p: Policies) -> dict[Path, str]:
    """Relative path -> file text."""
    return {
        TERRAFORM_VARS: dumps(terraform_vars(p)),
        ANSIBLE_VARS: dumps(ansible_vars(p)),
        AGENT_CONFIG: dumps(normalise(p)),
    }


def write(p: Policies, out: Path) -> list[Path]:
    """Write every output or none (outfiles.WriteError names the path and why)."""
    return write_all(out, rendered(p))
