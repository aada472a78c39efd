from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="share_default_acl_missing",
    title=N_("Share directory without a default ACL"),
    severity=Severity.LOW,
    scope="shares",
    reflex="segregate files",
    remediation=N_("setfacl -d -m g:<election group>:rwX,o::--- on the directory."),
    permissions=SHARE_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        for entry in tree.entries:
            if entry.kind == "dir" and entry.has_default_acl is False:
                yield Hit(
                    resource=entry.display,
                    message=N_(
                        "Directory {path} has no default ACL: new files may be created "
                        "readable by others."
                    ),
                    params={"path": entry.display},
                    election=tree.election,
                    target=entry.path,
                )
