from __future__ import annotations

import stat
from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="share_setgid_missing",
    title="Share directory without the setgid bit",
    severity=Severity.MEDIUM,
    scope="shares",
    reflex="segregate files",
    remediation="chmod g+s on the directory so new files inherit the election's group.",
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
                    message=f"Directory {entry.display} lacks the setgid bit: new files will "
                    f"not inherit the group {tree.group}.",
                    election=tree.election,
                    evidence={"mode": oct(stat.S_IMODE(entry.mode))},
                    target=entry.path,
                )
