"""KMS helpers shared by the key checks (pure functions over inventory data)."""

from __future__ import annotations

from isoloir.exposure.checks._common import s3_buckets
from isoloir.exposure.model import Inventory, KmsKey

READ_KMS = ("kms:ListKeys", "kms:DescribeKey")


def _names(key: KmsKey) -> set[str]:
    return {key.key_id, key.arn} - {""}


def key_election(inv: Inventory, key: KmsKey) -> str | None:
    """The election whose bucket uses `key` as its default encryption key."""
    names = _names(key)
    for _, bucket, election in s3_buckets(inv):
        if election is None:
            continue
        for rule in bucket.encryption:
            ref = str(rule.get("KMSMasterKeyID") or "")
            if ref and (ref in names or ref.rsplit("/", 1)[-1] == key.key_id):
                return election
    return None
