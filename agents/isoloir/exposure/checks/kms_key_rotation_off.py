from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._kms import READ_KMS, key_election
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="kms_key_rotation_off",
    title=N_("Customer-managed symmetric KMS key without automatic rotation"),
    severity=Severity.LOW,
    scope="s3",
    reflex="secure the data",
    remediation=N_(
        "Enable automatic key rotation (EnableKeyRotation); rotation keeps the "
        "earlier key material, so existing data stays readable."
    ),
    permissions=(*READ_KMS, "kms:GetKeyRotationStatus"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.s3 is None:
        return
    for key in inv.s3.kms_keys:
        if key.rotation is not False:  # on, not applicable, or not read
            continue
        if key.manager != "CUSTOMER" or key.spec != "SYMMETRIC_DEFAULT":
            continue  # AWS rotates its own keys; other key specs cannot rotate
        election = key_election(inv, key)
        yield Hit(
            resource=key.arn or key.key_id,
            message=N_(
                "KMS key {key} does not rotate automatically; it encrypts the bucket of {election}."
            )
            if election
            else N_("KMS key {key} does not rotate automatically."),
            params={"key": key.key_id, "election": election or ""},
            election=election,
            evidence={"key_spec": key.spec, "election_key": election is not None},
            severity=Severity.MEDIUM if election else None,
            location=key.region,
        )
