from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="s3_bucket_encryption",
    title="No default encryption, or default encryption not with KMS",
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation="Set default encryption to SSE-KMS with the election's own key "
    "(that key is what makes crypto-shredding after the election possible).",
    permissions=(*READ_S3, "s3:GetEncryptionConfiguration"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election in s3_buckets(inv):
        if "encryption" in bucket.errors:
            continue
        algorithms = [str(r.get("SSEAlgorithm", "")) for r in bucket.encryption]
        if any(a.startswith("aws:kms") for a in algorithms):
            continue
        what = ", ".join(algorithms) if algorithms else "none"
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=f"Bucket {bucket.name} default encryption is not KMS ({what}).",
            election=election,
            evidence={"algorithms": algorithms},
            location=bucket.region,
        )
