from __future__ import annotations

import os
from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory, display_path
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


def escapes(root: bytes, link: bytes, target: bytes) -> bool:
    """Lexically: does `target` (as read from `link`) point outside `root`?"""
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
    root_n = os.path.normpath(root)
    return resolved != root_n and not resolved.startswith(root_n.rstrip(b"/") + b"/")


@check(
    id="share_symlink_escape",
    title=N_("Symlink leading out of a share"),
    severity=Severity.HIGH,
    scope="shares",
    reflex="segregate files",
    remediation=N_("Remove the symlink and copy what the share needs into it."),
    permissions=SHARE_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        for entry in tree.entries:
            if entry.kind != "link" or entry.link_target is None:
                continue
            if escapes(tree.root, entry.path, entry.link_target):
                yield Hit(
                    resource=entry.display,
                    message=N_("Symlink {path} leads out of the share to {target}."),
                    params={"path": entry.display, "target": display_path(entry.link_target)},
                    election=tree.election,
                    evidence={"target": display_path(entry.link_target)},
                )
