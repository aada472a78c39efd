from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory, display_path
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="share_scan_incomplete",
    title="Part of a share could not be scanned",
    severity=Severity.LOW,
    scope="shares",
    reflex="secure the data",
    remediation="Run the agent with rights to read the whole share, or fix the directory's "
    "owner (a directory even root cannot open is unusual).",
    permissions=SHARE_PERMS,
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        if tree.missing:
            # nothing of the share could be read: not a detail, the whole share is unseen
            yield Hit(
                resource=display_path(tree.root),
                message=f"The share root {display_path(tree.root)} "
                f"{tree.problem or 'cannot be opened'}: nothing of it was scanned.",
                election=tree.election,
                evidence={"problem": tree.problem or "cannot be opened"},
                severity=Severity.HIGH,
            )
        for path in tree.unreadable:
            yield Hit(
                resource=display_path(path),
                message=f"Directory {display_path(path)} could not be opened by the scan.",
                election=tree.election,
            )
