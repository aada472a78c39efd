from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets, tls_only
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_tls_only",
    title=N_("No bucket-policy statement refusing requests without TLS"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        'Add a Deny statement for Principal "*" with condition Bool aws:SecureTransport = false.'
    ),
    permissions=(*READ_S3, "s3:GetBucketPolicy"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election in s3_buckets(inv):
        if "policy" in bucket.errors or tls_only(bucket.policy):
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} accepts requests without TLS."),
            params={"bucket": bucket.name},
            election=election,
            location=bucket.region,
        )
