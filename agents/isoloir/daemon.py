"""The agent daemon: `isoloir run` and `isoloir status`.

`isoloir run` is a long-running, mostly sleeping process. It uses the `schedule`
library to start the jobs of `isoloir.jobs` on the policies' timetable (scan
every N minutes (and the SMS STOP drop folder); identity audit, retention and
rights-request deadlines daily
at set times, each with a random jitter), retries due alerts every minute,
writes a heartbeat, and logs JSON lines on stdout.

Each job runs in a child process (`isoloir run --once --job NAME`): the daemon
stays small whatever the agents import, a crashing job cannot take it down, and
cron or a systemd timer can run exactly the same command. A lock file per job
keeps one run at a time, whoever started it. SIGTERM lets the current job
finish, then the daemon exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import schedule

from isoloir import clock, i18n, jobs, runtime, statefiles
from isoloir.alerts.lockfile import FileLock, LockBusy, is_locked
from isoloir.policy.model import Policies, Schedules
from isoloir.textsafe import escape_controls

log = logging.getLogger("isoloir.daemon")

JOB_ORDER = ("scan", "identity", "retention", "rights", "sms-stop")
HEARTBEAT_SECONDS = 30.0
FLUSH_SECONDS = 60.0
JOB_TIMEOUT_SECONDS = 6 * 3600.0  # a job still running after this is stopped
# Test-only: JSON object {job name: "module:function"} merged into isoloir.jobs.JOBS,
# so the process tests can run fake jobs in a real daemon. Never set in production.
JOBS_OVERRIDE_ENV = "ISOLOIR_JOBS_OVERRIDE"

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_ERROR = 2


# -- structured logs ------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("isoloir")
    if any(getattr(h, "_isoloir_json", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._isoloir_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def _event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, event, extra={"fields": fields})


# -- state files ----------------------------------------------------------------


def daemon_dir(state_dir: Path) -> Path:
    return state_dir / "daemon"


def heartbeat_path(state_dir: Path) -> Path:
    return daemon_dir(state_dir) / "heartbeat.json"


def runs_path(state_dir: Path) -> Path:
    return daemon_dir(state_dir) / "runs.json"


def lock_path(state_dir: Path, job: str) -> Path:
    return state_dir / "locks" / f"job-{job}.lock"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def record_run(state_dir: Path, job: str, result: dict[str, Any]) -> None:
    """Keep the last result of each job in runs.json (read-modify-write under a lock)."""
    with FileLock(state_dir / "locks" / "runs.lock", wait_seconds=10.0):
        runs = _read_json(runs_path(state_dir))
        if not isinstance(runs, dict):
            runs = {}
        runs[job] = result
        _write_json(runs_path(state_dir), runs)


def write_heartbeat(state_dir: Path, **fields: Any) -> None:
    _write_json(heartbeat_path(state_dir), {"pid": os.getpid(), "ts": time.time(), **fields})


# -- jobs -------------------------------------------------------------------------


def job_table() -> dict[str, str]:
    table = dict(jobs.JOBS)
    raw = os.environ.get(JOBS_OVERRIDE_ENV)
    if raw:
        table.update({str(k): str(v) for k, v in json.loads(raw).items()})
    return table


def resolve_job(name: str) -> jobs.JobFunc:
    module_name, _, func_name = job_table()[name].partition(":")
    func: jobs.JobFunc = getattr(importlib.import_module(module_name), func_name)
    return func


def load_policies(config: str | None) -> Policies:
    from isoloir.policy import load_rendered
    from isoloir.policy.host import for_this_host

    # Only the elections of this host's region (/etc/isoloir/host.json; N4).
    return for_this_host(load_rendered(runtime.config_path(config)))


def run_job_once(
    name: str,
    policies: Policies,
    state_dir: Path,
    *,
    dry_run: bool = False,
    flush: bool = True,
) -> int:
    """Run one job now, hand its findings to the alerting and deliver what is due.

    Returns EXIT_OK, or EXIT_JOB_FAILED when the job raised (its findings are then
    not processed, so nothing is wrongly taken as resolved). A run already in
    progress (the lock is held) is skipped and counts as OK.
    """
    from isoloir.alerts.service import AlertService

    try:
        lock = FileLock(lock_path(state_dir, name))
        lock.acquire()
    except LockBusy:
        _event("job skipped: already running", job=name)
        return EXIT_OK
    started = time.time()
    result: dict[str, Any] = {"started": started, "pid": os.getpid()}
    try:
        _event("job started", job=name)
        func = resolve_job(name)
        ctx = jobs.JobContext(
            policies=policies, state_dir=state_dir, now=clock.now(), dry_run=dry_run
        )
        try:
            out = func(ctx)
        except Exception as exc:  # noqa: BLE001 - any agent failure is reported, not fatal
            result.update(ok=False, error=type(exc).__name__, finished=time.time())
            _event("job failed", logging.ERROR, job=name, error=type(exc).__name__)
            return EXIT_JOB_FAILED
        got = out if isinstance(out, jobs.JobResult) else jobs.JobResult(out)
        if dry_run:
            # A dry run reports; it queues and sends nothing (the spool is not touched).
            result.update(ok=not got.failure, findings=len(got), dry_run=True)
            if got.failure:
                result["error"] = i18n.N_("incomplete")
            _event("dry run: no alert queued", job=name, findings=len(got), failure=got.failure)
            return EXIT_JOB_FAILED if got.failure else EXIT_OK
        service = AlertService(policies, state_dir)
        try:
            # What the job could not read is neither confirmed nor resolved.
            report = service.process(name, got, unread=got.unread)
            if flush:
                service.flush()
        finally:
            service.close()
        result.update(
            ok=not got.failure,
            findings=report.findings,
            new=report.new,
            resolved=report.resolved,
            queued=report.queued,
            finished=time.time(),
        )
        if got.failure:
            # Part of the world could not be read: the run failed, visibly.
            result.update(error=i18n.N_("incomplete"), detail=got.failure)
            _event("job incomplete", logging.ERROR, job=name, detail=got.failure)
            return EXIT_JOB_FAILED
        _event(
            "job finished",
            job=name,
            findings=report.findings,
            new=report.new,
            resolved=report.resolved,
            seconds=round(time.time() - started, 3),
        )
        return EXIT_OK
    finally:
        result.setdefault("finished", time.time())
        record_run(state_dir, name, result)
        lock.release()


# -- the schedule -------------------------------------------------------------------


def _at_with_jitter(hhmm: str, jitter_seconds: int, rng: random.Random) -> str:
    hours, minutes = (int(x) for x in hhmm.split(":")[:2])
    total = hours * 3600 + minutes * 60 + (rng.randint(0, jitter_seconds) if jitter_seconds else 0)
    total %= 24 * 3600
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def build_scheduler(
    schedules: Schedules,
    start_job: Callable[[str], Any],
    *,
    rng: random.Random | None = None,
    digest_time: str | None = None,
    on_digest: Callable[[], Any] | None = None,
    on_flush: Callable[[], Any] | None = None,
) -> schedule.Scheduler:
    """The timetable: scan every N minutes (+ up to `jitter` seconds), identity and
    retention daily at their time (+ a random offset up to `jitter` drawn once),
    the daily digest, and a spool flush every minute."""
    rng = rng or random.Random()  # noqa: S311 - jitter
    s = schedule.Scheduler()
    interval = schedules.scan_interval_minutes * 60
    jitter = max(0, schedules.jitter_seconds)
    scan = s.every(interval)
    if jitter:
        scan = scan.to(interval + jitter)
    scan.seconds.do(start_job, "scan").tag("scan")
    # SMS STOP replies dropped by the gateway's export (isoloir.retention.smsstop): as
    # often as the scan, so an opt-out is honoured within the interval
    stops = s.every(interval)
    if jitter:
        stops = stops.to(interval + jitter)
    stops.seconds.do(start_job, "sms-stop").tag("sms-stop")
    s.every().day.at(_at_with_jitter(schedules.identity_time, jitter, rng)).do(
        start_job, "identity"
    ).tag("identity")
    s.every().day.at(_at_with_jitter(schedules.retention_time, jitter, rng)).do(
        start_job, "retention"
    ).tag("retention")
    # the deadlines of the open rights requests (isoloir.dpo.requests): daily, with the audit
    s.every().day.at(_at_with_jitter(schedules.identity_time, jitter, rng)).do(
        start_job, "rights"
    ).tag("rights")
    if digest_time and on_digest is not None:
        s.every().day.at(_at_with_jitter(digest_time, 0, rng)).do(on_digest).tag("digest")
    if on_flush is not None:
        s.every(int(FLUSH_SECONDS)).seconds.do(on_flush).tag("flush")
    return s


class _ShimDatetime(_dt.datetime):
    """datetime whose now() asks a supplied clock (naive local time, like schedule)."""

    source: Callable[[], _dt.datetime] = _dt.datetime.now

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> Any:
        value = cls.source()
        if tz is not None:
            return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
        return value


@contextlib.contextmanager
def schedule_clock(source: Callable[[], _dt.datetime]) -> Iterator[None]:
    """Make the `schedule` library read time from `source` (tests: no real waiting)."""
    shim = types.SimpleNamespace(
        datetime=type("datetime", (_ShimDatetime,), {"source": staticmethod(source)}),
        timedelta=_dt.timedelta,
        time=_dt.time,
        date=_dt.date,
        tzinfo=_dt.tzinfo,
        timezone=_dt.timezone,
    )
    original = getattr(schedule, "datetime")  # noqa: B009 - not re-exported for mypy
    setattr(schedule, "datetime", shim)  # noqa: B010
    try:
        yield
    finally:
        setattr(schedule, "datetime", original)  # noqa: B010


def next_runs(s: schedule.Scheduler) -> dict[str, str]:
    out: dict[str, str] = {}
    for job in s.get_jobs():
        tag = next(iter(job.tags), "?")
        if job.next_run is not None:
            out[str(tag)] = job.next_run.isoformat(timespec="seconds")
    return out


class Daemon:
    """The long-running loop; jobs run as child processes of the same command."""

    def __init__(
        self,
        config: str | None,
        state_dir: Path,
        *,
        command: Sequence[str] | None = None,
        initial_scan: bool = True,
        job_timeout: float = JOB_TIMEOUT_SECONDS,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.command = list(command or [sys.executable, "-m", "isoloir.daemon"])
        self.initial_scan = initial_scan
        self.stop = threading.Event()
        self.started = time.time()
        self.current: str | None = None
        self.last_exit: dict[str, int] = {}
        self.scheduler: schedule.Scheduler | None = None
        self.job_timeout = job_timeout

    def _child_args(self, *extra: str) -> list[str]:
        args = [*self.command, "run", "--once", "--state-dir", str(self.state_dir)]
        if self.config:
            args += ["--config", self.config]
        return [*args, *extra]

    def start_job(self, name: str) -> None:
        if self.stop.is_set():
            return
        self.current = name
        self._heartbeat("running", self.scheduler)
        try:
            # The child inherits stdout (its JSON logs join ours). If the daemon is
            # asked to stop, the child still finishes: we wait for it.
            code = self._run_child(name)
            self.last_exit[name] = code
            if code != EXIT_OK:
                _event("job exited with an error", logging.WARNING, job=name, exit_code=code)
        finally:
            self.current = None

    def _run_child(self, name: str) -> int:
        proc = subprocess.Popen(self._child_args("--job", name))
        try:
            return proc.wait(timeout=self.job_timeout)
        except subprocess.TimeoutExpired:
            # A hung agent must not stop every other job: ask, then insist.
            _event("job timed out", logging.ERROR, job=name, timeout_seconds=self.job_timeout)
            proc.terminate()
            try:
                return proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()

    def digest(self) -> None:
        if not self.stop.is_set():
            subprocess.call(self._child_args("--job", "digest"))

    def flush(self) -> None:
        """Retry due alerts; cheap when nothing is due (one SQLite query)."""
        if self.stop.is_set():
            return
        from isoloir.alerts.spool import Spool, spool_path

        path = spool_path(self.state_dir)
        if not path.exists():
            return
        try:
            spool = Spool(path)
            try:
                due = spool.next_due_at()
            finally:
                spool.close()
        except (statefiles.StateError, sqlite3.Error) as exc:
            # the daemon keeps running its jobs; `isoloir status` names the file, exit 2
            _event("alert spool unreadable", logging.ERROR, error=str(exc))
            return
        if due is not None and due <= time.time():
            subprocess.call(self._child_args("--job", "flush"))

    def _heartbeat(self, state: str, scheduler: schedule.Scheduler | None = None) -> None:
        fields: dict[str, Any] = {
            "state": state,
            "started_at": self.started,
            "current_job": self.current,
            "clock_overridden": clock.overridden(),
        }
        if scheduler is not None:
            fields["next_runs"] = next_runs(scheduler)
        write_heartbeat(self.state_dir, **fields)

    def run(self) -> int:
        try:
            policies = load_policies(self.config)
        except Exception as exc:  # noqa: BLE001 - report any config problem and exit
            _event("cannot load the agent config", logging.ERROR, error=str(exc))
            return EXIT_ERROR
        alerts = policies.baseline.alerts
        scheduler = build_scheduler(
            policies.baseline.schedules,
            self.start_job,
            digest_time=alerts.digest_time if alerts.digest_enabled else None,
            on_digest=self.digest,
            on_flush=self.flush,
        )
        del policies  # the children load their own copy; keep the daemon small
        self.scheduler = scheduler
        _event(
            "daemon started",
            state_dir=str(self.state_dir),
            clock_overridden=clock.overridden(),
            next_runs=next_runs(scheduler),
        )
        self._heartbeat("idle", scheduler)
        if self.initial_scan:
            self.start_job("scan")
        while not self.stop.is_set():
            scheduler.run_pending()
            self._heartbeat("idle", scheduler)
            idle = scheduler.idle_seconds
            wait = HEARTBEAT_SECONDS if idle is None else min(HEARTBEAT_SECONDS, max(idle, 0.5))
            self.stop.wait(wait)
        self._heartbeat("stopped", scheduler)
        _event("daemon stopped", uptime_seconds=round(time.time() - self.started, 1))
        return EXIT_OK


# -- commands ---------------------------------------------------------------------


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: types.FrameType | None) -> None:
        _event("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_run(args: argparse.Namespace) -> int:
    configure_logging()
    state_dir = runtime.state_dir(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.job and not args.once:
        print("--job goes with --once", file=sys.stderr)
        return EXIT_ERROR
    if not args.once and not _lean and not os.environ.get(_LEAN_ENV):
        _reexec_lean(args)
    if not args.once:
        daemon = Daemon(args.config, state_dir, initial_scan=not args.no_initial_scan)
        _install_stop_handlers(daemon.stop)
        return daemon.run()
    stop = threading.Event()
    _install_stop_handlers(stop)  # a job in progress finishes; the next ones are skipped
    try:
        policies = load_policies(args.config)
    except Exception as exc:  # noqa: BLE001 - report any config problem and exit
        _event("cannot load the agent config", logging.ERROR, error=str(exc))
        return EXIT_ERROR
    names = [args.job] if args.job else [*JOB_ORDER, "digest", "flush"]
    worst = EXIT_OK
    for name in names:
        if stop.is_set():
            _event("stopping before job", job=name)
            break
        if name in ("digest", "flush"):
            if args.dry_run:
                _event("dry run: nothing sent", job=name)
                continue
            worst = max(worst, _run_alert_task(name, policies, state_dir))
        else:
            worst = max(worst, run_job_once(name, policies, state_dir, dry_run=args.dry_run))
    return worst


_LEAN_ENV = "ISOLOIR_DAEMON_LEAN"
_lean = False  # set by main(): we are `python -m isoloir.daemon`, not the full CLI


def _reexec_lean(args: argparse.Namespace) -> None:
    """Replace this process (same pid) by `python -m isoloir.daemon run ...`.

    `isoloir` imports every part's command module (boto3 and the like) to build
    its parser; the long-running daemon needs none of them, so it sheds them.
    """
    argv = [sys.executable, "-m", "isoloir.daemon", "run", "--state-dir", str(args.state_dir or "")]
    if not args.state_dir:
        argv = argv[:-2]
    if args.config:
        argv += ["--config", args.config]
    if args.no_initial_scan:
        argv.append("--no-initial-scan")
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[_LEAN_ENV] = "1"
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module


def _run_alert_task(name: str, policies: Policies, state_dir: Path) -> int:
    from isoloir.alerts.service import AlertService

    service = AlertService(policies, state_dir)
    try:
        if name == "digest" and service.digest_due():
            _event("digest queued", messages=service.queue_digest())
        service.flush()
    finally:
        service.close()
    return EXIT_OK


RUNS_LOST = "the last result of each job is forgotten (the next run of each records it again)"
HEARTBEAT_LOST = "the daemon writes a new one within a minute"


def status_data(state_dir: Path, now: float | None = None) -> dict[str, Any]:
    """The daemon's heartbeat, its jobs' last runs, the spool; `unreadable` names every
    state file that could not be read (corrupt), which `status` turns into exit 2."""
    from isoloir.alerts.spool import SPOOL_LOST, Spool, spool_path

    now = time.time() if now is None else now
    unreadable: list[str] = []

    def read(path: Path, lost: str) -> Any:
        try:
            return statefiles.read_json(path, lost)
        except statefiles.StateError as exc:
            unreadable.append(str(exc))
            return None

    heartbeat = read(heartbeat_path(state_dir), HEARTBEAT_LOST)
    runs = read(runs_path(state_dir), RUNS_LOST)
    if runs is not None and not isinstance(runs, dict):
        unreadable.append(
            f"{runs_path(state_dir)}: not a record of runs (a JSON object); {RUNS_LOST}"
        )
        runs = None
    data: dict[str, Any] = {
        "state_dir": str(state_dir),
        "clock_overridden": clock.overridden(),
        "clock_now": clock.now().isoformat() if clock.overridden() else None,
        "heartbeat": None,
        "jobs": {},
        "spool": None,
        # runs.json unreadable: the jobs' last runs are unknown, never "never run"
        "runs_known": runs is not None or not runs_path(state_dir).exists(),
        "unreadable": unreadable,
    }
    if heartbeat is not None:
        ts = statefiles.finite(heartbeat.get("ts")) if isinstance(heartbeat, dict) else None
        if ts is None or not isinstance(heartbeat, dict):
            unreadable.append(
                f"{heartbeat_path(state_dir)}: not a heartbeat (no valid time); {HEARTBEAT_LOST}"
            )
        else:
            data["heartbeat"] = {
                "age_seconds": round(now - ts, 1),
                "pid": heartbeat.get("pid"),
                "state": heartbeat.get("state"),
                "current_job": heartbeat.get("current_job"),
                "next_runs": heartbeat.get("next_runs", {}),
            }
    runs = runs or {}
    names = list(dict.fromkeys([*JOB_ORDER, *runs.keys()]))
    for name in names:
        last = runs.get(name)
        entry: dict[str, Any] = {
            "running": is_locked(lock_path(state_dir, name)),
            "last": None,
            "unknown": not data["runs_known"],  # runs.json unreadable: not "never run"
        }
        if isinstance(last, dict):
            finished = statefiles.finite(last.get("finished"))
            if last.get("finished") is not None and finished is None:
                unreadable.append(
                    f"{runs_path(state_dir)}: job {name}: 'finished' is not a time; {RUNS_LOST}"
                )
            entry["last"] = {
                "ok": last.get("ok"),
                "error": last.get("error"),
                "findings": last.get("findings"),
                "finished": _iso(finished),
                "age_seconds": round(now - (finished if finished is not None else now), 1),
            }
        elif last is not None:
            entry["unknown"] = True
            unreadable.append(f"{runs_path(state_dir)}: job {name}: not a run record; {RUNS_LOST}")
        data["jobs"][name] = entry
    path = spool_path(state_dir)
    if path.exists():
        try:
            spool = Spool(path)
            try:
                data["spool"] = spool.stats(now)
            finally:
                spool.close()
        except statefiles.StateError as exc:
            unreadable.append(str(exc))
        except sqlite3.Error as exc:
            unreadable.append(str(statefiles.corrupt_db(path, exc, SPOOL_LOST)))
    try:
        data["mailguard"] = _mailguard_status(state_dir, now)
    except sqlite3.Error as exc:
        data["mailguard"] = None
        unreadable.append(f"the mail guard's decisions log: {exc}")
    return data


def _mailguard_status(state_dir: Path, now: float) -> dict[str, Any] | None:
    """The mail guard's decisions of the last 24 h (counts), None without its log."""
    from isoloir.mailguard import decisions

    if not decisions.db_path(state_dir).is_file():
        return None
    since = _dt.datetime.fromtimestamp(now - 86400, _dt.UTC)
    return decisions.summary(state_dir, since)


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(float(ts), _dt.UTC).isoformat(timespec="seconds")


# The daemon's heartbeat states, marked for the catalogue (shown translated by status_text).
HEARTBEAT_STATES = (i18n.N_("running"), i18n.N_("idle"), i18n.N_("stopped"))


def status_text(data: dict[str, Any], language: str = i18n.DEFAULT_LANGUAGE) -> str:
    """The status for a person, in French (default) or English; `--json` keeps the
    machine form."""
    _ = i18n.translator(i18n.language_or_default(language)).gettext
    translate = _  # for values that are msgids (not extracted from here)
    lines = [_("state dir: {path}").format(path=data["state_dir"])]
    if data["clock_overridden"]:
        lines.append(
            _("CLOCK OVERRIDDEN: ISOLOIR_NOW={now} (demo/tests only)").format(now=data["clock_now"])
        )
    else:
        lines.append(_("clock: real time"))
    hb = data["heartbeat"]
    if hb is None:
        lines.append(_("daemon: no heartbeat (never started, or run-once mode only)"))
    else:
        stale = hb["age_seconds"] > 3 * HEARTBEAT_SECONDS and hb["state"] != "stopped"
        lines.append(
            _("daemon: {state}, pid {pid}, heartbeat {age} s ago").format(
                state=_(str(hb["state"])), pid=hb["pid"], age=f"{hb['age_seconds']:.0f}"
            )
            + (_(" (STALE)") if stale else "")
            + (_(", running {job}").format(job=hb["current_job"]) if hb.get("current_job") else "")
        )
        for tag, when in sorted(hb.get("next_runs", {}).items()):
            lines.append(_("  next {tag}: {when}").format(tag=tag, when=when))
    for name, job in data["jobs"].items():
        last = job["last"]
        if last is None and job.get("unknown"):
            desc = _("unknown (runs.json cannot be read)")
        elif last is None:
            desc = _("never run")
        elif last["ok"]:
            desc = _("ok at {finished}, {count} finding(s)").format(
                finished=last["finished"], count=last["findings"]
            )
        else:
            error = last["error"]  # an exception's class name, or a marked word
            desc = _("FAILED at {finished} ({error})").format(
                finished=last["finished"], error=translate(str(error)) if error else error
            )
        lines.append(
            _("job {name}: {desc}").format(name=name, desc=desc)
            + (_(" [running]") if job["running"] else "")
        )
    spool = data["spool"]
    if spool is None:
        lines.append(_("alert spool: empty (no spool yet)"))
    else:
        lines.append(
            _(
                "alert spool: {pending} pending, {retrying} retrying, {dead} dead, {sent} sent, "
                "{open} open finding(s)"
            ).format(
                pending=spool["pending"],
                retrying=spool["retrying"],
                dead=spool["dead"],
                sent=spool["sent"],
                open=spool["open_findings"],
            )
        )
    guard = data.get("mailguard")
    if guard is not None:
        actions = guard.get("actions", {})
        lines.append(
            _(
                "mail guard: {accepted} accepted, {refused} refused, {held} held, "
                "{dropped} dropped recipients (24 h)"
            ).format(
                accepted=actions.get("accept", 0),
                refused=actions.get("reject", 0),
                held=actions.get("hold", 0),
                dropped=guard.get("dropped", 0),
            )
        )
    # names and states come from files the agents' user can write: no forged lines
    return "\n".join(escape_controls(line) for line in lines)


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = runtime.state_dir(args.state_dir)
    # A typo must not read as "never run": the state dir must exist (it is never created here).
    if not state_dir.is_dir():
        what = "is not a directory" if state_dir.exists() else "does not exist"
        print(f"state dir {state_dir} {what}", file=sys.stderr)
        return EXIT_ERROR
    data = status_data(state_dir)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(status_text(data, getattr(args, "lang", i18n.DEFAULT_LANGUAGE)))
    for problem in data["unreadable"]:
        print(f"error: {escape_controls(problem)}", file=sys.stderr)
    # a monitor must not read a corrupt state as healthy (CLI review N5)
    return EXIT_ERROR if data["unreadable"] else EXIT_OK


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run the agents on the policies' schedule")
    runtime.add_runtime_arguments(run)
    run.add_argument("--once", action="store_true", help="run the jobs once and exit (cron)")
    run.add_argument(
        "--job",
        choices=[*JOB_ORDER, "digest", "flush"],
        help="with --once: only this job",
    )
    run.add_argument("--dry-run", action="store_true", help="jobs report but change nothing")
    run.add_argument(
        "--no-initial-scan", action="store_true", help="wait for the first scheduled scan"
    )
    run.set_defaults(func=cmd_run)

    status = subparsers.add_parser("status", help="daemon heartbeat, last runs, alert spool")
    runtime.add_runtime_arguments(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--lang",
        choices=i18n.LANGUAGES,
        default=i18n.DEFAULT_LANGUAGE,
        help="language of the text output (default: fr)",
    )
    status.set_defaults(func=cmd_status)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m isoloir.daemon run|status`: the daemon without the rest of the CLI."""
    global _lean
    _lean = True
    parser = argparse.ArgumentParser(prog="isoloir")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
