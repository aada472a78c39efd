"""Write a set of files under one directory, all or nothing.

Everything is checked before anything is written; each file is then written
to a temporary name in its own directory (same file system) and only when
every one is complete are they renamed into place. On any failure, what was
created is removed again and `WriteError` names the path and the reason.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

FILE_MODE = 0o640


class WriteError(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _existing_dir(path: Path) -> bool:
    """True if `path` is a directory (or a link to one), False if absent; else WriteError."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise WriteError(path, _reason(exc)) from None
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise WriteError(path, "dangling symbolic link") from None
        except OSError as exc:
            raise WriteError(path, _reason(exc)) from None
    if not stat.S_ISDIR(mode):
        raise WriteError(path, "not a directory")
    return True


def _directories(out: Path, rels: list[Path]) -> list[Path]:
    """`out`, its missing ancestors and every directory under it, parents first."""
    wanted = {out}
    ancestor = out
    while not _existing_dir(ancestor) and ancestor.parent != ancestor:
        ancestor = ancestor.parent
        wanted.add(ancestor)
    for rel in rels:
        for parent in rel.parents:
            if str(parent) != ".":
                wanted.add(out / parent)
    return sorted(wanted, key=lambda p: len(p.parts))


def _precheck(out: Path, rels: list[Path]) -> list[Path]:
    """The directories to create; raises WriteError before anything is written."""
    missing = [d for d in _directories(out, rels) if not _existing_dir(d)]
    receivers = {d.parent for d in missing} | {(out / rel).parent for rel in rels}
    for directory in sorted(receivers - set(missing)):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise WriteError(directory, "permission denied")
    for rel in rels:
        target = out / rel
        try:
            if stat.S_ISDIR(os.lstat(target).st_mode):
                raise WriteError(target, "is a directory")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WriteError(target, _reason(exc)) from None
    return missing


def _write_temp(target: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _undo(temps: list[Path], created: list[Path]) -> None:
    for tmp in temps:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def write_all(out: Path, files: Mapping[Path, str]) -> list[Path]:
    """Write `files` (relative path -> text) under `out`; returns the paths written."""
    rels = list(files)
    missing = _precheck(out, rels)
    created: list[Path] = []
    temps: list[Path] = []
    current = out
    try:
        for directory in missing:
            current = directory
            os.mkdir(directory)
            created.append(directory)
        for rel, text in files.items():
            current = out / rel
            temps.append(_write_temp(current, text))
        for tmp, rel in zip(list(temps), rels, strict=True):
            current = out / rel
            os.replace(tmp, current)
            temps.remove(tmp)
    except OSError as exc:
        _undo(temps, created)
        raise WriteError(current, _reason(exc)) from None
    return [out / rel for rel in rels]
