from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, effective_pab, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_public_access_block",
    title=N_("Bucket public access block off (and not covered by the account's)"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_("Turn on the four Block Public Access flags of the bucket."),
    permissions=(*READ_S3, "s3:GetBucketPublicAccessBlock", "s3:GetAccountPublicAccessBlock"),
    fix="s3_public_access_block",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for s3, bucket, election in s3_buckets(inv):
        if "public_access_block" in bucket.errors or s3.account_pab_unread:
            continue
        off = [flag for flag, on in effective_pab(s3, bucket).items() if not on]
        if off:
            yield Hit(
                resource=f"s3://{bucket.name}",
                message=N_(
                    "Bucket {bucket} has no public access block for {flags}, "
                    "at bucket or account level."
                ),
                params={"bucket": bucket.name, "flags": off},
                election=election,
                evidence={"flags_off": off},
                target=bucket.name,
                location=bucket.region,
            )
