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
5. search again: the record states how many rows are left (0 expected, or
   only rows in old versions left to an S3 lifecycle rule, see below);
6. a record signed with the retention agent's Ed25519 key (the one that signs
   deletion certificates) lists each place and what was done, with the
   person named only by HMAC digests of their identifiers.

A spreadsheet (.xlsx, .ods) is never rewritten: it is listed as left for the
DPO to edit by hand, and the command exits 1 until a new run finds nothing.

Before an election's retention date, the bucket policy denies the agents'
role s3:DeleteObjectVersion (DenyAgentDeletionBeforeRetention): DeleteObjects
answers AccessDenied for each version. Such a version is then left to the
bucket's lifecycle when an enabled rule expires the non-current versions of
every object under a prefix of its key (`noncurrent-versions`, the whole
bucket, or a campaign's `retention:<prefix>`): the record lists it with the
rule, its NoncurrentDays and the date S3 will have deleted it by (function
`expires_by`). Without such a rule (under a legal hold the rule is disabled)
the erasure stops with an error.

Permissions used: s3:ListBucketVersions, s3:GetObjectVersion, s3:PutObject,
s3:DeleteObjectVersion, s3:GetEncryptionConfiguration, kms:GenerateDataKey (S3
encrypts the rewritten version with the election's key),
s3:GetLifecycleConfiguration (only after an AccessDenied).
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError
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
    "s3:GetLifecycleConfiguration",
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
    # of rows_left: rows in old versions AWS refused to delete, left to a lifecycle rule
    rows_pending_lifecycle: int = 0
    expires_by: str | None = None  # the latest `expires_by` of those versions

    @property
    def complete(self) -> bool:
        """Nothing left but old versions that a lifecycle rule deletes by `expires_by`."""
        return self.rows_left == self.rows_pending_lifecycle


LIFECYCLE_ACTION = (
    "version left to S3 lifecycle rule {rule}: deleted {days} days after it stopped being current"
)


def rule_prefix(rule: dict[str, Any]) -> str | None:
    """The prefix under which the rule selects every object, or None when its filter
    might leave some out (a tag or an object size condition) or is not understood."""
    if "Filter" not in rule:
        prefix = rule.get("Prefix")  # the older form, a rule-level prefix
        return prefix if isinstance(prefix, str) else None
    selector = rule["Filter"]
    if not isinstance(selector, dict):
        return None
    if "And" in selector:
        if set(selector) != {"And"} or not isinstance(selector["And"], dict):
            return None
        selector = selector["And"]
    if not set(selector) <= {"Prefix"}:
        return None  # Tag, Tags, ObjectSizeGreaterThan, ObjectSizeLessThan
    prefix = selector.get("Prefix", "")
    return prefix if isinstance(prefix, str) else None


def covering_rule(rules: list[dict[str, Any]], key: str) -> tuple[str, int] | None:
    """(rule id, NoncurrentDays) of the enabled rule that deletes the non-current
    versions of `key` soonest (on a tie, the first id in sorted order), or None
    when no enabled rule surely does."""
    best: tuple[str, int] | None = None
    for rule in rules:
        if rule.get("Status") != "Enabled":
            continue  # a legal hold disables the rule
        expiration = rule.get("NoncurrentVersionExpiration") or {}
        days = expiration.get("NoncurrentDays")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            continue
        if expiration.get("NewerNoncurrentVersions"):
            continue  # S3 keeps that many newer non-current versions whatever their age
        prefix = rule_prefix(rule)
        if prefix is None or not key.startswith(prefix):
            continue
        rule_id = str(rule.get("ID", ""))
        if best is None or (days, rule_id) < (best[1], best[0]):
            best = (rule_id, days)  # the fewest days; the first id on a tie (stable)
    return best


def expires_by(noncurrent_since: datetime, days: int) -> date:
    """The UTC date by whose start (00:00 UTC) S3 has deleted a version left to a rule.

    S3 adds the rule's NoncurrentDays to the time the version stopped being current
    and rounds up to the next midnight UTC; removal is asynchronous and may come
    later, so one more day is allowed: (noncurrent_since + days) as a UTC date,
    + 1 day (that next midnight), + 1 day (the margin). The erasure passes its own
    time, an upper bound of when every version it leaves stopped being current.
    """
    return (noncurrent_since.astimezone(UTC) + timedelta(days=days)).date() + timedelta(days=2)


def _lifecycle_rules(s3: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        answer = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return []
        raise
    return list(answer.get("Rules", []))


def _bucket(
    places: list[search.Place], query: Query, s3: Any, now: Callable[[], datetime]
) -> list[dict[str, Any]]:
    """Rewrite the current versions, then delete every version that holds the person;
    a version AWS refuses to delete is left to a lifecycle rule that expires it, or
    the erasure stops (EraseError)."""
    done: list[dict[str, Any]] = []
    rules_of: dict[str, list[dict[str, Any]]] = {}  # bucket -> lifecycle rules, read once
    by_key: dict[tuple[str, str], list[search.Place]] = {}
    for p in places:
        by_key.setdefault((p.bucket, p.key), []).append(p)
    for (bucket, key), found in sorted(by_key.items()):
        if not all(p.editable for p in found):
            continue
        current = next((p for p in found if p.latest), None)
        rewritten = False
        if current is not None:
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=current.version_id)["Body"]
            cleaned, removed = without_rows(query, body.read())
            extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
            kms_key = bucket_key_id(s3, bucket)
            if kms_key:
                extra["SSEKMSKeyId"] = kms_key
            put = s3.put_object(Bucket=bucket, Key=key, Body=cleaned, **extra)
            rewritten = True
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
        # an AccessDenied that names no version asked for is not understood: it stops too
        others = [
            e
            for e in errors
            if e.get("Code") != "AccessDenied" or e.get("VersionId") not in versions
        ]
        if others:
            code = others[0].get("Code")
            raise EraseError(f"s3://{bucket}/{key}: {len(errors)} version(s) not deleted ({code})")
        denied = {str(e.get("VersionId", "")) for e in errors}
        if denied:
            # the bucket policy's dated Deny (before the retention date): the deployed
            # lifecycle rule deletes them; what it covers is checked, never assumed
            if bucket not in rules_of:
                try:
                    rules_of[bucket] = _lifecycle_rules(s3, bucket)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "error")
                    raise EraseError(
                        _kept(bucket, key, len(denied), rewritten)
                        + f" (its lifecycle configuration could not be read: {code})"
                    ) from None
            rule = covering_rule(rules_of[bucket], key)
            if rule is None:
                raise EraseError(_kept(bucket, key, len(denied), rewritten))
            left_at = now()
            for p in sorted(found, key=lambda p: p.version_id):
                if p.version_id in denied:
                    done.append(
                        {
                            "kind": "bucket",
                            "location": p.location,
                            "version_id": p.version_id,
                            "rows_removed": 0,
                            "action": LIFECYCLE_ACTION.format(rule=rule[0], days=rule[1]),
                            "expires_by": expires_by(left_at, rule[1]).isoformat(),
                        }
                    )
        for p in sorted(found, key=lambda p: p.version_id):
            if p.version_id in denied:
                continue
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


def _kept(bucket: str, key: str, count: int, rewritten: bool) -> str:
    message = (
        f"s3://{bucket}/{key}: {count} version(s) kept: AWS refused their deletion "
        "(AccessDenied) and no enabled lifecycle rule expires this key's old versions "
        "(legal hold, or the bucket is not as deployed); an administrator must delete them"
    )
    if rewritten:
        message += "; the current version was already rewritten without the person"
    return message + "; no record was signed: run the erasure again once they are gone"


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
        actions += _bucket(places, query, client_for(region), now)
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
    left_to_lifecycle = {(a["location"], a["version_id"]) for a in actions if "expires_by" in a}
    pending = sum(
        len(p.rows)
        for p in after.places
        if p.kind == "bucket" and (p.location, p.version_id) in left_to_lifecycle
    )
    latest = max((str(a["expires_by"]) for a in actions if "expires_by" in a), default=None)
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
            "versions_left_to_lifecycle": len(left_to_lifecycle),
            "expires_by": latest,
        },
        "verification": {
            "rows_left": after.rows,  # rows_pending_lifecycle included
            "rows_pending_lifecycle": pending,
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
    return Erasure(document, path, removed_total, after.rows, left_for_dpo, pending, latest)


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
