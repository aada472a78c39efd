from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="samba_map_to_guest",
    title=N_("Samba maps failed logins to the guest account"),
    severity=Severity.HIGH,
    scope="shares",
    reflex="secure the data",
    remediation=N_("Set `map to guest = Never` in [global]."),
    permissions=("host:run testparm on smb.conf",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None or inv.shares.samba is None:
        return
    value = inv.shares.samba.globals.get("map to guest", "Never")
    if value.strip().lower() != "never":
        yield Hit(
            resource="smb:[global]",
            message=N_("Samba maps logins to the guest account (map to guest = {value})."),
            params={"value": value},
            evidence={"map_to_guest": value, "smb_conf": inv.shares.samba.path},
        )
