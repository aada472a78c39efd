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
    """A dataset path is unsafe (outside the share, through a symlink)."""


@dataclass(frozen=True)
class ShareFile:
    path: str  # relative to the dataset directory
    size: int
    is_link: bool


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
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
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
            out.append(ShareFile(path, st.st_size, stat.S_ISLNK(st.st_mode)))
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


def read_file(share_root: str, rel: str, path: str, max_bytes: int) -> bytes | None:
    """Content of a regular file of the dataset (None if gone, a link, or too large)."""
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return None
        try:
            with _parent(fd, path) as (parent, name):
                ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except (FileNotFoundError, ShareError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise
        with os.fdopen(ffd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
                return None
            return handle.read(max_bytes + 1)


def remove_files(share_root: str, rel: str, paths: Sequence[str]) -> int:
    """Unlink each path (never following a link); returns how many were still there."""
    removed = 0
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return 0
        for path in paths:
            try:
                with _parent(fd, path) as (parent, name):
                    os.unlink(name, dir_fd=parent)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def remove_dirs(share_root: str, rel: str, paths: Sequence[str]) -> int:
    """rmdir each path (deepest first, as listed); missing ones are skipped."""
    removed = 0
    with open_dataset(share_root, rel) as fd:
        if fd is None:
            return 0
        for path in paths:
            try:
                with _parent(fd, path) as (parent, name):
                    os.rmdir(name, dir_fd=parent)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed
