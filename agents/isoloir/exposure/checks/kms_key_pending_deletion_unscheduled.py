from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._kms import READ_KMS, key_election
from isoloir.exposure.model import Inventory, KmsKey
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


def _intended_or_reported(inv: Inventory, key: KmsKey, election: str | None) -> bool:
    """The retention agent's own crypto-shred, or a case s3_kms_key_pending_deletion owns."""
    scheduled = inv.s3.retention_scheduled_keys if inv.s3 is not None else None
    if scheduled is not None and ({key.key_id, key.arn} & scheduled):
        return True  # the agent scheduled it: the intended shred
    if election is None:
        return False  # the agent only ever shreds election keys
    e = inv.policies.election(election)
    if inv.today < e.retention_due or e.legal_hold:
        return True  # still kept: s3_kms_key_pending_deletion reports it
    return scheduled is None  # journal unread: cannot tell, say nothing


@check(
    id="kms_key_pending_deletion_unscheduled",
    title=N_("A KMS key is scheduled for deletion, and not by the retention agent"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "Find who scheduled the deletion (CloudTrail ScheduleKeyDeletion); if it was "
        "not intended, cancel it (CancelKeyDeletion) before the date: after it, the data the key "
        "encrypts is lost. The retention agent's own deletions are recorded in its journal and "
        "are not reported."
    ),
    permissions=READ_KMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.s3 is None:
        return
    for key in inv.s3.kms_keys:
        if key.manager != "CUSTOMER" or key.state != "PendingDeletion":
            continue
        election = key_election(inv, key)
        if _intended_or_reported(inv, key, election):
            continue
        when = key.deletion_date.isoformat() if key.deletion_date else "unknown"
        yield Hit(
            resource=key.arn or key.key_id,
            message=N_(
                "KMS key {key} will be deleted on {when}; the retention agent did not schedule it."
            ),
            params={"key": key.key_id, "when": when if key.deletion_date else N_("unknown")},
            election=election,
            evidence={"deletion_date": when, "election_key": election is not None},
            location=key.region,
        )
