from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="s3_bucket_acls_enabled",
    title="Object Ownership allows ACLs",
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="secure the data",
    remediation="Set Object Ownership to BucketOwnerEnforced (ACLs disabled).",
    permissions=(*READ_S3, "s3:GetBucketOwnershipControls"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election in s3_buckets(inv):
        if "ownership" in bucket.errors or not bucket.acls_enabled:
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=f"Bucket {bucket.name} accepts ACLs (ownership: "
            f"{bucket.ownership or 'no ownership controls'}).",
            election=election,
            evidence={"ownership": bucket.ownership},
            location=bucket.region,
        )
