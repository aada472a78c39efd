"""What an alert says about a finding, in the reader's language.

- `message_text` / `remediation_text`: the finding's catalogue template and
  parameters rendered in the language (a finding from an older state, without a
  template, has its English text looked up in the catalogue as it is);
- `evidence_lines`: every evidence field as "label: value", labels from the
  catalogue, values as a person reads them (dates, yes/no, lists, counts),
  never a Python repr; JSON keeps the machine form (Finding.to_dict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from isoloir import i18n
from isoloir.exposure.pii import KIND_LABELS
from isoloir.findings import Finding
from isoloir.i18n import N_

MAX_VALUE = 200

# Evidence keys (machine names, kept in JSON) and the label a reader sees.
LABELS: dict[str, str] = {
    # exposure checks
    "public_statements": N_("Public policy statements"),
    "public_grants": N_("Public ACL grants"),
    "mode": N_("Permissions (mode)"),
    "flags_off": N_("Public access block flags off"),
    "account_block_on": N_("Account-level block on"),
    "bucket": N_("Bucket"),
    "groups": N_("Groups"),
    "totp_state": N_("TOTP state"),
    "since": N_("Since"),
    "expires": N_("Expires"),
    "age_days": N_("Age (days)"),
    "limit_days": N_("Limit (days)"),
    "weaknesses": N_("Weaknesses"),
    "deletion_date": N_("Deletion date"),
    "election_key": N_("Key of an election"),
    "key_spec": N_("Key type"),
    "ownership": N_("Object Ownership"),
    "algorithms": N_("Encryption algorithms"),
    "log_bucket": N_("Access-log bucket"),
    "region": N_("Region"),
    "allowed": N_("Allowed regions"),
    "retention_due": N_("Retention date"),
    "rule": N_("Lifecycle rule"),
    "rules": N_("Lifecycle rules"),
    "prefixes_without_backstop": N_("Prefixes without a backstop"),
    "lifecycle_rules": N_("Lifecycle rules"),
    "versioning": N_("Versioning"),
    "key_state": N_("Key state"),
    "legal_hold": N_("Legal hold"),
    "smb_encrypt": N_("SMB encryption"),
    "smb_conf": N_("Samba configuration"),
    "map_to_guest": N_("map to guest"),
    "server_min_protocol": N_("Minimum protocol"),
    "path": N_("Path"),
    "group_of": N_("Group of election"),
    "expected_group": N_("Expected group"),
    "problem": N_("Problem"),
    "target": N_("Symlink target"),
    "device": N_("Device"),
    "fs_type": N_("File system"),
    "mount": N_("Mount point"),
    "ebs_volume": N_("EBS volume"),
    "platform_encrypted": N_("Encrypted by the platform"),
    "snapshot": N_("Ruleset snapshot"),
    "on_aws": N_("On AWS"),
    "allowed_uids": N_("Allowed uids"),
    "age_seconds": N_("Age (seconds)"),
    "remediation": N_("Automatic fix"),
    "action": N_("Action"),
    # personal data found in a sample
    "pii_counts": N_("Personal data found in the sample"),
    "pii_records_sampled": N_("Records sampled"),
    "pii_estimated_records": N_("Records estimated"),
    "sampled_bytes": N_("Bytes sampled"),
    "personal_data_breach_likely": N_("Personal-data breach likely"),
    # server access logs
    "outside_reads": N_("Reads from outside"),
    # mail guard: held messages
    "held_at": N_("Held since"),
    "recipients_outside": N_("Recipients outside the party"),
    "attachments_personal": N_("Attachments with personal data"),
    "outside_requesters": N_("Outside requesters"),
    "first_read": N_("First outside read"),
    "last_read": N_("Last outside read"),
    "logs_read_until": N_("Logs read until"),
    "log_lines_malformed": N_("Malformed log lines"),
    "logs_truncated": N_("Logs partly read"),
    "logs_unreadable": N_("Logs unreadable"),
    "access_logging": N_("Access logging"),
    "reads_since": N_("Reads counted since"),
    # retention
    "due": N_("Due date"),
    "days_left": N_("Days left"),
    "threshold": N_("Warning"),
    "days_overdue": N_("Days overdue"),
    "reason": N_("Reason"),
    "deleted": N_("Deleted"),
    "error": N_("Error"),
    "locations": N_("Locations"),
    "purged_at": N_("Purged at"),
    "certificate": N_("Certificate"),
    "key_deletion_date": N_("Key deletion date"),
    "objects": N_("Objects"),
    "versions": N_("Object versions"),
    "delete_markers": N_("Delete markers"),
    "files": N_("Files"),
    "bytes": N_("Bytes"),
    "contacts_kept": N_("Contacts kept"),
    "suppression_entries_added": N_("Opt-out entries added"),
    # the breach-register draft
    "nature": N_("Nature of the breach"),
    "exposure": N_("Exposure"),
    "resource": N_("Resource"),
    "election": N_("Election"),
    "data_categories": N_("Categories of data"),
    "records_in_sample": N_("Records in the sample"),
    "records_estimated": N_("Records concerned (estimate)"),
    "data_subjects": N_("Persons concerned"),
    "likely_consequences": N_("Likely consequences"),
    "measures": N_("Measures taken"),
    "notify_authority_within_hours": N_("Notify the CNIL within (hours)"),
    "inform_data_subjects": N_("Inform the persons concerned"),
    "risk": N_("Risk for the persons"),
    "special_category": N_("Special category of data (RGPD art. 9)"),
    "aware_at": N_("Aware since"),
    "notify_authority_by": N_("Notify the CNIL by"),
    **KIND_LABELS,
}


def label(key: str, language: str) -> str:
    """The reader's label of an evidence key (the key itself, spaced, when unknown)."""
    msgid = LABELS.get(key)
    return i18n.gettext_for(language, msgid) if msgid else key.replace("_", " ")


def value_text(value: Any, language: str) -> str:
    if isinstance(value, Mapping) and set(value) != {"msgid", "params"}:
        parts = (
            f"{label(str(k), language)}{sep(language)}{value_text(v, language)}"
            for k, v in value.items()
        )
        text = "; ".join(parts) or "—"
    else:
        text = i18n.format_value(value, language)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def evidence_lines(
    evidence: Mapping[str, Any], language: str, *, skip: Iterable[str] = (), indent: str = "  - "
) -> list[str]:
    """One labelled line per evidence field, in the evidence's own order."""
    hidden = set(skip)
    return [
        f"{indent}{label(k, language)}{sep(language)}{value_text(v, language)}"
        for k, v in evidence.items()
        if k not in hidden
    ]


def sep(language: str) -> str:
    return " : " if i18n.language_or_default(language) == "fr" else ": "


def message_text(finding: Finding, language: str) -> str:
    if finding.message_id:
        return i18n.render(language, finding.message_id, finding.params)
    return i18n.gettext_for(language, finding.message)


def remediation_text(finding: Finding, language: str) -> str:
    if finding.remediation_id:
        return i18n.render(language, finding.remediation_id, finding.params)
    return i18n.gettext_for(language, finding.remediation)
