from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets, tls_only
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="s3_bucket_tls_only",
    title="No bucket-policy statement refusing requests without TLS",
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="secure the data",
    remediation='Add a Deny statement for Principal "*" with condition '
    "Bool aws:SecureTransport = false.",
    permissions=(*READ_S3, "s3:GetBucketPolicy"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election in s3_buckets(inv):
        if "policy" in bucket.errors or tls_only(bucket.policy):
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=f"Bucket {bucket.name} accepts requests without TLS.",
            election=election,
            location=bucket.region,
        )
