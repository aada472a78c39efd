"""The daemon's timetable under a controllable clock (no real waiting), and run-once jobs."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from isoloir import jobs
from isoloir.alerts.lockfile import FileLock, is_locked
from isoloir.alerts.spool import Spool, spool_path
from isoloir.daemon import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    Daemon,
    _at_with_jitter,
    build_scheduler,
    lock_path,
    run_job_once,
    runs_path,
    schedule_clock,
    status_data,
    status_text,
)
from isoloir.findings import Finding, Severity
from isoloir.policy import load_policies
from isoloir.policy.model import Schedules

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def simulate(
    schedules: Schedules, days: int, step: timedelta = timedelta(seconds=10)
) -> tuple[list[tuple[str, datetime]], list[datetime], FakeClock]:
    clock = FakeClock(datetime(2026, 11, 23, 0, 0, 0))
    started: list[tuple[str, datetime]] = []
    flushes: list[datetime] = []
    with schedule_clock(clock):
        s = build_scheduler(
            schedules,
            lambda name: started.append((name, clock.now)),
            rng=random.Random(7),
            digest_time="08:00",
            on_digest=lambda: started.append(("digest", clock.now)),
            on_flush=lambda: flushes.append(clock.now),
        )
        idle = s.idle_seconds
        assert idle is not None and 0 < idle <= 60  # the first thing due is a flush
        end = clock.now + timedelta(days=days)
        while clock.now < end:
            clock.now += step
            s.run_pending()
    return started, flushes, clock


def test_timetable_over_two_days() -> None:
    schedules = Schedules(
        scan_interval_minutes=15, identity_time="03:00", retention_time="04:00", jitter_seconds=60
    )
    started, flushes, _ = simulate(schedules, days=2)
    by_job: dict[str, list[datetime]] = {}
    for name, when in started:
        by_job.setdefault(name, []).append(when)
    # Daily jobs: once a day, within [time, time + jitter], at the same offset each day.
    for name, hour in (("identity", 3), ("retention", 4)):
        runs = by_job[name]
        assert len(runs) == 2, name
        for when in runs:
            assert when.hour == hour and when.minute <= 1, when
        assert runs[1] - runs[0] == timedelta(days=1)
    assert [w.hour for w in by_job["digest"]] == [8, 8]
    # Scans: every 15 minutes plus up to 60 s of jitter (and the 10 s step).
    scans = by_job["scan"]
    gaps = [(b - a).total_seconds() for a, b in zip(scans, scans[1:], strict=False)]
    assert all(900 <= g <= 970 for g in gaps), (min(gaps), max(gaps))
    assert len(set(gaps)) > 1  # the jitter really varies
    assert 2 * 86400 / 970 - 1 <= len(scans) <= 2 * 86400 / 900
    assert len(flushes) == pytest.approx(2 * 86400 / 60, abs=2)


def test_no_jitter_means_exact_times() -> None:
    schedules = Schedules(
        scan_interval_minutes=5, identity_time="23:30", retention_time="00:15", jitter_seconds=0
    )
    started, _, _ = simulate(schedules, days=1, step=timedelta(seconds=1))
    ident = [w for n, w in started if n == "identity"]
    assert [w.strftime("%H:%M:%S") for w in ident] == ["23:30:00"]
    scans = [w for n, w in started if n == "scan"]
    assert {(b - a).total_seconds() for a, b in zip(scans, scans[1:], strict=False)} == {300.0}


def test_jittered_time_wraps_midnight() -> None:
    rng = random.Random(3)
    values = {_at_with_jitter("23:59", 120, rng) for _ in range(200)}
    assert any(v.startswith("00:") for v in values) and any(v.startswith("23:59") for v in values)
    assert _at_with_jitter("04:00", 0, rng) == "04:00:00"


# -- run-once jobs -------------------------------------------------------------------

CALLS: list[str] = []
RESULT: list[Finding] = []


def fake_job(ctx: jobs.JobContext) -> list[Finding]:
    CALLS.append("scan")
    return list(RESULT)


def broken_job(ctx: jobs.JobContext) -> list[Finding]:
    CALLS.append("broken")
    raise RuntimeError("agent crashed")


@pytest.fixture
def fake_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    CALLS.clear()
    RESULT.clear()
    monkeypatch.setitem(jobs.JOBS, "scan", f"{__name__}:fake_job")
    monkeypatch.setitem(jobs.JOBS, "retention", f"{__name__}:broken_job")


def _finding() -> Finding:
    return Finding(
        rule_id="share-world-readable",
        severity=Severity.HIGH,
        resource="/srv/elections/exempleville-2027/prospects",
        message="The share folder prospects is readable by every local user.",
        election="exempleville-2027",
    )


def test_run_once_records_and_locks(fake_jobs: None, tmp_path: Path) -> None:
    p = load_policies(EXAMPLE)
    RESULT.append(_finding())
    assert run_job_once("scan", p, tmp_path, flush=False) == EXIT_OK
    runs = json.loads(runs_path(tmp_path).read_text())
    assert runs["scan"]["ok"] is True and runs["scan"]["findings"] == 1
    assert not is_locked(lock_path(tmp_path, "scan"))
    # Someone else holds the job's lock: the run is skipped, the job not called.
    with FileLock(lock_path(tmp_path, "scan")):
        assert is_locked(lock_path(tmp_path, "scan"))
        assert run_job_once("scan", p, tmp_path, flush=False) == EXIT_OK
    assert CALLS == ["scan"]


def test_failed_job_resolves_nothing(fake_jobs: None, tmp_path: Path) -> None:
    p = load_policies(EXAMPLE)
    RESULT.append(_finding())
    monkey_jobs = dict(jobs.JOBS)
    assert run_job_once("scan", p, tmp_path, flush=False) == EXIT_OK
    # The same job name now crashes: its previous finding must stay open.
    jobs.JOBS["scan"] = monkey_jobs["retention"]
    assert run_job_once("scan", p, tmp_path, flush=False) == EXIT_JOB_FAILED
    runs = json.loads(runs_path(tmp_path).read_text())
    assert runs["scan"] == runs["scan"] | {"ok": False, "error": "RuntimeError"}
    spool = Spool(spool_path(tmp_path))
    assert len(spool.open_findings("scan")) == 1
    spool.close()


def test_status_reports_runs_spool_and_clock(
    fake_jobs: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = load_policies(EXAMPLE)
    RESULT.append(_finding())
    run_job_once("scan", p, tmp_path, flush=False)
    run_job_once("retention", p, tmp_path, flush=False)
    monkeypatch.setenv("ISOLOIR_NOW", "2027-06-01T09:00:00+00:00")
    data = status_data(tmp_path)
    assert data["clock_overridden"] is True and data["heartbeat"] is None
    assert data["jobs"]["scan"]["last"]["ok"] is True
    assert data["jobs"]["retention"]["last"]["error"] == "RuntimeError"
    assert data["jobs"]["identity"]["last"] is None
    assert data["spool"]["pending"] == 3 and data["spool"]["open_findings"] == 1
    text = status_text(data, "en")
    assert "CLOCK OVERRIDDEN" in text and "job retention: FAILED" in text
    assert "HORLOGE FORCÉE" in status_text(data) and "tâche retention : ÉCHEC" in status_text(data)
    assert "3 pending" in text  # two emails and the webhook


def test_stopping_daemon_starts_no_job(tmp_path: Path) -> None:
    d = Daemon(None, tmp_path, command=["false"])
    d.stop.set()
    d.start_job("scan")
    assert d.last_exit == {}
    d.stop = threading.Event()
    d.start_job("scan")
    assert d.last_exit == {"scan": 1}


def test_hung_job_is_stopped(tmp_path: Path) -> None:
    import signal
    import sys

    d = Daemon(
        None,
        tmp_path,
        command=[sys.executable, "-c", "import time; time.sleep(120)"],
        job_timeout=0.5,
    )
    d.start_job("scan")
    assert d.last_exit == {"scan": -signal.SIGTERM}


# -- faults (issue 13) -----------------------------------------------------------------


def incomplete_job(ctx: jobs.JobContext) -> list[Finding]:
    from isoloir.findings import Unread

    CALLS.append("incomplete")
    return jobs.JobResult(
        [], unread=Unread(rules=frozenset({"share-world-readable"})), failure="could not read s3"
    )


def test_incomplete_job_fails_visibly_and_resolves_nothing_it_did_not_read(
    fake_jobs: None, tmp_path: Path
) -> None:
    p = load_policies(EXAMPLE)
    RESULT.append(_finding())
    assert run_job_once("scan", p, tmp_path, flush=False) == EXIT_OK
    jobs.JOBS["scan"] = f"{__name__}:incomplete_job"
    assert run_job_once("scan", p, tmp_path, flush=False) == EXIT_JOB_FAILED
    runs = json.loads(runs_path(tmp_path).read_text())
    assert runs["scan"]["ok"] is False and runs["scan"]["resolved"] == 0
    spool = Spool(spool_path(tmp_path))
    try:
        assert len(spool.open_findings("scan")) == 1
        kinds = [r[0] for r in spool.db.execute("SELECT kind FROM outbox")]
        assert "resolved" not in kinds
    finally:
        spool.close()


def test_dry_run_queues_and_sends_nothing(fake_jobs: None, tmp_path: Path) -> None:
    from isoloir import daemon

    RESULT.append(_finding())
    p = load_policies(EXAMPLE)
    assert run_job_once("scan", p, tmp_path, dry_run=True) == EXIT_OK
    assert not spool_path(tmp_path).exists()
    assert json.loads(runs_path(tmp_path).read_text())["scan"]["dry_run"] is True
    assert daemon.cmd_status(_ns(state_dir=str(tmp_path), json=False)) == EXIT_OK


def _ns(**kw: object) -> object:
    import argparse

    return argparse.Namespace(config=None, **kw)


def test_status_of_a_missing_state_dir_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from isoloir import daemon

    missing = tmp_path / "nostate"
    assert daemon.cmd_status(_ns(state_dir=str(missing), json=False)) == 2
    assert f"state dir {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()
    afile = tmp_path / "afile"
    afile.write_text("")
    assert daemon.cmd_status(_ns(state_dir=str(afile), json=True)) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_aws_clients_have_bounded_timeouts() -> None:
    from isoloir import aws

    config = aws.client_kwargs("s3")["config"]
    assert config.connect_timeout <= 10 and config.read_timeout <= 30
    assert config.retries["max_attempts"] <= 3
