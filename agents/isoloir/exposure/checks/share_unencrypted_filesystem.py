from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory, display_path
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="share_unencrypted_filesystem",
    title="Share on a file system that is not encrypted at rest",
    severity=Severity.MEDIUM,
    scope="shares",
    reflex="secure the data",
    remediation="Put the share root on a LUKS (dm-crypt) volume.",
    permissions=("host:read /proc/mounts and /sys/block",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        if tree.missing or tree.encrypted is not False:
            continue
        yield Hit(
            resource=display_path(tree.root),
            message=f"The share {display_path(tree.root)} is on {tree.device or '?'} "
            f"({tree.fs_type or '?'}, mounted on {tree.mount_point or '?'}), not on dm-crypt.",
            election=tree.election,
            evidence={"device": tree.device, "fs_type": tree.fs_type, "mount": tree.mount_point},
        )
