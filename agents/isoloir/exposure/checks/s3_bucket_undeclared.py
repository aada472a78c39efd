from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_undeclared",
    title=N_("Bucket not declared in the policies (shadow storage)"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="segregate files",
    remediation=N_(
        "Declare the bucket's data in an election policy, or move it to a declared "
        "bucket and remove this one."
    ),
    permissions=READ_S3,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    known = set(inv.policies.baseline.log_bucket_names.values())
    for _, bucket, election in s3_buckets(inv):
        if election is not None or bucket.name in known:
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} is not declared by any election policy."),
            params={"bucket": bucket.name},
            location=bucket.region,
        )
