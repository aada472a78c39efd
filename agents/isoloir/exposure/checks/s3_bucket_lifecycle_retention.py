"""The election bucket's lifecycle: a backstop on the campaign datasets only.

Expected shape (infra/modules/election_storage, docs/infra.md): one enabled
rule per campaign dataset prefix, expiring current versions on a date a few
days AFTER the retention date (the retention agent extracts consents and
opt-outs, deletes and certifies first; S3 only catches what it missed), with
NoncurrentVersionExpiration on a versioned bucket; and one rule over the whole
bucket that expires only non-current versions (`noncurrent-versions`: a
person's erasure relies on it before the retention date). A rule that expires
current versions (Expiration by Date or Days) and covers a permanent dataset's
prefix or the whole bucket is flagged: S3 would destroy data the party keeps.
Under a legal hold no expiry is expected, of old versions either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from isoloir.exposure.checks._common import READ_S3, s3_buckets
from isoloir.exposure.model import Bucket, Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_, Msg
from isoloir.policy.model import Election

# The latest backstop accepted after the retention date (infra/variables.tf
# lifecycle_backstop_days allows 1 to 60; the default is 14).
MAX_BACKSTOP_DAYS = 60


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


def _prefix(rule: Mapping[str, Any]) -> tuple[str, bool]:
    """(prefix the rule applies to, whether it selects every object under it).
    An empty prefix is the whole bucket; a tag or size condition narrows the rule."""
    flt = rule.get("Filter")
    if flt is None:
        return str(rule.get("Prefix") or ""), True
    if "And" in flt:
        cond = flt["And"] or {}
        narrowed = bool(cond.get("Tags")) or any(k.startswith("ObjectSize") for k in cond)
        return str(cond.get("Prefix") or ""), not narrowed
    if "Tag" in flt or any(k.startswith("ObjectSize") for k in flt):
        return "", False
    return str(flt.get("Prefix") or ""), True


def _deletes(rule: Mapping[str, Any], *, old_versions: bool) -> bool:
    """Whether the rule expires current versions (or, `old_versions`, any version)."""
    exp = rule.get("Expiration") or {}
    current = "Date" in exp or "Days" in exp
    return current or (old_versions and "NoncurrentVersionExpiration" in rule)


def _dangerous(
    bucket: Bucket, permanent: list[str], legal_hold: bool
) -> Iterator[tuple[str, str | Msg]]:
    """(rule id, what it would destroy) for enabled deleting rules over kept data:
    what the party keeps is the current version; under a legal hold, every version."""
    for rule in bucket.lifecycle:
        if rule.get("Status") != "Enabled" or not _deletes(rule, old_versions=legal_hold):
            continue
        prefix, _ = _prefix(rule)
        rid = str(rule.get("ID") or "(no id)")
        if not prefix:
            yield rid, N_("the whole bucket")
            continue
        for kept in permanent:
            if kept.startswith(prefix) or prefix.startswith(kept):
                yield rid, Msg(N_("the permanent dataset prefix {prefix}"), {"prefix": kept})


def _covered(bucket: Bucket, campaign: str, due: date, permanent: list[str]) -> bool:
    latest = due + timedelta(days=MAX_BACKSTOP_DAYS)
    for rule in bucket.lifecycle:
        if rule.get("Status") != "Enabled":
            continue
        prefix, whole = _prefix(rule)
        if not prefix or not whole or not campaign.startswith(prefix):
            continue
        if any(k.startswith(prefix) for k in permanent):
            continue
        expiry = _expiry_date(rule)
        if expiry is None or not due < expiry <= latest:
            continue
        if bucket.versioning == "Enabled" and "NoncurrentVersionExpiration" not in rule:
            continue
        return True
    return False


def _hits(bucket: Bucket, election: Election) -> Iterator[Hit]:
    due = election.retention_due
    permanent = [d.bucket_prefix for d in election.datasets if not d.campaign_specific]
    for rid, what in _dangerous(bucket, permanent, election.legal_hold):
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_(
                "Bucket {bucket}: lifecycle rule {rule} deletes {what}, which {election} keeps "
                "after its retention date."
            ),
            params={"bucket": bucket.name, "rule": rid, "what": what, "election": election.id},
            election=election.id,
            evidence={"retention_due": due.isoformat(), "rule": rid},
            location=bucket.region,
        )
    if election.legal_hold:
        return
    missing = sorted(
        d.bucket_prefix
        for d in election.datasets
        if d.campaign_specific and not _covered(bucket, d.bucket_prefix, due, permanent)
    )
    if missing:
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_(
                "Bucket {bucket} has no lifecycle backstop expiring {prefixes} after the "
                "retention date {due} of {election} (within {days} days)."
            ),
            params={
                "bucket": bucket.name,
                "prefixes": missing,
                "due": due.isoformat(),
                "election": election.id,
                "days": MAX_BACKSTOP_DAYS,
            },
            election=election.id,
            evidence={
                "retention_due": due.isoformat(),
                "rules": len(bucket.lifecycle),
                "prefixes_without_backstop": missing,
            },
            location=bucket.region,
        )


@check(
    id="s3_bucket_lifecycle_retention",
    title=N_("Lifecycle backstop missing on a campaign dataset, or expiring data the party keeps"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="clean files after the election",
    remediation=N_(
        "Give each campaign dataset prefix its own enabled lifecycle rule "
        "(Filter Prefix) expiring it a few days after the retention date, with "
        "NoncurrentVersionExpiration when versioning is on; never a rule expiring current "
        "versions over the whole bucket or a permanent dataset (the retention agent deletes "
        "first and proves the deletion). One whole-bucket rule expiring only non-current "
        "versions is expected; under a legal hold, every rule that deletes is disabled."
    ),
    permissions=(*READ_S3, "s3:GetLifecycleConfiguration"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for _, bucket, election_id in s3_buckets(inv):
        if election_id is None or "lifecycle" in bucket.errors:
            continue
        yield from _hits(bucket, inv.policies.election(election_id))
