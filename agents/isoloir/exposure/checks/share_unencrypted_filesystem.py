from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory, display_path
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="share_unencrypted_filesystem",
    title=N_("Share on a file system that is not encrypted at rest"),
    severity=Severity.MEDIUM,
    scope="shares",
    reflex="secure the data",
    remediation=N_(
        "Put the share root on a LUKS (dm-crypt) volume; on AWS, mount the host's "
        "encrypted data volume on hosts.share_root and declare hosts.at_rest: cloud."
    ),
    permissions=("host:read /proc/mounts and /sys/block",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.shares is None:
        return
    for tree in inv.shares.trees:
        if tree.missing or tree.encrypted is not False:
            continue
        evidence: dict[str, object] = {
            "device": tree.device,
            "fs_type": tree.fs_type,
            "mount": tree.mount_point,
        }
        message = N_(
            "The share {path} is on {device} ({fs_type}, mounted on {mount}), not on dm-crypt."
        )
        if tree.ebs_volume:
            evidence.update(ebs_volume=tree.ebs_volume, platform_encrypted=False)
            message = N_(
                "The share {path} is on {device} ({fs_type}, mounted on {mount}), not on the "
                "encrypted data volume mounted on the share root."
            )
        yield Hit(
            resource=display_path(tree.root),
            message=message,
            params={
                "path": display_path(tree.root),
                "device": tree.device or "?",
                "fs_type": tree.fs_type or "?",
                "mount": tree.mount_point or "?",
            },
            election=tree.election,
            evidence=evidence,
        )
