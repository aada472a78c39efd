from __future__ import annotations

import stat
from collections.abc import Iterator

from isoloir.exposure.breach import rank
from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory, ShareTarget
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


def _others(mode: int) -> str:
    bits = mode & 0o007
    return "".join(c for c, b in (("r", 4), ("w", 2), ("x", 1)) if bits & b)


@check(
    id="share_world_accessible",
    title=N_("File or directory under a share readable, writable or traversable by others"),
    severity=Severity.HIGH,
    scope="shares",
    reflex="secure the data",
    remediation=N_("chmod o-rwx on the path (the share's group keeps its access)."),
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
                exposure=N_("file on a share readable by every account of the host"),
                election=tree.election,
                aware_at=inv.now,
                measures=N_("chmod o-rwx"),
            )
            if entry.kind == "dir":
                message = N_("Directory {path} is open to others (o+{bits}).")
            elif extra:
                message = N_("File {path} is open to others (o+{bits}): {breach}.")
            else:
                message = N_("File {path} is open to others (o+{bits}).")
            yield Hit(
                resource=entry.display,
                message=message,
                params={
                    "path": entry.display,
                    "bits": _others(entry.mode),
                    **({"breach": extra} if extra else {}),
                },
                election=tree.election,
                evidence={
                    "mode": oct(stat.S_IMODE(entry.mode)),
                    **evidence,
                    **(inv.shares.read_evidence.get(entry.path, {}) if readable else {}),
                },
                severity=severity,
                target=ShareTarget(tree.root, entry.path, entry.dev, entry.ino),
            )
