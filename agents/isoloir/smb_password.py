"""Password quality for Samba password changes: smb.conf `check password script`.

smbd runs the script the election_shares role installs
(/usr/local/sbin/isoloir-smb-pwcheck) for every password change a person makes
with `smbpasswd`, with the new password on standard input and the account in
SAMBA_CPS_ACCOUNT_NAME; any exit status but 0 refuses the change. The rules are
the policies' CNIL profile, as pam_pwquality applies them (credits off):
at least `min_length` characters, from at least `min_classes` of lower-case,
upper-case, digits and others, and not containing the account name.
The password is never printed or logged.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

MAX_BYTES = 1024  # Samba passwords are far shorter; refuse anything larger
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def character_classes(password: str) -> int:
    """How many of the four classes (lower, upper, digit, other) the password uses."""
    found = set()
    for ch in password:
        if ch.islower():
            found.add("lower")
        elif ch.isupper():
            found.add("upper")
        elif ch.isdigit():
            found.add("digit")
        else:
            found.add("other")
    return len(found)


def problems(password: str, *, min_length: int, min_classes: int, account: str = "") -> list[str]:
    """Why the password is refused (empty: accepted). Never quotes the password."""
    out = []
    if len(password) < min_length:
        out.append(f"shorter than {min_length} characters")
    classes = character_classes(password)
    if classes < min_classes:
        out.append(
            f"uses {classes} of the 4 character classes (lower, upper, digit, other); "
            f"{min_classes} needed"
        )
    name = account.strip().lower()
    if len(name) >= 3 and name in password.lower():
        out.append("contains the account name")
    return out


def read_password(data: bytes) -> str | None:
    """The password smbd wrote on stdin (one trailing newline dropped); None if unusable."""
    if len(data) > MAX_BYTES:
        return None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isoloir-smb-pwcheck")
    parser.add_argument("--min-length", type=int, required=True)
    parser.add_argument("--min-classes", type=int, required=True, choices=(1, 2, 3, 4))
    args = parser.parse_args(argv)
    password = read_password(sys.stdin.buffer.read(MAX_BYTES + 1))
    if password is None:
        print("password refused: not UTF-8 text, or too long", file=sys.stderr)
        return EXIT_REFUSED
    found = problems(
        password,
        min_length=args.min_length,
        min_classes=args.min_classes,
        account=os.environ.get("SAMBA_CPS_ACCOUNT_NAME", ""),
    )
    if found:
        print("password refused: " + "; ".join(found), file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
