from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.accesslog import LOG_PERMISSIONS
from isoloir.exposure.breach import rank
from isoloir.exposure.checks._common import READ_S3, effective_pab, pab_unknown, s3_buckets
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_object_public_acl",
    title=N_("Object ACL grants access to AllUsers or AuthenticatedUsers"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "Reset the object ACL to private and set Object Ownership to "
        "BucketOwnerEnforced so ACLs are disabled."
    ),
    permissions=(*READ_S3, "s3:ListBucket", "s3:GetObjectAcl", "s3:GetObject", *LOG_PERMISSIONS),
    fix="s3_public_grants",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for s3, bucket, election in s3_buckets(inv):
        if not bucket.acls_enabled or effective_pab(s3, bucket)["IgnorePublicAcls"]:
            continue
        if pab_unknown(s3, bucket, "IgnorePublicAcls"):
            continue  # a block that may neutralise it was not read
        samples = {s.key: s.pii for s in bucket.public_samples}
        for key, grants in sorted(bucket.object_acls.items()):
            public = [g for g in grants if g.public]
            if not public:
                continue
            resource = f"s3://{bucket.name}/{key}"
            severity, extra, evidence = rank(
                samples.get(key),
                Severity.HIGH,
                resource=resource,
                exposure=N_("object readable by anyone on the internet"),
                election=election,
                aware_at=inv.now,
                measures=N_("object ACL reset to private"),
            )
            yield Hit(
                resource=resource,
                message=N_("Object {object} is public through its ACL: {breach}.")
                if extra
                else N_("Object {object} is public through its ACL."),
                params={"object": resource, **({"breach": extra} if extra else {})},
                election=election,
                evidence={
                    "public_grants": len(public),
                    **evidence,
                    **bucket.read_evidence.get(key, {}),
                },
                severity=severity,
                target=(bucket.name, key),
                location=bucket.region,
            )
