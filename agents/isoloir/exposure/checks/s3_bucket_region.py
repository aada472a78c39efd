from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_region",
    title=N_("Bucket outside the allowed EU regions"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_("Move the data to a bucket in an allowed EU region and empty this one."),
    permissions=READ_S3,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    allowed = set(inv.policies.baseline.regions.allowed)
    for _, bucket, election in s3_buckets(inv):
        if not bucket.region or bucket.region in allowed:
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} is in {region}, outside the allowed regions."),
            params={"bucket": bucket.name, "region": bucket.region},
            election=election,
            evidence={"region": bucket.region, "allowed": sorted(allowed)},
            location=bucket.region,
        )
