"""Every CLI command that reads a file the user names, given a FIFO, /dev/zero,
a directory, a dangling symlink, an empty file or binary garbage in its place:
a one-line error naming the file and the documented exit code (2; 1 for a
readable file that is no valid certificate) within seconds, never a hang (a
blocking open of a FIFO), never an endless read (/dev/zero), never a traceback.

Each case runs the real `isoloir` entry point in a child process with a
deadline, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_db

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DEADLINE = 30  # seconds; a well-behaved refusal takes well under one


def _fifo(tmp: Path, name: str = "input.fifo") -> Path:
    path = tmp / name
    os.mkfifo(path)
    return path


def _dev_zero(tmp: Path, name: str = "zero") -> Path:
    link = tmp / name
    link.symlink_to("/dev/zero")
    return link


def _directory(tmp: Path, name: str = "a-directory") -> Path:
    path = tmp / name
    path.mkdir()
    return path


def _dangling(tmp: Path, name: str = "dangling") -> Path:
    link = tmp / name
    link.symlink_to(tmp / "nowhere" / "gone")
    return link


def _empty(tmp: Path, name: str = "empty") -> Path:
    path = tmp / name
    path.write_bytes(b"")
    return path


def _garbage(tmp: Path, name: str = "garbage") -> Path:
    path = tmp / name
    path.write_bytes(bytes(range(256)) * 64 + b"\xff\xfe\x00" * 1000)
    return path


KINDS: dict[str, Callable[[Path], Path]] = {
    "fifo": _fifo,
    "dev-zero": _dev_zero,
    "directory": _directory,
    "dangling": _dangling,
    "empty": _empty,
    "garbage": _garbage,
}


def _policies_with(tmp: Path, kind: str, which: str) -> Path:
    """A copy of the example policies where one file is replaced by `kind`."""
    copy = tmp / "policies"
    shutil.copytree(POLICIES, copy)
    target = copy / which
    target.unlink()
    made = KINDS[kind](tmp)
    made.rename(target)
    return copy


def _rendered_config(tmp: Path, kind: str) -> Path:
    made = KINDS[kind](tmp, "agent.json") if kind != "directory" else _directory(tmp, "agent.json")
    return made


# (id, argv builder): argv gets the hostile path in place of the file it names.
CASES: list[tuple[str, Callable[[Path, str], list[str]]]] = [
    (
        "policy-validate-baseline",
        lambda t, k: ["policy", "validate", str(_policies_with(t, k, "baseline.yml"))],
    ),
    (
        "policy-validate-election",
        lambda t, k: [
            "policy",
            "validate",
            str(_policies_with(t, k, "elections/exempleville-2027.yml")),
        ],
    ),
    ("policy-show", lambda t, k: ["policy", "show", str(_policies_with(t, k, "baseline.yml"))]),
    (
        "policy-render",
        lambda t, k: [
            "policy",
            "render",
            "--policies",
            str(_policies_with(t, k, "baseline.yml")),
            "--out",
            str(t / "out"),
        ],
    ),
    (
        "retention-plan-config",
        lambda t, k: [
            "retention",
            "plan",
            "--config",
            str(_rendered_config(t, k)),
            "--state-dir",
            str(t / "state"),
        ],
    ),
    (
        "scan-config",
        lambda t, k: [
            "scan",
            "--s3",
            "--config",
            str(_rendered_config(t, k)),
            "--state-dir",
            str(t / "state"),
        ],
    ),
    (
        "alerts-test-config",
        lambda t, k: [
            "alerts",
            "test",
            "--config",
            str(_rendered_config(t, k)),
            "--state-dir",
            str(t / "state"),
        ],
    ),
    (
        "suppression-filter-input",
        lambda t, k: [
            "suppression",
            "filter",
            "--state-dir",
            str(_filter_state(t)),
            str(KINDS[k](t)),
            "-o",
            str(t / "out.csv"),
        ],
    ),
    (
        "certificate-verify",
        lambda t, k: ["certificate", "verify", "--public-key", _key(t), str(KINDS[k](t))],
    ),
    (
        "certificate-show",
        lambda t, k: ["certificate", "show", "--public-key", _key(t), str(KINDS[k](t))],
    ),
    (
        "certificate-public-key",
        lambda t, k: [
            "certificate",
            "verify",
            "--public-key",
            str(KINDS[k](t, "key.pem")),
            str(_certificate(t)),
        ],
    ),
    (
        "certificate-key-beside",
        lambda t, k: ["certificate", "verify", str(_certificate(t, beside=k))],
    ),
    (
        "preflight-backend-config",
        lambda t, k: [
            "preflight",
            "--target",
            "aws",
            "--policies",
            str(POLICIES),
            "--backend-config",
            str(KINDS[k](t, "backend.hcl")),
        ],
    ),
]


def _filter_state(tmp: Path) -> Path:
    """A state directory with its retention keys and a suppression list, so that
    `suppression filter` gets as far as reading its input."""
    state = tmp / "state"
    keys.init(_secrets(tmp))
    SuppressionList(suppression_db(state), keys.hmac_key(_secrets(tmp))).close()
    return state


def _secrets(tmp: Path) -> Path:
    path = tmp / "secrets"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _key(tmp: Path) -> str:
    """A real public key file, so that the certificate itself is read."""
    key = tmp / "pinned.pem"
    public = Ed25519PrivateKey.generate().public_key()
    key.write_bytes(keys.public_pem(public))
    return str(key)


def _certificate(tmp: Path, beside: str | None = None) -> Path:
    """A regular certificate file (its content is never reached), and
    optionally a hostile key file next to it."""
    cert = tmp / "certificate.json"
    cert.write_text("{}")
    if beside is not None:
        KINDS[beside](tmp, "retention-signing.pub.pem")
    return cert


def _run(argv: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ISOLOIR_", "AWS_")) or k in ("ISOLOIR_SANDBOX_CACHE",)
    }
    env.update(
        HOME=str(tmp),
        ISOLOIR_SECRETS_DIR=str(tmp / "secrets"),
        # never reach anything: no credentials, an unroutable endpoint on loopback
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S105 - fake
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    return subprocess.run(
        [sys.executable, "-m", "isoloir.cli", *argv],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_hostile_path_is_refused_quickly_and_clearly(case: str, kind: str, tmp_path: Path) -> None:
    build = dict(CASES)[case]
    argv = build(tmp_path, kind)
    try:
        proc = _run(argv, tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case} on a {kind} did not return within {DEADLINE} s (a hang)")
    expected = EXIT_NOT_VALID.get((case, kind), 2)
    assert proc.returncode == expected, (proc.returncode, proc.stdout[-800:], proc.stderr[-800:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    # The refusal names the file it refused.
    named = {argv_path.name for argv_path in _paths(argv)} & HOSTILE_NAMES
    assert named and any(name in proc.stderr for name in named), proc.stderr[-800:]


# A regular file that reads but is no certificate (empty, binary garbage) is a
# certificate that fails verification: exit 1, as docs/retention.md says.
EXIT_NOT_VALID = {
    (case, kind): 1
    for case in ("certificate-verify", "certificate-show")
    for kind in ("empty", "garbage")
}

HOSTILE_NAMES = {
    "input.fifo",
    "zero",
    "a-directory",
    "dangling",
    "empty",
    "garbage",
    "agent.json",
    "key.pem",
    "backend.hcl",
    "baseline.yml",
    "exempleville-2027.yml",
    "retention-signing.pub.pem",
}


def _paths(argv: list[str]) -> list[Path]:
    out = [Path(a) for a in argv if a.startswith("/")]
    for a in list(out):
        if a.is_dir() and a.name == "policies":
            out += [a / "baseline.yml", a / "elections" / "exempleville-2027.yml"]
    out += [a.parent / "retention-signing.pub.pem" for a in list(out) if a.suffix == ".json"]
    return out
