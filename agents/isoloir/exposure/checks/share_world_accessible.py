from __future__ import annotations

import stat
from collections.abc import Iterator

from isoloir.exposure.breach import rank
from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory, ShareTarget
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


def _others(mode: int) -> str:
    bits = mode & 0o007
    return "".join(c for c, b in (("r", 4), ("w", 2), ("x", 1)) if bits & b)


@check(
    id="share_world_accessible",
    title="File or directory under a share readable, writable or traversable by others",
    severity=Severity.HIGH,
    scope="shares",
    reflex="secure the data",
    remediation="chmod o-rwx on the path (the share's group keeps its access).",
    permissions=SHARE_PERMS,
    fix="share_permissions",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        for entry in tree.entries:
            if entry.kind == "link" or not entry.mode & 0o007:
                continue
            readable = bool(entry.mode & 0o004) and entry.kind == "file"
            severity, extra, evidence = rank(
                entry.pii if readable else None,
                Severity.HIGH,
                resource=entry.display,
                exposure="file on a share readable by every account of the host",
                election=tree.election,
                aware_at=inv.now,
                measures="chmod o-rwx",
            )
            what = "Directory" if entry.kind == "dir" else "File"
            message = f"{what} {entry.display} is open to others (o+{_others(entry.mode)})"
            yield Hit(
                resource=entry.display,
                message=message + (f": {extra}." if extra else "."),
                election=tree.election,
                evidence={"mode": oct(stat.S_IMODE(entry.mode)), **evidence},
                severity=severity,
                target=ShareTarget(tree.root, entry.path, entry.dev, entry.ino),
            )
