"""The purge of one election: survey, extract, delete, shred, certify.

Order, per campaign dataset (sorted by name):
  1. `extract` (tabular datasets): consenting rows to the permanent contacts
     store, opt-outs to the suppression list; before anything is deleted.
  2. `s3-batch`: list the first page (<= 1,000 versions and delete markers)
     under the prefix, journal it, DeleteObjects it, mark it done; repeat until
     the listing is empty.
  3. `share-batch` / `share-dirs`: the same for the files of the share, then
     the emptied sub-directories.
then `kms` (schedule the key deletion) and `certificate`.

Before anything is journaled or deleted (`Purger._preflight`): every campaign
dataset's directory must exist in the share (a missing one means an unmounted
volume or a typo, never "nothing to delete"); root must have locked the
election's folder (where the share lock is deployed); the host clock must agree
with AWS's (the `Date` header of an S3 response) unless the `ISOLOIR_NOW`
override is set; and the last warning (J-1) must have been sent 24 h earlier,
or an administrator confirmed (`--confirm-unwarned`). After the campaign
datasets, the rest of the election's folder (`UNDECLARED`) is purged the same way.

Every step is journaled `planned` before it runs and `done` after; a new run
first replays what was planned and not done. Permissions used: s3:ListBucketVersions,
s3:GetObject, s3:GetObjectVersion, s3:DeleteObjectVersion, s3:GetEncryptionConfiguration,
kms:DescribeKey, kms:ScheduleKeyDeletion.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from isoloir import __version__, aws, clock, findings
from isoloir.policy.model import Dataset, Election, Policies, Tabular
from isoloir.retention import (
    certificate,
    keys,
    losses,
    planning,
    share,
    sharelock,
    spreadsheet,
    tabular,
)
from isoloir.retention.journal import Journal, Step
from isoloir.retention.journal import db_path as journal_path
from isoloir.retention.losses import TableProblem
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_path

MAX_KEYS = 1000  # DeleteObjects accepts at most 1,000 keys a request
SHARE_BATCH = 1000
MAX_TABLE_BYTES = 256 * 1024 * 1024
_IGNORED_DELETE_ERRORS = {"NoSuchKey", "NoSuchVersion"}


class PurgeError(RuntimeError):
    """The purge could not complete; the journal keeps its place for the next run."""


class HoldError(PurgeError):
    """A legal hold forbids the purge."""


class NotYetError(PurgeError):
    """The purge waits: the last warning was not sent 24 h before; nothing deleted."""


class ClockGuardError(PurgeError):
    """The host clock cannot be trusted (AWS's clock disagrees); nothing deleted."""


# ------------------------------------------------------------ safety checks
MAX_CLOCK_SKEW = timedelta(minutes=5)
NOTICE = timedelta(hours=24)  # the last warning is sent at least this long before
GRACE = timedelta(days=1)  # ... or the due date is at least this far past
MAX_STALLED_ROUNDS = 3  # share rounds in a row that deleted nothing
LOCK_WAIT = 120.0  # seconds the purge waits for root to lock the election's folder
LOCK_POLL = 1.0


def response_date(response: Mapping[str, Any]) -> datetime | None:
    """The HTTP `Date` header of a boto3 response (or error response), as aware UTC."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    raw = headers.get("date")
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def aws_clock(s3: Any, bucket: str) -> datetime | None:
    """A clock the host does not control: the Date header of an S3 listing."""
    try:
        response = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    except ClientError as exc:
        response = exc.response
    return response_date(response)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_clock(host: datetime, independent: datetime | None) -> None:
    """Refuse when the host clock and AWS's disagree by more than MAX_CLOCK_SKEW."""
    if independent is None:
        raise ClockGuardError(
            "no independent clock: the AWS response carried no Date header; nothing was deleted"
        )
    skew = abs(host - independent)
    if skew > MAX_CLOCK_SKEW:
        raise ClockGuardError(
            f"the host clock ({_stamp(host)}) and AWS's clock ({_stamp(independent)}) disagree "
            f"by {int(skew.total_seconds())} s (more than {int(MAX_CLOCK_SKEW.total_seconds())} "
            "s): check the host's time synchronisation; nothing was deleted"
        )


def warning_sent_at(state_dir: Path, election_id: str, threshold: int) -> datetime | None:
    """When the J-n warning of the election was first sent (the alert spool), if ever."""
    from isoloir.alerts.spool import spool_path

    path = spool_path(state_dir)
    if not path.is_file():
        return None
    fp = findings.fingerprint("RET-WARN", planning.warning_resource(election_id, threshold))
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = db.execute(
            "SELECT MIN(sent_at) FROM outbox WHERE fingerprint = ? AND status = 'sent'", (fp,)
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    if not row or row[0] is None:
        return None
    return datetime.fromtimestamp(float(row[0]), UTC)


def check_notice(
    election: Election,
    now: datetime,
    threshold: int | None,
    sent_at: datetime | None,
    *,
    confirmed: bool = False,
    clock_override: bool = False,
) -> None:
    """People were warned: the last warning went out at least 24 h before, or an admin confirmed.

    An election whose due date is already past when it is first seen (a year
    typo in the rounds, a policy deployed late) never gets its warnings: it
    waits for an administrator's `retention run --election X --confirm-unwarned`
    (CLI review N3). Under the demo's and the tests' clock override only,
    whose jumps skip the warnings by design, a full day past the due date is
    enough.
    """
    if sent_at is not None and now - sent_at >= NOTICE:
        return
    if confirmed:
        return
    grace_end = datetime.combine(election.retention_due, dtime(), UTC) + GRACE
    if clock_override and now >= grace_end:
        return
    if threshold is None:
        why = "no warning is configured"
    elif sent_at is None:
        why = f"its J-{threshold} warning was never sent"
    else:
        why = f"its J-{threshold} warning was sent at {_stamp(sent_at)}, less than 24 h ago"
    if sent_at is None and now >= grace_end:
        raise NotYetError(
            f"{election.id} is past its due date {election.retention_due.isoformat()} but "
            f"{why}: nobody was warned, and the date may be wrong (a typo in the rounds' year?). "
            "Nothing is deleted until an administrator checks the date in the policy and "
            f"confirms with `isoloir retention run --election {election.id} --confirm-unwarned`"
        )
    raise NotYetError(
        f"{election.id} is due but {why}: the purge waits until 24 h after the warning is "
        f"sent (or `isoloir retention run --election {election.id} --confirm-unwarned`); "
        "nothing was deleted"
    )


# ---------------------------------------------------------------- inventory
@dataclass
class BucketScan:
    versions: int = 0
    delete_markers: int = 0
    bytes: int = 0
    keys: set[str] = field(default_factory=set)
    entries: list[tuple[str, str, bool, int]] = field(default_factory=list)


def iter_versions(
    s3: Any, bucket: str, prefix: str, page_size: int = MAX_KEYS
) -> Iterator[list[tuple[str, str, bool, int]]]:
    """Pages of (key, version id, is delete marker, size) under `prefix`."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    ):
        yield _entries(page)


def _entries(page: dict[str, Any]) -> list[tuple[str, str, bool, int]]:
    out = [
        (v["Key"], v["VersionId"], False, int(v.get("Size", 0))) for v in page.get("Versions", [])
    ]
    out += [(m["Key"], m["VersionId"], True, 0) for m in page.get("DeleteMarkers", [])]
    out.sort(key=lambda e: (e[0], e[1]))
    return out


def scan_bucket(s3: Any, bucket: str, prefix: str, keep_entries: bool = False) -> BucketScan:
    scan = BucketScan()
    try:
        for page in iter_versions(s3, bucket, prefix):
            for key, vid, marker, size in page:
                scan.keys.add(key)
                if marker:
                    scan.delete_markers += 1
                else:
                    scan.versions += 1
                    scan.bytes += size
                if keep_entries:
                    scan.entries.append((key, vid, marker, size))
    except ClientError as exc:
        if _code(exc) != "NoSuchBucket":
            raise
    return scan


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def bucket_key_id(s3: Any, bucket: str) -> str | None:
    """The KMS key of the bucket's default encryption (SSE-KMS), if any."""
    try:
        conf = s3.get_bucket_encryption(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in ("ServerSideEncryptionConfigurationNotFoundError", "NoSuchBucket"):
            return None
        raise
    for rule in conf.get("ServerSideEncryptionConfiguration", {}).get("Rules", []):
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm", "").startswith("aws:kms") and default.get("KMSMasterKeyID"):
            return str(default["KMSMasterKeyID"])
    return None


# ------------------------------------------------------------------ tables
@dataclass
class Table:
    source: str  # "s3://bucket/key" or "share:path" (+ " sheet NAME"): a location, never content
    header: list[str]
    rows: list[dict[str, str]]
    rules: Dataset | None = None  # outside the datasets: the dataset whose columns it has
    opt_outs_only: bool = False  # an older version of an object: its consents are not kept


@dataclass
class Extraction:
    """The readable tables of a dataset, and the files that cannot be extracted (with why)."""

    tables: list[Table] = field(default_factory=list)
    problems: list[TableProblem] = field(default_factory=list)  # would lose data: refused
    skipped: list[TableProblem] = field(default_factory=list)  # FIFOs and the like: no data

    @property
    def unreadable(self) -> int:
        return len(self.problems) + len(self.skipped)


def is_table_name(name: str) -> bool:
    """CSV-like files, spreadsheets the purge reads, and those it reports as unreadable."""
    return (
        tabular.is_tabular_name(name)
        or spreadsheet.is_spreadsheet_name(name)
        or spreadsheet.is_unsupported_name(name)
    )


_Ranked = tuple[tuple[bool, float, int], str, int]  # (rank, version id, size)


def _versions_by_key(s3: Any, bucket: str, prefix: str) -> dict[str, list[_Ranked]]:
    """Every stored version (not delete markers) of each key, newest first, in one listing."""
    out: dict[str, list[_Ranked]] = {}
    order = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            order += 1  # S3 lists the versions of a key newest first: earlier wins a tie
            modified = v.get("LastModified")
            stamp = modified.timestamp() if isinstance(modified, datetime) else 0.0
            rank = (bool(v.get("IsLatest")), stamp, -order)
            out.setdefault(v["Key"], []).append((rank, str(v["VersionId"]), int(v.get("Size", 0))))
    for versions in out.values():
        versions.sort(reverse=True)
    return out


def latest_versions(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, str, int]]:
    """(key, version id, size) of the newest version of each key that is not a delete marker.

    A key whose current version is a delete marker (an early lifecycle
    expiry, a member's delete) still has its data until the purge: it is read.
    """
    by_key = _versions_by_key(s3, bucket, prefix)
    for key in sorted(by_key):
        _rank, version_id, size = by_key[key][0]
        yield key, version_id, size


def read_dataset(s3: Any, election: Election, dataset: Dataset) -> Extraction:
    """Every table of the dataset (stored versions of each object, share files).

    The newest version of an object gives its consents and opt-outs. The older
    versions give their opt-outs only (a volunteer "removing" someone who
    unsubscribed from the current file must not lose that opt-out when every
    version is destroyed; CLI review N4), and are read when the newest one
    could hold opt-outs: it has the opt-out column, is empty, or cannot be
    read. A consent is only taken from the current content.
    """
    out = Extraction()
    bucket = election.bucket_name
    prefix = planning.bucket_prefix(dataset)
    history = dataset.tabular is not None and dataset.tabular.opt_out is not None
    try:
        by_key = _versions_by_key(s3, bucket, prefix)
        for key in sorted(by_key):
            if not is_table_name(key):
                continue
            (_rank, version_id, size), *older = by_key[key]
            source = f"s3://{bucket}/{key}"
            if size > MAX_TABLE_BYTES:
                out.problems.append(TableProblem(source, f"larger than {MAX_TABLE_BYTES} bytes"))
                continue
            response = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)
            data = response["Body"].read(MAX_TABLE_BYTES + 1)
            may_hold = _add_table(out, source, key, data, dataset)
            if not (history and older and (may_hold or not data.strip())):
                continue
            for _rank, old_id, old_size in older:
                shown = f"{source} (older version {old_id})"
                if old_size > MAX_TABLE_BYTES:
                    out.problems.append(TableProblem(shown, f"larger than {MAX_TABLE_BYTES} bytes"))
                    continue
                response = s3.get_object(Bucket=bucket, Key=key, VersionId=old_id)
                old_data = response["Body"].read(MAX_TABLE_BYTES + 1)
                _add_table(out, shown, key, old_data, dataset, opt_outs_only=True)
    except ClientError as exc:
        if _code(exc) != "NoSuchBucket":
            raise
    for f in share.list_files(election.share_path, dataset.share_path):
        if f.is_link or not is_table_name(f.path):
            continue
        source = f"share:{dataset.share_path}/{f.path}"
        if f.special:  # never opened; holds no data to lose
            out.skipped.append(TableProblem(source, "not a regular file (FIFO, socket, device)"))
            continue
        if f.size > MAX_TABLE_BYTES:
            out.problems.append(TableProblem(source, f"larger than {MAX_TABLE_BYTES} bytes"))
            continue
        data = _read_share_table(out, source, election.share_path, dataset.share_path, f.path)
        if data is not None:
            _add_table(out, source, f.path, data, dataset)
    return out


def _read_share_table(
    out: Extraction, source: str, share_root: str, rel: str, path: str
) -> bytes | None:
    """The file's bytes, or None with the reason recorded in `out.problems`."""
    try:
        data = share.read_file(share_root, rel, path, MAX_TABLE_BYTES)
    except PermissionError:
        # The share lock makes every file readable by the agents, except a file
        # with several hard links (changing it would change the other name too).
        out.problems.append(
            TableProblem(source, "permission denied (a file with several hard links?)")
        )
        return None
    if data is None:
        out.problems.append(TableProblem(source, "could not be opened as a regular file"))
    return data


UNDECLARED = certificate.UNDECLARED  # not a valid dataset name: the rest of the folder


def declared_paths(election: Election) -> list[str]:
    return [ds.share_path for ds in election.datasets]


def undeclared_dataset() -> Dataset:
    """The election's folder outside every declared dataset, purged like a campaign dataset."""
    return Dataset(UNDECLARED, "", "", "", "", "campaign", None)


def read_undeclared(election: Election) -> Extraction:
    """Tables of the election's folder outside every declared dataset.

    Each is read with the columns of the first tabular campaign dataset it
    matches; one that matches none cannot be extracted (its opt-outs would be
    lost) unless the election has no tabular dataset at all.
    """
    out = Extraction()
    candidates = [d for d in planning.campaign_datasets(election) if d.tabular is not None]
    root = election.share_path
    for f in share.list_files(root, "", declared=declared_paths(election)):
        if f.is_link or not is_table_name(f.path) or not candidates:
            continue
        source = f"share:{f.path}"
        if f.special:
            out.skipped.append(TableProblem(source, "not a regular file (FIFO, socket, device)"))
            continue
        if f.size > MAX_TABLE_BYTES:
            out.problems.append(TableProblem(source, f"larger than {MAX_TABLE_BYTES} bytes"))
            continue
        data = _read_share_table(out, source, root, "", f.path)
        if data is None:
            continue
        try:
            parsed = _parse_file(f.path, data[: MAX_TABLE_BYTES + 1])
        except (tabular.TabularError, spreadsheet.SpreadsheetError, csv.Error) as exc:
            out.problems.append(TableProblem(source, f"unreadable: {exc}"))
            continue
        for sheet, header, rows in parsed:
            shown = source if sheet is None else f"{source} sheet {sheet!r}"
            assert all(d.tabular is not None for d in candidates)
            rules = next(
                (d for d in candidates if not tabular.missing_columns(header, d.tabular)),  # type: ignore[arg-type]
                None,
            )
            if rules is None:
                if rows:
                    out.problems.append(
                        TableProblem(
                            shown,
                            "outside the declared datasets, and its columns match no tabular "
                            "dataset's",
                        )
                    )
                continue
            if header:
                out.tables.append(Table(shown, header, rows, rules))
    return out


def read_tables(s3: Any, election: Election, dataset: Dataset) -> tuple[list[Table], int]:
    """Every table of the dataset, and how many files could not be extracted."""
    extraction = read_dataset(s3, election, dataset)
    return extraction.tables, extraction.unreadable


def _add_table(
    out: Extraction,
    source: str,
    name: str,
    data: bytes,
    dataset: Dataset,
    *,
    opt_outs_only: bool = False,
) -> bool:
    """Parse one file into `out`: its tables, or the reason it cannot be extracted.

    True when the file could hold opt-outs: a table with the dataset's opt-out
    column, or a file that cannot be read.
    """
    if len(data) > MAX_TABLE_BYTES:
        out.problems.append(TableProblem(source, f"larger than {MAX_TABLE_BYTES} bytes"))
        return True
    try:
        parsed = _parse_file(name, data)
    except (tabular.TabularError, spreadsheet.SpreadsheetError, csv.Error) as exc:
        out.problems.append(TableProblem(source, f"unreadable: {exc}"))
        return True
    rules = dataset.tabular
    may_hold = False
    for sheet, header, rows in parsed:
        if rules is not None and rules.opt_out is not None:
            may_hold = may_hold or tabular.find_column(header, rules.opt_out.column) is not None
        where = f" (sheet {sheet!r})" if sheet is not None else ""
        if rows and dataset.tabular is not None:
            missing = tabular.missing_columns(header, dataset.tabular)
            if missing:
                out.problems.append(TableProblem(source, "; ".join(missing) + where))
        if header:
            shown = source if sheet is None else f"{source} sheet {sheet!r}"
            out.tables.append(Table(shown, header, rows, opt_outs_only=opt_outs_only))
    return may_hold


def _parse_file(name: str, data: bytes) -> list[tuple[str | None, list[str], list[dict[str, str]]]]:
    """(sheet name or None, header, rows) of each table in the file."""
    if spreadsheet.is_unsupported_name(name):
        raise spreadsheet.SpreadsheetError(
            "this spreadsheet format is not read: save it as .xlsx, .ods or .csv"
        )
    if spreadsheet.is_spreadsheet_name(name):
        out: list[tuple[str | None, list[str], list[dict[str, str]]]] = []
        for sheet in spreadsheet.read(data, name):
            header, rows = tabular.from_records(sheet.records)
            out.append((sheet.name, header, rows))
        return out
    header, rows = tabular.read_table(data)
    return [(None, header, rows)]


def refuse_unaccepted(
    state_dir: Path, election: Election, dataset: Dataset, problems: list[TableProblem]
) -> list[dict[str, str]]:
    """The accepted losses among `problems`; PurgeError naming the others, if any.

    Raised before anything of the dataset is deleted: its files stay until they
    are fixed or an administrator accepts their loss (`retention accept-loss`).
    """
    try:
        accepted = losses.accepted(state_dir, election.id, dataset.name)
    except losses.LossesError as exc:
        raise PurgeError(str(exc)) from None
    refused = [p for p in problems if p.source not in accepted]
    if refused:
        shown = "; ".join(f"{p.source}: {p.reason}" for p in refused[:5])
        more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
        raise PurgeError(
            f"{len(refused)} table(s) of dataset {dataset.name} cannot be extracted, so their "
            f"opt-outs and consents would be lost; nothing of the dataset was deleted: "
            f"{shown}{more}. Fix them, or accept the loss with `isoloir retention accept-loss "
            f"--election {election.id} --dataset {dataset.name} SOURCE...`"
        )
    return [
        {**p.to_dict(), "accepted_at": accepted[p.source].get("accepted_at", "")} for p in problems
    ]


def describe_problems(
    state_dir: Path | None, election: Election, dataset: Dataset, extraction: Extraction
) -> list[dict[str, Any]]:
    """The files the purge cannot extract, with the reason and whether their loss is accepted."""
    try:
        accepted = losses.accepted(state_dir, election.id, dataset.name) if state_dir else {}
    except losses.LossesError:
        accepted = {}
    return [{**p.to_dict(), "accepted": p.source in accepted} for p in extraction.problems]


def split_tables(
    tables: list[Table],
    dataset: Dataset,
    keep_columns: tuple[str, ...],
    already: Callable[[str | None, str | None, str | None], bool] | None,
) -> tabular.Split:
    """Two passes: the dataset's opt-outs first, so a consent elsewhere never outranks them."""
    assert dataset.tabular is not None
    total = tabular.Split()
    current = tabular.Split()
    for t in tables:
        part = tabular.split_rows(t.header, t.rows, dataset.tabular, keep_columns)
        total.merge(part)
        if not t.opt_outs_only:
            current.merge(part)
    emails, phones, postals = set(total.emails), set(total.phones), set(total.postals)

    def suppressed(email: str | None, phone: str | None, postal: str | None = None) -> bool:
        if (email and email in emails) or (phone and phone in phones):
            return True
        if postal and postal in postals:
            return True
        return already(email, phone, postal) if already else False

    final = tabular.Split()
    rules = dataset.tabular
    for t in tables:
        rows = t.rows
        if t.opt_outs_only:  # an opt-out counted once: only people the current content lacks
            rows = [r for r in rows if _not_in(current, t.header, r, rules)]
        part = tabular.split_rows(t.header, rows, rules, keep_columns, suppressed)
        if t.opt_outs_only:
            part.kept = []  # a consent counts from the current content only
            part.rows = part.opted_out_without_identifier = 0  # counted with the current content
            part.emails, part.phones, part.postals = total_ids(t, rules, keep_columns)
        if not knows_opt_outs(t.header, dataset.tabular):
            part.kept = []  # who unsubscribed is unknown: no consent of this table is trusted
        final.merge(part)
    final.kept = list(dict.fromkeys(final.kept))  # the same person in two copies of a file
    return final


def _not_in(current: tabular.Split, header: list[str], row: dict[str, str], rules: Tabular) -> bool:
    email, phone = tabular.identifiers(header, row, rules.email_column, rules.phone_column)
    postal = tabular.row_postal(header, row, rules.name_columns, rules.address_columns)
    return bool(
        (email and email not in current.emails)
        or (phone and phone not in current.phones)
        or (postal and postal not in current.postals)
    )


def total_ids(
    t: Table, rules: Tabular, keep_columns: tuple[str, ...]
) -> tuple[set[str], set[str], set[str]]:
    """Every opt-out identifier of the table (recorded even when counted elsewhere)."""
    part = tabular.split_rows(t.header, t.rows, rules, keep_columns)
    return part.emails, part.phones, part.postals


def knows_opt_outs(header: list[str], rules: Tabular) -> bool:
    """Whether a table carries the declared opt-out column (or none is declared)."""
    return rules.opt_out is None or tabular.find_column(header, rules.opt_out.column) is not None


# ----------------------------------------------------------------- the purge
@dataclass
class Outcome:
    election: str
    run_id: str
    certificate: Path
    document: dict[str, Any]
    resumed: bool


def certificates_dir(state_dir: Path) -> Path:
    return state_dir / "retention" / "certificates"


def run_stamp(run_id: str) -> str:
    """The run's start time from its id (`<election>@20260601T040000.123456Z`), for file names."""
    return run_id.rpartition("@")[2].replace(".", "")


def contacts_file(policies: Policies, election: Election, dataset: Dataset, run_id: str) -> Path:
    """`<election>--<dataset>--<run>.csv`: one file per run, never an earlier one."""
    name = f"{election.id}--{dataset.name}--{run_stamp(run_id)}.csv"
    return Path(policies.baseline.retention.contacts_path) / name


def certificate_file(state_dir: Path, election_id: str, run_id: str) -> Path:
    """`<election>--<run>.json`: a re-run never replaces an earlier certificate."""
    return certificates_dir(state_dir) / f"{election_id}--{run_stamp(run_id)}.json"


def check_contacts_store(policies: Policies) -> Path:
    """The permanent store must lie outside every election's share."""
    store = Path(os.path.realpath(policies.baseline.retention.contacts_path))
    for e in policies.elections:
        share_root = Path(os.path.realpath(e.share_path))
        if store == share_root or share_root in store.parents or store in share_root.parents:
            raise PurgeError(
                f"permanent contacts store {store} overlaps the share of {e.id}: refused"
            )
    return store


class Purger:
    def __init__(
        self,
        policies: Policies,
        election: Election,
        *,
        state_dir: Path,
        secrets_dir: Path,
        s3: Any | None = None,
        kms: Any | None = None,
        now: Callable[[], datetime] = clock.now,
        lock_dir: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        confirm_unwarned: bool = False,
    ) -> None:
        self.confirm_unwarned = confirm_unwarned
        self.policies = policies
        self.lock_dir = lock_dir if lock_dir is not None else sharelock.lock_dir_in_use()
        self.sleep = sleep
        self.election = election
        self.state_dir = state_dir
        self.secrets_dir = secrets_dir
        self.s3 = s3 if s3 is not None else aws.client("s3", election.region)
        self.kms = kms if kms is not None else aws.client("kms", election.region)
        self.now = now
        self.share_locked_at: str | None = None
        self.journal: Journal | None = None
        self.suppression: SuppressionList | None = None

    # -- bookkeeping
    def _lock(self) -> int:
        path = self.state_dir / "retention" / f"{self.election.id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PurgeError(f"another purge of {self.election.id} is running") from None
        return fd

    def run(self) -> Outcome:
        if self.election.legal_hold:
            reason = self.election.legal_hold_reason or "no reason given"
            raise HoldError(f"legal hold on {self.election.id}: {reason}")
        check_contacts_store(self.policies)
        lock = self._lock()
        try:
            self.journal = Journal(journal_path(self.state_dir))
            self.suppression = SuppressionList(
                suppression_path(self.state_dir), keys.hmac_key(self.secrets_dir)
            )
            return self._run()
        finally:
            if self.suppression is not None:
                self.suppression.close()
            if self.journal is not None:
                self.journal.close()
            os.close(lock)

    def _preflight(self, resuming: bool) -> None:
        """Checks before anything is journaled or deleted; each refusal deletes nothing.

        A run resumed from the journal passed the notice check when it started.
        """
        for ds in planning.campaign_datasets(self.election):
            share.require_dataset(self.election.share_path, ds.share_path)
        now = self.now()
        if not clock.overridden():
            # The demo and the tests move the clock with ISOLOIR_NOW; AWS keeps the
            # real one, so the comparison only makes sense without the override.
            check_clock(now, aws_clock(self.s3, self.election.bucket_name))
        threshold = planning.last_warning(self.policies.baseline.retention.warn_days)
        sent = (
            warning_sent_at(self.state_dir, self.election.id, threshold)
            if threshold is not None
            else None
        )
        if not resuming:
            check_notice(
                self.election,
                now,
                threshold,
                sent,
                confirmed=self.confirm_unwarned,
                clock_override=clock.overridden(),
            )
        # Last: members are locked out only once the purge may really go ahead
        # (never a live campaign whose date is wrong, never before the notice).
        if self.lock_dir is not None:
            self._require_share_lock(self.lock_dir)

    def _require_share_lock(self, lock_dir: Path) -> None:
        """The election's folder is locked by root before anything is read or deleted.

        Members then can no longer change what the purge walks: no `chmod 000`
        on a table, no read-only folder, no new file (security review N6, N8).
        The request is the one the share-lock service already answers after a
        purge; the purge waits up to LOCK_WAIT for the lock, then tries again
        on the next run.
        """
        eid = self.election.id
        if sharelock.unlocked_by_admin(lock_dir, eid):
            raise NotYetError(
                f"an administrator unlocked the share of {eid}: the purge waits until it is "
                f"locked again (`python -m isoloir.retention.sharelock lock {eid}` as root); "
                "nothing was deleted"
            )
        sharelock.request(self.state_dir, eid)
        asked = sharelock.requested_at(self.state_dir, eid)
        assert asked is not None
        asked = asked.replace(microsecond=0)
        waited = 0.0
        while True:
            locked = sharelock.locked_at(lock_dir, eid)
            if locked is not None and locked >= asked:
                self.share_locked_at = locked.isoformat()
                return
            if waited >= LOCK_WAIT:
                break
            self.sleep(LOCK_POLL)
            waited += LOCK_POLL
        raise NotYetError(
            f"the share of {eid} is not locked yet (asked at {_stamp(asked)}; "
            "isoloir-share-lock.service locks it): the purge waits for the lock; "
            "nothing was deleted"
        )

    def _run(self) -> Outcome:
        j = self.journal
        assert j is not None
        run = j.open_run(self.election.id)
        resumed = run is not None
        self._preflight(resuming=resumed)
        if run is None:
            run = j.start_run(self.election.id, self.now())
        self.run_id = run.run_id
        self.started_at = run.started_at
        # 1. finish what an interrupted run planned
        for step in list(j.steps(run.run_id, status="planned")):
            j.done(step.seq, self._execute(step.kind, step.dataset, step.payload))
        # 2. carry on
        for ds in planning.campaign_datasets(self.election):
            if ds.tabular is not None and not self._done("extract", ds.name):
                self._step("extract", ds.name, {})
            self._purge_bucket(ds)
            self._purge_share(ds)
        # The rest of the election's folder (files saved at its top, other
        # folders): destroyed too, so "the campaign was destroyed" holds.
        if not self._done("extract", UNDECLARED):
            self._step("extract", UNDECLARED, {})
        self._purge_share(undeclared_dataset())
        if not self._done("kms", ""):
            self._step("kms", "", {"bucket": self.election.bucket_name})
        if not self._done("certificate", ""):
            path = certificate_file(self.state_dir, self.election.id, run.run_id)
            self._step("certificate", "", {"path": str(path)})
        cert_step = j.find(run.run_id, "certificate", "")
        assert cert_step is not None
        cert_path = Path(cert_step.payload["path"])
        now = self.now()
        j.finish_run(run.run_id, now, str(cert_path))
        # Certified: the journal keeps no name of this run (nor of any earlier one
        # a crash left unredacted), only HMACs.
        j.redact_completed(keys.hmac_key(self.secrets_dir))
        document = _load(cert_path)
        return Outcome(self.election.id, run.run_id, cert_path, document, resumed)

    def _done(self, kind: str, dataset: str) -> bool:
        assert self.journal is not None
        return any(True for _ in self.journal.steps(self.run_id, kind=kind, dataset=dataset))

    def _step(self, kind: str, dataset: str, payload: Any) -> Any:
        assert self.journal is not None
        seq = self.journal.plan(self.run_id, kind, dataset, payload)
        result = self._execute(kind, dataset, payload)
        self.journal.done(seq, result)
        return result

    def _execute(self, kind: str, dataset: str, payload: Any) -> Any:
        handlers: dict[str, Callable[[str, Any], Any]] = {
            "extract": self._do_extract,
            "s3-batch": self._do_s3_batch,
            "share-batch": self._do_share_batch,
            "share-dirs": self._do_share_dirs,
            "kms": self._do_kms,
            "certificate": self._do_certificate,
        }
        return handlers[kind](dataset, payload)

    # -- 1. extract
    def _dataset(self, name: str) -> Dataset:
        return undeclared_dataset() if name == UNDECLARED else self.election.dataset(name)

    def _do_extract(self, dataset: str, payload: Any) -> dict[str, Any]:
        assert self.suppression is not None
        ds = self._dataset(dataset)
        retention = self.policies.baseline.retention
        if dataset == UNDECLARED:
            extraction = read_undeclared(self.election)
        else:
            extraction = read_dataset(self.s3, self.election, ds)
        accepted = refuse_unaccepted(self.state_dir, self.election, ds, extraction.problems)
        tables, unreadable = extraction.tables, extraction.unreadable
        store = self.suppression
        if dataset == UNDECLARED:
            split = tabular.Split()
            for rules in planning.campaign_datasets(self.election):
                mine = [t for t in tables if t.rules is rules]
                if mine:
                    split.merge(
                        split_tables(mine, rules, retention.contacts_columns, store.contains)
                    )
            split.kept = list(dict.fromkeys(split.kept))
        else:
            split = split_tables(tables, ds, retention.contacts_columns, store.contains)
        path: Path | str = ""
        if split.kept or dataset != UNDECLARED:  # no empty file for a folder without tables
            path = _write_contacts(
                contacts_file(self.policies, self.election, ds, self.run_id),
                retention.contacts_columns,
                split.kept,
            )
        added = store.add(
            split.emails,
            split.phones,
            postals=split.postals,
            election=self.election.id,
            run_id=f"{self.run_id}/{dataset}",
            now=self.now(),
        )
        return {
            "tables_read": len(tables),
            "tables_unreadable": unreadable,
            "rows_read": split.rows,
            "contacts_kept": len(split.kept),
            "contacts_file": str(path),
            "opt_outs": split.opted_out,
            "opt_outs_without_identifier": split.opted_out_without_identifier,
            "accepted_losses": accepted,
            "suppression_entries_added": added,
        }

    # -- 2. bucket
    def _purge_bucket(self, ds: Dataset) -> None:
        prefix = planning.bucket_prefix(ds)
        bucket = self.election.bucket_name
        while True:
            try:
                page = self.s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=MAX_KEYS)
            except ClientError as exc:
                if _code(exc) == "NoSuchBucket":
                    return
                raise
            entries = _entries(page)[:MAX_KEYS]
            if not entries:
                return
            result = self._step(
                "s3-batch",
                ds.name,
                {"bucket": bucket, "entries": [list(e) for e in entries]},
            )
            if result["errors"]:
                raise PurgeError(
                    f"{len(result['errors'])} versions of {bucket}/{prefix} could not be deleted "
                    f"(first error: {result['errors'][0][2]})"
                )

    def _do_s3_batch(self, dataset: str, payload: Any) -> dict[str, Any]:
        objects = [{"Key": k, "VersionId": v} for k, v, _m, _s in payload["entries"]]
        if not objects:
            return {"errors": []}
        response = self.s3.delete_objects(
            Bucket=payload["bucket"], Delete={"Objects": objects, "Quiet": True}
        )
        errors = [
            [e.get("Key", ""), e.get("VersionId", ""), e.get("Code", "")]
            for e in response.get("Errors", [])
            if e.get("Code") not in _IGNORED_DELETE_ERRORS
        ]
        return {"errors": errors}

    # -- 3. share
    def _purge_share(self, ds: Dataset) -> None:
        """List, delete, repeat until neither files nor sub-directories are left.

        A file written during the purge makes an rmdir fail (ENOTEMPTY): that
        directory is skipped, the next round lists and deletes the newcomer,
        then removes the directory. Rounds that delete nothing are bounded.
        """
        root = self.election.share_path
        declared = declared_paths(self.election) if ds.name == UNDECLARED else None
        stalled = 0
        while stalled < MAX_STALLED_ROUNDS:
            files = share.list_files(root, ds.share_path, limit=SHARE_BATCH, declared=declared)
            if files:
                result = self._step(
                    "share-batch",
                    ds.name,
                    {"files": [[f.path, f.size, f.is_link] for f in files]},
                )
            else:
                dirs = share.list_dirs(root, ds.share_path, declared=declared)
                if not dirs:
                    return
                result = self._step("share-dirs", ds.name, {"dirs": dirs})
            stalled = 0 if result.get("removed_now") else stalled + 1
        raise PurgeError(
            f"{root}/{ds.share_path or '(outside the datasets)'} does not empty: "
            f"{MAX_STALLED_ROUNDS} rounds deleted "
            "nothing (files that cannot be deleted, or written as fast as they are deleted)"
        )

    def _do_share_batch(self, dataset: str, payload: Any) -> dict[str, Any]:
        ds = self._dataset(dataset)
        paths = [p for p, _size, _link in payload["files"]]
        declared = declared_paths(self.election) if dataset == UNDECLARED else None
        removed = share.remove_files(self.election.share_path, ds.share_path, paths, declared)
        return {"removed_now": removed}

    def _do_share_dirs(self, dataset: str, payload: Any) -> dict[str, Any]:
        ds = self._dataset(dataset)
        declared = declared_paths(self.election) if dataset == UNDECLARED else None
        removed = share.remove_dirs(
            self.election.share_path, ds.share_path, payload["dirs"], declared=declared
        )
        return {"removed_now": removed}

    # -- 4. key
    def _do_kms(self, dataset: str, payload: Any) -> dict[str, Any]:
        bucket = payload["bucket"]
        window = self.policies.baseline.retention.kms_deletion_window_days
        key_id = bucket_key_id(self.s3, bucket)
        if key_id is None:
            return {
                "deferred_reason": "the bucket has no SSE-KMS default key",
                "window_days": window,
            }
        remaining = scan_bucket(self.s3, bucket, "")
        if remaining.versions:
            kept = ", ".join(d.name for d in planning.kept_datasets(self.election)) or "none"
            # where they are (top-level prefixes, never a whole key) and the command (D24)
            tops = sorted({k.split("/", 1)[0] + ("/" if "/" in k else "") for k in remaining.keys})
            shown = ", ".join(tops[:5]) + (f" and {len(tops) - 5} more" if len(tops) > 5 else "")
            return {
                "key_id": key_id,
                "window_days": window,
                "deferred_reason": (
                    f"{remaining.versions} object versions outside the campaign datasets remain "
                    f"in the bucket, under {shown} (permanent datasets: {kept}); move them out, "
                    f"then schedule the key deletion (aws kms schedule-key-deletion --key-id "
                    f"{key_id} --pending-window-in-days {window})"
                ),
            }
        meta = self.kms.describe_key(KeyId=key_id)["KeyMetadata"]
        arn = str(meta["Arn"])
        if meta.get("KeyState") != "PendingDeletion":
            # the bare key id: accepted everywhere (the emulator refuses an ARN here)
            response = self.kms.schedule_key_deletion(
                KeyId=str(meta["KeyId"]), PendingWindowInDays=window
            )
            deletion = response["DeletionDate"]
        else:
            deletion = meta["DeletionDate"]
        return {
            "key_id": arn,
            "window_days": window,
            "state": "PendingDeletion",
            "deletion_date": deletion.isoformat(),
        }

    # -- 5. certificate
    def _do_certificate(self, dataset: str, payload: Any) -> dict[str, Any]:
        assert self.journal is not None
        digest, steps = self.journal.digest(self.run_id)
        signing = keys.signing_key(self.secrets_dir)
        body = self._certificate_body(digest, steps, keys.public_key_id(signing.public_key()))
        document = certificate.sign(body, signing)
        path = Path(payload["path"])
        earlier = _existing_certificate(path)
        if earlier is not None:
            # A replay after a crash between the write and the journal's `done`:
            # the file of this very run is kept; any other file is never replaced.
            if earlier["certificate"].get("run_id") != self.run_id:
                raise PurgeError(f"{path} already exists (another run): refusing to overwrite it")
            certificate.write_public_key(path.parent, signing.public_key())
            return {"path": str(path), "sha256": _sha256(certificate.render_file(earlier))}
        certificate.write(path, document, signing.public_key())
        return {"path": str(path), "sha256": _sha256(certificate.render_file(document))}

    def _certificate_body(self, digest: str, steps: int, signer: str) -> dict[str, Any]:
        assert self.journal is not None
        e = self.election
        org = self.policies.baseline.organisation
        datasets = [self._dataset_counts(ds) for ds in planning.campaign_datasets(e)]
        datasets.append(self._dataset_counts(undeclared_dataset()))
        kms = self.journal.find(self.run_id, "kms", "")
        key = dict(kms.result) if kms and kms.result else {}
        retention = self.policies.baseline.retention
        return {
            "format": certificate.FORMAT,
            "run_id": self.run_id,
            "election": {
                "id": e.id,
                "label": e.label,
                "retention_due": e.retention_due.isoformat(),
                "legal_hold": e.legal_hold,
                "bucket": e.bucket_name,
                "share": e.share_path,
                "region": e.region,
            },
            "organisation": {
                "party": org.party,
                "controller": org.controller_name,
                "dpo_contact": org.dpo_contact,
            },
            "datasets": datasets,
            "totals": certificate.totals(datasets),
            "kept": {
                "contacts_store": retention.contacts_path,
                "contacts_columns": list(retention.contacts_columns),
                "permanent_datasets": [d.name for d in planning.kept_datasets(e)],
            },
            "key": key,
            # when root locked the election's folder before this purge (None: no share lock here)
            "share_locked_at": self.share_locked_at,
            "started_at": self.started_at,
            "finished_at": self.now().isoformat(),
            "host": socket.gethostname(),
            "agent_version": __version__,
            "journal": {"sha256": digest, "steps": steps},
            "signer": {"algorithm": certificate.ALGORITHM, "public_key_sha256": signer},
        }

    def _dataset_counts(self, ds: Dataset) -> dict[str, Any]:
        assert self.journal is not None
        keys_seen: set[str] = set()
        versions = markers = bucket_bytes = 0
        for step in self.journal.steps(self.run_id, kind="s3-batch", dataset=ds.name):
            failed = {(k, v) for k, v, _c in (step.result or {}).get("errors", [])}
            for key, vid, marker, size in step.payload["entries"]:
                if (key, vid) in failed:
                    continue
                keys_seen.add(key)
                if marker:
                    markers += 1
                else:
                    versions += 1
                    bucket_bytes += int(size)
        files = share_bytes = 0
        for step in self.journal.steps(self.run_id, kind="share-batch", dataset=ds.name):
            for _path, size, _link in step.payload["files"]:
                files += 1
                share_bytes += int(size)
        # a directory skipped while not empty is listed again by a later step: count it once
        dirs = len(
            {
                d
                for s in self.journal.steps(self.run_id, kind="share-dirs", dataset=ds.name)
                for d in s.payload["dirs"]
            }
        )
        extract: Step | None = self.journal.find(self.run_id, "extract", ds.name)
        ex = extract.result if extract and extract.result else {}
        return {
            "name": ds.name,
            "bucket_prefix": planning.bucket_prefix(ds) if ds.name != UNDECLARED else "",
            "share_path": ds.share_path,
            "objects": len(keys_seen),
            "versions": versions,
            "delete_markers": markers,
            "bucket_bytes": bucket_bytes,
            "files": files,
            "share_bytes": share_bytes,
            "directories": dirs,
            "tables_read": int(ex.get("tables_read", 0)),
            "tables_unreadable": int(ex.get("tables_unreadable", 0)),
            "rows_read": int(ex.get("rows_read", 0)),
            "contacts_kept": int(ex.get("contacts_kept", 0)),
            "opt_outs": int(ex.get("opt_outs", 0)),
            "opt_outs_without_identifier": int(ex.get("opt_outs_without_identifier", 0)),
            "accepted_losses": list(ex.get("accepted_losses", [])),
            "suppression_entries_added": int(ex.get("suppression_entries_added", 0)),
        }


def _write_contacts(path: Path, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Path:
    """The minimised consenting rows, written atomically (0640) in the permanent store.

    Never replaces an existing file: the same content is left as it is (a
    replayed step), other content goes to `<name>-2.csv`, `-3`... Returns the path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        for n in range(1, 1000):
            target = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
            try:
                os.link(tmp, target)  # fails if it exists: never overwrite kept contacts
                return target
            except FileExistsError:
                if _same_content(target, data):
                    return target
        raise PurgeError(f"{path}: too many contacts files for this run")
    finally:
        tmp.unlink()


def _same_content(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        return handle.read(len(data) + 1) == data


def _existing_certificate(path: Path) -> dict[str, Any] | None:
    """The certificate already at `path` (None when there is none)."""
    if not os.path.lexists(path):
        return None
    try:
        document = _load(path)
    except (OSError, ValueError, RecursionError):
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("certificate"), dict):
        raise PurgeError(f"{path} exists and is not a certificate: refusing to overwrite it")
    return document


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _load(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# ------------------------------------------------------------------- survey
@dataclass
class DatasetSurvey:
    name: str
    category: str
    action: str  # delete | keep
    objects: int = 0
    versions: int = 0
    delete_markers: int = 0
    bucket_bytes: int = 0
    files: int = 0
    share_bytes: int = 0
    tables: int = 0
    rows: int = 0
    contacts_to_keep: int = 0
    opt_outs: int = 0
    opt_outs_without_identifier: int = 0
    # tables that cannot be extracted: {source, reason, accepted}; the run refuses them
    cannot_extract: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    versions_list: list[tuple[str, str, bool, int]] = field(default_factory=list)
    files_list: list[str] = field(default_factory=list)

    def to_dict(self, with_lists: bool) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if not k.endswith("_list")}
        if with_lists:
            data["object_versions"] = [
                {"key": k, "version_id": v, "delete_marker": m, "size": s}
                for k, v, m, s in self.versions_list
            ]
            data["share_files"] = self.files_list
        return data


def survey(
    policies: Policies,
    election: Election,
    s3: Any,
    *,
    with_lists: bool = False,
    state_dir: Path | None = None,
) -> list[DatasetSurvey]:
    """What a purge would delete and keep, per dataset (read-only)."""
    out: list[DatasetSurvey] = []
    keep_columns = policies.baseline.retention.contacts_columns
    for ds in sorted(election.datasets, key=lambda d: d.name):
        s = DatasetSurvey(ds.name, ds.category, "delete" if ds.campaign_specific else "keep")
        errors: list[str] = []
        # The bucket and the share are surveyed apart: one unreachable still shows
        # the other (CLI review D18).
        try:
            scan = scan_bucket(s3, election.bucket_name, planning.bucket_prefix(ds), with_lists)
            s.objects, s.versions = len(scan.keys), scan.versions
            s.delete_markers, s.bucket_bytes = scan.delete_markers, scan.bytes
            s.versions_list = scan.entries
        except (ClientError, BotoCoreError) as exc:
            errors.append(f"bucket: {aws_reason(exc)}")
        try:
            if ds.campaign_specific:  # a missing share is an error, never "0 files"
                share.require_dataset(election.share_path, ds.share_path)
            files = share.list_files(election.share_path, ds.share_path)
            s.files = len(files)
            s.share_bytes = sum(f.size for f in files)
            if with_lists:
                s.files_list = [f"{election.share_path}/{ds.share_path}/{f.path}" for f in files]
        except (share.ShareError, OSError) as exc:
            errors.append(f"share: {type(exc).__name__}: {exc}")
        if not errors and ds.campaign_specific and ds.tabular is not None:
            try:
                extraction = read_dataset(s3, election, ds)
                tables = extraction.tables
                split = split_tables(tables, ds, keep_columns, None)
                s.tables, s.rows = len(tables), split.rows
                s.contacts_to_keep, s.opt_outs = len(split.kept), split.opted_out
                s.opt_outs_without_identifier = split.opted_out_without_identifier
                s.cannot_extract = describe_problems(state_dir, election, ds, extraction)
            except (ClientError, BotoCoreError) as exc:
                errors.append(f"tables: {aws_reason(exc)}")
            except (share.ShareError, OSError) as exc:
                errors.append(f"tables: {type(exc).__name__}: {exc}")
        s.error = "; ".join(errors)
        out.append(s)
    out.append(survey_undeclared(policies, election, with_lists, state_dir))
    return out


def aws_reason(exc: BaseException) -> str:
    """An AWS error in one line, without botocore's URL of the call."""
    if isinstance(exc, ClientError):
        return f"{_code(exc) or type(exc).__name__} from AWS"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return f"AWS S3 unreachable ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def survey_undeclared(
    policies: Policies, election: Election, with_lists: bool, state_dir: Path | None
) -> DatasetSurvey:
    """The election's folder outside every declared dataset: destroyed by the purge too."""
    s = DatasetSurvey(UNDECLARED, "outside the datasets", "delete")
    try:
        files = share.list_files(election.share_path, "", declared=declared_paths(election))
        s.files, s.share_bytes = len(files), sum(f.size for f in files)
        if with_lists:
            s.files_list = [f"{election.share_path}/{f.path}" for f in files]
        extraction = read_undeclared(election)
        split = tabular.Split()
        keep_columns = policies.baseline.retention.contacts_columns
        for rules in planning.campaign_datasets(election):
            mine = [t for t in extraction.tables if t.rules is rules]
            if mine:
                split.merge(split_tables(mine, rules, keep_columns, None))
        s.tables, s.rows = len(extraction.tables), split.rows
        s.contacts_to_keep, s.opt_outs = len(set(split.kept)), split.opted_out
        s.opt_outs_without_identifier = split.opted_out_without_identifier
        s.cannot_extract = describe_problems(state_dir, election, undeclared_dataset(), extraction)
    except (share.ShareError, OSError) as exc:
        s.error = f"{type(exc).__name__}: {exc}"
    return s
