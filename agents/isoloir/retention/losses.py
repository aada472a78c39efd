"""Losses an administrator accepted: tables the purge may delete without extracting them.

A tabular file that cannot be read, or whose declared consent, opt-out, email
or phone column is missing, stops the purge of its dataset (its opt-outs and
consents would be lost). `isoloir retention accept-loss` records, per election
and dataset, the files whose loss is accepted; the purge then deletes them and
the certificate lists them. The record lives in the agent's state directory
(`retention/accepted-losses.json`, 0600): names and reasons only, no content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from isoloir.statefiles import load_record, write_record

FILE_NAME = "accepted-losses.json"


class LossesError(ValueError):
    """The record of accepted losses cannot be read or written."""


@dataclass(frozen=True)
class TableProblem:
    """A table the purge could not extract: where it is and why (never its content)."""

    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "reason": self.reason}


def path(state_dir: Path) -> Path:
    return state_dir / "retention" / FILE_NAME


def _load(state_dir: Path) -> dict[str, Any]:
    return load_record(path(state_dir), LossesError, "accepted losses")


def accepted(state_dir: Path, election: str, dataset: str) -> dict[str, dict[str, str]]:
    """source -> {reason, accepted_at, accepted_by} for this election's dataset."""
    entries = _load(state_dir).get(election, {}).get(dataset, [])
    out: dict[str, dict[str, str]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("source"), str):
            out[entry["source"]] = {k: str(v) for k, v in entry.items()}
    return out


def accept(
    state_dir: Path,
    election: str,
    dataset: str,
    problems: Iterable[TableProblem],
    *,
    now: datetime,
    by: str,
) -> int:
    """Record the acceptance of these losses (atomically); returns how many are recorded.

    A loss accepted already keeps its first acceptance (who, when) as long as the
    reason is the same."""
    document = _load(state_dir)
    per_election = document.setdefault(election, {})
    current = {e["source"]: e for e in per_election.get(dataset, []) if isinstance(e, dict)}
    for problem in problems:
        known = current.get(problem.source)
        if known is not None and known.get("reason") == problem.reason:
            continue
        current[problem.source] = {
            **problem.to_dict(),
            "accepted_at": now.isoformat(),
            "accepted_by": by,
        }
    per_election[dataset] = sorted(current.values(), key=lambda e: str(e["source"]))
    write_record(path(state_dir), document)
    return len(current)
