"""S3 server access logs: parse the documented text format, count outside reads.

Format: "Amazon S3 server access log format", Amazon S3 User Guide,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/LogFormat.html — one
record a line, space-separated fields, `[time]` in brackets, the request URI,
referer and user agent in double quotes, `-` for "unknown or not applicable".
AWS appends new fields at the end over time: extra fields are kept, not refused.

Only counts and times leave this module: the remote IP is parsed (it is a field)
but never returned by `outside_reads`, and the requester identities are only
counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

FIELDS = (
    "bucket_owner",
    "bucket",
    "time",
    "remote_ip",
    "requester",
    "request_id",
    "operation",
    "key",
    "request_uri",
    "http_status",
    "error_code",
    "bytes_sent",
    "object_size",
    "total_time",
    "turn_around_time",
    "referer",
    "user_agent",
    "version_id",
    "host_id",
    "signature_version",
    "cipher_suite",
    "auth_type",
    "host_header",
    "tls_version",
    "access_point_arn",
    "acl_required",
)
MIN_FIELDS = 17  # up to the user agent: the oldest logs AWS still documents
TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
# Operations that send the object's content to the requester. HEAD is left out:
# it returns metadata only (size, type, dates), not the personal data itself.
# What reading the logs needs: the bucket's logging target, then the log objects.
LOG_PERMISSIONS = ("s3:GetBucketLogging", "s3:ListBucket", "s3:GetObject")
READ_OPERATIONS = frozenset({"REST.GET.OBJECT", "WEBSITE.GET.OBJECT", "REST.COPY.OBJECT_GET"})


@dataclass(frozen=True)
class Record:
    """One log record; `None` stands for the documented `-`."""

    bucket_owner: str | None
    bucket: str | None
    time: datetime
    requester: str | None
    operation: str | None
    key: str | None
    http_status: int | None
    fields: tuple[str | None, ...]  # every field as parsed, extra trailing ones included

    def get(self, name: str) -> str | None:
        index = FIELDS.index(name)
        return self.fields[index] if index < len(self.fields) else None


@dataclass
class ParseResult:
    records: list[Record] = field(default_factory=list)
    malformed: int = 0


class _Malformed(ValueError):
    pass


def _closing(line: str, start: int, close: str) -> tuple[str, int]:
    """The text of a bracketed or quoted field starting at `start`, and the index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(line):
        ch = line[i]
        if ch == "\\" and close == '"' and i + 1 < len(line):
            out.append(line[i + 1])
            i += 2
            continue
        if ch == close:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _Malformed("unterminated field")


def split_fields(line: str) -> list[tuple[str, bool]]:
    """The fields of one record: (text, was_quoted_or_bracketed)."""
    fields: list[tuple[str, bool]] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        if line[i] in '["':
            text, i = _closing(line, i, "]" if line[i] == "[" else '"')
            if i < n and line[i] != " ":
                raise _Malformed("text after a closing quote")
            fields.append((text, True))
            continue
        end = line.find(" ", i)
        end = n if end < 0 else end
        fields.append((line[i:end], False))
        i = end
    return fields


def _value(text: str, quoted: bool) -> str | None:
    del quoted  # a quoted "-" (referer, user agent) means "none" as well
    return None if text == "-" else text


def parse_line(line: str) -> Record:
    """One record; raises ValueError on a line that is not one."""
    raw = split_fields(line.rstrip("\r\n"))
    if len(raw) < MIN_FIELDS:
        raise _Malformed("too few fields")
    values = tuple(_value(t, q) for t, q in raw)
    try:
        when = datetime.strptime(raw[2][0], TIME_FORMAT)
    except ValueError as exc:
        raise _Malformed("bad time") from exc
    status_text = values[9]
    if status_text is not None and not status_text.isdigit():
        raise _Malformed("bad status")
    return Record(
        bucket_owner=values[0],
        bucket=values[1],
        time=when,
        requester=values[4],
        operation=values[6],
        key=values[7],
        http_status=int(status_text) if status_text is not None else None,
        fields=values,
    )


def parse(lines: Iterable[str]) -> ParseResult:
    """Every record of `lines`; malformed lines are counted, never raised."""
    result = ParseResult()
    for line in lines:
        if not line.strip():
            continue
        try:
            result.records.append(parse_line(line))
        except ValueError:
            result.malformed += 1
    return result


def _same_key(logged: str | None, key: str) -> bool:
    """The log's key field is URL-encoded (documented); compare both forms."""
    if logged is None:
        return False
    return logged == key or unquote(logged) == key


def inside_account(requester: str | None, bucket_owner: str | None, account_id: str) -> bool:
    """A requester of the party's own account (an IAM or STS ARN in it, or the owner itself).

    Anonymous requests (`-`) are outside.
    """
    if requester is None:
        return False
    if bucket_owner is not None and requester == bucket_owner:
        return True
    if not account_id or not requester.startswith("arn:"):
        return False
    parts = requester.split(":", 5)
    return len(parts) == 6 and parts[2] in {"iam", "sts"} and parts[4] == account_id


@dataclass(frozen=True)
class ReadEvidence:
    outside_reads: int
    outside_requesters: int
    first_read: datetime | None
    last_read: datetime | None
    logs_read_until: datetime | None
    malformed: int = 0
    truncated: bool = False

    def to_evidence(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str:
            return value.isoformat() if value is not None else "none"

        out: dict[str, Any] = {
            "outside_reads": self.outside_reads,
            "outside_requesters": self.outside_requesters,
            "first_read": iso(self.first_read),
            "last_read": iso(self.last_read),
            "logs_read_until": iso(self.logs_read_until),
        }
        if self.malformed:
            out["log_lines_malformed"] = self.malformed
        if self.truncated:
            out["logs_truncated"] = True
        return out


def _reads(
    records: Iterable[Record], bucket: str, key: str | None, since: datetime
) -> Iterator[Record]:
    for r in records:
        if r.bucket != bucket or r.operation not in READ_OPERATIONS:
            continue
        if r.http_status is None or not 200 <= r.http_status < 300:
            continue
        if r.time >= since and (key is None or _same_key(r.key, key)):
            yield r


def outside_reads(
    records: Iterable[Record], bucket: str, key: str | None, since: datetime, account_id: str
) -> ReadEvidence:
    """Successful reads of `bucket`/`key` (None: any key) since `since` by requesters
    outside `account_id`. Anonymous requesters count as one: without the IP address
    (never kept) they cannot be told apart."""
    records = list(records)
    outside = [
        r
        for r in _reads(records, bucket, key, since)
        if not inside_account(r.requester, r.bucket_owner, account_id)
    ]
    times = sorted(r.time for r in outside)
    return ReadEvidence(
        outside_reads=len(outside),
        outside_requesters=len({r.requester or "-" for r in outside}),
        first_read=times[0] if times else None,
        last_read=times[-1] if times else None,
        logs_read_until=max((r.time for r in records), default=None),
    )


# ---------------------------------------------------------------- reading the log objects

MAX_LOG_OBJECTS = 500  # log objects read per logged bucket and scan cycle
MAX_LOG_BYTES = 64 * 1024 * 1024  # bytes of logs read per logged bucket and scan cycle
MAX_LOG_LISTED = 50_000  # log object keys listed per logged bucket and scan cycle


@dataclass
class LogBatch:
    records: list[Record] = field(default_factory=list)
    malformed: int = 0
    objects: int = 0
    truncated: bool = False  # the bounds stopped the reading: later logs were not read


def read_logs(
    s3: Any,
    log_bucket: str,
    prefix: str,
    since: datetime,
    *,
    max_objects: int = MAX_LOG_OBJECTS,
    max_bytes: int = MAX_LOG_BYTES,
) -> LogBatch:
    """The records of the log objects under `prefix` written since `since` (oldest first).

    Raises the client's errors: the caller turns them into a warning.
    """
    batch = LogBatch()
    spent = 0
    listed: list[tuple[str, int]] = []
    seen = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=log_bucket, Prefix=prefix):
        contents = page.get("Contents", [])
        seen += len(contents)
        if seen > MAX_LOG_LISTED:
            batch.truncated = True
            break
        for obj in contents:
            modified = obj.get("LastModified")
            if isinstance(modified, datetime) and modified < since:
                continue  # delivered before the exposure: holds no later request
            listed.append((str(obj["Key"]), int(obj.get("Size", 0))))
    for key, size in listed:
        if batch.objects >= max_objects or spent + size > max_bytes:
            batch.truncated = True
            break
        body = s3.get_object(Bucket=log_bucket, Key=key)["Body"].read()
        spent += size
        batch.objects += 1
        parsed = parse(body.decode("utf-8", errors="replace").splitlines())
        batch.records.extend(parsed.records)
        batch.malformed += parsed.malformed
    return batch


def evidence_for(
    batch: LogBatch | None, bucket: str, key: str | None, since: datetime, account_id: str
) -> dict[str, Any]:
    """The finding's evidence; `batch` None: the logs could not be read."""
    if batch is None:
        return {"logs_read_until": "none", "logs_unreadable": True}
    ev = outside_reads(batch.records, bucket, key, since, account_id)
    return replace(ev, malformed=batch.malformed, truncated=batch.truncated).to_evidence()
