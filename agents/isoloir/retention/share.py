"""Files of a dataset in an election's share, walked without following symlinks.

Every directory is opened relative to its parent's descriptor with
O_NOFOLLOW, starting from the share itself: a symlink anywhere on the way (the
dataset directory, a sub-directory) is refused rather than followed, so the
purge never deletes or reads anything outside the share. A symlink found inside
the dataset is itself removed (it is a file of the dataset), never its target.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ShareError(RuntimeError):
    """A dataset path is unsafe (outside the share, through a symlink), missing or unusable."""


@dataclass(frozen=True)
class ShareFile:
    path: str  # relative to the dataset directory
    size: int
    is_link: bool
    regular: bool = True  # False for a FIFO, socket or device: never opened

    @property
    def special(self) -> bool:
        """A FIFO, socket or device: opening it could block, so it is never read."""
        return not self.regular and not self.is_link


def _parts(rel: str) -> list[str]:
    path = PurePosixPath(rel)
    if path.is_absolute():
        raise ShareError(f"dataset path {rel!r} must be relative to the share")
    parts = [p for p in path.parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ShareError(f"dataset path {rel!r} resolves outside the share")
    return parts


def _open_dir(name: str, dir_fd: int | None, shown: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ShareError(f"{shown} is a symlink or not a directory: refused") from None
        raise


def missing_part(share_root: str, rel: str) -> str | None:
    """The first missing directory on the way to the dataset (None when all exist).

    The election's share and the dataset directories are created by Ansible and
    kept by the purge: a missing one means an unmounted volume or a typo, never
    "nothing to delete".
    """
    with open_dataset(share_root, rel) as fd:
        if fd is not None:
            return None
    shown = share_root
    if not os.path.lexists(share_root):
        return shown
    for part in _parts(rel):
        shown = f"{shown}/{part}"
        if not os.path.lexists(shown):
            return shown
    return shown


def require_dataset(share_root: str, rel: str) -> None:
    """Refuse a dataset whose share or directory is missing (nothing is deleted then)."""
    missing = missing_part(share_root, rel)
    if missing is None:
        return
    if missing == share_root:
        raise ShareError(
            f"share {share_root} not found: is the volume mounted? nothing was deleted"
        )
    raise ShareError(
        f"dataset directory {missing} not found: is the volume mounted? nothing was deleted"
    )


@contextmanager
def open_dataset(share_root: str, rel: str, *, whole: bool = False) -> Iterator[int | None]:
    """A descriptor on the dataset directory (None when it does not exist).

    `whole` (with rel "") opens the election's folder itself, for what lies
    outside every declared dataset.
    """
    parts = _parts(rel)
    if not parts and not (whole and rel == ""):
        raise ShareError("a dataset cannot be the whole share")
    try:
        fd = _open_dir(share_root, None, share_root)
    except FileNotFoundError:
        yield None
        return
    shown = share_root
    try:
        for part in parts:
            shown = f"{shown}/{part}"
            try:
                child = _open_dir(part, fd, shown)
            except FileNotFoundError:
                os.close(fd)
                fd = -1
                break
            os.close(fd)
            fd = child
        yield fd if fd >= 0 else None
    finally:
        if fd >= 0:
            os.close(fd)


WALK, THROUGH, SKIP = "walk", "through", "skip"  # what `walk` does with a directory


@dataclass(frozen=True)
class Entry:
    """One entry met by `walk`; `dir_fd` (its parent) is valid only while it is handled."""

    path: str  # relative to the top of the walk
    name: str
    st: os.stat_result  # lstat
    dir_fd: int

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


@dataclass
class _Frame:
    dev: int
    ino: int
    names: list[str]
    prefix: str
    entry: Entry | None  # the directory itself, yielded once its content is done
    index: int = 0


def walk(
    top_fd: int,
    *,
    decide: Callable[[str], str] | None = None,
    enter: Callable[[int, str], None] | None = None,
) -> Iterator[Entry]:
    """Every entry under `top_fd`, depth first, names sorted, a directory after its content.

    Without recursion and with one open descriptor whatever the depth (a
    member's 1,200-level tree neither overflows the stack nor the descriptor
    limit): going down opens the child with O_NOFOLLOW, going up opens `..`
    and checks it is the directory it came from (a folder moved during the
    walk raises ShareError). `decide(path)` says what to do with a directory:
    WALK (the default: its content, then itself), THROUGH (its content only)
    or SKIP (nothing). `enter(fd, path)` is called on each directory walked,
    the top included (path ""), before it is listed.
    """
    fd = os.dup(top_fd)
    try:
        top = os.fstat(fd)
        if enter is not None:
            enter(fd, "")
        stack = [_Frame(top.st_dev, top.st_ino, sorted(os.listdir(fd)), "", None)]
        while stack:
            frame = stack[-1]
            if frame.index >= len(frame.names):
                stack.pop()
                if not stack:
                    return
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                pst = os.fstat(parent)
                os.close(fd)
                fd = parent
                if (pst.st_dev, pst.st_ino) != (stack[-1].dev, stack[-1].ino):
                    raise ShareError(
                        f"{frame.prefix.rstrip('/')} was moved during the walk: run again"
                    )
                if frame.entry is not None:
                    yield replace(frame.entry, dir_fd=fd)
                continue
            name = frame.names[frame.index]
            frame.index += 1
            rel = frame.prefix + name
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since the listing
            if not stat.S_ISDIR(st.st_mode):
                yield Entry(rel, name, st, fd)
                continue
            what = decide(rel) if decide is not None else WALK
            if what == SKIP:
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # gone or replaced since the listing: the next listing sees it
                raise ShareError(f"cannot list {rel}: {exc.strerror or exc}") from None
            cst = os.fstat(child)
            if (cst.st_dev, cst.st_ino) != (st.st_dev, st.st_ino):
                os.close(child)
                continue  # replaced since the listing
            os.close(fd)
            fd = child
            if enter is not None:
                enter(fd, rel)
            try:
                names = sorted(os.listdir(fd))
            except OSError as exc:
                raise ShareError(f"cannot list {rel}: {exc.strerror or exc}") from None
            entry = Entry(rel, name, st, -1) if what == WALK else None
            stack.append(_Frame(cst.st_dev, cst.st_ino, names, rel + "/", entry))
    finally:
        os.close(fd)


def _walk(dir_fd: int, prefix: str) -> Iterator[tuple[str, os.stat_result, bool]]:
    """(relative path, lstat, is_dir), as `walk` gives them."""
    for entry in walk(dir_fd):
        yield prefix + entry.path, entry.st, entry.is_dir


def outside(declared: Sequence[str]) -> Callable[[str], str]:
    """For a walk of the election's folder: what lies outside the declared datasets.

    A dataset folder is skipped, a folder on the way to one is walked through
    (its other content is outside, it stays), anything else is walked.
    """
    exact = {"/".join(_parts(d)) for d in declared}
    ancestors = {"/".join(_parts(d)[:i]) for d in declared for i in range(1, len(_parts(d)))}

    def decide(path: str) -> str:
        if path in exact:
            return SKIP
        return THROUGH if path in ancestors else WALK

    return decide


def _entries_of(
    share_root: str, rel: str, declared: Sequence[str] | None
) -> Iterator[tuple[str, os.stat_result, bool]]:
    whole = declared is not None
    with open_dataset(share_root, rel, whole=whole) as fd:
        if fd is None:
            return
        decide = outside(declared) if declared is not None else None
        for entry in walk(fd, decide=decide):
            yield entry.path, entry.st, entry.is_dir


def list_files(
    share_root: str, rel: str, limit: int | None = None, declared: Sequence[str] | None = None
) -> list[ShareFile]:
    """Files (anything but directories) under the dataset, in a stable order.

    With `declared` (and rel ""): the files of the election's folder outside
    those dataset folders.
    """
    out: list[ShareFile] = []
    for path, st, is_dir in _entries_of(share_root, rel, declared):
        if is_dir:
            continue
        out.append(ShareFile(path, st.st_size, stat.S_ISLNK(st.st_mode), stat.S_ISREG(st.st_mode)))
        if limit is not None and len(out) >= limit:
            break
    return out


def list_dirs(share_root: str, rel: str, declared: Sequence[str] | None = None) -> list[str]:
    """Sub-directories of the dataset, deepest first (the dataset directory itself excluded)."""
    return [path for path, _st, is_dir in _entries_of(share_root, rel, declared) if is_dir]


@contextmanager
def _parent(dataset_fd: int, path: str) -> Iterator[tuple[int, str]]:
    parts = _parts(path)
    if not parts:
        raise ShareError("empty path")
    fd = os.dup(dataset_fd)
    try:
        for part in parts[:-1]:
            child = _open_dir(part, fd, part)
            os.close(fd)
            fd = child
        yield fd, parts[-1]
    finally:
        os.close(fd)


# O_NONBLOCK: opening a FIFO read-only would otherwise wait for a writer forever
# (fifo(7)); the fstat below then refuses anything that is not a regular file.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def read_file(share_root: str, rel: str, path: str, max_bytes: int) -> bytes | None:
    """Content of a regular file of the dataset (None if gone, a link, not regular, too large).

    Never blocks: a FIFO, socket or device named like a table is refused by its
    lstat type before any open, and the open itself is non-blocking.
    """
    with open_dataset(share_root, rel, whole=True) as fd:
        if fd is None:
            return None
        try:
            with _parent(fd, path) as (parent, name):
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    return None
                ffd = os.open(name, _READ_FLAGS, dir_fd=parent)
        except (FileNotFoundError, ShareError):
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                return None
            raise
        with os.fdopen(ffd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
                return None
            os.set_blocking(handle.fileno(), True)
            return handle.read(max_bytes + 1)


def _denied(share_root: str, rel: str, path: str, exc: OSError) -> ShareError:
    return ShareError(
        f"cannot delete {share_root}/{rel}/{path}: {exc.strerror or exc} "
        "(give the agent's group write access to its directory, then run the purge again)"
    )


def remove_files(
    share_root: str, rel: str, paths: Sequence[str], declared: Sequence[str] | None = None
) -> int:
    """Unlink each path (never following a link); returns how many were still there.

    One walk in the order `list_files` gave them, the parent's descriptor at
    hand, stopping once every path was met: a file 5,000 folders deep costs no
    5,000 opens of its own. A path that became a directory or whose parent
    became a symlink is not met, or skipped: the next listing walks into it,
    so a replay converges. A permission error names the path. `declared` as
    for `list_files`.
    """
    wanted = set(paths)
    removed = met = 0
    with open_dataset(share_root, rel, whole=True) as fd:
        if fd is None:
            return 0
        decide = outside(declared) if declared is not None else None
        for entry in walk(fd, decide=decide):
            if entry.is_dir or entry.path not in wanted:
                continue
            met += 1
            try:
                os.unlink(entry.name, dir_fd=entry.dir_fd)
                removed += 1
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass
            except PermissionError as exc:
                if not _is_dir(entry.dir_fd, entry.name):  # EPERM: unlink(2) of a directory
                    raise _denied(share_root, rel, entry.path, exc) from None
            if met >= len(wanted):
                break
    return removed


def _is_dir(dataset_fd: int, path: str) -> bool:
    try:
        with _parent(dataset_fd, path) as (parent, name):
            return stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except (OSError, ShareError):
        return False


def remove_dirs(
    share_root: str, rel: str, paths: Sequence[str], declared: Sequence[str] | None = None
) -> int:
    """rmdir each path, deepest first, in one walk; missing and non-empty ones are skipped.

    A directory that is not empty any more (a file written during the purge)
    stays: the purge lists the dataset again and deletes the newcomers, so a
    replay never wedges. A permission error names the path. One walk with the
    parent's descriptor at hand: a 5,000-level tree costs 5,000 opens, not
    12 million. `declared` as for `list_dirs`.
    """
    wanted = set(paths)
    removed = 0
    with open_dataset(share_root, rel, whole=True) as fd:
        if fd is None:
            return 0
        decide = outside(declared) if declared is not None else None
        for entry in walk(fd, decide=decide):
            if not entry.is_dir or entry.path not in wanted:
                continue
            try:
                os.rmdir(entry.name, dir_fd=entry.dir_fd)
                removed += 1
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise _denied(share_root, rel, entry.path, exc) from None
                raise
    return removed
