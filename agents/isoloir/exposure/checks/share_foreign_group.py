from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.checks._common import SHARE_PERMS
from isoloir.exposure.model import Inventory, ShareTarget
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="share_foreign_group",
    title=N_("File owned by another election's group"),
    severity=Severity.HIGH,
    scope="shares",
    reflex="segregate files",
    remediation=N_("chgrp the path to the share's election group."),
    permissions=SHARE_PERMS,
    fix="share_group_ownership",
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        for entry in tree.entries:
            other = tree.other_election_gids.get(entry.gid)
            if entry.kind == "link" or other is None:
                continue
            yield Hit(
                resource=entry.display,
                message=N_(
                    "{path} in the share of {election} belongs to the group of election {other}."
                ),
                params={"path": entry.display, "election": tree.election, "other": other},
                election=tree.election,
                evidence={"group_of": other, "expected_group": tree.group},
                target=(ShareTarget(tree.root, entry.path, entry.dev, entry.ino), tree.gid),
            )
