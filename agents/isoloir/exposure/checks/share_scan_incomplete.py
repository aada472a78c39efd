from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory, display_path
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="share_scan_incomplete",
    title=N_("Part of a share could not be scanned"),
    severity=Severity.LOW,
    scope="shares",
    reflex="secure the data",
    remediation=N_(
        "Run the agent with rights to read the whole share, or fix the directory's "
        "owner (a directory even root cannot open is unusual)."
    ),
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
                message=N_("The share root {path} {problem}: nothing of it was scanned."),
                params={
                    "path": display_path(tree.root),
                    "problem": tree.problem or N_("cannot be opened"),
                },
                election=tree.election,
                evidence={"problem": tree.problem or "cannot be opened"},
                severity=Severity.HIGH,
            )
        for path in tree.unreadable:
            yield Hit(
                resource=display_path(path),
                message=N_("Directory {path} could not be opened by the scan."),
                params={"path": display_path(path)},
                election=tree.election,
            )
