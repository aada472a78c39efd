"""Where one person appears: every election's bucket (every stored version of
every table), every dataset folder of the shares, the permanent contacts store
and the opt-out (suppression) list.

Each place found carries the dataset it belongs to and that dataset's declared
origin and legal basis, which is what an access request (art. 15(1)(g)) asks
for. Files that cannot be searched (not a table, too large, unreadable) are
listed with the reason, never skipped silently.

Permissions used: s3:ListBucketVersions, s3:GetObjectVersion.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from isoloir import aws, safeio
from isoloir.dpo.match import Query, RowMatch, match_table
from isoloir.policy.model import Dataset, Election, Policies
from isoloir.retention import keys, planning, share, spreadsheet, tabular
from isoloir.retention.suppression import SuppressionError, SuppressionList
from isoloir.retention.suppression import db_path as suppression_path

PERMISSIONS = ("s3:ListBucketVersions", "s3:GetObjectVersion")
MAX_BYTES = 256 * 1024 * 1024


@dataclass
class Place:
    """One file (one stored version of an object) that holds rows of the person."""

    kind: str  # bucket | share | contacts
    location: str  # s3://bucket/key, or an absolute path
    election: str | None
    dataset: Dataset | None
    rows: list[RowMatch]
    version_id: str = ""  # bucket: the S3 version
    latest: bool = False  # bucket: the current version of the key
    last_modified: str = ""
    editable: bool = True  # a CSV the erasure can rewrite; a spreadsheet is not
    sheet: str | None = None
    # where to find it again (erasure): bucket + key, or share root + dataset dir + path
    bucket: str = ""
    key: str = ""
    share_root: str = ""
    dataset_dir: str = ""
    rel: str = ""


@dataclass
class OptOut:
    kind: str  # email | phone
    added_at: str
    source: str  # the election whose purge recorded it, or how it was added


@dataclass
class Result:
    places: list[Place] = field(default_factory=list)
    opt_outs: list[OptOut] = field(default_factory=list)
    opt_out_list: str = ""  # why the list could not be searched ("" when it was)
    unsearched: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)

    @property
    def rows(self) -> int:
        return sum(len(p.rows) for p in self.places)

    def identifiers(self, query: Query) -> tuple[set[str], set[str]]:
        """The person's e-mails and phones: those asked for and those found in their rows."""
        emails, phones = set(query.emails), set(query.phones)
        for p in self.places:
            for r in p.rows:
                emails.update(r.emails)
                phones.update(r.phones)
        return emails, phones


# ------------------------------------------------------------------ parsing
def is_table(name: str) -> bool:
    return tabular.is_tabular_name(name) or spreadsheet.is_spreadsheet_name(name)


def tables(name: str, data: bytes) -> Iterator[tuple[str | None, list[str], list[dict[str, str]]]]:
    """(sheet or None, header, rows) of each table of a file; ValueError when unreadable."""
    if spreadsheet.is_spreadsheet_name(name):
        for sheet in spreadsheet.read(data, name):
            header, rows = tabular.from_records(sheet.records)
            yield sheet.name, header, rows
        return
    header, rows = tabular.read_table(data)
    yield None, header, rows


def _search_file(query: Query, name: str, data: bytes, result: Result, make: Any) -> None:
    try:
        found = list(tables(name, data))
    except (ValueError, csv.Error) as exc:
        result.unsearched.append((make(None, []).location, f"unreadable: {exc}"))
        return
    for sheet, header, rows in found:
        matches = match_table(query, header, rows)
        if matches:
            result.places.append(make(sheet, matches))


def dataset_for_key(election: Election, key: str) -> Dataset | None:
    for ds in election.datasets:
        if key.startswith(planning.bucket_prefix(ds)):
            return ds
    return None


# -------------------------------------------------------------------- places
def search_bucket(query: Query, election: Election, s3: Any, result: Result) -> None:
    bucket = election.bucket_name
    paginator = s3.get_paginator("list_object_versions")
    try:
        for page in paginator.paginate(Bucket=bucket):
            for v in page.get("Versions", []):
                key, vid, size = v["Key"], str(v["VersionId"]), int(v.get("Size", 0))
                where = f"s3://{bucket}/{key}"
                if not is_table(key):
                    result.unsearched.append((f"{where} version {vid}", "not a table"))
                    continue
                if size > MAX_BYTES:
                    result.unsearched.append((f"{where} version {vid}", "too large"))
                    continue
                body = s3.get_object(Bucket=bucket, Key=key, VersionId=vid)["Body"].read()
                modified = v.get("LastModified")
                ds = dataset_for_key(election, key)

                def make(
                    sheet: str | None,
                    rows: list[RowMatch],
                    *,
                    _k: str = key,
                    _v: str = vid,
                    _l: bool = bool(v.get("IsLatest")),
                    _m: Any = modified,
                    _d: Dataset | None = ds,
                    _w: str = where,
                ) -> Place:
                    return Place(
                        "bucket",
                        _w,
                        election.id,
                        _d,
                        rows,
                        version_id=_v,
                        latest=_l,
                        last_modified=_m.isoformat() if hasattr(_m, "isoformat") else str(_m or ""),
                        editable=not spreadsheet.is_spreadsheet_name(_k),
                        sheet=sheet,
                        bucket=bucket,
                        key=_k,
                    )

                _search_file(query, key, body, result, make)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        result.unsearched.append((f"s3://{bucket}", "no such bucket"))


def search_share(query: Query, election: Election, result: Result) -> None:
    for ds in election.datasets:
        for f in share.list_files(election.share_path, ds.share_path):
            where = f"{election.share_path}/{ds.share_path}/{f.path}"
            if f.is_link or f.special:
                result.unsearched.append((where, "not a regular file"))
                continue
            if not is_table(f.path):
                result.unsearched.append((where, "not a table"))
                continue
            data = share.read_file(election.share_path, ds.share_path, f.path, MAX_BYTES)
            if data is None:
                result.unsearched.append((where, "could not be read"))
                continue

            def make(
                sheet: str | None,
                rows: list[RowMatch],
                *,
                _f: str = f.path,
                _d: Dataset = ds,
                _w: str = where,
            ) -> Place:
                return Place(
                    "share",
                    _w,
                    election.id,
                    _d,
                    rows,
                    editable=not spreadsheet.is_spreadsheet_name(_f),
                    sheet=sheet,
                    share_root=election.share_path,
                    dataset_dir=_d.share_path,
                    rel=_f,
                )

            _search_file(query, f.path, data, result, make)


def kept_origin(policies: Policies, name: str) -> tuple[str | None, Dataset | None]:
    """The election and dataset a kept-contacts file came from (`<election>--<dataset>--…`)."""
    parts = name.split("--")
    if len(parts) < 3:
        return None, None
    try:
        election = policies.election(parts[0])
        return election.id, election.dataset(parts[1])
    except KeyError:
        return parts[0], None


def search_contacts(query: Query, policies: Policies, result: Result) -> None:
    store = Path(policies.baseline.retention.contacts_path)
    if not store.is_dir():
        return
    for path in sorted(store.iterdir()):
        if not path.is_file() or path.is_symlink() or path.name.startswith("."):
            continue
        if not is_table(path.name):
            result.unsearched.append((str(path), "not a table"))
            continue
        try:
            data = safeio.read_regular(path, "contacts file", MAX_BYTES)
        except safeio.UnreadableFile as exc:
            result.unsearched.append((str(path), str(exc)))
            continue
        election, ds = kept_origin(policies, path.name)

        def make(
            sheet: str | None,
            rows: list[RowMatch],
            *,
            _p: Path = path,
            _e: str | None = election,
            _d: Dataset | None = ds,
        ) -> Place:
            return Place(
                "contacts",
                str(_p),
                _e,
                _d,
                rows,
                sheet=sheet,
                editable=not spreadsheet.is_spreadsheet_name(_p.name),
            )

        _search_file(query, path.name, data, result, make)


def search_opt_outs(
    emails: set[str], phones: set[str], state_dir: Path, secrets_dir: Path, result: Result
) -> None:
    """Whether (and since when) the person's e-mails and phones are on the opt-out list."""
    path = suppression_path(state_dir)
    try:
        key = keys.hmac_key(secrets_dir)
        store = SuppressionList.for_filtering(path, key)
    except (SuppressionError, keys.SecretError, OSError) as exc:
        result.opt_out_list = str(exc)
        return
    with store:
        wanted = [("email", e) for e in sorted(emails)] + [("phone", p) for p in sorted(phones)]
        digests = [(kind, store.digest(kind, value)) for kind, value in wanted]
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        for kind, digest in digests:
            row = db.execute(
                "SELECT added_at, election FROM suppressed WHERE kind = ? AND digest = ?",
                (kind, digest),
            ).fetchone()
            if row:
                result.opt_outs.append(OptOut(kind, str(row[0]), str(row[1])))
    finally:
        db.close()


def find(
    query: Query,
    policies: Policies,
    *,
    state_dir: Path,
    secrets_dir: Path,
    s3_for: Any = None,
) -> Result:
    """Every place the person appears. `s3_for(region)` gives a client (tests)."""
    result = Result()
    clients: dict[str, Any] = {}
    for e in policies.elections:
        if e.region not in clients:
            clients[e.region] = s3_for(e.region) if s3_for else aws.client("s3", e.region)
        search_bucket(query, e, clients[e.region], result)
        search_share(query, e, result)
    search_contacts(query, policies, result)
    emails, phones = result.identifiers(query)
    search_opt_outs(emails, phones, state_dir, secrets_dir, result)
    return result


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
