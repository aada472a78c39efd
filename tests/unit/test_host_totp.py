"""F13 / L10: the TOTP check reads where PAM looks, pending enrolments are
reported apart, and an enrolment window expires.

PAM reads /var/lib/isoloir-totp/<user> (root 0700). The users role and the
enrolment scripts write a root-owned status per person that the agents' group
may read; the agents never look in homes (0750, and a person could fake a
~/.google_authenticator there).
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _host_templates import render

from isoloir.exposure import inventory_identity
from isoloir.exposure.model import IdentityInventory, Inventory
from isoloir.exposure.registry import discover, run
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

REPO = Path(__file__).resolve().parents[2]
GROUP = "el-exempleville-2027"
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policies() -> Policies:
    return load_policies(REPO / "policies")


def _inventory(policies: Policies, tmp_path: Path, statuses: dict[str, str]) -> Inventory:
    homes = tmp_path / "home"
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    names = ["cfictive", "dmodele", "ptest", "bexemple", "sansstatut"]
    for uid, name in enumerate(names, start=1001):
        (homes / name).mkdir(parents=True)
        if name in statuses:
            (status_dir / name).write_text(statuses[name])
    # a person cannot silence the check from their home any more
    (homes / "dmodele" / ".google_authenticator").write_text("fake\n")
    (tmp_path / "passwd").write_text(
        "".join(f"{n}:x:{u}:{u}::{homes / n}:/bin/bash\n" for u, n in enumerate(names, 1001))
    )
    (tmp_path / "group").write_text(f"{GROUP}:x:3001:{','.join(names)}\n")
    ident = IdentityInventory(iam_fetched=True)
    ident.host_users = inventory_identity.read_host_users(
        {GROUP},
        group_file=tmp_path / "group",
        passwd_file=tmp_path / "passwd",
        totp_status_dir=status_dir,
    )
    return Inventory(policies=policies, now=NOW, identity=ident)


def _by_rule(inv: Inventory) -> dict[str, dict[str, dict[str, object]]]:
    checks = {k: v for k, v in discover().items() if k.startswith("host_user_")}
    out: dict[str, dict[str, dict[str, object]]] = {}
    for r in run(inv, scopes=("identity",), checks=checks):
        out.setdefault(r.check.id, {})[r.finding.resource] = {
            "severity": r.finding.severity.name,
            **r.finding.evidence,
        }
    return out


def _epoch(d: datetime) -> int:
    return int(d.timestamp())


def _pending(opened: datetime) -> str:
    return f"state=pending\nsince={_epoch(opened)}\nexpires={_epoch(opened) + 48 * 3600}\n"


def test_enrolled_pending_expired_none_and_unknown(policies: Policies, tmp_path: Path) -> None:
    opened = NOW - timedelta(hours=3)
    stale = NOW - timedelta(hours=60)
    inv = _inventory(
        policies,
        tmp_path,
        {
            "cfictive": "state=enrolled\n",
            "dmodele": "state=none\n",
            "ptest": _pending(opened),
            "bexemple": _pending(stale),
        },
    )
    found = _by_rule(inv)
    no_totp = found["host_user_no_totp"]
    # enrolled (where PAM looks): no finding; a faked ~/.google_authenticator does not count
    assert "host-user:cfictive" not in no_totp
    assert no_totp["host-user:dmodele"]["totp_state"] == "none"
    assert no_totp["host-user:bexemple"]["totp_state"] == "expired"
    assert no_totp["host-user:sansstatut"]["totp_state"] == "unknown"
    assert {v["severity"] for v in no_totp.values()} == {"HIGH"}
    # the open window: a separate, lower-severity finding, and not "no TOTP"
    assert "host-user:ptest" not in no_totp
    pending = found["host_user_totp_pending"]
    assert list(pending) == ["host-user:ptest"]
    assert pending["host-user:ptest"]["severity"] == "MEDIUM"
    assert pending["host-user:ptest"]["expires"] == (opened + timedelta(hours=48)).isoformat()


@pytest.mark.parametrize(
    "text",
    ["", "state=maybe\n", "state=pending\n", "state=pending\nsince=x\nexpires=1\n", "garbage"],
)
def test_a_malformed_status_is_unknown(text: str) -> None:
    assert inventory_identity.parse_totp_status(text).state == "unknown"


def test_status_is_not_followed_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("state=enrolled\n")
    (tmp_path / "cfictive").symlink_to(tmp_path / "real")
    assert inventory_identity.read_totp_status(tmp_path, "cfictive").state == "unknown"
    assert inventory_identity.read_totp_status(tmp_path, "../real").state == "unknown"


# -- the scripts the users role installs (rendered, run on a scratch directory) -------


def _script(tmp_path: Path, name: str) -> Path:
    text = render(
        "users",
        f"usr/local/sbin/{name}.j2",
        users_totp_dir=str(tmp_path / "totp"),
        users_totp_status_dir=str(tmp_path / "status"),
        users_totp_status_group=_group(),
        users_totp_tools_dir=str(tmp_path / "sbin"),
    )
    path = tmp_path / "sbin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _group() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "totp").mkdir()
    (tmp_path / "status").mkdir()
    return tmp_path / "totp", tmp_path / "status"


def test_status_script_records_pending_with_its_window_then_enrolled(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the script chowns to root, as on a host")
    totp, status = _dirs(tmp_path)
    script = _script(tmp_path, "isoloir-totp-status")
    assert (
        subprocess.run([script, "cfictive"], capture_output=True, text=True).stdout == "changed\n"
    )
    assert (status / "cfictive").read_text() == "state=none\n"
    (totp / "cfictive").write_text("SECRET\n")
    opened = int(time.time()) - 60
    (totp / "cfictive.pending").write_text(f"{opened}\n")
    run = subprocess.run([script, "cfictive"], capture_output=True, text=True, check=True)
    assert run.stdout == "changed\n"
    parsed = inventory_identity.read_totp_status(status, "cfictive")
    assert parsed.state == "pending" and parsed.since is not None and parsed.expires is not None
    assert parsed.expires - parsed.since == timedelta(hours=48)
    st = (status / "cfictive").stat()
    assert oct(st.st_mode & 0o777) == "0o640" and st.st_uid == 0
    # idempotent: nothing changes, nothing printed (the role's changed_when)
    assert subprocess.run([script, "cfictive"], capture_output=True, text=True).stdout == ""
    (totp / "cfictive.pending").unlink()
    subprocess.run([script, "cfictive"], check=True, capture_output=True)
    assert (status / "cfictive").read_text() == "state=enrolled\n"
    assert subprocess.run([script, "../x"], capture_output=True).returncode == 2


def test_enrolment_refuses_after_the_window(tmp_path: Path) -> None:
    totp, _ = _dirs(tmp_path)
    script = _script(tmp_path, "isoloir-totp-enrol")
    (totp / "cfictive").write_text("JBSWY3DPEHPK3PXP\n")
    (totp / "cfictive.pending").write_text(f"{int(time.time()) - 49 * 3600}\n")
    run = subprocess.run(
        [script], capture_output=True, text=True, env={**os.environ, "SUDO_USER": "cfictive"}
    )
    assert run.returncode == 1 and "window for cfictive has closed" in run.stderr
    assert "JBSWY3DPEHPK3PXP" not in run.stdout + run.stderr
    assert (totp / "cfictive.pending").exists()  # still pending: the agents keep alerting


def test_enrolment_window_of_an_old_empty_marker_counts_from_its_mtime(tmp_path: Path) -> None:
    totp, _ = _dirs(tmp_path)
    script = _script(tmp_path, "isoloir-totp-enrol")
    (totp / "cfictive").write_text("JBSWY3DPEHPK3PXP\n")
    marker = totp / "cfictive.pending"
    marker.write_text("")  # made by the previous isoloir-totp-new
    old = time.time() - 72 * 3600
    os.utime(marker, (old, old))
    run = subprocess.run(
        [script], capture_output=True, text=True, env={**os.environ, "SUDO_USER": "cfictive"}
    )
    assert run.returncode == 1 and "has closed" in run.stderr
