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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
def open_dataset(share_root: str, rel: str) -> Iterator[int | None]:
    """A descriptor on the dataset directory (None when it does not exist)."""
    parts = _parts(rel)
    if not parts:
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


def _walk(dir_fd: int, prefix: str) -> Iterator[tuple[str, os.stat_result, bool]]:
    """(relative path, lstat, is_dir) depth-first, names sorted, directories after content."""
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # gone or replaced since the listing: the next listing sees it
                raise ShareError(f"cannot list {rel}: {exc.strerror or exc}") from None
            try:
                yield from _walk(child, rel + "/")
            finally:
                os.close(child)
            yield rel, st, True
        else:
            yield rel, st, False


def list_files(share_root: str, rel: str, limit: int | None = None) -> list[ShareFile]:
    """Files (anything but directories) under the dataset, in a stable order."""
    out: list[ShareFile] = []
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return out
        for path, st, is_dir in _walk(fd, ""):
            if is_dir:
                continue
            out.append(
                ShareFile(path, st.st_size, stat.S_ISLNK(st.st_mode), stat.S_ISREG(st.st_mode))
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def list_dirs(share_root: str, rel: str) -> list[str]:
    """Sub-directories of the dataset, deepest first (the dataset directory itself excluded)."""
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return []
        return [path for path, _st, is_dir in _walk(fd, "") if is_dir]


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
    with open_dataset(share_root, rel) as fd:
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


def remove_files(share_root: str, rel: str, paths: Sequence[str]) -> int:
    """Unlink each path (never following a link); returns how many were still there.

    A path that became a directory (EISDIR/EPERM on unlink) or whose parent
    became a symlink is skipped: the next listing walks into it, so a replay
    converges. A permission error names the path.
    """
    removed = 0
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return 0
        for path in paths:
            try:
                with _parent(fd, path) as (parent, name):
                    os.unlink(name, dir_fd=parent)
                    removed += 1
            except (FileNotFoundError, NotADirectoryError, ShareError):
                continue
            except IsADirectoryError:
                continue
            except PermissionError as exc:
                if _is_dir(fd, path):
                    continue  # Linux answers EPERM to unlink(2) of a directory
                raise _denied(share_root, rel, path, exc) from None
    return removed


def _is_dir(dataset_fd: int, path: str) -> bool:
    try:
        with _parent(dataset_fd, path) as (parent, name):
            return stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except (OSError, ShareError):
        return False


def remove_dirs(share_root: str, rel: str, paths: Sequence[str]) -> int:
    """rmdir each path (deepest first, as listed); missing and non-empty ones are skipped.

    A directory that is not empty any more (a file written during the purge)
    stays: the purge lists the dataset again and deletes the newcomers, so a
    replay never wedges. A permission error names the path.
    """
    removed = 0
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return 0
        for path in paths:
            try:
                with _parent(fd, path) as (parent, name):
                    os.rmdir(name, dir_fd=parent)
                    removed += 1
            except (FileNotFoundError, NotADirectoryError, ShareError):
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    continue
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise _denied(share_root, rel, path, exc) from None
                raise
    return removed
