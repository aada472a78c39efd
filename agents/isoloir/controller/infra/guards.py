"""Checks the driver makes before planning.

A shredded key must not come back. After the retention purge the agent
schedules the election key's deletion (crypto-shredding). Provider 5.x reads a
key in PendingDeletion as gone, so while the election is still listed in
policies/elections/, the next plan would create a NEW key, point
`alias/isoloir/<id>` and the bucket's default encryption at it, and the
certificate's "key shredded" would no longer describe the bucket. The driver
refuses to plan instead, and says to archive the election (remove its policy
file). Only elections whose retention date has passed are looked at: the purge
never runs before it.

The alias alone is not enough (aws-readiness F14): when the waiting period ends,
KMS deletes the key and every alias pointing at it (KMS API reference,
ScheduleKeyDeletion), and DescribeKey on the alias answers NotFound. So the
guard also reads the bucket's default encryption: a bucket whose key is
pending deletion or gone was shredded. And each shredded election found is
recorded in the target's state directory (`shredded-elections.json`), which
keeps refusing it even once the bucket is gone too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws, clock

ALIAS = "alias/isoloir/{}"


class ShreddedKeyError(RuntimeError):
    """An election still listed has its key pending deletion."""


def elections_of(var_files: Iterable[Path]) -> dict[str, Mapping[str, Any]]:
    """The `elections` variable as the last JSON var file setting it gives it."""
    found: dict[str, Mapping[str, Any]] = {}
    for path in var_files:
        if path.suffix != ".json" or not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("elections"), dict):
            found = data["elections"]
    return found


def _key_state(region: str, election_id: str) -> str | None:
    kms = aws.client("kms", region)
    alias = ALIAS.format(election_id)
    try:
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        return None
    except (BotoCoreError, ClientError) as exc:
        raise ShreddedKeyError(f"cannot read the state of {alias} in {region}: {exc}") from exc
    return str(meta.get("KeyState"))


GONE = "Deleted"  # the key no longer exists (DescribeKey: NotFound)
SHREDDED_STATES = ("PendingDeletion", "PendingReplicaDeletion", GONE)
RECORD = "shredded-elections.json"


def _bucket_key_state(region: str, bucket: str) -> str | None:
    """State of the KMS key the bucket's default encryption names (None: no
    bucket, or no KMS default encryption)."""
    s3 = aws.client("s3", region)
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "ServerSideEncryptionConfigurationNotFoundError"):
            return None
        raise ShreddedKeyError(f"cannot read the encryption of bucket {bucket}: {code}") from exc
    except BotoCoreError as exc:
        raise ShreddedKeyError(f"cannot read the encryption of bucket {bucket}: {exc}") from exc
    key_ids = [r.get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID") for r in rules]
    key_id = next((k for k in key_ids if k), None)
    if key_id is None:
        return None
    kms = aws.client("kms", region)
    try:
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        return GONE
    except (BotoCoreError, ClientError) as exc:
        raise ShreddedKeyError(f"cannot read the state of {bucket}'s key: {exc}") from exc
    return str(meta.get("KeyState"))


def recorded(record: Path | None) -> dict[str, str]:
    """election id -> bucket name, of the elections found shredded before."""
    if record is None or not record.is_file():
        return {}
    data = json.loads(record.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _record(record: Path, found: Mapping[str, str]) -> None:
    merged = {**recorded(record), **found}
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(record)


def shredded(
    elections: Mapping[str, Mapping[str, Any]], today: date, record: Path | None = None
) -> list[str]:
    """Ids of the listed elections past their retention date whose key was
    shredded: the alias's key or the bucket's key is pending deletion or gone,
    or the election (with the same bucket) was recorded shredded before."""
    before = recorded(record)
    out = []
    for election_id, e in sorted(elections.items()):
        due = date.fromisoformat(str(e["retention_date"]))
        if due > today:
            continue
        bucket = str(e.get("bucket_name", ""))
        if election_id in before and before[election_id] in (bucket, ""):
            out.append(election_id)
            continue
        region = str(e["region"])
        if _key_state(region, election_id) in SHREDDED_STATES or (
            bucket and _bucket_key_state(region, bucket) in SHREDDED_STATES
        ):
            out.append(election_id)
    if record is not None:
        found = {i: str(elections[i].get("bucket_name", "")) for i in out if i not in before}
        if found:
            _record(record, found)
    return out


def refuse_shredded(var_files: Sequence[Path], record: Path | None = None) -> None:
    """Raise ShreddedKeyError naming each election to archive first."""
    ids = shredded(elections_of(var_files), clock.today(), record)
    if ids:
        names = ", ".join(ids)
        raise ShreddedKeyError(
            f"election(s) {names}: the key was shredded by the retention purge (pending "
            f"deletion or deleted); remove policies/elections/<id>.yml for {names}, render, "
            "then deploy again: planning now would create a new key for a purged election"
        )
