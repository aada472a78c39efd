from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SAMBA_PERMS, samba_shares, share_election, yes
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="samba_guest_ok",
    title=N_("Samba share open to guests"),
    severity=Severity.CRITICAL,
    scope="shares",
    reflex="secure the data",
    remediation=N_("Set `guest ok = no` on the share and list `valid users = @<election group>`."),
    permissions=SAMBA_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for cfg, share in samba_shares(inv):
        if yes(cfg.effective(share, "guest ok", "no")) or yes(
            cfg.effective(share, "guest only", "no")
        ):
            yield Hit(
                resource=f"smb:{share.name}",
                message=N_("Samba share [{share}] accepts guests (no password)."),
                params={"share": share.name},
                election=share_election(inv, share),
                evidence={"smb_conf": cfg.path},
            )
