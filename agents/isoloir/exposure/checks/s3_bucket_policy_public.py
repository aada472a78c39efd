from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.accesslog import LOG_PERMISSIONS
from isoloir.exposure.breach import rank
from isoloir.exposure.checks._common import (
    READ_S3,
    effective_pab,
    pab_unknown,
    public_statements,
    s3_buckets,
)
from isoloir.exposure.model import Inventory
from isoloir.exposure.pii import merge
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_bucket_policy_public",
    title=N_('Bucket policy allows Principal "*" without a restricting condition'),
    severity=Severity.CRITICAL,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        'Remove the statements that allow Principal "*", or restrict them with '
        "aws:SourceVpce, aws:SourceIp or aws:PrincipalOrgID."
    ),
    permissions=(*READ_S3, "s3:GetBucketPolicy", "s3:ListBucket", "s3:GetObject", *LOG_PERMISSIONS),
    fix="s3_public_grants",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for s3, bucket, election in s3_buckets(inv):
        statements = public_statements(bucket.policy)
        if not statements or effective_pab(s3, bucket)["RestrictPublicBuckets"]:
            continue
        if pab_unknown(s3, bucket, "RestrictPublicBuckets"):
            continue  # a block that may neutralise it was not read
        resource = f"s3://{bucket.name}"
        reports = [s.pii for s in bucket.public_samples if s.pii is not None]
        severity, extra, evidence = rank(
            merge(reports) if reports else None,
            Severity.CRITICAL,
            resource=resource,
            exposure=N_("bucket readable by anyone on the internet through its policy"),
            election=election,
            aware_at=inv.now,
            measures=N_("public statements removed, previous policy kept in the agent journal"),
        )
        sids = [str(st.get("Sid", f"#{i}")) for i, st in statements]
        yield Hit(
            resource=resource,
            message=N_("Bucket {bucket} policy allows anyone ({statements}): {breach}.")
            if extra
            else N_("Bucket {bucket} policy allows anyone ({statements})."),
            params={
                "bucket": bucket.name,
                "statements": sids,
                **({"breach": extra} if extra else {}),
            },
            election=election,
            evidence={
                "public_statements": sids,
                **evidence,
                **bucket.read_evidence.get("", {}),
            },
            severity=severity,
            target=bucket.name,
            location=bucket.region,
        )
