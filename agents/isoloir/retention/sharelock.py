"""Before an election is purged, its share stops accepting writes (RET-LOCK).

Two halves, so that the agents never need more power than they have:

- the retention job (the agents' user) records a request, an empty file
  `<state dir>/purged/<election id>`, when the election is due, and waits for
  root's record of the lock before it reads or deletes anything (a member can
  then no longer block the purge: no `chmod 000`, no read-only folder, no new
  file behind the walk); the request stays, so the share stays locked;
- `isoloir-share-lock.service` (root; started by a path unit when a request
  appears, and hourly) runs `python -m isoloir.retention.sharelock apply`. For
  each election of the rendered policies (root-owned) with a request, it locks
  the election's whole folder except its permanent datasets. The only thing
  the agents' side decides is which known election is locked; a forged
  request can freeze a share, never reach anything else.

Locking, walked by directory descriptors from the share (O_NOFOLLOW at every
step, so a member swapping a folder for a symlink cannot redirect it; no
recursion and no depth limit, see share.walk):

- a folder becomes root's, with the access ACL `user::rwx, user:<agents>:rwx,
  group::r-x, mask::rwx, other::---`: the election's members can list and read,
  no longer create, rename or delete; the agents' user still can, so the purge
  deletes and residue found later (RET-RESIDUE) is purged again. chmod maps the
  group bits to the ACL mask, so the role's `mode: 2770` on the next converge
  leaves the lock alone (acl(5), "ACL entries" and "Correspondence between ACL
  entries and file permission bits").
- a regular file becomes root's, mode 0440 without named ACL entries:
  readable by the election's group (the agents are in it), writable by nobody,
  and its former owner can no longer chmod it back.
- a symlink, FIFO, socket, device or a file with several hard links is left as
  it is and counted (changing a hard-linked inode would change it elsewhere).

Permanent datasets (the party's contacts) keep accepting writes. The record
`<lock dir>/<election>.json` is removed before a lock and written after it.
An administrator's `unlock ELECTION` gives the folders back their mode
(root:el-<id> 2770, no access ACL; files stay read-only) and holds until
`lock ELECTION` (the purge waits meanwhile). Output: election ids and counts,
never a file name.
"""

from __future__ import annotations

import argparse
import errno
import grp
import json
import os
import pwd
import stat
import struct
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from isoloir.policy.model import Election, Policies
from isoloir.retention import planning
from isoloir.retention.share import ShareError, open_dataset, outside, walk

REQUESTS_DIR = "purged"  # under the agents' state directory
DEFAULT_LOCK_DIR = Path("/var/lib/isoloir-share-lock")

ACL_ACCESS = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
_RWX, _RX = 7, 5

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
LOCKED_DIR_MODE = 0o2770  # shown mode: the group bits are the ACL mask
LOCKED_FILE_MODE = 0o440


class LockError(RuntimeError):
    """The share of an election could not be locked or unlocked."""


@dataclass
class Counts:
    folders: int = 0
    files: int = 0
    left: int = 0  # symlinks, special files, hard-linked files: not changed
    hard_linked: int = 0  # of `left`: regular files with several links (reported)


# -- the agents' side -----------------------------------------------------------------


def request_path(state_dir: Path, election_id: str) -> Path:
    return state_dir / REQUESTS_DIR / election_id


def request(state_dir: Path, election_id: str) -> bool:
    """Ask for the election's share to be locked; True when the request is new."""
    path = request_path(state_dir, election_id)
    path.parent.mkdir(mode=0o750, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    except FileExistsError:
        return False
    os.close(fd)
    return True


# -- ACLs ---------------------------------------------------------------------------


def acl_xattr(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """The kernel's binary form of an access ACL: (tag, permissions, id) entries."""
    ordered = sorted(entries, key=lambda e: (e[0], e[2]))
    body = b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in ordered)
    return struct.pack("<I", _ACL_VERSION) + body


def locked_dir_acl(agents_uid: int) -> bytes:
    return acl_xattr(
        [
            (_USER_OBJ, _RWX, _UNDEFINED_ID),
            (_USER, _RWX, agents_uid),
            (_GROUP_OBJ, _RX, _UNDEFINED_ID),
            (_MASK, _RWX, _UNDEFINED_ID),
            (_OTHER, 0, _UNDEFINED_ID),
        ]
    )


def _drop_access_acl(fd: int) -> None:
    try:
        os.removexattr(fd, ACL_ACCESS)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise


# -- locking ------------------------------------------------------------------------


def _lock_dir(fd: int, gid: int, acl: bytes) -> None:
    # The ACL sets the permission bits; the setgid bit stays as it is (the
    # unit's RestrictSUIDSGID= refuses any chmod that names it).
    os.fchown(fd, 0, gid)
    os.setxattr(fd, ACL_ACCESS, acl)


def _lock_file(dir_fd: int, name: str, before: os.stat_result, gid: int) -> bool:
    """Lock one regular file; False when it is left as it is."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
            return False  # gone, or replaced by a symlink or special file since the listing
        raise
    try:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino) == (before.st_dev, before.st_ino)
        if not same or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
        _drop_access_acl(fd)
        os.fchown(fd, 0, gid)
        os.fchmod(fd, LOCKED_FILE_MODE)
        return True
    finally:
        os.close(fd)


def _open_share(e: Election) -> int:
    try:
        return os.open(e.share_path, _DIR_FLAGS)
    except FileNotFoundError:
        raise LockError(f"share {e.share_path} not found: is the volume mounted?") from None
    except OSError as exc:
        raise LockError(f"share {e.share_path}: {exc.strerror or exc}") from None


def _gid(e: Election) -> int:
    try:
        return grp.getgrnam(e.share_group).gr_gid
    except KeyError:
        raise LockError(f"no such group: {e.share_group}") from None


def _ids(e: Election, agents_user: str) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(agents_user).pw_uid
    except KeyError:
        raise LockError(f"no such account: {agents_user}") from None
    return uid, _gid(e)


def _permanent(e: Election) -> list[str]:
    return [ds.share_path for ds in planning.kept_datasets(e)]


def lock(e: Election, agents_uid: int, gid: int) -> Counts:
    """Lock the whole election folder but its permanent datasets (see the module).

    Each folder is locked before it is listed, so nothing is added behind the
    walk; the walk has no depth limit and no recursion (share.walk).
    """
    acl = locked_dir_acl(agents_uid)
    counts = Counts()
    for ds in planning.campaign_datasets(e):
        with open_dataset(e.share_path, ds.share_path) as ds_fd:
            if ds_fd is None:
                raise LockError(f"dataset directory {e.share_dir(ds)} not found")

    def enter(fd: int, _path: str) -> None:
        _lock_dir(fd, gid, acl)
        counts.folders += 1

    fd = _open_share(e)
    try:
        for entry in walk(fd, decide=outside(_permanent(e)), enter=enter):
            if entry.is_dir:
                continue
            if stat.S_ISREG(entry.st.st_mode) and entry.st.st_nlink > 1:
                counts.hard_linked += 1
                counts.left += 1
            elif stat.S_ISREG(entry.st.st_mode) and _lock_file(
                entry.dir_fd, entry.name, entry.st, gid
            ):
                counts.files += 1
            else:
                counts.left += 1
    finally:
        os.close(fd)
    return counts


def _unlock_dir(fd: int, gid: int) -> None:
    _drop_access_acl(fd)
    os.fchown(fd, 0, gid)
    os.fchmod(fd, LOCKED_DIR_MODE)


def unlock(e: Election, gid: int) -> int:
    """Give the folders back root:el-<id> 2770 without access ACL; the folder count."""
    done = 0

    def enter(fd: int, _path: str) -> None:
        nonlocal done
        _unlock_dir(fd, gid)
        done += 1

    fd = _open_share(e)
    try:
        for _entry in walk(fd, decide=outside(_permanent(e)), enter=enter):
            pass
    finally:
        os.close(fd)
    return done


def locked_at(lock_dir: Path, election_id: str) -> datetime | None:
    """When root last locked the election's share (None: not locked, or unlocked since)."""
    if _unlocked_path(lock_dir, election_id).exists():
        return None
    try:
        record = json.loads((lock_dir / f"{election_id}.json").read_text(encoding="utf-8"))
        when = datetime.fromisoformat(str(record["locked_at"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def lock_dir_in_use() -> Path | None:
    """Where root records its locks, when the share lock is deployed on this machine.

    `ISOLOIR_SHARE_LOCK_DIR` or /var/lib/isoloir-share-lock (created by the
    deploy, root's): when it exists, the purge waits for root to lock the
    election's folder first. A workstation without it purges without the lock.
    """
    path = Path(os.environ.get("ISOLOIR_SHARE_LOCK_DIR") or DEFAULT_LOCK_DIR)
    return path if path.is_dir() else None


def unlocked_by_admin(lock_dir: Path, election_id: str) -> bool:
    return _unlocked_path(lock_dir, election_id).exists()


def requested_at(state_dir: Path, election_id: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(request_path(state_dir, election_id).stat().st_mtime, UTC)
    except OSError:
        return None


# -- the root side ------------------------------------------------------------------


def _write_record(lock_dir: Path, election_id: str, counts: Counts) -> None:
    lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    record = {
        "election": election_id,
        "locked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **asdict(counts),
    }
    fd, tmp = tempfile.mkstemp(dir=lock_dir, prefix=".lock-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, lock_dir / f"{election_id}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unlocked_path(lock_dir: Path, election_id: str) -> Path:
    return lock_dir / f"{election_id}.unlocked"


def lock_and_record(e: Election, lock_dir: Path, agents_user: str) -> Counts:
    # No record while the lock is under way or failed: the purge waits for one.
    (lock_dir / f"{e.id}.json").unlink(missing_ok=True)
    counts = lock(e, *_ids(e, agents_user))
    _write_record(lock_dir, e.id, counts)
    _unlocked_path(lock_dir, e.id).unlink(missing_ok=True)
    return counts


def apply(policies: Policies, state_dir: Path, lock_dir: Path, agents_user: str) -> int:
    """Lock every election with a request; 0, or 1 when one could not be locked.

    Every run locks again (a tree changed by hand is locked anew), except an
    election an administrator unlocked (`unlock`, until `lock`).
    """
    failed = 0
    for e in policies.elections:
        if not os.path.lexists(request_path(state_dir, e.id)):
            continue
        if _unlocked_path(lock_dir, e.id).exists():
            print(f"share lock: {e.id}: unlocked by an administrator, left writable")
            continue
        try:
            counts = lock_and_record(e, lock_dir, agents_user)
        except (LockError, ShareError, OSError) as exc:
            failed += 1
            print(f"share lock: {e.id}: {_reason(exc)}", file=sys.stderr)
            continue
        _say_locked(e.id, counts)
    return 1 if failed else 0


def _say_locked(election_id: str, counts: Counts) -> None:
    print(
        f"share lock: {election_id}: locked {counts.folders} folder(s) and {counts.files} "
        f"file(s); {counts.left} other entr(y/ies) left as they are "
        f"({counts.hard_linked} with several hard links)"
    )


def unlock_and_record(e: Election, lock_dir: Path) -> int:
    folders = unlock(e, _gid(e))
    lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    _unlocked_path(lock_dir, e.id).write_text(
        datetime.now(UTC).isoformat(timespec="seconds") + "\n", encoding="utf-8"
    )
    (lock_dir / f"{e.id}.json").unlink(missing_ok=True)
    return folders


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m isoloir.retention.sharelock apply|unlock` (as root)."""
    from isoloir import runtime
    from isoloir.policy import PolicyError, load_rendered

    parser = argparse.ArgumentParser(prog="python -m isoloir.retention.sharelock")
    runtime.add_runtime_arguments(parser)
    parser.add_argument("--lock-dir", default=str(DEFAULT_LOCK_DIR))
    parser.add_argument("--agents-user", default="isoloir")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("apply", help="lock the share of every election the agents purged")
    for action, text in (
        ("lock", "lock one election's share now"),
        ("unlock", "let an election's members write again (kept until `lock`)"),
    ):
        sub.add_parser(action, help=text).add_argument("election")
    args = parser.parse_args(argv)
    config = runtime.config_path(args.config)
    try:
        policies = load_rendered(config)
    except PolicyError as exc:
        print(f"share lock: {config}: {exc.problems[0] if exc.problems else exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"share lock: {config}: {_reason(exc)}", file=sys.stderr)
        return 2
    lock_dir = Path(args.lock_dir)
    if args.action == "apply":
        return apply(policies, runtime.state_dir(args.state_dir), lock_dir, args.agents_user)
    chosen = [e for e in policies.elections if e.id == args.election]
    if not chosen:
        print(f"share lock: {config}: no election {args.election!r}", file=sys.stderr)
        return 2
    try:
        if args.action == "lock":
            _say_locked(args.election, lock_and_record(chosen[0], lock_dir, args.agents_user))
        else:
            folders = unlock_and_record(chosen[0], lock_dir)
            print(
                f"share lock: {args.election}: unlocked {folders} folder(s); files stay read-only"
            )
    except (LockError, ShareError, OSError) as exc:
        print(f"share lock: {args.election}: {_reason(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
