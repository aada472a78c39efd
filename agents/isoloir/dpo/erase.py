"""Erasure of one person (art. 17; art. 21(3) for an objection to prospecting).

1. find every place (`search.find`);
2. bucket: when the current version of an object holds the person, a copy
   without their rows becomes the new current version (same encoding,
   delimiter, line endings; the bucket's KMS key); then every stored version
   that holds them is deleted by its version id;
3. share files and kept-contacts files are rewritten in place without their
   rows (the file keeps its owner, group, mode and ACL);
4. their e-mails and phone numbers (asked for, or found in their rows) go on
   the suppression list, so no later file brings them back;
5. search again: the record states how many rows are left (0 expected);
6. a record signed with the retention agent's Ed25519 key (the one that signs
   deletion certificates) lists each place and what was done, with the
   person named only by HMAC digests of their identifiers.

A spreadsheet (.xlsx, .ods) is never rewritten: it is listed as left for the
DPO to edit by hand, and the command exits 1 until a new run finds nothing.

Permissions used: s3:ListBucketVersions, s3:GetObjectVersion, s3:PutObject,
s3:DeleteObjectVersion, s3:GetEncryptionConfiguration, kms:GenerateDataKey (S3
encrypts the rewritten version with the election's key).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from isoloir import __version__, aws
from isoloir.dpo import search
from isoloir.dpo.match import Query, match_table
from isoloir.policy.model import Policies
from isoloir.retention import certificate, keys, share, tabular
from isoloir.retention.purge import bucket_key_id
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_path

PERMISSIONS = (
    *search.PERMISSIONS,
    "s3:PutObject",
    "s3:DeleteObjectVersion",
    "s3:GetEncryptionConfiguration",
    "kms:GenerateDataKey",
)
FORMAT = "isoloir-erasure-record/1"
SUPPRESSION_SOURCE = "rights-erasure"


class EraseError(RuntimeError):
    """The erasure could not complete; what was done is in the message."""


def without_rows(query: Query, data: bytes) -> tuple[bytes, int]:
    """The CSV `data` without the person's rows (same encoding, BOM, delimiter, newline)."""
    parsed = tabular.parse(data)
    decoded = parsed.decoded
    assert decoded is not None
    drop = {m.row for m in match_table(query, parsed.header, parsed.rows)}
    if not drop:
        return data, 0
    out = io.StringIO(newline="")
    writer = csv.writer(
        out, delimiter=parsed.delimiter, lineterminator=tabular.detect_newline(decoded.text)
    )
    writer.writerow(parsed.header)
    for i, row in enumerate(parsed.rows, start=1):
        if i not in drop:
            writer.writerow([row.get(h, "") for h in parsed.header])
    return decoded.bom + out.getvalue().encode(decoded.encoding), len(drop)


def rewrite_in_place(fd: int, query: Query) -> int:
    """Rewrite the open regular file without the person's rows; returns rows removed."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise EraseError("not a regular file")
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    cleaned, removed = without_rows(query, b"".join(chunks))
    if removed:
        os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(cleaned)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.ftruncate(fd, len(cleaned))
        os.fsync(fd)
    return removed


_RW = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def rewrite_share_file(place: search.Place, query: Query) -> int:
    """A share file, reached by directory descriptors (no symlink followed)."""
    parts = [p for p in PurePosixPath(place.rel).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        raise EraseError(f"{place.location}: unsafe path")
    with share.open_dataset(place.share_root, place.dataset_dir) as dataset_fd:
        if dataset_fd is None:
            return 0
        fd = os.dup(dataset_fd)
        try:
            for part in parts[:-1]:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
            ffd = os.open(parts[-1], _RW, dir_fd=fd)
        finally:
            os.close(fd)
    try:
        return rewrite_in_place(ffd, query)
    finally:
        os.close(ffd)


def rewrite_path(path: Path, query: Query) -> int:
    fd = os.open(path, _RW)
    try:
        return rewrite_in_place(fd, query)
    finally:
        os.close(fd)


@dataclass
class Erasure:
    record: dict[str, Any]
    path: Path | None
    rows_removed: int
    rows_left: int
    left_for_dpo: list[str] = field(default_factory=list)  # spreadsheets to edit by hand

    @property
    def complete(self) -> bool:
        return self.rows_left == 0


def _bucket(places: list[search.Place], query: Query, s3: Any) -> list[dict[str, Any]]:
    """Rewrite the current versions, then delete every version that holds the person."""
    done: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str], list[search.Place]] = {}
    for p in places:
        by_key.setdefault((p.bucket, p.key), []).append(p)
    for (bucket, key), found in sorted(by_key.items()):
        if not all(p.editable for p in found):
            continue
        current = next((p for p in found if p.latest), None)
        if current is not None:
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=current.version_id)["Body"]
            cleaned, removed = without_rows(query, body.read())
            extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
            kms_key = bucket_key_id(s3, bucket)
            if kms_key:
                extra["SSEKMSKeyId"] = kms_key
            put = s3.put_object(Bucket=bucket, Key=key, Body=cleaned, **extra)
            done.append(
                {
                    "kind": "bucket",
                    "location": f"s3://{bucket}/{key}",
                    "version_id": str(put.get("VersionId", "")),
                    "rows_removed": 0,
                    "action": f"new current version without the person ({removed} row(s))",
                }
            )
        versions = sorted({p.version_id for p in found})
        # by version id: s3:DeleteObjectVersion, never a delete marker (as the purge)
        answer = s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key, "VersionId": v} for v in versions], "Quiet": True},
        )
        errors = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchVersion"]
        if errors:
            code = errors[0].get("Code")
            raise EraseError(f"s3://{bucket}/{key}: {len(errors)} version(s) not deleted ({code})")
        for p in sorted(found, key=lambda p: p.version_id):
            done.append(
                {
                    "kind": "bucket",
                    "location": p.location,
                    "version_id": p.version_id,
                    "rows_removed": len(p.rows),
                    "action": "version deleted",
                }
            )
    return done


def erase(
    query: Query,
    policies: Policies,
    *,
    request_id: str,
    state_dir: Path,
    secrets_dir: Path,
    now: Callable[[], datetime],
    s3_for: Any = None,
    dry_run: bool = False,
) -> Erasure:
    started = now()
    signing = keys.signing_key(secrets_dir)  # refuse early, before changing anything
    hmac_key = keys.hmac_key(secrets_dir)
    client_for = s3_for or (lambda region: aws.client("s3", region))
    found = search.find(
        query, policies, state_dir=state_dir, secrets_dir=secrets_dir, s3_for=client_for
    )
    emails, phones = found.identifiers(query)
    left_for_dpo = sorted({p.location for p in found.places if not p.editable})
    actions: list[dict[str, Any]] = []
    if dry_run:
        return Erasure({}, None, 0, found.rows, left_for_dpo)
    regions = {e.id: e.region for e in policies.elections}
    by_region: dict[str, list[search.Place]] = {}
    for p in found.places:
        if p.kind == "bucket":
            by_region.setdefault(regions[p.election or ""], []).append(p)
    for region, places in sorted(by_region.items()):
        actions += _bucket(places, query, client_for(region))
    rewritten: set[str] = set()
    for p in found.places:
        if p.kind == "bucket" or not p.editable or p.location in rewritten:
            continue
        rewritten.add(p.location)
        action = "rewritten without the person"
        try:
            if p.kind == "share":
                removed = rewrite_share_file(p, query)
            else:
                removed = rewrite_path(Path(p.location), query)
        except PermissionError:
            # e.g. a member's file without group write: the rest goes on, this one is
            # left for the DPO (the new search counts it, the command exits 1)
            removed, action = 0, "left: not writable by the agents (fix its mode, run again)"
            left_for_dpo.append(p.location)
        actions.append(
            {
                "kind": p.kind,
                "location": p.location,
                "version_id": "",
                "rows_removed": removed,
                "action": action,
            }
        )
    for p in found.places:
        if not p.editable:
            actions.append(
                {
                    "kind": p.kind,
                    "location": p.location,
                    "version_id": p.version_id,
                    "rows_removed": 0,
                    "action": "left: a spreadsheet, to edit by hand",
                }
            )
    with SuppressionList(suppression_path(state_dir), hmac_key) as store:
        added, present = store.add_counted(
            emails, phones, election=SUPPRESSION_SOURCE, run_id=request_id, now=now()
        )
        digests = sorted(
            [f"email:{store.digest('email', e)}" for e in emails]
            + [f"phone:{store.digest('phone', p)}" for p in phones]
        )
    after = search.find(
        query, policies, state_dir=state_dir, secrets_dir=secrets_dir, s3_for=client_for
    )
    removed_total = sum(int(a["rows_removed"]) for a in actions)
    org = policies.baseline.organisation
    body = {
        "format": FORMAT,
        "request": request_id,
        "organisation": {"controller": org.controller_name, "dpo_contact": org.dpo_contact},
        "person": {
            "identifiers_hmac": digests,
            "searched_by_name": bool(query.name),
        },
        "started_at": started.isoformat(),
        "finished_at": now().isoformat(),
        "host": socket.gethostname(),
        "agent_version": __version__,
        "actions": actions,
        "totals": {
            "places": len(found.places),
            "rows_removed": removed_total,
            "versions_deleted": sum(1 for a in actions if a["action"] == "version deleted"),
        },
        "verification": {
            "rows_left": after.rows,
            "places_left": sorted({p.location for p in after.places}),
        },
        "suppression": {"added": added, "already_present": present},
        "scope": "Isoloir-managed storage only: the election buckets, the shares' dataset "
        "folders, the permanent contacts store and the suppression list; not laptops, "
        "mailboxes or processors",
        "signer": {"public_key_sha256": keys.public_key_id(signing.public_key())},
    }
    document = certificate.sign(body, signing)
    path = records_dir(state_dir) / f"{request_id}--{started.strftime('%Y%m%dT%H%M%S%f')}.json"
    certificate.write(path, document, signing.public_key())
    return Erasure(document, path, removed_total, after.rows, left_for_dpo)


def records_dir(state_dir: Path) -> Path:
    return state_dir / "dpo" / "erasures"


def verify_record(data: bytes, public_key: Ed25519PublicKey) -> list[str]:
    """Why a signed erasure record does not verify ([] when it does)."""
    import json

    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ["not a JSON document"]
    if not isinstance(document, dict) or set(document) != {"certificate", "signature"}:
        return ["not a signed record"]
    if certificate.render_file(document) != data:
        return ["not in canonical form: the file was edited"]
    body, sig = document["certificate"], document["signature"]
    problems = []
    if body.get("format") != FORMAT:
        problems.append(f"not an erasure record ({body.get('format')!r})")
    if sig.get("public_key_sha256") != keys.public_key_id(public_key):
        problems.append("signed with another key than the one given")
    try:
        public_key.verify(base64.b64decode(str(sig.get("value", ""))), certificate.canonical(body))
    except (InvalidSignature, ValueError):
        problems.append("signature does not match the content")
    return problems
