from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Bucket, Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


def _expires(bucket: Bucket) -> bool:
    return any(
        rule.get("Status") == "Enabled" and isinstance(rule.get("Expiration"), dict)
        for rule in bucket.lifecycle
    )


@check(
    id="s3_bucket_undeclared_no_expiration",
    title=N_("Undeclared bucket with no expiration rule: its data is kept forever"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="clean files after the election",
    remediation=N_(
        "Declare the bucket in an election policy (its lifecycle then follows the "
        "retention date), or add a lifecycle expiration rule, or empty and remove it."
    ),
    permissions=(*READ_S3, "s3:GetLifecycleConfiguration"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    known = set(inv.policies.baseline.log_bucket_names.values())
    for _, bucket, election in s3_buckets(inv):
        if election is not None or bucket.name in known or "lifecycle" in bucket.errors:
            continue
        if _expires(bucket):
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_(
                "Bucket {bucket} is not declared by any election policy and no "
                "lifecycle rule ever expires its objects."
            ),
            params={"bucket": bucket.name},
            evidence={"lifecycle_rules": len(bucket.lifecycle)},
            location=bucket.region,
        )
