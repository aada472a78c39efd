"""KMS keys and S3 access points of the account, and the keys the retention agent shredded.

Read by `inventory_s3.fetch` in every region a bucket lives in (and the default
one). Best-effort: a failed listing leaves `kms_read` / `access_points_read`
False and an entry in `errors`, and the checks that need it say nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir.exposure.model import PAB_FLAGS, AccessPoint, KmsKey, S3Inventory

MAX_KEYS = 1000  # keys described per region and scan


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def _key(kms: Any, region: str, key_id: str) -> KmsKey | None:
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    key = KmsKey(
        key_id=str(meta["KeyId"]),
        arn=str(meta.get("Arn", "")),
        region=region,
        manager=str(meta.get("KeyManager", "CUSTOMER")),
        spec=str(meta.get("KeySpec") or meta.get("CustomerMasterKeySpec") or ""),
        state=str(meta.get("KeyState", "")),
        origin=str(meta.get("Origin", "AWS_KMS")),
        deletion_date=meta.get("DeletionDate"),
    )
    rotatable = (
        key.manager == "CUSTOMER"
        and key.spec == "SYMMETRIC_DEFAULT"
        and key.origin == "AWS_KMS"
        and key.state == "Enabled"
    )
    if not rotatable:
        return key
    status = kms.get_key_rotation_status(KeyId=key.key_id)
    return KmsKey(**{**key.__dict__, "rotation": bool(status.get("KeyRotationEnabled"))})


def fetch_keys(client: Any, regions: Iterable[str], inv: S3Inventory, *, workers: int = 1) -> None:
    """Every KMS key of `regions` into `inv.kms_keys` (`workers` keys described at once)."""
    ok = True
    for region in sorted(set(regions)):
        kms = client("kms", region)
        try:
            ids = [
                str(k["KeyId"])
                for page in kms.get_paginator("list_keys").paginate()
                for k in page.get("Keys", [])
            ][:MAX_KEYS]
        except (ClientError, BotoCoreError) as exc:
            inv.errors[f"kms:{region}"] = _error(exc)
            ok = False
            continue

        def one(key_id: str, kms: Any = kms, region: str = region) -> KmsKey | None:
            try:
                return _key(kms, region, key_id)
            except (ClientError, BotoCoreError) as exc:
                inv.errors[f"kms:{key_id}"] = _error(exc)
                return None

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            inv.kms_keys.extend(k for k in pool.map(one, ids) if k is not None)
    inv.kms_read = ok


def fetch_access_points(client: Any, regions: Iterable[str], inv: S3Inventory) -> None:
    """Every S3 access point of `regions` with its own public access block."""
    if not inv.account_id:
        return
    ok = True
    for region in sorted(set(regions)):
        control = client("s3control", region)
        try:
            listed = control.list_access_points(AccountId=inv.account_id).get("AccessPointList", [])
        except (ClientError, BotoCoreError) as exc:
            inv.errors[f"access_points:{region}"] = _error(exc)
            ok = False
            continue
        for ap in listed:
            name = str(ap.get("Name", ""))
            pab: dict[str, bool] | None
            try:
                got = control.get_access_point(AccountId=inv.account_id, Name=name)
                conf = got.get("PublicAccessBlockConfiguration") or {}
                pab = {f: bool(conf.get(f)) for f in PAB_FLAGS}
            except (ClientError, BotoCoreError) as exc:
                inv.errors[f"access_point:{name}"] = _error(exc)
                pab = None
            inv.access_points.append(AccessPoint(name, region, str(ap.get("Bucket", "")), pab))
    inv.access_points_read = ok


def retention_scheduled_keys(journal: Path) -> frozenset[str] | None:
    """Key ARNs (and bare ids) the retention agent scheduled for deletion, from its
    journal opened read-only; None when the journal cannot be read. No journal at
    all (the agent never shredded anything here) is the empty set."""
    if not journal.is_file():
        return frozenset()
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        rows = db.execute(
            "SELECT result FROM steps WHERE kind = 'kms' AND status = 'done'"
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    keys: set[str] = set()
    for (raw,) in rows:
        try:
            result = json.loads(raw) if raw else {}
        except ValueError:
            continue
        if isinstance(result, dict) and result.get("state") == "PendingDeletion":
            arn = str(result.get("key_id", ""))
            if arn:
                keys.add(arn)
                keys.add(arn.rsplit("/", 1)[-1])
    return frozenset(keys)
