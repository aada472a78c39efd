"""`isoloir run` as a real process: SIGTERM lets the current job finish, then a clean exit."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from isoloir.alerts.lockfile import is_locked
from isoloir.alerts.spool import Spool, spool_path
from isoloir.daemon import heartbeat_path, lock_path, runs_path
from isoloir.policy import load_policies
from isoloir.policy.model import EmailChannel, Route
from isoloir.policy.render import AGENT_CONFIG, write

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0  # a deadline for the subprocess, not a measurement

FAKE_JOBS = """
import os, time
from pathlib import Path
from isoloir.findings import Finding, Severity

def scan(ctx):
    Path(os.environ["FAKE_STARTED"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
    Path(os.environ["FAKE_DONE"]).write_text("done")
    return [Finding(rule_id="share-world-readable", severity=Severity.LOW,
                    resource="/srv/elections/exempleville-2027/prospects",
                    message="The prospects folder is readable by every local user.",
                    election="exempleville-2027")]

def nothing(ctx):
    return []
"""


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclasses.dataclass
class Setup:
    cmd: list[str]
    env: dict[str, str]
    state: Path
    started: Path
    done: Path


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    p = load_policies(REPO / "policies")
    # Email to a closed loopback port: nothing routable is produced anyway (LOW < medium).
    alerts = dataclasses.replace(
        p.baseline.alerts,
        email=EmailChannel(
            "127.0.0.1",
            9,
            "starttls",
            "isoloir@mouvement-exemple.example",
            str(tmp_path / "smtp.json"),
        ),
        webhooks=(),
        routes=(Route(("cfictive",), ("email",), "medium", ("*",)),),
    )
    p = dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, alerts=alerts))
    write(p, tmp_path / "rendered")
    jobs_dir = tmp_path / "fakejobs"
    jobs_dir.mkdir()
    (jobs_dir / "fake_jobs_daemon.py").write_text(FAKE_JOBS)
    env = dict(os.environ)
    env.pop("ISOLOIR_NOW", None)
    env.update(
        PYTHONPATH=os.pathsep.join([str(jobs_dir), str(REPO / "agents")]),
        FAKE_STARTED=str(tmp_path / "started"),
        FAKE_DONE=str(tmp_path / "done"),
        ISOLOIR_JOBS_OVERRIDE=json.dumps(
            {
                "scan": "fake_jobs_daemon:scan",
                "identity": "fake_jobs_daemon:nothing",
                "retention": "fake_jobs_daemon:nothing",
            }
        ),
    )
    state = tmp_path / "state"
    cmd = [
        sys.executable,
        "-m",
        "isoloir.cli",
        "run",
        "--config",
        str(tmp_path / "rendered" / AGENT_CONFIG),
        "--state-dir",
        str(state),
    ]
    return Setup(cmd, env, state, tmp_path / "started", tmp_path / "done")


def heartbeat(state: Path) -> dict[str, object]:
    try:
        data = json.loads(heartbeat_path(state).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def events(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def test_sigterm_during_a_job_lets_it_finish(setup: Setup) -> None:
    proc = subprocess.Popen(
        setup.cmd, env={**setup.env, "FAKE_SECONDS": "3"}, stdout=subprocess.PIPE
    )
    try:
        wait_for(setup.started.exists, "the initial scan to start")
        assert not setup.done.exists()
        proc.send_signal(signal.SIGTERM)  # the daemon only, as `kill PID` would
        out, _ = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    # The job ran to its end and its result was recorded before the exit.
    assert setup.done.exists()
    runs = json.loads(runs_path(setup.state).read_text())
    assert runs["scan"]["ok"] is True and runs["scan"]["findings"] == 1
    assert heartbeat(setup.state)["state"] == "stopped"
    assert not is_locked(lock_path(setup.state, "scan"))
    spool = Spool(spool_path(setup.state))
    try:
        assert spool.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert len(spool.open_findings("scan")) == 1
    finally:
        spool.close()
    # Every stdout line is a JSON log entry, from the daemon and from its job child.
    entries = events(out)
    names = [e["event"] for e in entries]
    assert (
        names.index("stop requested") < names.index("job finished") < names.index("daemon stopped")
    )
    assert {e["pid"] for e in entries} >= {proc.pid}
    assert all("ts" in e and "level" in e for e in entries)


def test_sigterm_while_idle_and_status(setup: Setup) -> None:
    proc = subprocess.Popen(setup.cmd, env=setup.env, stdout=subprocess.PIPE)
    try:
        wait_for(
            lambda: (
                heartbeat(setup.state).get("state") == "idle" and runs_path(setup.state).exists()
            ),
            "the daemon to go idle",
        )
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "isoloir.cli",
                "status",
                "--json",
                "--state-dir",
                str(setup.state),
            ],
            env=setup.env,
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(status.stdout)
        assert data["heartbeat"]["pid"] == proc.pid and data["heartbeat"]["state"] == "idle"
        assert data["heartbeat"]["age_seconds"] < 120
        assert set(data["heartbeat"]["next_runs"]) >= {"scan", "identity", "retention", "flush"}
        assert data["jobs"]["scan"]["last"]["ok"] is True
        assert data["clock_overridden"] is False
        assert data["spool"]["pending"] == 0 and data["spool"]["open_findings"] == 1
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert heartbeat(setup.state)["state"] == "stopped"
    assert [e["event"] for e in events(out)][-1] == "daemon stopped"
    text = subprocess.run(
        [
            sys.executable,
            *("-m", "isoloir.cli", "status", "--lang", "en", "--state-dir", str(setup.state)),
        ],
        env={**setup.env, "ISOLOIR_NOW": "2027-06-01T09:00:00+00:00"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "daemon: stopped" in text and "job scan: ok" in text
    assert "CLOCK OVERRIDDEN" in text


def test_run_once_for_cron(setup: Setup) -> None:
    once = subprocess.run(
        [*setup.cmd, "--once", "--job", "scan"], env=setup.env, capture_output=True, check=False
    )
    assert once.returncode == 0
    assert setup.done.exists() and not heartbeat_path(setup.state).exists()
    runs = json.loads(runs_path(setup.state).read_text())
    assert set(runs) == {"scan"} and runs["scan"]["ok"] is True
    every = subprocess.run([*setup.cmd, "--once"], env=setup.env, capture_output=True, check=False)
    assert every.returncode == 0
    assert set(json.loads(runs_path(setup.state).read_text())) == {
        "scan",
        "identity",
        "retention",
        "rights",
        "sms-stop",
    }
