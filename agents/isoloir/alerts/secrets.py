"""Secret files: readable by their owner only, owned by root or by the agent's user.

A secret the group or the world can read is refused, not used: the operator
learns about it from the delivery error (and `isoloir alerts test`) instead of
the agent silently spreading a leaked password.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path


class SecretError(Exception):
    """A secret file is missing, unsafe or malformed."""


def _check_file(path: Path) -> os.stat_result:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretError(f"secret file {path} does not exist") from None
    except PermissionError:
        raise SecretError(f"secret file {path} cannot be read by this user") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"secret file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise SecretError(
            f"secret file {path} is readable or writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
        )
    if st.st_uid not in (0, os.geteuid()):
        raise SecretError(f"secret file {path} is owned by uid {st.st_uid}, not root")
    return st


def read_secret_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of a root-only secret file, surrounding whitespace removed."""
    p = Path(path)
    _check_file(p)
    try:
        data = p.read_bytes().strip()
    except PermissionError:
        raise SecretError(
            f"secret file {p} cannot be read by this user (owner only: root or the agent's user)"
        ) from None
    if not data:
        raise SecretError(f"secret file {p} is empty")
    return data


@dataclass(frozen=True)
class SmtpCredentials:
    username: str
    password: str
    ca_file: str | None = None  # a private CA for the mail server (local target, tests)

    def __repr__(self) -> str:  # never print the password
        return f"SmtpCredentials(username={self.username!r}, password=***)"


def read_smtp_credentials(path: str | os.PathLike[str]) -> SmtpCredentials:
    """`{"username": "...", "password": "...", "ca_file": optional}` in a root-only file."""
    raw = read_secret_bytes(path)
    try:
        data = json.loads(raw)
    except ValueError:
        raise SecretError(f"secret file {path} is not JSON") from None
    if not isinstance(data, dict):
        raise SecretError(f"secret file {path} must hold a JSON object")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise SecretError(f"secret file {path} needs string fields 'username' and 'password'")
    ca_file = data.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        raise SecretError(f"secret file {path}: 'ca_file' must be a path")
    return SmtpCredentials(username=username, password=password, ca_file=ca_file)
