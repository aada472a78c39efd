from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SAMBA_PERMS, samba_shares, share_election, yes
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="samba_guest_ok",
    title="Samba share open to guests",
    severity=Severity.CRITICAL,
    scope="shares",
    reflex="secure the data",
    remediation="Set `guest ok = no` on the share and list `valid users = @<election group>`.",
    permissions=SAMBA_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for cfg, share in samba_shares(inv):
        if yes(cfg.effective(share, "guest ok", "no")) or yes(
            cfg.effective(share, "guest only", "no")
        ):
            yield Hit(
                resource=f"smb:{share.name}",
                message=f"Samba share [{share.name}] accepts guests (no password).",
                election=share_election(inv, share),
                evidence={"smb_conf": cfg.path},
            )
