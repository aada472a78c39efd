"""Which elections this file-share host serves (N4: one host per region).

Every host receives the whole rendered config (agent.json), so that a bucket of
another region's election is still known as declared. The deploy also writes
`/etc/isoloir/host.json` (`{"elections": ["id", ...]}`, the Ansible variable
`isoloir_host_elections`): the elections of the host's region, and whether
this host is the one that audits the account (`"account_audit"`). The agents keep
only those in `Policies.elections` (shares, purges, certificates, the scan of
their buckets) and move the others to `Policies.elsewhere`, whose buckets the
scan skips. No file (the local target, a developer's machine): every election.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from isoloir.policy.loader import PolicyError, Problem
from isoloir.policy.model import Policies

DEFAULT_HOST_FILE = Path("/etc/isoloir/host.json")
HOST_FILE_ENV = "ISOLOIR_HOST_FILE"
MAX_HOST_FILE_BYTES = 1 << 20


def host_file() -> Path:
    return Path(os.environ.get(HOST_FILE_ENV) or DEFAULT_HOST_FILE)


def _read(p: Path) -> dict[str, object] | None:
    """host.json as a mapping; None when there is no such file. A file that
    exists but cannot be read or is malformed is an error, never "all"."""
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_HOST_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PolicyError([Problem(str(p), 0, "", exc.strerror or str(exc))]) from None
    if len(raw) > MAX_HOST_FILE_BYTES:
        raise PolicyError([Problem(str(p), 0, "", "larger than 1 MiB")])
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PolicyError([Problem(str(p), 0, "", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise PolicyError([Problem(str(p), 0, "", "must be a JSON object")])
    return data


def served_elections(path: Path | None = None) -> frozenset[str] | None:
    """The election ids of `path` (default: $ISOLOIR_HOST_FILE or
    /etc/isoloir/host.json); None when there is no such file."""
    p = path or host_file()
    data = _read(p)
    if data is None:
        return None
    ids = data.get("elections")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise PolicyError([Problem(str(p), 0, "elections", "must be a list of election ids")])
    return frozenset(ids)


def audits_account(path: Path | None = None) -> bool:
    """Whether this host audits the account-wide resources (`account_audit`,
    true on exactly one host of the inventory; absent: true, as before)."""
    p = path or host_file()
    data = _read(p)
    if data is None:
        return True
    flag = data.get("account_audit", True)
    if not isinstance(flag, bool):
        raise PolicyError([Problem(str(p), 0, "account_audit", "must be true or false")])
    return flag


def for_this_host(policies: Policies, path: Path | None = None) -> Policies:
    """`policies` restricted to the elections this host serves, and whether it
    audits the account."""
    served = policies.served_by(served_elections(path))
    if served is policies:  # no host file: every election, and the account
        return policies
    return replace(served, audits_account=audits_account(path))
