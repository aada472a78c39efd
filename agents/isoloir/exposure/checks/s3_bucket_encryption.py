from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_

# The account's access-log bucket (baseline `log_bucket_name`) is the target of S3
# server access logging, which delivers only to SSE-S3 (AES256) buckets: SSE-KMS is
# not supported there, so Terraform sets AES256 on purpose. It is checked for SSE-S3
# or better; the election buckets must use KMS (their key is the crypto-shred).
LOG_BUCKET_ALGORITHMS = ("AES256", "aws:kms")


@check(
    id="s3_bucket_encryption",
    title=N_("No default encryption, or default encryption not with KMS"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "Set default encryption to SSE-KMS with the election's own key "
        "(that key is what makes crypto-shredding after the election possible); "
        "on the access-log bucket, SSE-S3 (AES256), which access logging requires."
    ),
    permissions=(*READ_S3, "s3:GetEncryptionConfiguration"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    log_buckets = set(inv.policies.baseline.log_bucket_names.values())
    for _, bucket, election in s3_buckets(inv):
        if "encryption" in bucket.errors:
            continue
        algorithms = [str(r.get("SSEAlgorithm", "")) for r in bucket.encryption]
        what: list[str] | str = algorithms if algorithms else N_("none")
        if bucket.name in log_buckets and election is None:
            if any(a.startswith(LOG_BUCKET_ALGORITHMS) for a in algorithms):
                continue
            yield Hit(
                resource=f"s3://{bucket.name}",
                message=N_(
                    "Access-log bucket {bucket} has no default encryption "
                    "(SSE-S3 expected; found {found})."
                ),
                params={"bucket": bucket.name, "found": what},
                evidence={"algorithms": algorithms, "log_bucket": True},
                location=bucket.region,
            )
            continue
        if any(a.startswith("aws:kms") for a in algorithms):
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} default encryption is not KMS ({found})."),
            params={"bucket": bucket.name, "found": what},
            election=election,
            evidence={"algorithms": algorithms},
            location=bucket.region,
        )
