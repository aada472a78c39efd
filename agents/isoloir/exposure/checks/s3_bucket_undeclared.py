from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="s3_bucket_undeclared",
    title="Bucket not declared in the policies (shadow storage)",
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="segregate files",
    remediation="Declare the bucket's data in an election policy, or move it to a declared "
    "bucket and remove this one.",
    permissions=READ_S3,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    known = set(inv.policies.baseline.log_bucket_names.values())
    for _, bucket, election in s3_buckets(inv):
        if election is not None or bucket.name in known:
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=f"Bucket {bucket.name} is not declared by any election policy.",
            location=bucket.region,
        )
