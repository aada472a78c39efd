"""The converged sandbox host shared by the host tests: `site`, one per session.

One converge (and a second, to prove idempotence) on the first of two sandbox
hosts; tests/integration/test_hosts.py and test_host_systemd.py both use it, so
the session converges once. Two elections: A (exempleville-2027: cfictive,
dmodele) and B (autreville-2027: ptest). All people and secrets are fake.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from isoloir.controller.inventory import build_wheelhouse
from isoloir.controller.sandbox import SandboxHost, inventory
from isoloir.controller.sink import MaildirHandler, make_controller

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ELECTION_A = "exempleville-2027"
ELECTION_B = "autreville-2027"
MEMBER_A = "dmodele"  # member of A only
MEMBER_B = "ptest"  # member of B only
REMOVED = "cfictive"  # removed from the policies by the last test


@dataclass
class MailSink:
    """The relay's upstream in the sandbox: aiosmtpd on 127.0.0.1, a maildir."""

    port: int
    maildir: Path
    handler: MaildirHandler


@pytest.fixture(scope="session")
def mail_sink(tmp_path_factory) -> Iterator[MailSink]:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    maildir = tmp_path_factory.mktemp("mail-sink") / "maildir"
    handler = MaildirHandler(maildir)
    controller = make_controller(handler, "127.0.0.1", port)
    controller.start()
    try:
        yield MailSink(port=port, maildir=maildir, handler=handler)
    finally:
        controller.stop()


@dataclass
class Site:
    hosts: list[SandboxHost]
    workdir: Path
    render: Path
    vars_file: Path
    test_vars: dict[str, object]
    inventory: Path
    runs: list[subprocess.CompletedProcess[str]]
    mail_sink: MailSink | None = None

    @property
    def host(self) -> SandboxHost:
        return self.hosts[0]

    def playbook(self, *extra: str) -> subprocess.CompletedProcess[str]:
        test_vars = self.workdir / "test_vars.json"
        test_vars.write_text(json.dumps(self.test_vars))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        )
        return subprocess.run(
            [
                str(ANSIBLE_PLAYBOOK),
                "-i",
                str(self.inventory),
                "-e",
                f"@{self.vars_file}",
                "-e",
                f"@{test_vars}",
                *extra,
                str(REPO / "playbooks" / "site.yml"),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO / "playbooks",
        )


def recap(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    out = {}
    for line in run.stdout.splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
        if match:
            out[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return out


def changed_tasks(stdout: str) -> list[str]:
    tasks, current = [], ""
    for line in stdout.splitlines():
        if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
            current = line.split("[", 1)[1].split("]", 1)[0]
        elif line.startswith("changed:") and current not in tasks:
            tasks.append(current)
    return tasks


def render_policies(workdir: Path) -> Path:
    """The example policies plus a second election B, rendered by `isoloir policy render`."""
    policies = workdir / "policies"
    shutil.copytree(REPO / "policies", policies)
    a = (policies / "elections" / f"{ELECTION_A}.yml").read_text()
    b = re.sub(r"(?m)^id: .*$", f"id: {ELECTION_B}", a)
    b = re.sub(r"(?m)^label: .*$", "label: Municipale d'Autreville 2027", b)
    b = re.sub(r"(?m)^members: .*$", f"members: [{MEMBER_B}]", b)
    (policies / "elections" / f"{ELECTION_B}.yml").write_text(b)
    out = workdir / "render"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "isoloir.cli",
            "policy",
            "render",
            "--policies",
            str(policies),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


@pytest.fixture(scope="session")
def site(sandbox_factory, tmp_path_factory, mail_sink) -> Site:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("hosts")
    # Two hosts run at once; the converge runs on the first only (keeps the
    # session short), the second proves a separate address, sshd and tree.
    hosts = [sandbox_factory("isoloir-a"), sandbox_factory("isoloir-b")]
    render = render_policies(workdir)
    vars_file = render / "ansible" / "isoloir_vars.json"
    rendered = json.loads(vars_file.read_text())
    elections = {e["id"]: e["members"] for e in rendered["isoloir_elections"]}
    assert elections[ELECTION_A] == ["cfictive", MEMBER_A]
    assert elections[ELECTION_B] == [MEMBER_B]
    people = rendered["isoloir_people"]
    keys = workdir / "keys"
    keys.mkdir()
    for person in people:
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                person["id"],
                "-f",
                str(keys / person["id"]),
            ],
            check=True,
        )
        person["ssh_keys"] = [(keys / f"{person['id']}.pub").read_text().strip()]
    inv = workdir / "inventory.json"
    inv.write_text(json.dumps(inventory(hosts[:1])))
    s = Site(
        hosts=hosts,
        workdir=workdir,
        render=render,
        vars_file=vars_file,
        test_vars={
            "isoloir_people": people,
            "agents_wheelhouse": str(build_wheelhouse(workdir / "wheelhouse")),
            "agents_config_src": str(render / "agent" / "agent.json"),
            # The mail relay hands accepted mail to the session's sink (plain SMTP).
            "mail_guard_relayhost": f"[127.0.0.1]:{mail_sink.port}",
            "mail_guard_upstream_tls_level": "may",
        },
        inventory=inv,
        runs=[],
        mail_sink=mail_sink,
    )
    s.runs.append(s.playbook())
    if s.runs[0].returncode == 0:
        s.runs.append(s.playbook())
    return s
