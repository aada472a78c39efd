from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_acls_enabled",
    title=N_("Object Ownership allows ACLs"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="secure the data",
    remediation=N_("Set Object Ownership to BucketOwnerEnforced (ACLs disabled)."),
    permissions=(*READ_S3, "s3:GetBucketOwnershipControls"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election in s3_buckets(inv):
        if "ownership" in bucket.errors or not bucket.acls_enabled:
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} accepts ACLs (ownership: {ownership})."),
            params={
                "bucket": bucket.name,
                "ownership": bucket.ownership or N_("no ownership controls"),
            },
            election=election,
            evidence={"ownership": bucket.ownership},
            location=bucket.region,
        )
