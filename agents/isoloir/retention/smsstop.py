"""SMS "STOP" replies, imported on a schedule from a drop folder.

The SMS gateway's export of STOP replies (one number per line, or a CSV with a
phone column, as `isoloir suppression add --file` reads) is dropped into
`<state>/sms-stop/`, by hand or by a transfer the party sets up. Every scan
interval the daemon's `sms-stop` job adds its numbers to the suppression list
and deletes the file: the list keeps HMACs only.

Both the file names and the contents are untrusted. A name is never printed
(it may hold a number, or control characters); each file is opened relative
to the folder with O_NOFOLLOW and must be a regular file of bounded size;
names starting with "." are left alone (an upload in progress). A file with
lines that are not numbers gives its readable numbers (an opt-out is never
lost), then goes to `.rejected/` under a generated name for an administrator,
and a finding says how many wait there, until they are removed.
"""

from __future__ import annotations

import csv
import errno
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from isoloir import runtime
from isoloir.findings import Finding, Severity
from isoloir.i18n import N_
from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionList, read_entries
from isoloir.retention.suppression import db_path as suppression_path

FOLDER = "sms-stop"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
REJECTED = ".rejected"
ELECTION = "sms-stop"  # the `election` column of the entries it adds
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_FILES_PER_RUN = 500

RULE_REJECTED = "SUP-SMS-REJECTED"
RULE_FOLDER = "SUP-SMS-FOLDER"
REJECTED_TEXT = N_(
    "{files} SMS STOP file(s) wait in {folder}: they held lines that are not phone numbers "
    "(their numbers were added to the suppression list)."
)
REJECTED_FIX = N_(
    "Read each file, add any number missed with `isoloir suppression add`, then delete it."
)
FOLDER_TEXT = N_("The SMS STOP drop folder {folder} is not used: {reason}.")
FOLDER_FIX = N_(
    "Make it a real folder owned by the agents' user, not writable by others (chmod o-w)."
)


class DropFolderError(RuntimeError):
    """The folder is a symbolic link, not a folder, or writable by anyone."""


@dataclass
class Report:
    files: int = 0  # files read
    imported: int = 0  # read entirely, then deleted
    rejected: int = 0  # moved to .rejected/ this run
    skipped: int = 0  # not a regular file, or could not be opened (left in place)
    added: int = 0  # new suppression entries
    present: int = 0  # entries already on the list
    waiting: int = 0  # files in .rejected/ after the run


def drop_dir(state_dir: Path) -> Path:
    return state_dir / FOLDER


def _open_folder(folder: Path) -> int | None:
    try:
        fd = os.open(folder, _DIR)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise DropFolderError("a symbolic link or not a folder") from None
        raise
    if os.fstat(fd).st_mode & stat.S_IWOTH:
        os.close(fd)
        raise DropFolderError("writable by every user of the host")
    return fd


def _read(dir_fd: int, name: str) -> bytes | None:
    """The bytes of a regular file (None: not one, or unreadable); b"" + 1 byte over the
    limit tells the caller it is too large."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(MAX_FILE_BYTES + 1)


def _quarantine(dir_fd: int, name: str, now: datetime, n: int) -> None:
    try:
        os.mkdir(REJECTED, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    q = os.open(
        REJECTED, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
    )
    try:
        stamp = now.strftime("%Y%m%dT%H%M%S")
        target = f"{stamp}-{os.getpid()}-{n}.txt"  # never the dropped file's own name
        os.rename(name, target, src_dir_fd=dir_fd, dst_dir_fd=q)
    finally:
        os.close(q)


def _waiting(dir_fd: int) -> int:
    try:
        q = os.open(REJECTED, _DIR, dir_fd=dir_fd)
    except OSError:
        return 0
    try:
        return len(os.listdir(q))
    finally:
        os.close(q)


def import_drop_folder(
    state_dir: Path, key: bytes | None, now: datetime, *, dry_run: bool = False
) -> Report | None:
    """Import every dropped file; None when there is no drop folder. `key` may be None
    only when the folder is absent or empty (it is asked for when needed)."""
    fd = _open_folder(drop_dir(state_dir))
    if fd is None:
        return None
    report = Report()
    try:
        names = sorted(n for n in os.listdir(fd) if not n.startswith("."))[:MAX_FILES_PER_RUN]
        store: SuppressionList | None = None
        try:
            for n, name in enumerate(names):
                data = _read(fd, name)
                if data is None:
                    report.skipped += 1
                    continue
                report.files += 1
                if dry_run:
                    continue
                try:
                    entries = None if len(data) > MAX_FILE_BYTES else read_entries(data)
                except (ValueError, csv.Error, UnicodeError):
                    entries = None
                if entries is not None and (entries.emails or entries.phones):
                    if store is None:
                        if key is None:
                            key = keys.hmac_key(runtime.secrets_dir())
                        store = SuppressionList(suppression_path(state_dir), key)
                    added, present = store.add_counted(
                        entries.emails,
                        entries.phones,
                        election=ELECTION,
                        run_id=f"sms-stop-{now.strftime('%Y%m%dT%H%M%S')}",
                        now=now,
                    )
                    report.added += added
                    report.present += present
                if entries is None or entries.problems:
                    _quarantine(fd, name, now, n)
                    report.rejected += 1
                else:
                    os.unlink(name, dir_fd=fd)
                    report.imported += 1
        finally:
            if store is not None:
                store.close()
        report.waiting = _waiting(fd)
    finally:
        os.close(fd)
    return report


def findings(state_dir: Path, report: Report | None, now: datetime) -> list[Finding]:
    if report is None or not report.waiting:
        return []
    folder = str(drop_dir(state_dir) / REJECTED)
    params: dict[str, Any] = {"files": report.waiting, "folder": folder}
    return [
        Finding(
            RULE_REJECTED,
            Severity.MEDIUM,
            folder,
            REJECTED_TEXT.format(**params),
            remediation=REJECTED_FIX,
            observed_at=now,
            message_id=REJECTED_TEXT,
            remediation_id=REJECTED_FIX,
            params=params,
        )
    ]


def sms_stop_job(ctx: Any) -> list[Finding]:
    """The daemon's job: import the dropped STOP files, report what waits for a person."""
    try:
        report = import_drop_folder(ctx.state_dir, None, ctx.now, dry_run=ctx.dry_run)
    except DropFolderError as exc:
        folder = str(drop_dir(ctx.state_dir))
        params = {"folder": folder, "reason": str(exc)}
        return [
            Finding(
                RULE_FOLDER,
                Severity.HIGH,
                folder,
                FOLDER_TEXT.format(**params),
                remediation=FOLDER_FIX,
                observed_at=ctx.now,
                message_id=FOLDER_TEXT,
                remediation_id=FOLDER_FIX,
                params=params,
            )
        ]
    return findings(ctx.state_dir, report, ctx.now)
