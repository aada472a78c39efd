from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import PAB_FLAGS, Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="s3_account_public_access_block",
    title=N_("Account-level S3 public access block is not fully on"),
    severity=Severity.HIGH,
    scope="s3",
    reflex="secure the data",
    remediation=N_("Turn on the four flags of the account-level S3 Block Public Access."),
    permissions=("s3:GetAccountPublicAccessBlock", "sts:GetCallerIdentity"),
    fix="s3_public_access_block",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.s3 is None or inv.s3.account_pab_unread:
        return  # not read (no account id, or the call failed): never reported as "off"
    pab = inv.s3.account_public_access_block or {}
    off = [f for f in PAB_FLAGS if not pab.get(f)]
    if off:
        yield Hit(
            resource=f"aws-account:{inv.s3.account_id or 'current'}",
            message=N_("The account's S3 public access block is off for {flags}."),
            params={"flags": off},
            evidence={"flags_off": off},
            target="account",
        )
