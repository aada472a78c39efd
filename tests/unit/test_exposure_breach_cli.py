"""A world-readable contacts CSV on a share is ranked critical as a likely breach,
through the CLI and the daemon's job, run the way the agents run: as an
unprivileged account that does not own the file (the regression: the sampler
opened files with O_NOATIME, which the kernel refuses to a non-owner, so the
file went unsampled and the finding stayed HIGH).

As root, the CLI runs under `setpriv` as uid/gid 65534 with the share's group
65534 and the file owned by root, like the `isoloir` user in the election
groups reading another person's file; as a plain user it runs as that user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isoloir.controller import fakedata

ROOT = Path(__file__).resolve().parents[2]
AGENT_ID = 65534  # uid and gid the scan runs as when the tests run as root
AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class World:
    base: Path
    shares: Path
    leak: Path
    values: tuple[str, ...]  # emails and phones of the file: must never be printed


def _own(path: Path, uid: int, gid: int) -> None:
    if AS_ROOT:
        os.chown(path, uid, gid)


@pytest.fixture()
def world() -> Iterator[World]:
    # not under pytest's tmp dir: that one is 0700, closed to the unprivileged scan
    base = Path(tempfile.mkdtemp(prefix="isoloir-breach-"))
    try:
        os.chmod(base, 0o755)
        shares = base / "shares"
        prospects = shares / "exempleville-2027" / "prospects"
        prospects.mkdir(parents=True)
        for d in (shares, shares / "exempleville-2027", prospects):
            os.chmod(d, 0o755 if d == shares else 0o2770)
            _own(d, 0, AGENT_ID)
        rows = fakedata.contacts(60)
        leak = prospects / "export-contacts.csv"
        leak.write_text(fakedata.csv_text(rows), encoding="utf-8")
        os.chmod(leak, 0o644)
        _own(leak, 0, AGENT_ID)
        (base / "smb.conf").write_text(
            "[global]\n  map to guest = Never\n  server min protocol = SMB3\n"
            "  server smb encrypt = required\n"
        )
        (base / "stray").mkdir()
        state = base / "state"
        state.mkdir()
        _own(state, AGENT_ID, AGENT_ID)
        text = leak.read_text(encoding="utf-8")
        values = tuple(v for line in text.splitlines()[1:] for v in line.split(";")[2:4] if v)
        assert len(values) == 120
        yield World(base, shares, leak, values)
    finally:
        shutil.rmtree(base)


def _as_agent(argv: list[str]) -> list[str]:
    if not AS_ROOT:
        return argv
    return [
        "setpriv", f"--reuid={AGENT_ID}", f"--regid={AGENT_ID}", "--clear-groups", "--", *argv
    ]  # fmt: skip


def _cli(world: World, *extra: str) -> tuple[int, str]:
    argv = [
        sys.executable, "-m", "isoloir.cli", "scan", "--shares",
        "--config", str(ROOT / "policies"), "--share-root", str(world.shares),
        "--smb-conf", str(world.base / "smb.conf"), "--stray-path", str(world.base / "stray"),
        "--state-dir", str(world.base / "state"), "--format", "json", "--fail-on", "critical",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "agents")}
    proc = subprocess.run(
        _as_agent(argv), capture_output=True, text=True, env=env, cwd=world.base, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout


def _leak_row(world: World, out: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    found = [r for r in rows if r.get("resource") == str(world.leak) and r.get("type") != "action"]
    assert len(found) == 1, [r.get("resource") for r in rows]
    return found[0]


def _assert_breach(world: World, row: dict[str, Any], out: str) -> None:
    assert row["rule_id"] == "share_world_accessible"
    assert row["severity"] == "critical"
    evidence = row["evidence"]
    assert isinstance(evidence, dict)
    assert evidence["mode"] == "0o644"
    assert evidence["personal_data_breach_likely"] is True
    counts = evidence["pii_counts"]
    assert set(counts) >= {"phone", "email"} and all(
        isinstance(n, int) and n > 0 for n in counts.values()
    )
    assert evidence["pii_records_sampled"] > 0
    assert evidence["pii_estimated_records"] >= evidence["pii_records_sampled"]
    draft = evidence["breach_register_draft"]
    assert "phone numbers" in draft["data_categories"]
    assert "email addresses" in draft["data_categories"]
    assert draft["notify_authority_within_hours"] == 72
    assert "72 hours" in str(row["message"])
    # counts and kinds only: no value of the file anywhere in the output
    assert not [v for v in world.values if v in out]
    assert "@" not in out


def test_scan_ranks_world_readable_contacts_critical(world: World) -> None:
    code, out = _cli(world)
    assert code == 1
    _assert_breach(world, _leak_row(world, out), out)


def test_dry_run_keeps_the_breach_evidence(world: World) -> None:
    code, out = _cli(world, "--dry-run")
    assert code == 1
    row = _leak_row(world, out)
    _assert_breach(world, row, out)
    evidence = row["evidence"]
    assert isinstance(evidence, dict)
    assert evidence["action"] == "chmod o-rwx" and evidence["remediation"] == "planned"
    assert world.leak.stat().st_mode & 0o777 == 0o644


def test_fix_keeps_the_breach_evidence(world: World) -> None:
    # As the unprivileged agent the chmod of root's file is refused; the finding
    # stays a critical breach (and, as root, it is fixed but still reported).
    code, out = _cli(world, "--fix")
    row = _leak_row(world, out)
    _assert_breach(world, row, out)
    evidence = row["evidence"]
    assert isinstance(evidence, dict) and evidence["action"] == "chmod o-rwx"
    if AS_ROOT:
        assert evidence["remediation"] == "failed" and code == 1
        assert world.leak.stat().st_mode & 0o777 == 0o644
    else:
        assert evidence["remediation"] == "applied" and code == 0
        assert world.leak.stat().st_mode & 0o777 == 0o640


_JOB = """
import dataclasses, json, sys
from pathlib import Path
from typing import Any
from isoloir import clock
from isoloir.exposure import inventory_shares
from isoloir.exposure.jobs import scan_job
from isoloir.jobs import JobContext
from isoloir.policy import load_policies

policies = inventory_shares.rebase(load_policies(Path(sys.argv[1])), sys.argv[2])
hosts = dataclasses.replace(policies.baseline.hosts, stray_data_paths=(sys.argv[5],))
policies = dataclasses.replace(
    policies, baseline=dataclasses.replace(policies.baseline, hosts=hosts)
)
ctx = JobContext(policies, Path(sys.argv[3]), clock.now(), dry_run=sys.argv[4] == "dry")
for f in scan_job(ctx):
    if f.resource.startswith(sys.argv[2]):
        print(f.to_json())
"""


@pytest.mark.parametrize("mode", ["dry", "fix"])
def test_scan_job_ranks_it_critical(world: World, mode: str) -> None:
    argv = [
        sys.executable, "-c", _JOB, str(ROOT / "policies"), str(world.shares),
        str(world.base / "state"), mode, str(world.base / "stray"),
    ]  # fmt: skip
    # the job scans S3 too: point it at a closed local port so that scope fails fast
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "agents"),
        "ISOLOIR_AWS_ENDPOINT": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = subprocess.run(
        _as_agent(argv), capture_output=True, text=True, env=env, cwd=world.base, check=False
    )
    assert proc.returncode == 0, proc.stderr
    row = _leak_row(world, proc.stdout)
    _assert_breach(world, row, proc.stdout)
