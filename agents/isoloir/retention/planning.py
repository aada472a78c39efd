"""Due dates and warnings: pure functions of the policies and the day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from isoloir.policy.model import Dataset, Election

ACTIVE = "active"
WARNING = "warning"
DUE = "due"
HELD = "held"
PURGED = "purged"


@dataclass(frozen=True)
class ElectionStatus:
    election: Election
    due: date
    days_left: int
    phase: str  # active | warning | due | held | purged
    threshold: int | None  # the J-n warning in force, if any

    @property
    def is_due(self) -> bool:
        return self.days_left <= 0


def warning_threshold(days_left: int, warn_days: Sequence[int]) -> int | None:
    """The smallest J-n with days_left <= n, before the due day (None otherwise).

    A missed daily run still warns: on J-5 the J-7 warning is in force.
    """
    if days_left <= 0:
        return None
    crossed = [n for n in warn_days if n > 0 and days_left <= n]
    return min(crossed) if crossed else None


def status(
    election: Election, today: date, warn_days: Sequence[int], purged: bool = False
) -> ElectionStatus:
    due = election.retention_due
    days_left = (due - today).days
    threshold = warning_threshold(days_left, warn_days)
    if purged:
        phase = PURGED
    elif days_left <= 0:
        phase = HELD if election.legal_hold else DUE
    elif threshold is not None:
        phase = WARNING
    else:
        phase = ACTIVE
    return ElectionStatus(election, due, days_left, phase, threshold)


def warning_resource(election_id: str, threshold: int) -> str:
    """The resource of the J-n warning finding (its fingerprint is stable)."""
    return f"election/{election_id}/retention/J-{threshold}"


def last_warning(warn_days: Sequence[int]) -> int | None:
    """The last warning before the due date (J-1 by default), None without warnings."""
    positive = [n for n in warn_days if n > 0]
    return min(positive) if positive else None


def campaign_datasets(election: Election) -> list[Dataset]:
    """The datasets the purge destroys, in a stable order."""
    return sorted((d for d in election.datasets if d.campaign_specific), key=lambda d: d.name)


def kept_datasets(election: Election) -> list[Dataset]:
    return sorted((d for d in election.datasets if not d.campaign_specific), key=lambda d: d.name)


def bucket_prefix(dataset: Dataset) -> str:
    """The dataset's prefix, always ending with '/' so `prospects` never matches `prospects-2`."""
    prefix = dataset.bucket_prefix.strip().lstrip("/")
    if not prefix:
        raise ValueError(f"dataset {dataset.name!r} has no bucket prefix: refusing a whole bucket")
    return prefix if prefix.endswith("/") else prefix + "/"
