from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SAMBA_PERMS, samba_shares, share_election
from isoloir.exposure.model import Inventory, SambaConfig, SambaShare
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_

REQUIRED = {"required", "mandatory", "force"}


def encryption(cfg: SambaConfig, share: SambaShare) -> str:
    """The effective encryption setting (`smb encrypt` is the older name)."""
    for name in ("server smb encrypt", "smb encrypt"):
        if name in share.params:
            return share.params[name]
    for name in ("server smb encrypt", "smb encrypt"):
        if name in cfg.globals:
            return cfg.globals[name]
    return "default"


@check(
    id="samba_encryption_off",
    title=N_("Samba share does not require SMB encryption"),
    severity=Severity.HIGH,
    scope="shares",
    reflex="secure the data",
    remediation=N_("Set `server smb encrypt = required` in [global] or on the share."),
    permissions=SAMBA_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    for cfg, share in samba_shares(inv):
        value = encryption(cfg, share)
        if value.strip().lower() not in REQUIRED:
            yield Hit(
                resource=f"smb:{share.name}",
                message=N_("Samba share [{share}] does not require encryption ({value})."),
                params={"share": share.name, "value": value},
                election=share_election(inv, share),
                evidence={"smb_encrypt": value, "smb_conf": cfg.path},
            )
