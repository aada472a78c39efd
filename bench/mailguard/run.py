"""The relay's throughput with the mail guard, against Postfix alone, and the
guard's memory.

    sudo .venv/bin/python bench/mailguard/run.py --out DIR [--messages 300] [--clients 4]

Boots a sandbox host (needs root, like the host tests), converges
playbooks/site.yml on the example policies with the relay's upstream pointed
at a counting SMTP sink on 127.0.0.1, then sends the same campaign messages
(Bcc, with the transparency notice, 3 recipients each) through the real
Postfix twice: with the guard (smtpd_milters set), then with `smtpd_milters`
empty (Postfix alone). Each run: messages/s accepted by the relay
(submission) and delivered at the sink (end to end). The guard's peak RSS
(VmHWM of its process) and CPU time per message. Writes DIR/mailguard.json. Goals: with the guard at
least half of Postfix alone's throughput; RSS at most 60 MB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "agents"))

from aiosmtpd.controller import Controller  # noqa: E402

from isoloir import sandbox  # noqa: E402
from isoloir.controller.inventory import build_wheelhouse  # noqa: E402

LOGIN = "dmodele"  # a member of the example election
SENDER = "dina.modele@mouvement-exemple.example"  # the login's own address (N16)
PARTY = "mouvement-exemple.example"


class Counter:
    """The sink: an aiosmtpd server in its own process (the senders' threads do
    not share its interpreter) that counts delivered recipients, keeps nothing."""

    def __init__(self, port: int) -> None:
        self._count = multiprocessing.Value("q", 0)
        self._stop = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=self._serve, args=(port, self._count, self._stop), daemon=True
        )
        self._process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the counting sink did not start")

    @property
    def recipients(self) -> int:
        return int(self._count.value)

    @staticmethod
    def _serve(port: int, count: Any, stop: Any) -> None:
        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                with count.get_lock():
                    count.value += len(envelope.rcpt_tos)
                return "250 2.0.0 Counted"

        # A fixed banner name: without it aiosmtpd looks the machine's name up (getfqdn)
        # at every connection, which can take seconds.
        controller = Controller(
            Handler(), hostname="127.0.0.1", port=port, server_hostname="isoloir-bench-sink"
        )
        controller.start()
        stop.wait()
        controller.stop()

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def converge(host: sandbox.SandboxHost, work: Path, sink_port: int) -> None:
    policies = work / "policies"
    shutil.copytree(REPO / "policies", policies)
    render = work / "render"
    subprocess.run(
        [sys.executable, "-m", "isoloir.cli", "policy", "render", "--policies", str(policies),
         "--out", str(render)],
        check=True, capture_output=True,
    )  # fmt: skip
    (work / "inventory.json").write_text(json.dumps(sandbox.inventory([host])))
    test_vars = {
        "agents_wheelhouse": str(build_wheelhouse(work / "wheelhouse")),
        "agents_config_src": str(render / "agent" / "agent.json"),
        "mail_guard_relayhost": f"[127.0.0.1]:{sink_port}",
        "mail_guard_upstream_tls_level": "may",
    }
    (work / "vars.json").write_text(json.dumps(test_vars))
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "inventory.json"),
         "-e", f"@{render / 'ansible' / 'isoloir_vars.json'}", "-e", f"@{work / 'vars.json'}",
         str(REPO / "playbooks" / "site.yml")],
        capture_output=True, text=True, cwd=REPO / "playbooks",
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg")),
    )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"converge failed:\n{run.stdout[-3000:]}")


def campaign(n: int) -> tuple[EmailMessage, list[str]]:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = SENDER
    msg["Subject"] = f"Réunion publique {n}"
    msg["List-Unsubscribe"] = "<mailto:desinscription@mouvement-exemple.example>"
    msg.set_content(
        "Bonjour,\nRéunion publique jeudi à 19 h.\n--\nMessage de Mouvement Exemple pour "
        "l'élection Municipale d'Exempleville 2027. Votre adresse vient de la liste "
        "électorale. Désinscription : desinscription@mouvement-exemple.example\n"
    )
    return msg, [f"bench{n:05d}-{i}@electeurs-bench.example" for i in range(3)]


def send_batch(address: str, password: str, context: ssl.SSLContext, numbers: range) -> int:
    import smtplib

    sent = 0
    with smtplib.SMTP(address, 587, timeout=120) as client:
        client.starttls(context=context)
        client.login(LOGIN, password)
        for n in numbers:
            msg, rcpts = campaign(n)
            if not client.send_message(msg, msg["From"], rcpts):
                sent += 1
    return sent


def measure(
    host: sandbox.SandboxHost, counter: Counter, password: str, messages: int, clients: int
) -> dict[str, float]:
    context = ssl.create_default_context(cafile=str(host.root / "etc/postfix/isoloir-tls/cert.pem"))
    context.check_hostname = False
    before = counter.recipients
    per = messages // clients
    batches = [range(i * per, (i + 1) * per) for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        accepted = sum(pool.map(lambda b: send_batch(host.address, password, context, b), batches))
    submitted = time.perf_counter() - start
    want = before + accepted * 3
    deadline = time.monotonic() + 600
    while counter.recipients < want and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered = time.perf_counter() - start
    return {
        "messages": accepted,
        "submission_per_s": round(accepted / submitted, 1),
        "end_to_end_per_s": round(accepted / delivered, 1),
        "delivered_recipients": counter.recipients - before,
    }


MILTER = "unix:/isoloir-mailguard/milter.sock"


def run_mode(
    host: sandbox.SandboxHost, counter: Counter, password: str, args: Any, milters: str
) -> dict[str, float]:
    """Set smtpd_milters, reload Postfix, warm up (its processes and connection
    cache start anew after a reload), then measure."""
    host.chroot("postconf", "-e", f"smtpd_milters = {milters}")
    host.chroot("systemctl", "reload", "postfix@-.service")
    time.sleep(2)
    measure(host, counter, password, args.clients * 10, args.clients)
    time.sleep(2)
    return measure(host, counter, password, args.messages, args.clients)


def guard_pid(host: sandbox.SandboxHost) -> int:
    inner = host.chroot("systemctl", "show", "-p", "MainPID", "--value", "isoloir-mailguard")
    return host.machine_pid(int(inner.stdout.strip()))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def guard_peak_rss_mb(host: sandbox.SandboxHost) -> float:
    pid = guard_pid(host)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        print("bench/mailguard: needs root (the sandbox host); nothing measured", file=sys.stderr)
        (out / "mailguard.json").write_text(json.dumps({"skipped": "needs root"}) + "\n")
        return 0
    port = free_port()
    counter = Counter(port)
    work_dir = sandbox.WORK_DIR / f"bench-mailguard-{os.getpid()}"
    host = None
    try:
        with tempfile.TemporaryDirectory(prefix="isoloir-bench-mail-") as tmp:
            host = sandbox.up("bench-mail", work_dir=work_dir)
            converge(host, Path(tmp), port)
            password = "Banc-" + os.urandom(9).hex() + "9a"
            hashed = subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"], input=password, text=True,
                capture_output=True, check=True,
            ).stdout.strip()  # fmt: skip
            host.chroot("usermod", "-p", hashed, LOGIN)
            cpu_before = cpu_seconds(guard_pid(host))
            guard = run_mode(host, counter, password, args, MILTER)
            guard_messages = args.clients * 10 + guard["messages"]  # warm-up included
            cpu_ms = (cpu_seconds(guard_pid(host)) - cpu_before) * 1000 / guard_messages
            rss = guard_peak_rss_mb(host)
            alone = run_mode(host, counter, password, args, "")
    finally:
        if host is not None:
            sandbox.down(host)
        # sandbox.down removed the tree (after its mounts); only the empty parent is left.
        if work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()
        counter.stop()
    ratio = round(guard["end_to_end_per_s"] / alone["end_to_end_per_s"], 2)
    result = {
        "bench": "mailguard",
        "with_guard": guard,
        "postfix_alone": alone,
        "ratio_end_to_end": ratio,
        "ratio_submission": round(guard["submission_per_s"] / alone["submission_per_s"], 2),
        "guard_peak_rss_mb": rss,
        "guard_cpu_ms_per_message": round(cpu_ms, 1),
        "goals": {"ratio_min": 0.5, "rss_max_mb": 60},
        "met": ratio >= 0.5 and rss <= 60,
        "clients": args.clients,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    (out / "mailguard.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
