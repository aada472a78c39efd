"""Samba's vfs_full_audit log: parse it, count reads of an exposed share file.

Format: vfs_full_audit(8) (Samba 4.17), https://www.samba.org/samba/docs/current/
man-html/vfs_full_audit.8.html: one record per operation, `PREFIX|OPERATION|RESULT|ARGS`,
where PREFIX is `full_audit:prefix` after substitution (the role writes `%u|%I|%S`:
account, client address, share) and RESULT is `ok` or `fail (...)`. The role sends the
records to their own file (smb.conf `log level = ... full_audit:1@FILE`, `full_audit:syslog
= false`) with `debug syslog format` and `debug hires timestamp`, so each record is one
line: `2026-11-30T20:31:07.123456+00:00 HOST smbd[PID]:   PREFIX|OPERATION|RESULT|ARGS`
(Samba indents a debug message by two spaces).
Samba's classic two-line debug format (`[2026/11/30 20:31:07.123456,  1] ...` then the
record indented) is read as well, its time taken as the host's local time.

A read is a successful `create_file` (an SMB CREATE, what every client sends to open a
file) on a file, asking for its content: FILE_READ_DATA or FILE_EXECUTE (Samba lets
either read), or GENERIC_READ, GENERIC_EXECUTE, GENERIC_ALL or MAXIMUM_ALLOWED (mapped
to them later by smbd). An open for attributes only (a directory listing, a property
sheet) is not a read. Record ARGS of `create_file`: `ACCESS_MASK|file or dir|DISPOSITION|
PATH`.

Only counts and times leave this module: the account names are only compared and
counted, the client address is parsed (it is a field) and never returned.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from isoloir.exposure.accesslog import ReadEvidence

DEFAULT_PREFIX = "%u|%I"  # vfs_full_audit's default `full_audit:prefix`
ROLE_PREFIX = "%u|%I|%S"  # what the election_shares role configures
READ_OP = "create_file"
FILE_READ_DATA = 0x0001
FILE_EXECUTE = 0x0020
MAXIMUM_ALLOWED = 0x0200_0000
GENERIC_ALL = 0x1000_0000
GENERIC_EXECUTE = 0x2000_0000
GENERIC_READ = 0x8000_0000
READ_ACCESS = (
    FILE_READ_DATA | FILE_EXECUTE | MAXIMUM_ALLOWED | GENERIC_ALL | GENERIC_EXECUTE | GENERIC_READ
)
# Arguments an operation logs before its path (vfs_full_audit.c, Samba 4.17).
OP_ARGS = {"create_file": 3, "openat": 1, "open": 1}
OLD_SUFFIX = ".old"  # smb.conf `max log size`: Samba renames the full file to FILE.old
# The election_shares role moves each FILE.old at once into FILE's folder/archive/,
# as STEM-<UTC time of its last record>[-N].log.gz, and deletes the archives past
# its retention (compliance review E10; docs/hosts.md, Retention).
ARCHIVE_DIR = "archive"
ARCHIVE_SUFFIX = ".log.gz"
STAGED_PREFIX = ".rotated-"  # a FILE.old moved there, not yet compressed (seconds)
MAX_LOG_BYTES = 64 * 1024 * 1024  # bytes of audit log read per scan cycle (newest kept)
# Whose reads `outside_reads` counts here (the alert's sentence says "other accounts";
# the S3 evidence, without this field, counts requesters outside the party's account).
READS_BY, OTHER_ACCOUNTS = "reads_by", "other_accounts"

_SYSLOG_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
    r" \S+ [^\s:]+: (?P<msg>.*)$"
)
_CLASSIC_HEADER = re.compile(r"^\[(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?),[^\]]*\]")
_OP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Malformed(ValueError):
    pass


@dataclass(frozen=True)
class Layout:
    """Where the prefix puts the account, address and share (`full_audit:prefix`)."""

    fields: int
    user: int | None
    address: int | None
    share: int | None

    @classmethod
    def of(cls, prefix: str = DEFAULT_PREFIX) -> Layout:
        parts = prefix.split("|")

        def where(*names: str) -> int | None:
            return next((i for i, p in enumerate(parts) if p.strip() in names), None)

        return cls(len(parts), where("%u", "%U"), where("%I"), where("%S"))


@dataclass(frozen=True)
class AuditRecord:
    time: datetime  # aware
    user: str | None
    address: str | None  # parsed, never reported
    share: str | None
    op: str
    ok: bool
    args: tuple[str, ...]
    path: str

    @property
    def is_read(self) -> bool:
        """A successful open of a file that asks for its content."""
        if self.op != READ_OP or not self.ok or len(self.args) < 2 or self.args[1] != "file":
            return False
        try:
            return bool(int(self.args[0], 16) & READ_ACCESS)
        except ValueError:
            return False


def _time(text: str, classic: bool) -> datetime:
    try:
        if classic:
            return datetime.strptime(text, "%Y/%m/%d %H:%M:%S.%f" if "." in text else
                                     "%Y/%m/%d %H:%M:%S").astimezone()  # fmt: skip
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise _Malformed("bad time") from exc


def parse_record(message: str, when: datetime, layout: Layout) -> AuditRecord:
    """One record from its message (`PREFIX|OP|RESULT|ARGS`); ValueError if it is none."""
    message = message.strip()
    message = message.removeprefix("smbd_audit:").strip()
    parts = message.split("|")
    if len(parts) < layout.fields + 2:
        raise _Malformed("too few fields")
    prefix, op, result = parts[: layout.fields], parts[layout.fields], parts[layout.fields + 1]
    rest = parts[layout.fields + 2 :]
    if not _OP_NAME.match(op) or not (result == "ok" or result.startswith("fail")):
        raise _Malformed("not a full_audit record")
    nargs = min(OP_ARGS.get(op, 0), len(rest))
    if op in OP_ARGS and len(rest) <= nargs:
        raise _Malformed("no path")

    def pick(index: int | None) -> str | None:
        return prefix[index] if index is not None and prefix[index] else None

    return AuditRecord(
        time=when,
        user=pick(layout.user),
        address=pick(layout.address),
        share=pick(layout.share),
        op=op,
        ok=result == "ok",
        args=tuple(rest[:nargs]),
        path="|".join(rest[nargs:]),  # a name may hold `|`: the path is the last field
    )


@dataclass
class ParseResult:
    records: list[AuditRecord] = field(default_factory=list)  # reads only, when `reads_only`
    malformed: int = 0
    oldest: datetime | None = None  # of every record, reads or not
    newest: datetime | None = None

    def _seen(self, when: datetime) -> None:
        self.oldest = when if self.oldest is None else min(self.oldest, when)
        self.newest = when if self.newest is None else max(self.newest, when)


def parse(lines: Iterable[str], layout: Layout, *, reads_only: bool = False) -> ParseResult:
    """Every record of `lines`; an odd line is counted as malformed, never raised.

    Lines of other debug classes (a shared log file) are not records and are not
    counted as malformed when they are not in the record layout.
    """
    out = ParseResult()
    pending: datetime | None = None  # classic format: the header's time
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        header = _CLASSIC_HEADER.match(line)
        if header:
            try:
                pending = _time(header.group("time"), classic=True)
            except ValueError:
                pending, out.malformed = None, out.malformed + 1
            continue
        match = _SYSLOG_LINE.match(line)
        try:
            if match:
                when, message = _time(match.group("time"), classic=False), match.group("msg")
            elif pending is not None and line[:1].isspace():
                when, message, pending = pending, line, None
            else:
                raise _Malformed("no time")
            record = parse_record(message, when, layout)
        except ValueError:
            out.malformed += 1
            continue
        out._seen(record.time)
        if not reads_only or record.is_read:
            out.records.append(record)
    return out


def resolve(record: AuditRecord, share_paths: Mapping[str, str]) -> str:
    """The record's path as an absolute host path (a relative one is under its share)."""
    path = record.path
    base = share_paths.get(record.share) if record.share is not None else None
    if not path.startswith("/") and base:
        path = base.rstrip("/") + "/" + path
    return os.path.normpath(path) if path else path


def other_reads(
    records: Iterable[AuditRecord],
    path: str,
    owner: str | None,
    since: datetime,
    share_paths: Mapping[str, str] | None = None,
) -> ReadEvidence:
    """Reads of `path` since `since` by accounts other than `owner` (None: every account).

    A read whose account the prefix does not give counts, as one account."""
    share_paths = share_paths or {}
    target = os.path.normpath(path)
    found = [
        r
        for r in records
        if r.is_read and r.time >= since and r.user != owner and resolve(r, share_paths) == target
    ]
    times = sorted(r.time for r in found)
    return ReadEvidence(
        outside_reads=len(found),
        outside_requesters=len({r.user or "-" for r in found}),
        first_read=times[0] if times else None,
        last_read=times[-1] if times else None,
        logs_read_until=None,
    )


# ---------------------------------------------------------------- reading the files


@dataclass
class LogBatch:
    reads: list[AuditRecord] = field(default_factory=list)
    malformed: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None  # the newest record read
    rotated: bool = False  # FILE.old or an archive exists: older records may be gone
    truncated: bool = False  # the byte bound stopped the reading: older lines not read
    _by_path: dict[str, list[AuditRecord]] | None = field(default=None, repr=False)

    def reads_of(self, path: str, share_paths: Mapping[str, str]) -> list[AuditRecord]:
        """The reads of `path` (indexed once per batch: a scan asks for many files)."""
        if self._by_path is None:
            self._by_path = {}
            for r in self.reads:
                self._by_path.setdefault(resolve(r, share_paths), []).append(r)
        return self._by_path.get(os.path.normpath(path), [])


def _lines(path: Path, budget: int) -> tuple[list[str], int, bool]:
    """The lines of `path` (gzip: decompressed), at most `budget` bytes from its end;
    (lines, bytes, cut)."""
    if path.name.endswith(".gz"):
        data = bytearray()
        cut = False
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(1 << 20):
                data += chunk
                if len(data) > budget:
                    del data[: len(data) - budget]
                    cut = True
    else:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            cut = size > budget
            fh.seek(size - budget if cut else 0)
            data = bytearray(fh.read(budget))
    text = data.decode("utf-8", errors="replace").splitlines()
    return (text[1:] if cut and text else text), len(data), cut


def archives(path: Path) -> list[Path]:
    """The archives of the audit log `path` kept by the election_shares role, oldest
    first (their names start with the UTC time of their last record), then the
    rotated files being compressed. Raises OSError when the archive folder exists
    but cannot be listed."""
    folder = path.parent / ARCHIVE_DIR
    stem = path.name.removesuffix(".log")
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    done = [n for n in names if n.startswith(f"{stem}-") and n.endswith(ARCHIVE_SUFFIX)]
    staged = [n for n in names if n.startswith(STAGED_PREFIX)]
    return [folder / n for n in done + staged]


def read_log(path: Path, layout: Layout, *, max_bytes: int = MAX_LOG_BYTES) -> LogBatch:
    """The reads recorded in the audit log `path`, its rotated FILE.old and its
    archives, newest first until `max_bytes` (decompressed) were read.

    Raises OSError when `path` cannot be read (the caller reports it); a missing
    FILE.old or archive folder is normal. An archive folder that cannot be listed,
    or a rotated file gone while read (archived, expired) or damaged, makes the batch
    `truncated`: the logs were partly read. A read seen in two files (renamed while
    read) counts once.
    """
    batch = LogBatch()
    old = path.with_name(path.name + OLD_SUFFIX)
    budget = max_bytes
    seen: set[tuple[datetime, str | None, str, tuple[str, ...]]] = set()
    sources: list[Path] = [path]
    # FILE.old before the archives: once moved there, it is among them.
    try:
        old.stat()
        sources.insert(0, old)
    except FileNotFoundError:
        pass
    try:
        sources[:0] = archives(path)
    except OSError:
        batch.truncated = True
    batch.rotated = len(sources) > 1
    chunks: list[list[str]] = []
    for source in reversed(sources):  # newest first, so the bound drops the oldest
        if budget <= 0:
            batch.truncated = True
            break
        try:
            lines, spent, cut = _lines(source, budget)
        except (OSError, EOFError, zlib.error):
            if source == path:
                raise
            batch.truncated = True  # gone (archived, expired) or damaged: not read
            continue
        budget -= spent
        batch.truncated = batch.truncated or cut
        chunks.insert(0, lines)
    for lines in chunks:
        parsed = parse(lines, layout, reads_only=True)
        batch.malformed += parsed.malformed
        for when in (parsed.oldest, parsed.newest):
            if when is not None:
                batch.oldest = when if batch.oldest is None else min(batch.oldest, when)
                batch.newest = when if batch.newest is None else max(batch.newest, when)
        for r in parsed.records:
            key = (r.time, r.user, r.path, r.args)
            if key not in seen:
                seen.add(key)
                batch.reads.append(r)
    return batch


def evidence_for(
    batch: LogBatch | None,
    path: str,
    owner: str | None,
    since: datetime,
    read_at: datetime,
    share_paths: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The finding's evidence, with the field names of the S3 access-log evidence.

    Samba writes each record when the open happens, so the log is complete up to
    the moment it was read: `logs_read_until` is `read_at`. `batch` None: the log
    could not be read. When the rotation dropped records newer than `since`, or the
    byte bound stopped the reading, the evidence says the logs were partly read."""
    if batch is None:
        return {"logs_read_until": "none", "logs_unreadable": True}
    share_paths = share_paths or {}
    ev = other_reads(batch.reads_of(path, share_paths), path, owner, since, share_paths)
    lost = batch.truncated or (batch.rotated and (batch.oldest is None or batch.oldest > since))
    out = replace(ev, logs_read_until=read_at, malformed=batch.malformed, truncated=lost)
    return {**out.to_evidence(), READS_BY: OTHER_ACCOUNTS}
