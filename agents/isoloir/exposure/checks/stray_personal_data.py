from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.breach import rank
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="stray_personal_data",
    title="Contact-like file outside every election share",
    severity=Severity.HIGH,
    scope="shares",
    reflex="segregate files",
    remediation="Move the file into the election's share (or delete it yourself if it is a "
    "copy); the agent never deletes it.",
    permissions=("host:read the stray-data paths of the policies",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for stray in inv.shares.stray:
        world = bool(stray.mode & 0o004)
        base_message = f"{stray.display} holds contact-like data outside any election share"
        if world:
            severity, extra, evidence = rank(
                stray.pii,
                Severity.HIGH,
                resource=stray.display,
                exposure="file outside the shares, readable by every account of the host",
                election=None,
                aware_at=inv.now,
                measures="file moved into its election's share",
            )
            message = base_message + (f": {extra}." if extra else ".")
        else:
            severity, evidence = Severity.HIGH, dict(stray.pii.to_evidence())
            message = base_message + f" ({stray.pii.estimated_records} records estimated)."
        yield Hit(
            resource=stray.display,
            message=message,
            evidence={"mode": oct(stray.mode & 0o7777), **evidence},
            severity=severity,
        )
