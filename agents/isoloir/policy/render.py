"""Render the policies into what each part reads (docs/contracts.md).

Output is deterministic: same policies, same bytes. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from isoloir.policy.loader import normalise
from isoloir.policy.model import Policies

TERRAFORM_VARS = Path("terraform/terraform.tfvars.json")
ANSIBLE_VARS = Path("ansible/isoloir_vars.json")
AGENT_CONFIG = Path("agent/agent.json")


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
        "log_bucket_name": b.log_bucket_name,
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
    files = rendered(p)
    written = []
    for rel, text in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
        written.append(target)
    return written
