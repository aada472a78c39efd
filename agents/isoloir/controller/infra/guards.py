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


def shredded(elections: Mapping[str, Mapping[str, Any]], today: date) -> list[str]:
    """Ids of the listed elections past their retention date whose key is
    pending deletion (or already disabled for good)."""
    out = []
    for election_id, e in sorted(elections.items()):
        due = date.fromisoformat(str(e["retention_date"]))
        if due > today:
            continue
        if _key_state(str(e["region"]), election_id) in (
            "PendingDeletion",
            "PendingReplicaDeletion",
        ):
            out.append(election_id)
    return out


def refuse_shredded(var_files: Sequence[Path]) -> None:
    """Raise ShreddedKeyError naming each election to archive first."""
    ids = shredded(elections_of(var_files), clock.today())
    if ids:
        names = ", ".join(ids)
        raise ShreddedKeyError(
            f"election(s) {names}: the key was shredded by the retention purge (pending "
            f"deletion); remove policies/elections/<id>.yml for {names}, render, then deploy "
            "again: planning now would create a new key for a purged election"
        )
