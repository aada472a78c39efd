from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SAMBA_PERMS, samba_shares, share_election
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="samba_share_undeclared",
    title=N_("Samba share not declared in the policies"),
    severity=Severity.MEDIUM,
    scope="shares",
    reflex="segregate files",
    remediation=N_("Remove the share from smb.conf, or declare its data in an election policy."),
    permissions=SAMBA_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for cfg, share in samba_shares(inv):
        if share_election(inv, share) is None:
            yield Hit(
                resource=f"smb:{share.name}",
                message=N_(
                    "Samba share [{share}] ({path}) is not declared by any election policy."
                ),
                params={"share": share.name, "path": share.params.get("path", "?")},
                evidence={"path": share.params.get("path", ""), "smb_conf": cfg.path},
            )
