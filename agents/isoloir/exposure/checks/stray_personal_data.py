from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.breach import rank
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="stray_personal_data",
    title=N_("Contact-like file outside every election share"),
    severity=Severity.HIGH,
    scope="shares",
    reflex="segregate files",
    remediation=N_(
        "Move the file into the election's share (or delete it yourself if it is a "
        "copy); the agent never deletes it."
    ),
    permissions=("host:read the stray-data paths of the policies",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for stray in inv.shares.stray:
        world = bool(stray.mode & 0o004)
        params: dict[str, object] = {"path": stray.display}
        if world:
            severity, extra, evidence = rank(
                stray.pii,
                Severity.HIGH,
                resource=stray.display,
                exposure=N_("file outside the shares, readable by every account of the host"),
                election=None,
                aware_at=inv.now,
                measures=N_("file moved into its election's share"),
            )
            if extra:
                message = N_("{path} holds contact-like data outside any election share: {breach}.")
                params["breach"] = extra
            else:
                message = N_("{path} holds contact-like data outside any election share.")
        else:
            severity, evidence = Severity.HIGH, dict(stray.pii.to_evidence())
            message = N_(
                "{path} holds contact-like data outside any election share "
                "({records} records estimated)."
            )
            params["records"] = stray.pii.estimated_records
        yield Hit(
            resource=stray.display,
            message=message,
            params=params,
            evidence={"mode": oct(stray.mode & 0o7777), **evidence},
            severity=severity,
        )
