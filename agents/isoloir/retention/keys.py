"""The retention agent's secrets: the HMAC key of the suppression list and the
Ed25519 key that signs deletion certificates. Both live in the secrets
directory and are refused when readable by others.

They are created once, at deploy, by `init` (`python -m isoloir.retention.keys
init DIR`, run by the agents role as the agents' user): under the agents' unit
the secrets directory is read-only (ProtectSystem=strict), so the purge only
reads them and refuses, naming the file, when one is missing. `check` is what
the unit runs before the agents start.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from isoloir import runtime

HMAC_KEY_FILE = "retention-hmac.key"
SIGNING_KEY_FILE = "retention-signing.key"


class SecretError(RuntimeError):
    """A secret file is missing, malformed or too widely readable."""


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600")


def _create_private(path: Path, content: bytes) -> None:
    """Write `content` to a new 0600 file; a concurrent creator wins and is kept."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if it exists: never overwrite a key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _read_private(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _require(path: Path) -> None:
    """Refuse a missing key with the next step for where the command runs (CLI
    review N9): a workstation needs the host's own key, never a new one."""
    if path.exists():
        return
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise SecretError(
            f"{folder} is not a directory: ISOLOIR_SECRETS_DIR must name the folder "
            f"holding {path.name}"
        )
    on_host = f"on the file-share host the deploy creates it (isoloir retention keys init {folder})"
    if path.name == HMAC_KEY_FILE:
        where = (
            f"on a workstation, copy the file-share host's key "
            f"({runtime.DEFAULT_SECRETS_DIR / HMAC_KEY_FILE}) there, mode 0600: a new key "
            f"would not match the suppression list; "
        )
    else:
        where = "on a workstation, verify certificates with --public-key or --fingerprint instead; "
    raise SecretError(f"{path} is missing; {where}{on_host}")


def _new_hmac_hex() -> bytes:
    return secrets.token_hex(32).encode() + b"\n"


def _new_signing_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init(secrets_dir: Path) -> list[Path]:
    """Create whichever retention key is missing (0600); never replace one.

    Returns the files created (empty when both existed). Idempotent: the deploy
    runs it at every converge.
    """
    created = []
    makers: tuple[tuple[str, Callable[[], bytes]], ...] = (
        (HMAC_KEY_FILE, _new_hmac_hex),
        (SIGNING_KEY_FILE, _new_signing_pem),
    )
    for name, make in makers:
        path = secrets_dir / name
        if not path.exists():
            _create_private(path, make())
            created.append(path)
    return created


def check(secrets_dir: Path) -> None:
    """Both keys exist, are private and parse; SecretError names the first bad file."""
    hmac_key(secrets_dir)
    signing_key(secrets_dir)


def hmac_key(secrets_dir: Path) -> bytes:
    """The suppression list's HMAC key (32 random bytes, stored hex)."""
    path = secrets_dir / HMAC_KEY_FILE
    _require(path)
    _check_private(path)
    text = _read_private(path).decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"{path} does not hold a hex key") from None
    if len(key) < 16:
        raise SecretError(f"{path}: key shorter than 128 bits")
    return key


def signing_key(secrets_dir: Path) -> Ed25519PrivateKey:
    """The Ed25519 key that signs deletion certificates (PKCS#8 PEM)."""
    path = secrets_dir / SIGNING_KEY_FILE
    _require(path)
    _check_private(path)
    key = serialization.load_pem_private_key(_read_private(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretError(f"{path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise SecretError(f"{path} is not an Ed25519 public key")
    return key


def public_key_id(key: Ed25519PublicKey) -> str:
    """sha256 of the raw public key, hex: names the key in a certificate."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m isoloir.retention.keys init|check [DIR]` (default: the runtime secrets dir)."""
    parser = argparse.ArgumentParser(prog="python -m isoloir.retention.keys")
    parser.add_argument("action", choices=("init", "check"))
    parser.add_argument(
        "secrets_dir", nargs="?", help="default: $ISOLOIR_SECRETS_DIR or /etc/isoloir/secrets"
    )
    args = parser.parse_args(argv)
    directory = Path(args.secrets_dir) if args.secrets_dir else runtime.secrets_dir()
    try:
        if args.action == "init":
            for path in init(directory):
                print(f"created {path}")
        check(directory)
    except (SecretError, OSError, ValueError) as exc:
        print(f"retention keys: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
