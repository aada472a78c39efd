from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_kms_key_pending_deletion",
    title=N_("An active election's KMS key is disabled or scheduled for deletion"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "If the election is still active, cancel the key deletion (CancelKeyDeletion) "
        "and re-enable the key; after the retention date the deletion is the intended shred "
        "and is not reported."
    ),
    permissions=(*READ_S3, "s3:GetEncryptionConfiguration", "kms:DescribeKey"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election_id in s3_buckets(inv):
        if election_id is None or bucket.kms_key_state in (None, "Enabled"):
            continue
        election = inv.policies.election(election_id)
        if inv.today >= election.retention_due and not election.legal_hold:
            continue  # crypto-shredding after retention: intended
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_(
                "The KMS key of bucket {bucket} is {state} although {election} is kept "
                "until {due} (legal hold)."
            )
            if election.legal_hold
            else N_(
                "The KMS key of bucket {bucket} is {state} although {election} is kept until {due}."
            ),
            params={
                "bucket": bucket.name,
                "state": bucket.kms_key_state,
                "election": election_id,
                "due": election.retention_due.isoformat(),
            },
            election=election_id,
            evidence={
                "key_state": bucket.kms_key_state,
                "retention_due": election.retention_due.isoformat(),
                "legal_hold": election.legal_hold,
            },
            location=bucket.region,
        )
