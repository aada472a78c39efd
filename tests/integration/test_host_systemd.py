"""The sandbox host boots a real systemd, as a cloud host does (issue 12).

Uses the session's converged host (`site`, tests/plugins/hosts.py): the first
host is converged by the playbook, the second is left as booted. Asserted from
inside the hosts: systemd says `running`, sshd and smbd run as its services,
the agents run as `isoloir-agent.service`, and nothing listens beyond the
loopback range, inside the hosts or seen from the machine.
"""

from __future__ import annotations

import ipaddress
import mailbox
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.plugins.hosts import ELECTION_B, Site

from isoloir.controller import sandbox
from isoloir.controller.localtarget import free_port
from isoloir.controller.sandbox import SandboxHost
from isoloir.controller.sink import MaildirHandler, make_controller
from isoloir.i18n import format_date
from isoloir.policy import load_rendered

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Units a sandbox host cannot run, with the reason (docs/hosts.md lists them):
# none today, so `degraded` is a failure.
DEGRADED_ALLOWED: dict[str, str] = {}


def systemctl(host: SandboxHost, *args: str) -> str:
    return host.chroot("systemctl", *args, check=False).stdout.strip()


def failed_units(host: SandboxHost) -> list[str]:
    listed = systemctl(host, "--failed", "--no-legend", "--plain")
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def assert_running(host: SandboxHost) -> None:
    state = systemctl(host, "is-system-running", "--wait")
    failed = failed_units(host)
    if state == "degraded":
        assert set(failed) <= set(DEGRADED_ALLOWED), failed
    else:
        assert state == "running", (state, failed)


def listeners(ss_output: str) -> list[tuple[str, str]]:
    """(local address, process column) of every listening TCP/UDP socket."""
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local = fields[4]
        address = local.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
        found.append((address, " ".join(fields[6:])))
    return found


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # "*", "0.0.0.0%eth0", ...: every address
        return False


def mount_options(mountinfo: str, path: str) -> list[str]:
    """Options of the mount that covers `path` (the last, deepest one listed)."""
    best: list[str] = []
    depth = -1
    for line in mountinfo.splitlines():
        fields = line.split()
        point = fields[4]
        if path == point or path.startswith(point.rstrip("/") + "/"):
            if len(point) >= depth:
                best, depth = fields[5].split(","), len(point)
    return best


def test_ss_parsing_flags_wildcards() -> None:
    out = (
        'tcp LISTEN 0 128 127.0.0.231:22 0.0.0.0:* users:(("sshd",pid=44,fd=3))\n'
        'udp UNCONN 0 0 0.0.0.0:137 0.0.0.0:* users:(("nmbd",pid=9,fd=3))\n'
        'tcp LISTEN 0 50 [::]:445 [::]:* users:(("smbd",pid=50,fd=29))\n'
        "tcp LISTEN 0 50 *:445 *:*\n"
    )
    assert [is_loopback(a) for a, _ in listeners(out)] == [True, False, False, False]


def test_fresh_host_runs_systemd_with_ssh_and_smbd_as_services(site: Site) -> None:
    host = site.hosts[1]  # booted, never converged
    assert host.init == "systemd" and host.init_pid
    # PID 1 inside is systemd, and it is the process the machine knows.
    assert host.chroot("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert os.readlink(f"/proc/{host.init_pid}/exe").endswith("/systemd")
    assert_running(host)
    assert systemctl(host, "is-active", "ssh.service", "smbd.service").split() == [
        "active",
        "active",
    ]
    # NetBIOS would answer on every interface: masked before the first boot.
    assert systemctl(host, "is-enabled", "nmbd.service") == "masked"
    # sshd is the unit's main process, in the host's own cgroup.
    main_pid = int(systemctl(host, "show", "-p", "MainPID", "--value", "ssh.service"))
    machine_pid = host.machine_pid(main_pid)
    with open(f"/proc/{machine_pid}/cgroup", encoding="ascii") as fh:
        assert "system.slice/ssh.service" in fh.read()
    assert os.path.isdir(os.path.join(host.cgroup, "system.slice", "ssh.service"))


def test_converged_host_runs_the_agents_as_their_unit(site: Site) -> None:
    assert site.runs and site.runs[0].returncode == 0, site.runs[0].stdout[-3000:]
    host = site.host
    assert_running(host)
    unit = "isoloir-agent.service"
    assert systemctl(host, "is-enabled", unit) == "enabled"
    assert systemctl(host, "is-active", unit) == "active", host.chroot(
        "journalctl", "-u", unit, "--no-pager", "-n", "30", check=False
    ).stdout
    main_pid = int(systemctl(host, "show", "-p", "MainPID", "--value", unit))
    assert main_pid > 1
    # Its own user, with the unit's sandboxing applied by systemd.
    status = host.chroot("cat", f"/proc/{main_pid}/status").stdout
    uid = re.search(r"(?m)^Uid:\s+(\d+)", status).group(1)  # type: ignore[union-attr]
    assert host.chroot("id", "-un", uid).stdout.strip() == "isoloir"
    assert re.search(r"(?m)^NoNewPrivs:\s+1$", status)
    assert re.search(r"(?m)^Seccomp:\s+2$", status)
    # ProtectSystem=strict: /usr is read-only in the agents' mount namespace.
    mounts = host.chroot("cat", f"/proc/{main_pid}/mountinfo").stdout
    assert "ro" in mount_options(mounts, "/usr/bin"), mounts
    # The sshd the hardening role configured still runs under systemd.
    assert systemctl(host, "is-active", "ssh.service", "smbd.service").split() == [
        "active",
        "active",
    ]


def test_nothing_listens_beyond_loopback_inside_the_hosts(site: Site) -> None:
    for host in site.hosts:
        out = host.chroot("ss", "-Hltnup").stdout
        # Inside the host's PID namespace, `ss -p` names its own processes only.
        own = [(a, p) for a, p in listeners(out) if "users:" in p]
        assert own, f"{host.name}: no listener of its own"
        beyond = [(a, p) for a, p in own if not is_loopback(a)]
        assert not beyond, (host.name, beyond)


def test_nothing_listens_beyond_loopback_seen_from_the_machine(site: Site) -> None:
    pids = {pid for host in site.hosts for pid in sandbox._pids_rooted_in(host.root)}
    assert pids
    out = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True, check=True).stdout
    ours = [
        (address, process)
        for address, process in listeners(out)
        if {int(p) for p in re.findall(r"pid=(\d+)", process)} & pids
    ]
    assert {a for a, _ in ours} >= {h.address for h in site.hosts}
    beyond = [(a, p) for a, p in ours if not is_loopback(a)]
    assert not beyond, beyond


# -- one agents' job under the unit's sandboxing --------------------------------------

ONCE_UNIT = "isoloir-agent-scan-once.service"


def once_unit(unit_text: str, job: str, env: dict[str, str]) -> str:
    """The agents' unit, same sandboxing, running one job (`isoloir run --once --job`)."""
    out = []
    for line in unit_text.splitlines():
        if line.startswith("[Install]"):
            break
        if line.startswith(("Restart=", "RestartSec=")):
            continue
        if line == "Type=simple":
            # Stays loaded once finished, so its exit code can be read back.
            out += ["Type=oneshot", "RemainAfterExit=yes"]
            out += [f"Environment={k}={v}" for k, v in sorted(env.items())]
            continue
        match = re.fullmatch(r"ExecStart=(\S+) run", line)
        out.append(f"ExecStart={match.group(1)} run --once --job {job}" if match else line)
    text = "\n".join(out) + "\n"
    assert f"--job {job}" in text and "Type=oneshot" in text, text
    return text


def test_once_unit_keeps_the_sandboxing() -> None:
    unit = (
        "[Unit]\nDescription=x\n[Service]\nType=simple\nExecStart=/v/bin/isoloir run\n"
        "Restart=on-failure\nRestartSec=30\nProtectSystem=strict\n[Install]\nWantedBy=m\n"
    )
    text = once_unit(unit, "scan", {"A": "1"})
    assert "ExecStart=/v/bin/isoloir run --once --job scan" in text
    assert "ProtectSystem=strict" in text and "Environment=A=1" in text
    assert "RemainAfterExit=yes" in text
    assert "Restart" not in text and "[Install]" not in text


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    maildir = tmp_path / "maildir"
    port = free_port()
    controller = make_controller(MaildirHandler(maildir), "127.0.0.1", port)
    controller.start()
    try:
        yield maildir, port
    finally:
        controller.stop()


def run_once_under_the_unit(
    host: SandboxHost, job: str, env: dict[str, str]
) -> tuple[dict[str, str], str]:
    """Run one agents' job as a transient copy of their unit; (Result fields, journal)."""
    unit_text = (host.root / "etc/systemd/system/isoloir-agent.service").read_text()
    runtime_unit = host.root / "run/systemd/system" / ONCE_UNIT
    runtime_unit.parent.mkdir(parents=True, exist_ok=True)
    runtime_unit.write_text(once_unit(unit_text, job, env))
    try:
        host.chroot("systemctl", "daemon-reload")
        host.chroot("systemctl", "start", ONCE_UNIT, check=False, timeout=600)
        result = systemctl(host, "show", "-p", "Result,ExecMainCode,ExecMainStatus", ONCE_UNIT)
        journal = host.chroot(
            "journalctl", "-u", ONCE_UNIT, "--no-pager", "-o", "cat", "-n", "40", check=False
        ).stdout
    finally:
        host.chroot("systemctl", "stop", ONCE_UNIT, check=False, timeout=120)
        runtime_unit.unlink(missing_ok=True)
        host.chroot("systemctl", "daemon-reload", check=False)
        host.chroot("systemctl", "reset-failed", ONCE_UNIT, check=False)
    return dict(line.split("=", 1) for line in result.splitlines()), journal


def sink_messages(maildir: Path) -> list[mailbox.MaildirMessage]:
    return list(mailbox.Maildir(str(maildir), create=False))


def test_scan_job_under_the_unit_alerts_through_the_smtp_sink(
    site: Site, smtp_sink: tuple[Path, int]
) -> None:
    maildir, port = smtp_sink
    host = site.host
    env = {
        "ISOLOIR_SMTP_SINK": f"127.0.0.1:{port}",
        # No cloud here: the S3 part of the scan fails fast and is reported as unread.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # A file of election B opened to others on disk: a finding for the alert route.
    leak = host.root / "srv/elections" / ELECTION_B / "porte-a-porte/ouvert-unit.csv"
    leak.write_text("nom\nFictif\n")
    subprocess.run(["setfacl", "-m", "o::r", str(leak)], check=True)
    try:
        fields, journal = run_once_under_the_unit(host, "scan", env)
    finally:
        leak.unlink(missing_ok=True)
    # The job ran to its end under the sandboxing: it exited (CLD_EXITED=1), it was
    # not killed by a signal (a filtered system call is SIGSYS), with 0 or 1
    # (1: the S3 part could not be read here).
    assert fields["ExecMainCode"] == "1", (fields, journal)
    assert fields["ExecMainStatus"] in {"0", "1"}, (fields, journal)
    assert '"job finished"' in journal or '"job incomplete"' in journal, journal
    messages = sink_messages(maildir)
    assert messages, journal
    bodies = "\n".join(str(m.get_payload(decode=True) or b"", "utf-8", "replace") for m in messages)
    assert "ouvert-unit.csv" in bodies


def test_retention_job_under_the_unit_alerts_through_the_smtp_sink(
    site: Site, smtp_sink: tuple[Path, int]
) -> None:
    """The retention job under the unit's sandboxing: its journal in the state
    directory, the policies' due dates, and its J-1 warnings mailed to the sink."""
    maildir, port = smtp_sink
    host = site.host
    policies = load_rendered(host.root / "etc/isoloir/agent.json")
    due = policies.election(ELECTION_B).retention_due
    env = {
        "ISOLOIR_SMTP_SINK": f"127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        # The day before the due date (the test's clock only; nothing is due yet,
        # so nothing is purged): every election due that day gets its J-1 warning.
        "ISOLOIR_NOW": f"{due - timedelta(days=1)}T09:00:00+00:00",
    }
    fields, journal = run_once_under_the_unit(host, "retention", env)
    assert (fields["ExecMainCode"], fields["ExecMainStatus"]) == ("1", "0"), (fields, journal)
    assert '"job finished"' in journal, journal
    assert (host.root / "var/lib/isoloir/retention/journal.sqlite").is_file()
    warned = [
        m
        for m in sink_messages(maildir)
        if "RET-WARN" in (m.get("X-Isoloir-Rule", "") + m.get("X-Isoloir-Rules", ""))
    ]
    assert warned, journal
    bodies = "\n".join(str(m.get_payload(decode=True) or b"", "utf-8", "replace") for m in warned)
    language = policies.baseline.alerts.language
    assert ELECTION_B in bodies and format_date(due, language) in bodies, bodies
