from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import PAB_FLAGS, Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_access_point_public_access_block",
    title=N_("S3 access point without a full public access block"),
    severity=Severity.MEDIUM,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "An access point's block cannot be changed: delete the access point and "
        "create it again with all four public access block settings on."
    ),
    permissions=("s3:ListAccessPoints", "s3:GetAccessPoint"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.s3 is None:
        return
    declared = inv.policies.bucket_names
    account = inv.s3.account_public_access_block or {}
    for ap in inv.s3.access_points:
        if ap.public_access_block is None:
            continue  # not read: nothing can be said
        off = [f for f in PAB_FLAGS if not ap.public_access_block.get(f)]
        if not off:
            continue
        election = declared.get(ap.bucket)
        yield Hit(
            resource=f"s3-access-point://{ap.region}/{ap.name}",
            message=N_(
                "Access point {access_point} of bucket {bucket} does not block public "
                "access ({flags} off)."
            ),
            params={"access_point": ap.name, "bucket": ap.bucket, "flags": off},
            election=election,
            evidence={
                "flags_off": off,
                "bucket": ap.bucket,
                "account_block_on": all(account.get(f) for f in PAB_FLAGS),
            },
            severity=Severity.HIGH if election else None,
            location=ap.region,
        )
