"""A lifecycle executor for the tests: S3's expiry rules, applied at a chosen date.

The emulator stores a bucket's lifecycle configuration but never runs it. This
reads the configuration back through boto3 and does, at the instant `at`, what
S3 documents that lifecycle does (S3 User Guide, "Managing the lifecycle of
objects", "Lifecycle configuration elements", "Expiring objects" and "How
Amazon S3 handles lifecycle rules for versioned buckets"):

- `Status: Disabled` rules are ignored.
- Filter: `{}` or `{"Prefix": ""}` (or a legacy rule-level empty `Prefix`) is
  the whole bucket; `Prefix`, `Tag`, `ObjectSizeGreaterThan/LessThan` and
  `And` of them narrow it.
- `Expiration.Date`: from that date (midnight UTC) on, every current version
  expires. `Expiration.Days`: a current version expires once `Days` days have
  passed since its creation, counted to the next midnight UTC. Expiring a
  current version in a versioning-enabled (or suspended) bucket adds a delete
  marker (the data stays as a non-current version); in an unversioned bucket
  it deletes the object. A current delete marker does not expire again.
- `NoncurrentVersionExpiration.NoncurrentDays`: a non-current version is
  deleted for good once that many days have passed since it BECAME
  non-current (its successor's creation), counted to the next midnight UTC;
  `NewerNoncurrentVersions` keeps that many newer non-current versions.
- `Expiration.ExpiredObjectDeleteMarker`: a delete marker that is the current
  version and has no non-current version left is removed.

One call is one pass of S3's daily run: every action is decided from the state
read at its start, then carried out (a version made non-current by this pass
is not deleted by it). Run it again at a later date for the next step. Delete
markers it creates are stamped with `at` (the emulator would stamp the real
clock), kept in `Executor.marker_times` for later passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any


@dataclass
class PassReport:
    """What one pass did: keys only (no content)."""

    delete_markers_added: list[str] = field(default_factory=list)
    objects_deleted: list[str] = field(default_factory=list)
    versions_deleted: list[tuple[str, str]] = field(default_factory=list)
    markers_removed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Version:
    key: str
    version_id: str
    created: datetime
    is_latest: bool
    is_marker: bool
    size: int = 0


def _midnight_after(moment: datetime, days: int) -> datetime:
    """`moment + days`, rounded up to the next midnight UTC (S3's rule)."""
    end = moment.astimezone(UTC) + timedelta(days=days)
    day = end.date() if end.timetz() == time(0, tzinfo=UTC) else end.date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class Executor:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.marker_times: dict[tuple[str, str], datetime] = {}
        self._tags: dict[tuple[str, str], dict[str, str]] = {}

    # ---------------------------------------------------------------- reading

    def rules(self) -> list[dict[str, Any]]:
        try:
            conf = self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except self.s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
                return []
            raise
        return [r for r in conf.get("Rules", []) if r.get("Status") == "Enabled"]

    def versioned(self) -> bool:
        status = self.s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
        return status in ("Enabled", "Suspended")

    def versions(self) -> list[_Version]:
        out: list[_Version] = []
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket)
        for page in pages:
            for v in page.get("Versions", []):
                out.append(
                    _Version(
                        v["Key"],
                        v["VersionId"],
                        _as_datetime(v["LastModified"]),
                        v["IsLatest"],
                        False,
                        int(v.get("Size", 0)),
                    )
                )
            for m in page.get("DeleteMarkers", []):
                when = self.marker_times.get((m["Key"], m["VersionId"]))
                out.append(
                    _Version(
                        m["Key"],
                        m["VersionId"],
                        when or _as_datetime(m["LastModified"]),
                        m["IsLatest"],
                        True,
                    )
                )
        return out

    def _object_tags(self, v: _Version) -> dict[str, str]:
        cache_key = (v.key, v.version_id)
        if cache_key not in self._tags:
            got = self.s3.get_object_tagging(Bucket=self.bucket, Key=v.key, VersionId=v.version_id)
            self._tags[cache_key] = {t["Key"]: t["Value"] for t in got.get("TagSet", [])}
        return self._tags[cache_key]

    # ---------------------------------------------------------------- filters

    def matches(self, rule: Mapping[str, Any], v: _Version) -> bool:
        flt = rule.get("Filter")
        if flt is None:
            return v.key.startswith(str(rule.get("Prefix") or ""))
        conditions: Mapping[str, Any] = flt.get("And", flt)
        if not v.key.startswith(str(conditions.get("Prefix") or "")):
            return False
        tags: list[Mapping[str, str]] = list(conditions.get("Tags", []))
        if "Tag" in conditions:
            tags.append(conditions["Tag"])
        if tags and not v.is_marker:
            have = self._object_tags(v)
            if any(have.get(t["Key"]) != t["Value"] for t in tags):
                return False
        elif tags:
            return False
        if "ObjectSizeGreaterThan" in conditions and not (
            v.size > int(conditions["ObjectSizeGreaterThan"])
        ):
            return False
        return not (
            "ObjectSizeLessThan" in conditions
            and not v.size < int(conditions["ObjectSizeLessThan"])
        )

    # ---------------------------------------------------------------- one pass

    def run(self, at: datetime) -> PassReport:
        at = _as_datetime(at)
        rules = self.rules()
        versioned = self.versioned()
        by_key: dict[str, list[_Version]] = {}
        for v in self.versions():
            by_key.setdefault(v.key, []).append(v)
        report = PassReport()
        expire_current: list[_Version] = []
        delete_versions: list[_Version] = []
        for history in by_key.values():
            history.sort(key=lambda v: (v.created, v.is_latest))  # oldest first
            current = history[-1]
            if not current.is_marker and any(self._expires(r, current, at) for r in rules):
                expire_current.append(current)
            delete_versions += self._expired_noncurrent(rules, history, at)
            if (
                current.is_marker
                and len(history) == 1
                and any(
                    (r.get("Expiration") or {}).get("ExpiredObjectDeleteMarker") is True
                    and self.matches(r, current)
                    for r in rules
                )
            ):
                report.markers_removed.append((current.key, current.version_id))
        self._apply(expire_current, delete_versions, report, versioned, at)
        return report

    def _expires(self, rule: Mapping[str, Any], v: _Version, at: datetime) -> bool:
        exp = rule.get("Expiration") or {}
        if not self.matches(rule, v):
            return False
        if "Date" in exp:
            return at >= _as_datetime(exp["Date"])
        if "Days" in exp:
            return at >= _midnight_after(v.created, int(exp["Days"]))
        return False

    def _expired_noncurrent(
        self, rules: Iterable[Mapping[str, Any]], history: list[_Version], at: datetime
    ) -> list[_Version]:
        out: list[_Version] = []
        noncurrent = history[:-1]
        for rule in rules:
            nve = rule.get("NoncurrentVersionExpiration")
            if not nve or "NoncurrentDays" not in nve:
                continue
            keep_newer = int(nve.get("NewerNoncurrentVersions", 0))
            # newest non-current first; index i has i newer non-current versions
            newest_first = list(reversed(list(enumerate(noncurrent))))
            for rank, (i, v) in enumerate(newest_first):
                if rank < keep_newer or not self.matches(rule, v) or v in out:
                    continue
                became_noncurrent = history[i + 1].created
                if at >= _midnight_after(became_noncurrent, int(nve["NoncurrentDays"])):
                    out.append(v)
        return out

    def _apply(
        self,
        expire_current: list[_Version],
        delete_versions: list[_Version],
        report: PassReport,
        versioned: bool,
        at: datetime,
    ) -> None:
        for v in delete_versions:
            self.s3.delete_object(Bucket=self.bucket, Key=v.key, VersionId=v.version_id)
            report.versions_deleted.append((v.key, v.version_id))
        for key, version_id in report.markers_removed:
            self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        for v in expire_current:
            if versioned:
                got = self.s3.delete_object(Bucket=self.bucket, Key=v.key)
                self.marker_times[(v.key, got["VersionId"])] = at
                report.delete_markers_added.append(v.key)
            else:
                self.s3.delete_object(Bucket=self.bucket, Key=v.key)
                report.objects_deleted.append(v.key)


def run_lifecycle(s3: Any, bucket: str, at: datetime) -> PassReport:
    """One pass of the bucket's lifecycle configuration at `at` (see Executor)."""
    return Executor(s3, bucket).run(at)
