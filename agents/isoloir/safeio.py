"""Reading a file a user named, in bounded time and memory.

A path on the command line or in a configuration may name a FIFO (an open
blocks until someone writes), a device such as /dev/zero (a read never ends),
a directory or a huge file. `read_regular` opens without blocking, refuses
anything but a regular file by its fstat type before reading a byte, and reads
at most `limit` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnreadableFile(ValueError):
    """Missing, not a regular file, or too large; the message names the path and why."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular(path: Path, what: str, limit: int) -> bytes:
    """The bytes of the regular file `path` (at most `limit`), or UnreadableFile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"{path}: {_kind(st.st_mode)}, not a {what}")
        if st.st_size > limit:
            raise UnreadableFile(f"{path}: larger than {limit} bytes, not a {what}")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"{path}: larger than {limit} bytes, not a {what}")
    return data
