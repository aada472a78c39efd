from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


def _expiry_date(rule: Mapping[str, Any]) -> date | None:
    raw = (rule.get("Expiration") or {}).get("Date")
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


def _covers_all(rule: Mapping[str, Any]) -> bool:
    flt = rule.get("Filter")
    if flt is None:
        return not rule.get("Prefix")
    return not flt or flt == {"Prefix": ""}


@check(
    id="s3_bucket_lifecycle_retention",
    title="No lifecycle expiration matching the election's retention date",
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="clean files after the election",
    remediation="Add an enabled lifecycle rule expiring every object at or before the "
    "election's retention date, with NoncurrentVersionExpiration when versioning is on "
    "(the retention agent still deletes and proves the deletion).",
    permissions=(*READ_S3, "s3:GetLifecycleConfiguration"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election_id in s3_buckets(inv):
        if election_id is None or "lifecycle" in bucket.errors:
            continue
        election = inv.policies.election(election_id)
        due = election.retention_due
        ok = False
        for rule in bucket.lifecycle:
            if rule.get("Status") != "Enabled" or not _covers_all(rule):
                continue
            expiry = _expiry_date(rule)
            if expiry is None or expiry > due:
                continue
            if bucket.versioning == "Enabled" and "NoncurrentVersionExpiration" not in rule:
                continue
            ok = True
        if ok:
            continue
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=f"Bucket {bucket.name} has no lifecycle expiration on or before the "
            f"retention date {due.isoformat()} of {election_id}.",
            election=election_id,
            evidence={"retention_due": due.isoformat(), "rules": len(bucket.lifecycle)},
            location=bucket.region,
        )
