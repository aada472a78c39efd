from __future__ import annotations

import stat
from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="share_setgid_missing",
    title=N_("Share directory without the setgid bit"),
    severity=Severity.MEDIUM,
    scope="shares",
    reflex="segregate files",
    remediation=N_("chmod g+s on the directory so new files inherit the election's group."),
    permissions=SHARE_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        for entry in tree.entries:
            if entry.kind == "dir" and not entry.mode & stat.S_ISGID:
                yield Hit(
                    resource=entry.display,
                    message=N_(
                        "Directory {path} lacks the setgid bit: new files will not inherit "
                        "the group {group}."
                    ),
                    params={"path": entry.display, "group": tree.group},
                    election=tree.election,
                    evidence={"mode": oct(stat.S_IMODE(entry.mode))},
                    target=entry.path,
                )
