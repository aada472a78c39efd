"""The metadata guard works on the converged host (issue 12, F6, HOST-IMDS-01).

A sandbox host shares the machine's network namespace, so the hardening role
renders the guard there (the rule with the host's real uids, the snapshot
script) but loads nothing: the rule would land in the machine's firewall. This
test loads that very file in a private network namespace that exists only for
the test: a `sleep` started with `unshare --net` holds it, every command enters
it with `nsenter --net` and the converged host's mount (and PID) namespace,
then `chroot`s into the host's tree, so user names resolve to the host's uids
and the host's own nft, runuser, Python and snapshot script run.

The metadata stand-in listens on 169.254.169.254 and fd00:ec2::254, two
addresses put on the private namespace's own `lo`. This is the one server of
the tests that is not on 127.0.0.0/8: the namespace has no interface but
`lo`, so nothing outside it (the machine, the other hosts) can reach it.

Shown: before the rule, a person's login shell fetches the stand-in (so the
refusal below is the guard's doing); with the rule, the person is refused and
the counter counts it, while the agents' user and root still get 200. The
agents' check `host_metadata_reachable`, run on the host as the agents' user
on the host's own snapshot, finds both addresses open without the rule and
nothing with it. Afterwards the machine's ruleset lists the same tables and
no process is left in the namespace.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.plugins.hosts import MEMBER_A, Site

from isoloir.controller.sandbox import SandboxHost

pytestmark = [pytest.mark.integration, pytest.mark.root]

RULE = "/etc/isoloir-nft/metadata.nft"
SNAPSHOT_SCRIPT = "/usr/local/sbin/isoloir-nft-snapshot"
SNAPSHOT_DIR = "run/isoloir-nft"
SNAPSHOT = f"/{SNAPSHOT_DIR}/ruleset.json"
AGENT = "isoloir"
AGENT_PYTHON = "/opt/isoloir/venv/bin/python"
ADDRESSES = {
    "169.254.169.254": "http://169.254.169.254/latest/meta-data/",
    "fd00:ec2::254": "http://[fd00:ec2::254]/latest/meta-data/",
}
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}

# The stand-in: 200 on GET /latest/meta-data/ (what a client asks first), 404
# otherwise; says "ready" once both sockets are bound.
STAND_IN = """
import http.server, socket, sys, threading
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/latest/meta-data/"
        body = b"ami-id\\n" if ok else b""
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server6(http.server.HTTPServer):
    address_family = socket.AF_INET6
v4 = http.server.HTTPServer(("169.254.169.254", 80), Handler)
v6 = Server6(("fd00:ec2::254", 80), Handler)
threading.Thread(target=v6.serve_forever, daemon=True).start()
print("ready", flush=True)
v4.serve_forever()
"""

# One fetch per address: the HTTP status, or the errno name of the refusal.
FETCH = (
    "ADDRESSES = "
    + repr(ADDRESSES)
    + """
import errno, json, urllib.error, urllib.request
out = {}
for address, url in ADDRESSES.items():
    try:
        out[address] = str(urllib.request.urlopen(url, timeout=5).status)
    except urllib.error.HTTPError as exc:
        out[address] = str(exc.code)
    except urllib.error.URLError as exc:
        code = getattr(exc.reason, "errno", None)
        out[address] = errno.errorcode.get(code, repr(exc.reason))
print(json.dumps(out))
"""
)

# The agents' check on the host's snapshot, as the agents run it (their uid,
# their installed package); on_aws as on EC2, where the stand-in stands.
CHECK = """
import json
from datetime import UTC, datetime
from isoloir.exposure.inventory_identity import read_metadata_guard
from isoloir.exposure.model import IdentityInventory, Inventory
from isoloir.exposure.registry import discover, run
guard = read_metadata_guard(on_aws=True)
inv = Inventory(policies=None, now=datetime.now(UTC), identity=IdentityInventory(metadata=guard))
wanted = {"host_metadata_reachable": discover()["host_metadata_reachable"]}
print(json.dumps(sorted(r.finding.resource for r in run(inv, checks=wanted))))
"""


@dataclass
class PrivateNet:
    """A network namespace held by one process of the test, entered per command."""

    host: SandboxHost
    holder: int
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def argv(self, *argv: str, pid_ns: bool = True) -> list[str]:
        enter = ["nsenter", f"--net=/proc/{self.holder}/ns/net"]
        enter += ["--target", str(self.host.init_pid), "--mount"]
        # Without --pid nsenter does not fork: the process started is the
        # command itself, killed by its pid.
        enter += ["--pid"] if pid_ns else []
        return [*enter, "--", "chroot", str(self.host.root), *argv]

    def run(self, *argv: str) -> str:
        done = subprocess.run(self.argv(*argv), capture_output=True, text=True, env=ENV, timeout=60)
        assert done.returncode == 0, (argv[:3], done.returncode, done.stderr[-2000:])
        return done.stdout

    def start(self, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(*argv, pid_ns=False), stdout=subprocess.PIPE, text=True, env=ENV
        )
        self.started.append(proc)
        return proc


def netns_of(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def pids_in_netns(inode: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@contextmanager
def private_net(host: SandboxHost) -> Iterator[tuple[PrivateNet, int]]:
    """A fresh network namespace with `lo` up, gone (by pid) when the block ends."""
    assert host.init_pid, "the site host boots systemd"
    holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"], text=True)
    net = PrivateNet(host=host, holder=holder.pid)
    try:
        deadline = time.monotonic() + 10
        while netns_of(holder.pid) == netns_of("self"):  # unshare not done yet
            assert time.monotonic() < deadline, "unshare --net did not start"
            time.sleep(0.05)
        inode = netns_of(holder.pid)
        yield net, inode
    finally:
        for proc in reversed(net.started):
            stop(proc)
        stop(holder)


def machine_tables() -> str:
    return subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=True
    ).stdout


def uid(host: SandboxHost, user: str) -> int:
    for line in (host.root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2])
    raise AssertionError(f"no {user} on {host.name}")


def last_json(output: str) -> Any:
    """The script's answer: its last line (a login shell may print before it)."""
    return json.loads(output.strip().splitlines()[-1])


def fetch_as_person(net: PrivateNet) -> dict[str, str]:
    """Through the person's own login shell, as after an SSH login."""
    command = "python3 -c " + shlex.quote(FETCH)
    return dict(last_json(net.run("runuser", "-l", MEMBER_A, "-c", command)))


def fetch_as_agents(net: PrivateNet) -> dict[str, str]:
    return dict(last_json(net.run("runuser", "-u", AGENT, "--", "python3", "-c", FETCH)))


def fetch_as_root(net: PrivateNet) -> dict[str, str]:
    return dict(last_json(net.run("python3", "-c", FETCH)))


def snapshot_findings(net: PrivateNet) -> list[str]:
    """Record the namespace's ruleset with the host's script; run the agents' check on it."""
    net.run(SNAPSHOT_SCRIPT)
    return list(last_json(net.run("runuser", "-u", AGENT, "--", AGENT_PYTHON, "-c", CHECK)))


def counted(net: PrivateNet) -> int:
    table = json.loads(net.run("nft", "-j", "list", "table", "inet", "isoloir_metadata"))
    packets = 0
    for item in table["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            packets += expr.get("counter", {}).get("packets", 0)
    return packets


def test_converge_renders_the_guard_but_loads_nothing(site: Site) -> None:
    host = site.host
    assert site.runs[0].returncode == 0, site.runs[0].stdout[-4000:]
    assert "metadata guard rendered to /etc/isoloir-nft/metadata.nft but not loaded" in (
        site.runs[0].stdout
    )
    rule = (host.root / RULE.lstrip("/")).read_text()
    allowed = f"meta skuid != {{ 0, {uid(host, AGENT)} }}"
    assert rule.count(allowed) == 2, rule
    assert (host.root / SNAPSHOT_SCRIPT.lstrip("/")).is_file()
    units = host.root / "etc" / "systemd" / "system"
    assert not (units / "isoloir-metadata-guard.service").exists()
    assert not (units / "isoloir-nft-snapshot.timer").exists()
    assert "isoloir_metadata" not in machine_tables()


def test_a_persons_shell_cannot_reach_the_metadata_stand_in(site: Site) -> None:
    host = site.host
    tables_before = machine_tables()
    snapshots = host.root / SNAPSHOT_DIR
    had_snapshots = snapshots.exists()
    try:
        with private_net(host) as (net, inode):
            net.run("ip", "link", "set", "lo", "up")
            net.run("ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
            net.run("ip", "addr", "add", "fd00:ec2::254/128", "dev", "lo", "nodad")
            stand_in = net.start("python3", "-c", STAND_IN)
            assert stand_in.stdout is not None
            assert stand_in.stdout.readline().strip() == "ready"
            assert netns_of(stand_in.pid) == inode

            ok = dict.fromkeys(ADDRESSES, "200")
            # Without the guard the person reaches it: the refusal below is the guard's.
            assert fetch_as_person(net) == ok
            assert snapshot_findings(net) == [f"host-metadata:{a}" for a in sorted(ADDRESSES)]

            net.run("nft", "-f", RULE)
            refused = fetch_as_person(net)
            assert set(refused) == set(ADDRESSES)
            assert all(v in {"EHOSTUNREACH", "EACCES", "ECONNREFUSED"} for v in refused.values())
            assert counted(net) >= 2
            assert fetch_as_agents(net) == ok
            assert fetch_as_root(net) == ok
            assert snapshot_findings(net) == []
            # The agents read the snapshot; the person cannot.
            net.run("runuser", "-u", AGENT, "--", "test", "-r", SNAPSHOT)
            person_reads = subprocess.run(
                net.argv("runuser", "-u", MEMBER_A, "--", "test", "-r", SNAPSHOT),
                env=ENV,
                capture_output=True,
                timeout=60,
            )
            assert person_reads.returncode == 1
        assert pids_in_netns(inode) == []
    finally:
        if not had_snapshots:
            # The host's own agents must not read the test's ruleset later.
            subprocess.run(["rm", "-rf", "--", str(snapshots)], check=True)
    assert machine_tables() == tables_before
