"""Fetch the share inventory: the trees under each election's share, Samba's
configuration as `testparm` resolves it, and stray personal data elsewhere.

The walk uses `os.scandir` on bytes paths (names need not be UTF-8), takes
`lstat` of every entry and never follows a symlink: a symlink is recorded with
the target it names, never opened. A directory that cannot be opened is
recorded and the walk goes on. Files are sampled through `pii.sample_file`
(O_NOFOLLOW, first KiB only), so a huge sparse file costs one small read.

To keep memory flat on large trees, a tree keeps only the entries that deviate
from the share's baseline (any permission bit for others, a directory without
setgid or without a default ACL, a group of another election, a symlink); the
checks decide what each deviation means.

Encryption at rest (heuristic, Linux): the share root's mount is the longest
mount point of /proc/mounts containing it. The file system counts as encrypted
when its device is a device-mapper node whose uuid (/sys/block/dm-N/dm/uuid)
starts with "CRYPT-" (dm-crypt/LUKS), directly or through its slaves (LVM on
LUKS), or when the file system type is ecryptfs. A plain block device counts
as unencrypted. Virtual or network file systems (tmpfs, overlay, nfs, cifs,
fuse, zfs, btrfs on several devices...) are "unknown" and not reported:
fscrypt, ZFS native encryption and self-encrypting drives are not detected.

Platform encryption (hosts.at_rest: cloud, the aws target): the share root is
encrypted by AWS when it is the mount point of an EBS volume (an NVMe device
whose /sys/block/<disk>/device/model is "Amazon Elastic Block Store"; its
serial is the volume id without the dash). The module encrypts that data
volume with the host's KMS key and Ansible mounts it on hosts.share_root. A
share on the root file system stays reported: the data volume is the one the
deploy declares for personal data. Without the policy key nothing changes.
"""

from __future__ import annotations

import dataclasses
import errno
import grp
import multiprocessing
import os
import pwd
import re
import stat
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TypeAlias

from isoloir import clock
from isoloir.exposure import pii, sharelog
from isoloir.exposure.model import (
    Entry,
    SambaConfig,
    SambaShare,
    SharesInventory,
    ShareTree,
    StrayFile,
    display_path,
)
from isoloir.i18n import N_
from isoloir.policy.model import Election, Policies

MAX_SAMPLES_PER_TREE = 5000
SAMPLE_BATCH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
MAX_STRAY_ENTRIES = 200_000  # entries visited per stray-data path
STRAY_MIN_RECORDS = 3  # records with personal data in a sample to call a file contact-like
STRAY_SUFFIXES = frozenset({".csv", ".tsv", ".xlsx", ".ods", ".txt"})
DEFAULT_ACL_XATTR = "system.posix_acl_default"
_SAMPLED = tuple(s.encode() for s in pii.SAMPLED_SUFFIXES)
EBS_MODEL = "Amazon Elastic Block Store"
UNKNOWN_FS = frozenset(
    {"tmpfs", "overlay", "nfs", "nfs4", "cifs", "smb3", "fuse", "zfs", "ramfs", "9p", "virtiofs"}
)


def _gid(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _default_acl(fd: int) -> bool | None:
    """Does the directory open on `fd` carry a default ACL? None: cannot tell."""
    try:
        os.getxattr(fd, DEFAULT_ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, getattr(errno, "ENOATTR", errno.ENODATA)):
            return False
        return None  # no ACL support, or unreadable
    return True


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _sample_batch(items: list[tuple[bytes, int, int]]) -> list[pii.PiiReport | None]:
    return [pii.sample_file(p, expect=(dev, ino)) for p, dev, ino in items]


class _Sampler:
    """Samples the exposed files found by a walk, at most MAX_SAMPLES_PER_TREE.

    On a multi-CPU host, once a batch is full, batches go to one forked worker
    process so sampling (regular expressions, CPU-bound) overlaps the walk
    (system calls); a handful of files is sampled inline, without a worker. A
    file is sampled only if the path still leads to the inode the walk saw.
    """

    def __init__(self) -> None:
        self.budget = MAX_SAMPLES_PER_TREE
        self.pending: list[tuple[bytes, int, int]] = []
        self.futures: list[
            tuple[list[tuple[bytes, int, int]], Future[list[pii.PiiReport | None]]]
        ] = []
        self.results: dict[bytes, pii.PiiReport | None] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.parallel = (os.cpu_count() or 1) > 1 and threading.active_count() == 1

    def add(self, path: bytes, st: os.stat_result) -> None:
        if self.budget <= 0:
            return
        self.budget -= 1
        self.pending.append((path, st.st_dev, st.st_ino))
        if len(self.pending) >= SAMPLE_BATCH:
            self._flush()

    def _store(
        self, batch: list[tuple[bytes, int, int]], reports: list[pii.PiiReport | None]
    ) -> None:
        self.results.update(zip((p for p, _, _ in batch), reports, strict=True))

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        if self.parallel and self.pool is None:
            try:
                self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
            except (OSError, ValueError):
                self.parallel = False
        if self.pool is not None:
            self.futures.append((batch, self.pool.submit(_sample_batch, batch)))
        else:
            self._store(batch, _sample_batch(batch))

    def finish(self) -> dict[bytes, pii.PiiReport | None]:
        if self.pool is None:
            self._store(self.pending, _sample_batch(self.pending))
            self.pending = []
            return self.results
        self._flush()
        try:
            for batch, fut in self.futures:
                try:
                    reports = fut.result()
                except (OSError, BrokenProcessPool):
                    reports = _sample_batch(batch)
                self._store(batch, reports)
        finally:
            self.pool.shutdown()
        return self.results


def _entry(
    path: bytes,
    st: os.stat_result,
    tree: ShareTree,
    sampler: _Sampler,
    *,
    parent_fd: int | None = None,
    name: bytes = b"",
    dir_fd: int | None = None,
) -> Entry | None:
    """The entry if it deviates from the share's baseline (None otherwise).

    Everything is read relative to descriptors: a symlink is read with
    `readlink(name, dir_fd=parent_fd)`, a directory's default ACL on its own
    descriptor `dir_fd` (None: could not be opened, ACL unknown).
    """
    mode = st.st_mode
    kind = _kind(mode)
    if kind == "link":
        try:
            target: bytes | None = (
                os.readlink(name, dir_fd=parent_fd) if parent_fd is not None else os.readlink(path)
            )
        except OSError:
            target = None
        return Entry(
            path, kind, mode, st.st_uid, st.st_gid, st.st_size, link_target=target,
            dev=st.st_dev, ino=st.st_ino,
        )  # fmt: skip
    has_acl: bool | None = None
    deviates = bool(mode & 0o007) or st.st_gid in tree.other_election_gids
    if kind == "dir":
        has_acl = _default_acl(dir_fd) if dir_fd is not None else None
        deviates = deviates or not mode & stat.S_ISGID or has_acl is False
    if not deviates:
        return None
    if kind == "file" and mode & 0o004:
        low = path.rsplit(b"/", 1)[-1].lower()
        if low.endswith(_SAMPLED):
            sampler.add(path, st)
    return Entry(
        path, kind, mode, st.st_uid, st.st_gid, st.st_size, has_acl, dev=st.st_dev, ino=st.st_ino
    )


MAX_DEPTH = 512  # directory levels walked below a root (each holds two descriptors)


def open_dir(name: bytes, dir_fd: int | None) -> int:
    """Open directory `name` relative to `dir_fd`, never through a symlink (O_NOFOLLOW)."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _open_child(name: bytes, parent_fd: int, est: os.stat_result) -> int | None:
    """The child directory's descriptor if it is still the directory listed, else None."""
    try:
        fd = open_dir(name, parent_fd)
    except OSError:
        return None  # vanished, or swapped for a symlink or a file since it was listed
    cst = os.fstat(fd)
    if (cst.st_dev, cst.st_ino) != (est.st_dev, est.st_ino):
        os.close(fd)
        return None
    return fd


class _Level:
    """One open directory of a descriptor walk: its fd, its listing, its path."""

    def __init__(self, fd: int, path: bytes) -> None:
        self.fd = fd
        self.path = path
        self.prefix = path.rstrip(b"/") + b"/"
        self.it: Iterator[os.DirEntry[str]] = os.scandir(fd)

    def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()
        os.close(self.fd)


def _walk_fd(
    root_fd: int, root: bytes, unreadable: list[bytes]
) -> Iterator[tuple[bytes, bytes, os.stat_result, int, int | None]]:
    """Every entry below the directory open on `root_fd`: (path, name, lstat, parent fd,
    own fd for a directory that could be opened, else None).

    Each directory is opened relative to its parent's descriptor with O_NOFOLLOW and
    checked to be the inode just listed: a member swapping a directory (at any depth)
    for a symlink never makes the walk leave the tree. The descriptors yielded are
    only valid until the next step. `root_fd` is closed at the end.
    """
    stack: list[_Level] = []
    try:
        stack.append(_Level(root_fd, root))
    except OSError:
        os.close(root_fd)
        unreadable.append(root)
        return
    try:
        while stack:
            level = stack[-1]
            try:
                dirent = next(level.it, None)
            except OSError:
                # readdir can fail after opendir succeeded (e.g. /proc/<pid>/map_files)
                unreadable.append(level.path)
                dirent = None
            if dirent is None:
                stack.pop().close()
                continue
            try:
                est = dirent.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished between readdir and lstat
            name = os.fsencode(dirent.name)
            path = level.prefix + name
            if not stat.S_ISDIR(est.st_mode):
                yield path, name, est, level.fd, None
                continue
            child = _open_child(name, level.fd, est) if len(stack) < MAX_DEPTH else None
            if child is None:
                unreadable.append(path)
            yield path, name, est, level.fd, child
            if child is not None:
                try:
                    stack.append(_Level(child, path))
                except OSError:
                    os.close(child)
                    unreadable.append(path)
    finally:
        for level in stack:
            level.close()


def walk(root: bytes, on_unreadable: list[bytes]) -> Iterator[tuple[bytes, os.stat_result]]:
    """Every entry under `root` (root excluded) with its lstat; symlinks never followed."""
    try:
        fd = open_dir(root, None)
    except OSError:
        on_unreadable.append(root)
        return
    for path, _name, st, _parent, _own in _walk_fd(fd, root, on_unreadable):
        yield path, st


def root_problem(root: bytes) -> str:
    """Why a share or stray-data root cannot be walked, in words."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return N_("does not exist")
    except OSError as exc:
        return f"cannot be read ({errno.errorcode.get(exc.errno or 0, 'error')})"
    if stat.S_ISLNK(st.st_mode):
        return N_("is a symlink (not followed)")
    if not stat.S_ISDIR(st.st_mode):
        return N_("is not a directory")
    return N_("cannot be opened")


def scan_tree(tree: ShareTree) -> ShareTree:
    """Walk the share by directory descriptors from its root (see `_walk_fd`)."""
    root = tree.root
    try:
        rfd = open_dir(root, None)
    except OSError:
        tree.missing = True
        tree.problem = root_problem(root)
        return tree
    st = os.fstat(rfd)
    sampler = _Sampler()
    entries: list[Entry] = []
    first = _entry(root, st, tree, sampler, dir_fd=rfd)
    if first is not None:
        entries.append(first)
    count = 1
    others = tree.other_election_gids
    for path, name, est, parent_fd, own_fd in _walk_fd(rfd, root, tree.unreadable):
        count += 1
        mode = est.st_mode
        # a regular file with no bit for others and a group of its own
        # election is the common case: nothing to record
        if mode & 0o170007 == 0o100000 and est.st_gid not in others:
            continue
        found = _entry(path, est, tree, sampler, parent_fd=parent_fd, name=name, dir_fd=own_fd)
        if found is not None:
            entries.append(found)
    reports = sampler.finish()
    if reports:
        entries = [
            dataclasses.replace(e, pii=reports[e.path]) if e.path in reports else e for e in entries
        ]
    tree.entries = entries
    tree.scanned_entries = count
    return tree


# ------------------------------------------------------------ encryption


def _unescape_mount(field: str) -> str:
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mount_of(path: str, mounts_text: str) -> tuple[str, str, str]:
    """(mount point, device, fs type) of the longest mount point containing `path`."""
    best = ("", "", "")
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        device, point, fstype = _unescape_mount(parts[0]), _unescape_mount(parts[1]), parts[2]
        inside = path == point or path.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and len(point) >= len(best[0]):
            best = (point, device, fstype)
    return best


def dm_encrypted(name: str, sys_block: Path, depth: int = 0) -> bool:
    """Is block device `name` (dm-N, sdX...) dm-crypt, directly or below LVM?"""
    if depth > 8:
        return False
    base = sys_block / name
    try:
        uuid = (base / "dm" / "uuid").read_text().strip()
    except OSError:
        uuid = ""
    if uuid.startswith("CRYPT-"):
        return True
    try:
        slaves = [p.name for p in (base / "slaves").iterdir()]
    except OSError:
        return False
    return any(dm_encrypted(s, sys_block, depth + 1) for s in slaves)


def encryption_of(
    path: str, *, mounts: Path = Path("/proc/mounts"), sys_block: Path = Path("/sys/block")
) -> tuple[str, str, str, bool | None]:
    try:
        text = mounts.read_text(errors="replace")
    except OSError:
        return "", "", "", None
    point, device, fstype = mount_of(os.path.realpath(path), text)
    if fstype == "ecryptfs":
        return point, device, fstype, True
    if fstype in UNKNOWN_FS or fstype.startswith("fuse") or not device.startswith("/dev/"):
        return point, device, fstype, None
    name = os.path.basename(os.path.realpath(device))
    return point, device, fstype, dm_encrypted(name, sys_block)


def _disks(name: str, sys_block: Path) -> list[str]:
    """`name` and, for a partition (nvme1n1p1), the disk holding it."""
    found = [name]
    try:
        found += sorted(d.name for d in sys_block.iterdir() if (d / name).is_dir())
    except OSError:
        pass
    return found


def ebs_volume_of(device: str, sys_block: Path = Path("/sys/block")) -> str:
    """The EBS volume id ("vol-...") of block device `device`, "" when not EBS."""
    name = os.path.basename(os.path.realpath(device))
    for disk in _disks(name, sys_block):
        info = sys_block / disk / "device"
        try:
            model = (info / "model").read_text(errors="replace").strip()
            serial = (info / "serial").read_text(errors="replace").strip()
        except OSError:
            continue
        if model == EBS_MODEL and serial.startswith("vol"):
            return "vol-" + serial[3:].lstrip("-")
    return ""


def platform_encryption(
    point: str, device: str, share_root: str, sys_block: Path = Path("/sys/block")
) -> tuple[str, bool]:
    """(EBS volume id or "", whether that volume is the data volume on `share_root`)."""
    volume = ebs_volume_of(device, sys_block) if device.startswith("/dev/") else ""
    root = os.path.realpath(share_root).rstrip("/")
    return volume, bool(volume) and point != "/" and point.rstrip("/") == root


# ------------------------------------------------------------ Samba


def parse_testparm(text: str, path: str) -> SambaConfig:
    globals_: dict[str, str] = {}
    shares: list[SambaShare] = []
    current: dict[str, str] | None = None
    name = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            if current is not None and name.lower() != "global":
                shares.append(SambaShare(name, current))
            name = line[1:-1]
            current = globals_ if name.lower() == "global" else {}
            continue
        if current is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        current[" ".join(key.lower().split())] = value.strip()
    if current is not None and name.lower() != "global":
        shares.append(SambaShare(name, current))
    return SambaConfig(path=path, globals=globals_, shares=tuple(shares))


def read_samba(smb_conf: str) -> tuple[SambaConfig, bool]:
    """Samba's configuration as testparm resolves it (includes, defaults, synonyms),
    and whether its output had to be decoded with replacement characters (smb.conf
    is not UTF-8, e.g. one Latin-1 byte in a comment: the rest is still read)."""
    proc = subprocess.run(
        ["testparm", "-s", "-v", "--suppress-prompt", smb_conf],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RuntimeError(f"testparm failed on {smb_conf} (exit {proc.returncode})")
    try:
        text, replaced = proc.stdout.decode("utf-8"), False
    except UnicodeDecodeError:
        text, replaced = proc.stdout.decode("utf-8", errors="replace"), True
    return parse_testparm(text, smb_conf), replaced


# ------------------------------------------------------------ stray data


def _sample_stray(path: bytes, st: os.stat_result, found: list[StrayFile]) -> None:
    report = pii.sample_file(path, expect=(st.st_dev, st.st_ino))
    if report is not None and report.records_sampled >= STRAY_MIN_RECORDS:
        found.append(StrayFile(path, st.st_mode, st.st_size, report))


def find_stray(
    paths: Iterable[str],
    exclude: Iterable[bytes],
    errors: dict[str, str] | None = None,
    unread: list[bytes] | None = None,
) -> list[StrayFile]:
    """Contact-like files under `paths` (a file given as a path is sampled itself).

    A path that does not exist or cannot be walked is recorded in `errors`
    ("stray path P" -> reason) and in `unread`, and the others are still read.
    """
    errors = {} if errors is None else errors
    unread = [] if unread is None else unread
    excluded = [os.path.normpath(e).rstrip(b"/") + b"/" for e in exclude]
    suffixes = tuple(s.encode() for s in STRAY_SUFFIXES)
    found: list[StrayFile] = []
    for top in paths:
        root = os.fsencode(top)
        shown = f"stray path {display_path(root)}"
        try:
            st = os.lstat(root)
        except OSError:
            errors[shown] = root_problem(root)
            unread.append(root)
            continue
        if stat.S_ISREG(st.st_mode):
            if root.lower().endswith(suffixes):
                _sample_stray(root, st, found)
            continue
        if not stat.S_ISDIR(st.st_mode):
            errors[shown] = root_problem(root)
            unread.append(root)
            continue
        seen = 0
        bad: list[bytes] = []
        for path, est in walk(root, bad):
            seen += 1
            if seen > MAX_STRAY_ENTRIES:
                errors[shown] = f"stopped after {MAX_STRAY_ENTRIES} entries"
                unread.append(root)
                break
            if not stat.S_ISREG(est.st_mode) or not path.lower().endswith(suffixes):
                continue
            if any((path + b"/").startswith(e) or path.startswith(e) for e in excluded):
                continue
            _sample_stray(path, est, found)
        unread.extend(bad)
    return found


# ------------------------------------------------------------ audit log (breach evidence)

READS_LOOKBACK = timedelta(days=30)  # reads counted without a known exposure start
ReadsSince: TypeAlias = datetime | Mapping[str, datetime] | None
_FALSE = frozenset({"no", "false", "0", "off"})


_LOG_LEVEL_NAMES = frozenset({"log level", "debuglevel", "debug level"})


def written_log_level(smb_conf: str) -> str:
    """`log level` of [global] as smb.conf writes it (the last one wins; includes are
    not followed). testparm prints only the overall level, not the per-class files."""
    text = re.sub(r"\\\n", " ", Path(smb_conf).read_text(errors="replace"))
    section, value = "global", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, sep, val = line.partition("=")
        if sep and section == "global" and " ".join(key.lower().split()) in _LOG_LEVEL_NAMES:
            value = val.strip()
    return value


def audit_log_of(log_level: str) -> str | None:
    """The file a `log level` value sends the full_audit class to (`full_audit:N@FILE`)."""
    for token in log_level.split():
        name, _, rest = token.partition(":")
        if name.lower() == "full_audit" and "@" in rest:
            return rest.split("@", 1)[1] or None
    return None


def audited(samba: SambaConfig, share: SambaShare) -> bool:
    """Does vfs_full_audit log this share's opens to the log file (not to syslog)?"""
    vfs = samba.effective(share, "vfs objects").replace(",", " ").split()
    syslog = samba.effective(share, "full_audit:syslog", "yes").strip().lower()
    return "full_audit" in vfs and syslog in _FALSE


def changed_at(entry: Entry) -> datetime | None:
    """The file's last status change (ctime), if the path still leads to the inode scanned.

    Any chmod, chown or write since sets it: the file has kept its present mode, so
    it has been readable by every account at least since then."""
    try:
        st = os.lstat(entry.path)
    except OSError:
        return None
    if (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
        return None
    return datetime.fromtimestamp(st.st_ctime, UTC)


def reads_window_start(
    reads_since: ReadsSince, resource: str, now: datetime, changed: datetime | None
) -> datetime:
    """Since when the reads of an exposed share file are counted: the earlier of its open
    finding's first-seen time (none yet: now) and its last status change; without the
    alert state (`isoloir scan`), the status change, else 30 days back. An explicit
    time is used as given."""
    if isinstance(reads_since, datetime):
        return reads_since
    if reads_since is None:
        return changed if changed is not None else now - READS_LOOKBACK
    start = reads_since.get(resource, now)
    return min(start, changed) if changed is not None else start


def _owner(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def read_evidence(inv: SharesInventory, reads_since: ReadsSince, now: datetime) -> None:
    """Reads of each world-readable share file by accounts other than its owner, from
    the full_audit log, since the file's exposure began (best-effort: a log that cannot
    be read is a warning `audit log FILE` in the inventory's errors, never raised)."""
    if inv.samba is None:
        return
    exposed = [
        (tree, e) for tree in inv.trees for e in tree.entries if e.kind == "file" and e.mode & 0o004
    ]
    if not exposed:
        return
    by_root = {os.path.normpath(s.params.get("path", "")): s for s in inv.samba.shares}
    share_paths = {s.name: s.params.get("path", "") for s in inv.samba.shares}
    log = inv.audit_log
    batches: dict[str, sharelog.LogBatch | None] = {}
    for tree, entry in exposed:
        share = by_root.get(os.path.normpath(display_path(tree.root)))
        resource = entry.display
        if share is None or log is None or not audited(inv.samba, share):
            inv.read_evidence[entry.path] = {"logs_read_until": "none", "access_logging": False}
            continue
        prefix = inv.samba.effective(share, "full_audit:prefix", sharelog.DEFAULT_PREFIX)
        if prefix not in batches:
            try:
                batches[prefix] = sharelog.read_log(Path(log), sharelog.Layout.of(prefix))
            except OSError as exc:
                batches[prefix] = None
                inv.errors[f"audit log {log}"] = errno.errorcode.get(exc.errno or 0, "error")
        since = reads_window_start(reads_since, resource, now, changed_at(entry))
        inv.read_evidence[entry.path] = {
            **sharelog.evidence_for(
                batches[prefix], resource, _owner(entry.uid), since, now, share_paths
            ),
            "reads_since": since.isoformat(),
        }


# ------------------------------------------------------------ all


def share_dir(election: Election, policies: Policies, share_root: str | None) -> str:
    if share_root is None:
        return election.share_path
    base = PurePosixPath(policies.baseline.hosts.share_root)
    path = PurePosixPath(election.share_path)
    try:
        return str(PurePosixPath(share_root) / path.relative_to(base))
    except ValueError:
        return str(PurePosixPath(share_root) / election.id)


def rebase(policies: Policies, share_root: str | None) -> Policies:
    """The policies with every election's share moved under `share_root` (--share-root)."""
    if share_root is None:
        return policies
    elections = tuple(
        dataclasses.replace(e, share_path=share_dir(e, policies, share_root))
        for e in policies.elections
    )
    return dataclasses.replace(policies, elections=elections)


def fetch(
    policies: Policies,
    *,
    share_root: str | None = None,
    smb_conf: str | None = None,
    stray_paths: Iterable[str] | None = None,
    mounts: Path = Path("/proc/mounts"),
    sys_block: Path = Path("/sys/block"),
    reads_since: ReadsSince = None,
) -> SharesInventory:
    inv = SharesInventory()
    gids = {e.id: _gid(e.share_group) for e in policies.elections}
    for election in policies.elections:
        others = {g: eid for eid, g in gids.items() if g is not None and eid != election.id}
        root = share_dir(election, policies, share_root)
        tree = ShareTree(
            election=election.id,
            root=os.fsencode(root),
            group=election.share_group,
            gid=gids[election.id],
            other_election_gids=others,
        )
        scan_tree(tree)
        if tree.missing:
            inv.errors[f"share root {root}"] = tree.problem
        else:
            point, device, fstype, enc = encryption_of(root, mounts=mounts, sys_block=sys_block)
            tree.mount_point, tree.device, tree.fs_type, tree.encrypted = point, device, fstype, enc
            if enc is False and policies.baseline.hosts.at_rest == "cloud":
                base = share_root or policies.baseline.hosts.share_root
                tree.ebs_volume, tree.platform_encrypted = platform_encryption(
                    point, device, base, sys_block
                )
                tree.encrypted = tree.platform_encrypted
        inv.trees.append(tree)
    if smb_conf is not None:
        try:
            inv.samba, replaced = read_samba(smb_conf)
            if replaced:
                inv.errors["samba:encoding"] = (
                    f"{smb_conf} is not UTF-8 text; read with replacement characters"
                )
        except subprocess.TimeoutExpired:
            inv.errors["samba"] = f"testparm timed out on {smb_conf}"
        except (OSError, RuntimeError) as exc:
            inv.errors["samba"] = str(exc)
        if inv.samba is not None:
            try:
                inv.audit_log = audit_log_of(written_log_level(smb_conf))
            except OSError as exc:
                inv.errors["samba:log level"] = errno.errorcode.get(exc.errno or 0, "error")
    paths = policies.baseline.hosts.stray_data_paths if stray_paths is None else stray_paths
    inv.stray = find_stray(paths, [t.root for t in inv.trees], inv.errors, inv.stray_unread)
    read_evidence(inv, reads_since, clock.now())
    return inv
