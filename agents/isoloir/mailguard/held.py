"""Held mail as findings: a message the guard put on hold (a personal-data table
sent outside the party's domains) is a likely breach until an administrator
releases or deletes it. The scan job reports each one, critical, so the
administrators are alerted at once; `isoloir mailguard release|delete` settles
it and the next scan resolves the alert.

Counts and the Postfix queue id only: never an address, a subject or a file name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from isoloir.findings import Finding, Severity, from_templates
from isoloir.i18n import N_
from isoloir.mailguard import decisions

RULE_ID = "mail_held_personal_data"
MESSAGE = N_(
    "Message {queue_id} held by the mail guard: {tables} attachment(s) with personal data "
    "addressed to {outside} recipient(s) outside the party's domains"
)
REMEDIATION = N_(
    "Check with the sender. If the recipients may receive the file, run "
    "`isoloir mailguard release {queue_id}`; otherwise `isoloir mailguard delete {queue_id}`. "
    "If it already left by another way, assess the breach (72 hours to notify the CNIL)."
)


def held_findings(state_dir: Path, now: datetime, *, host: str = "") -> list[Finding]:
    """One critical finding per held message not yet released or deleted."""
    out = []
    for held in decisions.open_holds(state_dir):
        params = {"queue_id": held.queue_id, "tables": held.tables, "outside": held.outside}
        out.append(
            from_templates(
                rule_id=RULE_ID,
                severity=Severity.CRITICAL,
                resource=f"mail-hold/{held.queue_id}",
                message=MESSAGE,
                remediation=REMEDIATION,
                params=params,
                election=held.election,
                location=host,
                evidence={
                    "held_at": held.at.isoformat(),
                    "recipients_outside": held.outside,
                    "attachments_personal": held.tables,
                },
                observed_at=now,
            )
        )
    return out
