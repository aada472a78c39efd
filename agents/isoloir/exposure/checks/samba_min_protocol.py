from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_

SMB3 = ("SMB3", "SMB3_00", "SMB3_02", "SMB3_10", "SMB3_11")
DEFAULT = "SMB2_02"  # Samba 4.11 and later


@check(
    id="samba_min_protocol",
    title=N_("Samba accepts a protocol older than SMB3"),
    severity=Severity.MEDIUM,
    scope="shares",
    reflex="secure the data",
    remediation=N_("Set `server min protocol = SMB3` in [global] (SMB3 brings encryption)."),
    permissions=("host:run testparm on smb.conf",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None or inv.shares.samba is None:
        return
    g = inv.shares.samba.globals
    value = g.get("server min protocol", g.get("min protocol", DEFAULT)).strip().upper()
    if value not in SMB3:
        yield Hit(
            resource="smb:[global]",
            message=N_("Samba accepts clients down to {value}."),
            params={"value": value},
            evidence={"server_min_protocol": value, "smb_conf": inv.shares.samba.path},
        )
