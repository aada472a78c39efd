"""The example policies made ready for TARGET=aws, as a party would fill them in.

`load_policies(..., target="aws")` refuses the example as shipped: it needs the
party's smarthost, the deploying and break-glass principals and a bucket suffix
(aws-readiness N5, N6, F13), and a host image and subnet per region. The tests
of the aws path start from this one copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"  # the emulator's account


def aws_ready_policies(
    dest: Path,
    *,
    ami: str | None,
    subnet: str | None,
    region: str = "eu-west-3",
    slug: str | None = None,
    suffix: str = "a5e1",
    regions: list[str] | None = None,
) -> Path:
    """Copy policies/ to dest/policies with what TARGET=aws needs filled in."""
    root = dest / "policies"
    shutil.copytree(REPO / "policies", root)
    base = root / "baseline.yml"
    text = base.read_text(encoding="utf-8")

    def swap(old: str, new: str) -> None:
        nonlocal text
        assert old in text, f"the example baseline no longer holds {old!r}"
        text = text.replace(old, new, 1)

    swap(
        "slug: mouvement-exemple ",
        f"slug: {slug or 'mouvement-exemple'}\n  bucket_suffix: {suffix} ",
    )
    if regions is not None:
        swap(
            "allowed: [eu-west-3, eu-west-1, eu-central-1]",
            f"allowed: [{', '.join(regions)}]",
        )
    if ami is not None and subnet is not None:  # None: leave the hosts' AMI/subnet out
        swap(
            "  stray_data_paths: [/tmp, /home, /var/www]\n",
            "  stray_data_paths: [/tmp, /home, /var/www]\n"
            f"  aws:\n    image_ids: {{{region}: {ami}}}\n    subnet_ids: {{{region}: {subnet}}}\n",
        )
    swap("  # upstream: {host:", "  upstream: {host:")
    text += (
        "\naws:\n"
        f"  deployer_principals: [arn:aws:iam::{ACCOUNT}:role/isoloir-deploy]\n"
        f"  break_glass_roles: [arn:aws:iam::{ACCOUNT}:role/isoloir-break-glass]\n"
    )
    base.write_text(text, encoding="utf-8")
    return root
