"""Periodic review of what is kept after the campaigns (compliance review E7).

The purge keeps two things on purpose: the consenting contacts it copies into
the permanent contacts store, and the permanent datasets of each election.
Kept does not mean forever (RGPD art. 5(1)(e)): the CNIL ends the data of
regular contacts when the exchanges end, and members' data with the membership.
So every `baseline.retention.permanent_review` (P1Y by default, at most P3Y;
a permanent dataset may set its own `review`)
the DPO reviews them, deletes who no longer wants to hear from the party and
former members, and records it with `isoloir retention reviewed`.

- RET-REVIEW  a kept-contacts file, or a permanent dataset, not reviewed for the
              period: counts, dates and paths only, never a contact.

The review counts from the later of the recorded review and, for a contacts
file, the purge run that wrote it (its name's time stamp, else its mtime), for a
permanent dataset, the election's last round.

The suppression list is not reviewed: an opt-out must outlive every campaign
(art. 21(3); docs/retention.md, "What is kept").

The record is `retention/reviews.json` in the agent's state directory (0600):
dataset names, dates and who recorded them.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from isoloir.findings import Finding, Severity, from_templates
from isoloir.i18n import N_
from isoloir.policy.model import Dataset, Election, Policies
from isoloir.statefiles import load_record, write_record

FILE_NAME = "reviews.json"
CONTACTS = "contacts"
DATASETS = "datasets"

# `<election>--<dataset>--20260601T040000123456Z.csv` (purge.contacts_file)
_STAMP = re.compile(r"--(\d{8}T\d{6})\d*Z(?:-\d+)?\.csv$")

log = logging.getLogger("isoloir.retention")


class ReviewsError(ValueError):
    """The record of reviews cannot be read or written."""


def path(state_dir: Path) -> Path:
    return state_dir / "retention" / FILE_NAME


def load(state_dir: Path) -> dict[str, Any]:
    return load_record(path(state_dir), ReviewsError, "reviews")


def _date(entry: Any) -> date | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("reviewed_at"), str):
        return None
    try:
        return datetime.fromisoformat(entry["reviewed_at"]).date()
    except ValueError:
        return None


def contacts_reviewed(document: dict[str, Any]) -> date | None:
    return _date(document.get(CONTACTS))


def dataset_reviewed(document: dict[str, Any], election: str, dataset: str) -> date | None:
    per_election = document.get(DATASETS, {})
    if not isinstance(per_election, dict):
        return None
    entries = per_election.get(election, {})
    return _date(entries.get(dataset)) if isinstance(entries, dict) else None


def record(
    state_dir: Path, *, now: datetime, by: str, election: str | None = None, dataset: str = ""
) -> None:
    """Record a review, of the contacts store (no election) or of one permanent dataset.

    Read first, then written whole to a temporary file renamed over the record:
    an unreadable record is refused and left as it is, never half-written."""
    document = load(state_dir)
    entry = {"reviewed_at": now.isoformat(), "reviewed_by": by}
    if election is None:
        document[CONTACTS] = entry
    else:
        per_election = document.get(DATASETS)
        if not isinstance(per_election, dict):
            per_election = document[DATASETS] = {}
        datasets = per_election.get(election)
        if not isinstance(datasets, dict):
            datasets = per_election[election] = {}
        datasets[dataset] = entry
    write_record(path(state_dir), document)


@dataclass(frozen=True)
class KeptFile:
    path: str
    written: date


def kept_files(store: str) -> list[KeptFile]:
    """The kept-contacts files of the store (regular files only; a missing store: none)."""
    out: list[KeptFile] = []
    try:
        entries = list(os.scandir(store))
    except FileNotFoundError:
        return out
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or not entry.name.endswith(".csv"):
            continue
        written = datetime.fromtimestamp(info.st_mtime, UTC).date()
        match = _STAMP.search(entry.name)
        if match:
            try:
                written = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").date()
            except ValueError:
                pass
        out.append(KeptFile(f"{store.rstrip('/')}/{entry.name}", written))
    return sorted(out, key=lambda f: f.path)


def permanent_datasets(e: Election) -> list[Dataset]:
    return [d for d in e.datasets if not d.campaign_specific]


def _later(a: date, b: date | None) -> date:
    return a if b is None or a >= b else b


def findings(policies: Policies, *, state_dir: Path, now: datetime) -> list[Finding]:
    """RET-REVIEW for each kept-contacts file and permanent dataset whose review is due."""
    default = policies.baseline.retention.permanent_review
    today = now.date()
    try:
        document = load(state_dir)
    except ReviewsError as exc:
        # an unreadable record reminds of every review rather than none
        log.warning("reviews record unreadable", extra={"fields": {"error": str(exc)}})
        document = {}
    out: list[Finding] = []
    store = policies.baseline.retention.contacts_path
    store_reviewed = contacts_reviewed(document)
    try:
        files = kept_files(store)
    except OSError as exc:
        log.warning(
            "contacts store unreadable", extra={"fields": {"error": exc.strerror or str(exc)}}
        )
        files = []
    for kept in files:
        since = _later(kept.written, store_reviewed)
        period = default
        due = period.after(since)
        if today < due:
            continue
        out.append(
            from_templates(
                rule_id="RET-REVIEW",
                severity=Severity.MEDIUM,
                resource=f"retention/contacts/{kept.path.rpartition('/')[2]}",
                message=N_(
                    "The kept contacts file {path} has not been reviewed since {since}; its "
                    "review was due on {due} (review period {period})."
                ),
                remediation=N_(
                    "Review it: delete the contacts who no longer want to hear from the party "
                    "and the former members, then record the review with "
                    "`isoloir retention reviewed --contacts`."
                ),
                params={
                    "path": kept.path,
                    "since": since.isoformat(),
                    "period": str(period),
                    "due": due.isoformat(),
                },
                evidence={
                    "path": kept.path,
                    "since": since.isoformat(),
                    "due": due.isoformat(),
                    "days_overdue": (today - due).days,
                    "last_review": store_reviewed.isoformat() if store_reviewed else None,
                },
                observed_at=now,
            )
        )
    for e in policies.elections:
        last_round = e.last_round
        for ds in permanent_datasets(e):
            reviewed = dataset_reviewed(document, e.id, ds.name)
            since = _later(last_round, reviewed)
            period = ds.review or default
            due = period.after(since)
            if today < due:
                continue
            locations = [
                f"s3://{e.bucket_name}/{ds.bucket_prefix}",
                f"{e.share_path}/{ds.share_path}",
            ]
            out.append(
                from_templates(
                    rule_id="RET-REVIEW",
                    severity=Severity.MEDIUM,
                    resource=f"election/{e.id}/retention/review/{ds.name}",
                    message=N_(
                        "The permanent dataset {dataset} of {election} ({locations}) has not "
                        "been reviewed since {since}; its review was due on {due} (review "
                        "period {period})."
                    ),
                    remediation=N_(
                        "Review it: delete the data of the people who ended their exchanges "
                        "with the party and of former members, then record the review with "
                        "`isoloir retention reviewed --election {election} --dataset {dataset}`."
                    ),
                    params={
                        "election": e.id,
                        "dataset": ds.name,
                        "locations": ", ".join(locations),
                        "since": since.isoformat(),
                        "period": str(period),
                        "due": due.isoformat(),
                    },
                    election=e.id,
                    evidence={
                        "dataset": ds.name,
                        "locations": locations,
                        "since": since.isoformat(),
                        "due": due.isoformat(),
                        "days_overdue": (today - due).days,
                        "last_review": reviewed.isoformat() if reviewed else None,
                    },
                    observed_at=now,
                )
            )
    return out
