"""The idle daemon's footprint: RSS and CPU of `isoloir run` over N seconds.

    python bench/daemon/run.py --out DIR [--seconds 60]

Starts a real `isoloir run` on the example policies (alert channels pointed at
loopback, jobs replaced by no-op jobs so nothing else is measured), lets the
initial scan finish, then samples /proc/<pid> once a second. Writes
DIR/daemon.json. Goal: RSS <= 60 MB, CPU near zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "agents"))

from isoloir.policy import load_policies  # noqa: E402
from isoloir.policy.model import EmailChannel  # noqa: E402
from isoloir.policy.render import AGENT_CONFIG, write  # noqa: E402

NOOP_JOBS = "def nothing(ctx):\n    return []\n"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="isoloir-bench-daemon-") as tmp:
        work = Path(tmp)
        p = load_policies(REPO / "policies")
        alerts = dataclasses.replace(
            p.baseline.alerts,
            email=EmailChannel(
                "127.0.0.1",
                9,
                "starttls",
                "isoloir@mouvement-exemple.example",
                str(work / "smtp.json"),
            ),
            webhooks=(),
            routes=tuple(r for r in p.baseline.alerts.routes if "email" in r.channels),
        )
        p = dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, alerts=alerts))
        write(p, work / "rendered")
        (work / "bench_noop_jobs.py").write_text(NOOP_JOBS)
        env = dict(os.environ)
        env.pop("ISOLOIR_NOW", None)
        env.update(
            PYTHONPATH=os.pathsep.join([str(work), str(REPO / "agents")]),
            ISOLOIR_JOBS_OVERRIDE=json.dumps(
                {name: "bench_noop_jobs:nothing" for name in ("scan", "identity", "retention")}
            ),
        )
        state = work / "state"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "isoloir.cli",
                "run",
                "--config",
                str(work / "rendered" / AGENT_CONFIG),
                "--state-dir",
                str(state),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            end = time.monotonic() + 60
            while not (state / "daemon" / "runs.json").exists():
                if time.monotonic() > end or proc.poll() is not None:
                    raise SystemExit("the daemon did not finish its initial scan")
                time.sleep(0.1)
            time.sleep(1.0)  # let the heartbeat after the scan be written
            start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
            samples = []
            while time.monotonic() - start < args.seconds:
                samples.append(rss_bytes(proc.pid))
                time.sleep(1.0)
            cpu = cpu_seconds(proc.pid) - start_cpu
            wall = time.monotonic() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    rss_max = max(samples) / 2**20
    result = {
        "bench": "daemon",
        "what": "idle `isoloir run` (no-op jobs, after the initial scan)",
        "seconds": round(wall, 1),
        "samples": len(samples),
        "rss_mb_max": round(rss_max, 1),
        "rss_mb_mean": round(sum(samples) / len(samples) / 2**20, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_percent": round(100 * cpu / wall, 3),
        "goal_rss_mb": 60,
        "rss_within_goal": rss_max <= 60,
        "exit_code_after_sigterm": proc.returncode,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    target = out / "daemon.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
