from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import READ_S3, effective_pab, pab_unknown, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_, Msg


@check(
    id="s3_bucket_public_acl",
    title=N_("Bucket ACL grants access to AllUsers or AuthenticatedUsers"),
    severity=Severity.CRITICAL,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "Remove the AllUsers/AuthenticatedUsers grants from the bucket ACL and "
        "set Object Ownership to BucketOwnerEnforced."
    ),
    permissions=(*READ_S3, "s3:GetBucketAcl", "s3:GetBucketPublicAccessBlock"),
    fix="s3_public_grants",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for s3, bucket, election in s3_buckets(inv):
        grants = [g for g in bucket.acl if g.public]
        if not grants or effective_pab(s3, bucket)["IgnorePublicAcls"]:
            continue
        if pab_unknown(s3, bucket, "IgnorePublicAcls"):
            continue  # a block that may neutralise it was not read
        yield Hit(
            resource=f"s3://{bucket.name}",
            message=N_("Bucket {bucket} grants {grants} through its ACL."),
            params={
                "bucket": bucket.name,
                "grants": [
                    Msg(N_("{permission} to {grantee}"), {"permission": p, "grantee": g})
                    for p, g in sorted(
                        {(g.permission, g.grantee.rsplit("/", 1)[-1]) for g in grants}
                    )
                ],
            },
            election=election,
            evidence={"public_grants": len(grants), **bucket.read_evidence.get("", {})},
            target=bucket.name,
            location=bucket.region,
        )
