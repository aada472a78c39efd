"""Hostile-input helpers of the policy loader: bounded reads of regular files
only, control characters in policy strings, and column-name normalisation.

Policy text ends up in smb.conf, in the agents' systemd unit and in alert
e-mails, so a string holding a line break (or any control character) is
refused, whatever the field.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from isoloir.policy.yamlsrc import Path_

# C0 controls, DEL, and the Unicode line breaks (NEL, LINE/PARAGRAPH SEPARATOR).
CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")

_NAMES = {
    "\n": "newline",
    "\r": "carriage return",
    "\t": "tab",
    "\x00": "NUL",
    "\x7f": "DEL",
    "\x85": "next line U+0085",
    "\u2028": "line separator U+2028",
    "\u2029": "paragraph separator U+2029",
}


class ReadError(Exception):
    """A file that cannot be used as input; `line` is 0 when not about a line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def control_name(char: str) -> str:
    return _NAMES.get(char, f"U+{ord(char):04X}")


def one_line(text: str) -> str:
    """`text` with every control character shown as an escape, for messages."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _strings(data: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield (*path, str(key)), str(key)
            yield from _strings(value, (*path, str(key)))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _strings(item, (*path, i))


def control_characters(data: Any) -> list[tuple[Path_, str]]:
    """(field path, reason) for every key or string value holding a control character."""
    found = []
    for path, text in _strings(data, ()):
        match = CONTROL.search(text)
        if match:
            found.append((path, f"contains a control character ({control_name(match.group())})"))
    return found


def header_key(name: str) -> str:
    """A column name as people write it, reduced to compare: no case, accents,
    spaces or punctuation (`Désinscrit `, `DESINSCRIT` and `dés-inscrit` agree)."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c for c in bare.casefold() if c.isalnum())


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def _refuse_special(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ReadError(0, f"not a regular file ({_kind(mode)})")


def read_bytes(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a regular file; never blocks on a FIFO or a device."""
    try:
        _refuse_special(os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ReadError(0, f"cannot read: {exc.strerror or exc}") from None
    try:
        _refuse_special(os.fstat(fd).st_mode)  # swapped between stat and open
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ReadError(0, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ReadError(0, f"file larger than {limit} bytes")
    return b"".join(chunks)


def decode_utf8(data: bytes) -> str:
    """UTF-8 text; a bad byte is reported on its real line."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReadError(1, "UTF-16 text (a byte-order mark); save the file as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ReadError(
            line,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
            "save the file as UTF-8",
        ) from None


def read_text(path: Path, limit: int) -> str:
    return decode_utf8(read_bytes(path, limit))
