from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_versioning",
    title=N_("Versioning is off"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "Enable versioning (with a NoncurrentVersionExpiration lifecycle rule so "
        "old versions are destroyed with the campaign files)."
    ),
    permissions=(*READ_S3, "s3:GetBucketVersioning"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election in s3_buckets(inv):
        if "versioning" in bucket.errors or bucket.versioning == "Enabled":
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} versioning is {state}."),
            params={"bucket": bucket.name, "state": bucket.versioning or N_("off")},
            election=election,
            evidence={"versioning": bucket.versioning},
            location=bucket.region,
        )
