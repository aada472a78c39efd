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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import __version__, aws, clock
from isoloir.policy.model import Dataset, Election, Policies
from isoloir.retention import certificate, keys, planning, share, tabular
from isoloir.retention.journal import Journal, Step
from isoloir.retention.journal import db_path as journal_path
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
    source: str  # "s3://bucket/key" or "share:path": a location, never content
    header: list[str]
    rows: list[dict[str, str]]


def read_tables(s3: Any, election: Election, dataset: Dataset) -> tuple[list[Table], int]:
    """Every CSV of the dataset (current versions, share files), and how many were unreadable."""
    tables: list[Table] = []
    unreadable = 0
    prefix = planning.bucket_prefix(dataset)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=election.bucket_name, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not tabular.is_tabular_name(key):
                    continue
                if int(obj.get("Size", 0)) > MAX_TABLE_BYTES:
                    unreadable += 1
                    continue
                body = s3.get_object(Bucket=election.bucket_name, Key=key)["Body"].read()
                unreadable += _add_table(tables, f"s3://{election.bucket_name}/{key}", body)
    except ClientError as exc:
        if _code(exc) != "NoSuchBucket":
            raise
    for f in share.list_files(election.share_path, dataset.share_path):
        if f.is_link or not tabular.is_tabular_name(f.path):
            continue
        data = share.read_file(election.share_path, dataset.share_path, f.path, MAX_TABLE_BYTES)
        if data is None:
            unreadable += 1
            continue
        unreadable += _add_table(tables, f"share:{dataset.share_path}/{f.path}", data)
    return tables, unreadable


def _add_table(tables: list[Table], source: str, data: bytes) -> int:
    try:
        header, rows = tabular.read_table(data)
    except (tabular.TabularError, csv.Error):
        return 1
    tables.append(Table(source, header, rows))
    return 0


def split_tables(
    tables: list[Table],
    dataset: Dataset,
    keep_columns: tuple[str, ...],
    already: Callable[[str | None, str | None], bool] | None,
) -> tabular.Split:
    """Two passes: the dataset's opt-outs first, so a consent elsewhere never outranks them."""
    assert dataset.tabular is not None
    total = tabular.Split()
    for t in tables:
        total.merge(tabular.split_rows(t.header, t.rows, dataset.tabular, keep_columns))
    emails, phones = set(total.emails), set(total.phones)

    def suppressed(email: str | None, phone: str | None) -> bool:
        if (email and email in emails) or (phone and phone in phones):
            return True
        return already(email, phone) if already else False

    final = tabular.Split()
    for t in tables:
        final.merge(tabular.split_rows(t.header, t.rows, dataset.tabular, keep_columns, suppressed))
    final.kept = list(dict.fromkeys(final.kept))  # the same person in two copies of a file
    return final


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


def contacts_file(policies: Policies, election: Election, dataset: Dataset) -> Path:
    return Path(policies.baseline.retention.contacts_path) / f"{election.id}--{dataset.name}.csv"


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
    ) -> None:
        self.policies = policies
        self.election = election
        self.state_dir = state_dir
        self.secrets_dir = secrets_dir
        self.s3 = s3 if s3 is not None else aws.client("s3", election.region)
        self.kms = kms if kms is not None else aws.client("kms", election.region)
        self.now = now
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

    def _run(self) -> Outcome:
        j = self.journal
        assert j is not None
        run = j.open_run(self.election.id)
        resumed = run is not None
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
        if not self._done("kms", ""):
            self._step("kms", "", {"bucket": self.election.bucket_name})
        cert_path = certificates_dir(self.state_dir) / f"{self.election.id}.json"
        if not self._done("certificate", ""):
            self._step("certificate", "", {"path": str(cert_path)})
        now = self.now()
        j.finish_run(run.run_id, now, str(cert_path))
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
    def _do_extract(self, dataset: str, payload: Any) -> dict[str, Any]:
        assert self.suppression is not None
        ds = self.election.dataset(dataset)
        retention = self.policies.baseline.retention
        tables, unreadable = read_tables(self.s3, self.election, ds)
        store = self.suppression
        split = split_tables(tables, ds, retention.contacts_columns, store.contains)
        path = contacts_file(self.policies, self.election, ds)
        _write_contacts(path, retention.contacts_columns, split.kept)
        added = store.add(
            split.emails,
            split.phones,
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
        root = self.election.share_path
        while True:
            files = share.list_files(root, ds.share_path, limit=SHARE_BATCH)
            if not files:
                break
            self._step(
                "share-batch",
                ds.name,
                {"files": [[f.path, f.size, f.is_link] for f in files]},
            )
        if not self._done("share-dirs", ds.name):
            dirs = share.list_dirs(root, ds.share_path)
            self._step("share-dirs", ds.name, {"dirs": dirs})

    def _do_share_batch(self, dataset: str, payload: Any) -> dict[str, Any]:
        ds = self.election.dataset(dataset)
        paths = [p for p, _size, _link in payload["files"]]
        removed = share.remove_files(self.election.share_path, ds.share_path, paths)
        return {"removed_now": removed}

    def _do_share_dirs(self, dataset: str, payload: Any) -> dict[str, Any]:
        ds = self.election.dataset(dataset)
        removed = share.remove_dirs(self.election.share_path, ds.share_path, payload["dirs"])
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
            return {
                "key_id": key_id,
                "window_days": window,
                "deferred_reason": (
                    f"{remaining.versions} object versions outside the campaign datasets remain "
                    f"in the bucket (permanent datasets: {kept}); move them out, then schedule "
                    "the key deletion"
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
        certificate.write(path, document, signing.public_key())
        return {"path": str(path), "sha256": _sha256(certificate.render_file(document))}

    def _certificate_body(self, digest: str, steps: int, signer: str) -> dict[str, Any]:
        assert self.journal is not None
        e = self.election
        org = self.policies.baseline.organisation
        datasets = [self._dataset_counts(ds) for ds in planning.campaign_datasets(e)]
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
        dirs = sum(
            len(s.payload["dirs"])
            for s in self.journal.steps(self.run_id, kind="share-dirs", dataset=ds.name)
        )
        extract: Step | None = self.journal.find(self.run_id, "extract", ds.name)
        ex = extract.result if extract and extract.result else {}
        return {
            "name": ds.name,
            "bucket_prefix": planning.bucket_prefix(ds),
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
            "suppression_entries_added": int(ex.get("suppression_entries_added", 0)),
        }


def _write_contacts(path: Path, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """The minimised consenting rows, written atomically (0640) in the permanent store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        os.write(fd, out.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


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
    policies: Policies, election: Election, s3: Any, *, with_lists: bool = False
) -> list[DatasetSurvey]:
    """What a purge would delete and keep, per dataset (read-only)."""
    out: list[DatasetSurvey] = []
    keep_columns = policies.baseline.retention.contacts_columns
    for ds in sorted(election.datasets, key=lambda d: d.name):
        s = DatasetSurvey(ds.name, ds.category, "delete" if ds.campaign_specific else "keep")
        try:
            scan = scan_bucket(s3, election.bucket_name, planning.bucket_prefix(ds), with_lists)
            s.objects, s.versions = len(scan.keys), scan.versions
            s.delete_markers, s.bucket_bytes = scan.delete_markers, scan.bytes
            s.versions_list = scan.entries
            files = share.list_files(election.share_path, ds.share_path)
            s.files = len(files)
            s.share_bytes = sum(f.size for f in files)
            if with_lists:
                s.files_list = [f"{election.share_path}/{ds.share_path}/{f.path}" for f in files]
            if ds.campaign_specific and ds.tabular is not None:
                tables, _bad = read_tables(s3, election, ds)
                split = split_tables(tables, ds, keep_columns, None)
                s.tables, s.rows = len(tables), split.rows
                s.contacts_to_keep, s.opt_outs = len(split.kept), split.opted_out
        except (ClientError, BotoCoreError, share.ShareError, OSError) as exc:
            s.error = f"{type(exc).__name__}: {exc}"
        out.append(s)
    return out
