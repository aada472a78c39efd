"""`isoloir evidence`: what a CNIL inspector asks for, gathered in one folder.

A CNIL inspection ("contrôle sur place" or on documents) asks the controller
for the register of processing (art. 30), the proof that data was destroyed
when due, the security measures and their checks, the breach register
(art. 33(5)) and how rights requests were answered. The kit holds each of
these somewhere; the bundle copies them, as they are, into a new folder:

- `register.fr.txt`, `register.json`: the art. 30 register from the policies;
- `certificates/`: every signed deletion certificate of the retention agent,
  with its public key, and `certificates.json`: each one's SHA-256 and whether
  its signature verifies (against the key beside it: compare its fingerprint
  with the one the DPO pinned);
- `erasures/`: every signed erasure record of a rights request;
- `requests.json`: the rights-request log (ids, rights, dates; no identity);
- `breaches.json`: the breach register, each breach with the CNIL
  notification form's fields and the decision recorded;
- `mailguard.json`: the mail guard's decisions (counts per action and rule,
  over the whole log and the last 30 days), held messages still open, and
  the mail opt-outs recorded (counts only);
- `audit/`: the outside auditors' report (`isoloir audit --out DIR`), when
  given;
- `MANIFEST.json`: every file with its size and SHA-256, what was not found,
  and when the bundle was made.

The folder is 0700 and every file 0600: certificates and records name
places, the requests log dates. Nothing here is sent anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from isoloir.dpo import art30, breaches, erase, requests
from isoloir.mailguard import decisions, unsubscribe
from isoloir.policy.model import Policies
from isoloir.retention import certificate, purge

RECENT = timedelta(days=30)
MAX_AUDIT_FILES = 200
AUDIT_SUFFIXES = (".json", ".md", ".dat", ".txt", ".log")


class EvidenceError(ValueError):
    """The bundle cannot be made (the folder exists, the audit report is not a folder)."""


@dataclass
class Bundle:
    root: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        self.files.append(
            {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
        return path

    def json(self, name: str, doc: Any) -> Path:
        return self.write(name, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())

    def copy(self, source: Path, name: str) -> Path:
        return self.write(name, _read_regular(source))


def _read_regular(path: Path) -> bytes:
    """A regular file's bytes; a symbolic link or anything else is refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise EvidenceError(f"{path}: not a regular file")
        return handle.read()


def _regular_files(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and (suffixes is None or p.suffix in suffixes)
    )


def _certificates(bundle: Bundle, state_dir: Path) -> int:
    folder = purge.certificates_dir(state_dir)
    index = []
    for path in _regular_files(folder):
        bundle.copy(path, f"certificates/{path.name}")
        if path.name == certificate.PUBLIC_KEY_FILE:
            continue
        check = certificate.verify_file(path)
        index.append(
            {
                "file": f"certificates/{path.name}",
                "sha256": bundle.files[-1]["sha256"],
                "signature_verifies": check.ok,
                "problems": [str(r) for r in check.reasons],
            }
        )
    if not index:
        bundle.missing.append(f"deletion certificates: none in {folder}")
    bundle.json("certificates.json", index)
    return len(index)


def _erasures(bundle: Bundle, state_dir: Path) -> int:
    found = _regular_files(erase.records_dir(state_dir), (".json",))
    for path in found:
        bundle.copy(path, f"erasures/{path.name}")
    if not found:
        bundle.missing.append("erasure records: no erasure was run")
    return len(found)


def _requests(bundle: Bundle, state_dir: Path) -> int:
    items = requests.RequestLog(state_dir).all()
    bundle.json("requests.json", [asdict(item) for item in items])
    return len(items)


def _breaches(bundle: Bundle, policies: Policies, state_dir: Path) -> int:
    org = policies.baseline.organisation
    controller = f"{org.controller_name}, {org.controller_address}"
    try:
        entries = breaches.sync(state_dir)  # what `isoloir breach list` shows
    except OSError:  # a read-only state: the register as it is
        entries = breaches.all_entries(state_dir)
    doc = [
        {
            "id": b.id,
            "resource": b.resource,
            "decision": b.decision,
            "form": breaches.form(b, controller, org.dpo_contact, "fr"),
        }
        for b in entries
    ]
    bundle.json("breaches.json", doc)
    return len(entries)


def _mailguard(bundle: Bundle, state_dir: Path, now: datetime) -> int:
    whole = decisions.summary(state_dir, datetime(1970, 1, 1, tzinfo=UTC))
    recent = decisions.summary(state_dir, now - RECENT)
    try:
        holds = len(decisions.open_holds(state_dir))
    except OSError:
        holds = 0
    optouts = unsubscribe.MailOptOuts.for_reading(unsubscribe.optouts_path(state_dir))
    if optouts is None:
        recorded, authenticated = 0, 0
    else:
        with optouts:
            recorded, authenticated = optouts.count()
    bundle.json(
        "mailguard.json",
        {
            "decisions_whole_log": whole,
            f"decisions_last_{RECENT.days}_days": recent,
            "held_messages_open": holds,
            "mail_optouts": {"recorded": recorded, "authenticated": authenticated},
        },
    )
    if not whole["messages"]:
        bundle.missing.append("mail guard decisions: the log is empty or absent")
    return int(whole["messages"])


def _audit(bundle: Bundle, audit_dir: Path | None) -> int:
    if audit_dir is None:
        bundle.missing.append("audit report: not given (isoloir audit --out DIR, then --audit DIR)")
        return 0
    if not audit_dir.is_dir():
        raise EvidenceError(f"{audit_dir}: the audit report folder does not exist")
    found = _regular_files(audit_dir, AUDIT_SUFFIXES)[:MAX_AUDIT_FILES]
    for path in found:
        bundle.copy(path, f"audit/{path.name}")
    if not found:
        bundle.missing.append(f"audit report: no report file in {audit_dir}")
    return len(found)


def build(
    policies: Policies,
    state_dir: Path,
    out: Path,
    *,
    now: datetime,
    audit_dir: Path | None = None,
) -> dict[str, Any]:
    """Make the bundle in `out` (a new folder); returns its manifest."""
    try:
        out.mkdir(mode=0o700)
    except FileExistsError:
        raise EvidenceError(f"{out} exists: the bundle goes into a new folder") from None
    bundle = Bundle(out)
    bundle.write("register.fr.txt", art30.render(art30.build(policies, "fr"), "fr").encode())
    bundle.json("register.json", art30.build(policies, "fr"))
    counts = {
        "certificates": _certificates(bundle, state_dir),
        "erasures": _erasures(bundle, state_dir),
        "requests": _requests(bundle, state_dir),
        "breaches": _breaches(bundle, policies, state_dir),
        "mail_decisions": _mailguard(bundle, state_dir, now),
        "audit_files": _audit(bundle, audit_dir),
    }
    manifest = {
        "made_at": now.astimezone(UTC).isoformat(),
        "controller": policies.baseline.organisation.controller_name,
        "dpo": policies.baseline.organisation.dpo_contact,
        "counts": counts,
        "not_found": bundle.missing,
        "files": list(bundle.files),
    }
    bundle.json("MANIFEST.json", manifest)
    return manifest


def remove_partial(out: Path) -> None:
    """A bundle that failed halfway is removed (never left looking complete)."""
    shutil.rmtree(out, ignore_errors=True)
