"""Alerts through real servers on 127.0.0.1.

- aiosmtpd requiring STARTTLS and AUTH, with a certificate made in the test by a
  throw-away CA (cryptography), receives the email; one message per recipient.
- http.server receives the webhook; its HMAC signature is checked.
- Faults: the SMTP server refuses the first K attempts; the daemon (a real
  subprocess) is killed between the spool commit and the send; 100 sightings
  of one finding; a finding that disappears.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from isoloir.alerts.service import AlertService
from isoloir.alerts.spool import Spool, spool_path
from isoloir.alerts.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from isoloir.cli import main
from isoloir.controller.emulator import write_tls_material
from isoloir.controller.sink import MaildirHandler, make_controller
from isoloir.findings import Finding, Severity
from isoloir.policy import load_policies
from isoloir.policy.model import EmailChannel, Policies, Route, Webhook
from isoloir.policy.render import AGENT_CONFIG, write

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "policies"
ELECTION = "exempleville-2027"
SMTP_USER, SMTP_PASSWORD = "isoloir-agent", "mot-de-passe-de-test-fictif"
HOOK_SECRET = b"cle-webhook-de-test-0123456789abcdef"
DEADLINE = 60.0  # seconds to wait for a subprocess; a deadline, not a measurement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def private_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_tls_material(tmp_path_factory.mktemp("smtp-pki"))


@dataclasses.dataclass
class SmtpServer:
    port: int
    maildir: Path
    handler: MaildirHandler

    def messages(self) -> list[email.message.EmailMessage]:
        box = mailbox.Maildir(str(self.maildir), create=False)
        return [
            email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)  # type: ignore[misc]
            for k in sorted(box.keys())
        ]


@pytest.fixture
def smtp(pki: tuple[Path, Path, Path], tmp_path: Path) -> Iterator[SmtpServer]:
    _, cert, key = pki
    maildir = tmp_path / "maildir"
    handler = MaildirHandler(maildir)
    port = free_port()
    controller = make_controller(
        handler,
        "127.0.0.1",
        port,
        tls_cert=str(cert),
        tls_key=str(key),
        credentials=(SMTP_USER, SMTP_PASSWORD),
    )
    controller.start()
    try:
        yield SmtpServer(port, maildir, handler)
    finally:
        controller.stop()


class HookServer:
    """Records POSTs; answers from a script of (status, headers), then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append((dict(self.headers.items()), body))
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/isoloir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    try:
        yield server
    finally:
        server.close()


def make_policies(
    tmp_path: Path,
    pki: tuple[Path, Path, Path],
    smtp_port: int,
    hook_url: str | None = None,
    *,
    password: str = SMTP_PASSWORD,
    security: str = "starttls",
    **alerts_changes: Any,
) -> Policies:
    ca, _, _ = pki
    creds = private_file(
        tmp_path / "smtp.json",
        json.dumps({"username": SMTP_USER, "password": password, "ca_file": str(ca)}).encode(),
    )
    secret = private_file(tmp_path / "hook.key", HOOK_SECRET)
    p = load_policies(EXAMPLE)
    routes = [Route(("cfictive", "bexemple"), ("email",), "medium", ("*",))]
    webhooks: tuple[Webhook, ...] = ()
    if hook_url:
        webhooks = (Webhook("equipe-technique", hook_url, "generic", str(secret)),)
        routes.append(Route((), ("webhook:equipe-technique",), "high", ("*",)))
    alerts = dataclasses.replace(
        p.baseline.alerts,
        email=EmailChannel(
            "127.0.0.1", smtp_port, security, "isoloir@mouvement-exemple.example", str(creds)
        ),
        webhooks=webhooks,
        routes=tuple(routes),
        **alerts_changes,
    )
    return dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, alerts=alerts))


def public_file(n: int = 1) -> Finding:
    return Finding(
        rule_id="s3-public-object",
        severity=Severity.CRITICAL,
        resource=f"s3://mouvement-exemple-{ELECTION}/prospects/liste-{n}.csv",
        message=f"L'objet prospects/liste-{n}.csv est lisible par n'importe qui.",
        election=ELECTION,
        location="eu-west-3",
        remediation="Retirer l'accès public de l'objet et activer le blocage d'accès public.",
        evidence={"rows": 1042, "public_grants": 1},
    )


def addresses(p: Policies) -> set[str]:
    return {p.baseline.person(pid).email for pid in ("cfictive", "bexemple")}


# -- email and webhook -------------------------------------------------------------


def test_email_over_starttls_with_auth_one_message_per_recipient(
    smtp: SmtpServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    p = make_policies(tmp_path, pki, smtp.port)
    svc = AlertService(p, tmp_path / "state")
    svc.process("scan", [public_file()])
    report = svc.flush()
    svc.close()
    assert report.sent == 2 and report.failed == 0
    received = smtp.messages()
    assert len(received) == 2
    assert {m["To"] for m in received} == addresses(p)
    people = p.baseline.people
    for m in received:
        # Delivered to exactly the one address in To; nobody else is visible anywhere.
        assert m["Delivered-To"] == m["To"]
        assert m["Cc"] is None and m["Bcc"] is None
        raw = m.as_string()
        others = {person.email for person in people} - {m["To"]}
        assert not any(addr in raw for addr in others)
        assert m["From"] == "isoloir@mouvement-exemple.example"
        where = public_file().resource
        assert (
            m["Subject"] == f"[Isoloir] Alerte CRITIQUE · {ELECTION} · s3-public-object · {where}"
        )
        assert m["X-Isoloir-Fingerprint"] == public_file().fingerprint
        assert m["X-Isoloir-Severity"] == "critical" and m["Content-Language"] == "fr"
        assert m["Message-ID"].startswith("<isoloir.")
        body = m.get_content()
        assert f"Où : {public_file().resource}" in body
        assert "Quoi : L'objet prospects/liste-1.csv est lisible par n'importe qui." in body
        assert "Comment corriger : Retirer l'accès public" in body
        assert "Depuis : " in body and "rows : 1042" in body


def test_english_and_implicit_tls(pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, cert, key = pki
    handler = MaildirHandler(tmp_path / "maildir")
    port = free_port()
    controller = make_controller(
        handler,
        "127.0.0.1",
        port,
        tls_cert=str(cert),
        tls_key=str(key),
        implicit_tls=True,
        credentials=(SMTP_USER, SMTP_PASSWORD),
    )
    controller.start()
    try:
        p = make_policies(tmp_path, pki, port, security="tls", language="en")
        svc = AlertService(p, tmp_path / "state")
        svc.process("scan", [public_file()])
        assert svc.flush().sent == 2
        svc.close()
    finally:
        controller.stop()
    box = mailbox.Maildir(str(tmp_path / "maildir"), create=False)
    subjects = {
        email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)["Subject"]
        for k in box.keys()
    }
    where = public_file().resource  # short enough to appear whole
    assert subjects == {f"[Isoloir] Alert CRITICAL · {ELECTION} · s3-public-object · {where}"}


def test_webhook_is_signed(
    smtp: SmtpServer, hook: HookServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    p = make_policies(tmp_path, pki, smtp.port, hook.url)
    svc = AlertService(p, tmp_path / "state")
    svc.process("scan", [public_file()])
    assert svc.flush().sent == 3
    svc.close()
    assert len(hook.requests) == 1
    headers, body = hook.requests[0]
    assert headers["Content-Type"].startswith("application/json")
    assert verify(HOOK_SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify(b"wrong key", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    doc = json.loads(body)
    assert doc["fingerprint"] == public_file().fingerprint and doc["severity"] == "critical"
    assert doc["kind"] == "alert" and "Comment corriger" in doc["text"]
    assert not any(addr in body.decode() for addr in addresses(p))


def test_webhook_retry_after_is_honoured(
    smtp: SmtpServer, hook: HookServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    hook.script = [(429, {"Retry-After": "90"}), (503, {})]
    p = make_policies(tmp_path, pki, smtp.port, hook.url)
    clock = Clock()
    svc = AlertService(p, tmp_path / "state", time_source=clock)
    svc.process("scan", [public_file()])
    first = svc.flush()
    assert first.sent == 2 and first.failed == 1 and "HTTP 429" in first.errors[0]
    assert svc.next_due_in() == 90
    clock.t += 89
    assert svc.flush().failed == 0 and len(hook.requests) == 1
    clock.t += 1
    assert svc.flush().failed == 1 and len(hook.requests) == 2  # 503, backoff
    due = svc.next_due_in()
    assert due is not None
    clock.t += due
    assert svc.flush().sent == 1 and len(hook.requests) == 3
    svc.close()


# -- faults --------------------------------------------------------------------------


def test_smtp_refuses_first_attempts_then_exactly_once(
    smtp: SmtpServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    smtp.handler.refuse_first = 3
    p = make_policies(tmp_path, pki, smtp.port)
    clock = Clock()
    svc = AlertService(p, tmp_path / "state", time_source=clock)
    svc.process("scan", [public_file()])
    rounds = 0
    while svc.stats()["pending"]:
        rounds += 1
        assert rounds < 10
        svc.flush()
        due = svc.next_due_in()
        clock.t += due or 0
    assert smtp.handler.refused == 3
    for _ in range(3):
        clock.t += 3600
        svc.flush()
    stats = svc.stats()
    svc.close()
    received = smtp.messages()
    assert len(received) == 2 and {m["To"] for m in received} == addresses(p)
    assert stats["sent"] == 2 and stats["pending"] == 0 and stats["dead"] == 0


def test_wrong_password_keeps_the_alert(
    smtp: SmtpServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    p = make_policies(tmp_path, pki, smtp.port, password="mauvais")
    svc = AlertService(p, tmp_path / "state")
    svc.process("scan", [public_file()])
    report = svc.flush()
    assert report.failed == 2 and all("535" in e for e in report.errors)
    assert svc.stats()["pending"] == 2 and smtp.messages() == []
    svc.close()


def test_same_finding_100_times_one_alert(
    smtp: SmtpServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    p = make_policies(tmp_path, pki, smtp.port)
    clock = Clock()
    svc = AlertService(p, tmp_path / "state", time_source=clock)
    for _ in range(100):
        svc.process("scan", [public_file()])
        svc.flush()
        clock.t += 15 * 60 / 10  # well inside the 24 h re-notify interval
    svc.close()
    assert len(smtp.messages()) == 2


def test_resolved_finding_one_notice(
    smtp: SmtpServer, pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    p = make_policies(tmp_path, pki, smtp.port)
    svc = AlertService(p, tmp_path / "state")
    svc.process("scan", [public_file(1), public_file(2)])
    svc.flush()
    for _ in range(3):
        svc.process("scan", [public_file(2)])
        svc.flush()
    svc.close()
    received = smtp.messages()
    resolved = [m for m in received if m["X-Isoloir-Kind"] == "resolved"]
    assert len(received) == 6 and len(resolved) == 2
    assert {m["To"] for m in resolved} == addresses(p)
    for m in resolved:
        assert m["Subject"] == f"[Isoloir] Résolu · {ELECTION} · s3-public-object"
        assert "liste-1.csv" in m.get_content() and "liste-2.csv" not in m.get_content()


def test_alerts_test_command_reports_each_channel(
    smtp: SmtpServer,
    hook: HookServer,
    pki: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    p = make_policies(tmp_path, pki, smtp.port, hook.url)
    write(p, tmp_path / "rendered")
    config = str(tmp_path / "rendered" / AGENT_CONFIG)
    assert main(["alerts", "test", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "ok     email:cfictive" in out and "ok     webhook:equipe-technique" in out
    assert len(smtp.messages()) == 2 and len(hook.requests) == 1
    assert all(m["X-Isoloir-Kind"] == "test" for m in smtp.messages())
    # A broken channel: the webhook answers 500; the command says so and fails.
    hook.script = [(500, {})]
    assert main(["alerts", "test", "--config", config]) == 1
    out = capsys.readouterr().out
    assert "FAILED webhook:equipe-technique: webhook: HTTP 500" in out
    assert "ok     email:bexemple" in out


def test_alerts_flush_command_delivers_after_an_outage(
    pki: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens yet: the mail server is down
    p = make_policies(tmp_path, pki, port)
    write(p, tmp_path / "rendered")
    args = [
        "--config",
        str(tmp_path / "rendered" / AGENT_CONFIG),
        "--state-dir",
        str(tmp_path / "state"),
    ]
    svc = AlertService(p, tmp_path / "state")
    svc.process("scan", [public_file()])
    report = svc.flush()
    assert report.failed == 2 and all("network error" in e for e in report.errors)
    svc.close()
    _, cert, key = pki
    handler = MaildirHandler(tmp_path / "maildir")
    controller = make_controller(
        handler,
        "127.0.0.1",
        port,
        tls_cert=str(cert),
        tls_key=str(key),
        credentials=(SMTP_USER, SMTP_PASSWORD),
    )
    controller.start()
    try:
        # Not due yet (backoff): nothing sent; --revive-dead is not needed either.
        assert main(["alerts", "flush", *args]) == 0
        assert "sent 0" in capsys.readouterr().out and handler.accepted == 0
        spool = Spool(spool_path(tmp_path / "state"))
        with spool.transaction():
            spool.db.execute("UPDATE outbox SET next_attempt_at = 0")  # time passes
        spool.close()
        assert main(["alerts", "flush", *args]) == 0
        assert "sent 2, failed 0" in capsys.readouterr().out
        assert main(["alerts", "flush", *args]) == 0
        assert "sent 0" in capsys.readouterr().out
    finally:
        controller.stop()
    assert handler.accepted == 2


def test_local_sink_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: tuple[Path, Path, Path]
) -> None:
    handler = MaildirHandler(tmp_path / "maildir")
    port = free_port()
    controller = make_controller(handler, "127.0.0.1", port)  # plain, no auth: local only
    controller.start()
    try:
        p = make_policies(tmp_path, pki, 1)  # the policy's server is never contacted
        monkeypatch.setenv("ISOLOIR_SMTP_SINK", f"127.0.0.1:{port}")
        svc = AlertService(p, tmp_path / "state")
        svc.process("scan", [public_file()])
        assert svc.flush().sent == 2
        svc.close()
    finally:
        controller.stop()
    assert handler.accepted == 2


# -- the daemon killed between commit and send ----------------------------------------

FAKE_JOBS = """
import json, os
from isoloir.findings import Finding

def scan(ctx):
    with open(os.environ["FAKE_FINDINGS"]) as f:
        return [Finding.from_dict(d) for d in json.load(f)]

def nothing(ctx):
    return []
"""


def daemon_env(tmp_path: Path, findings: list[Finding]) -> dict[str, str]:
    jobs_dir = tmp_path / "fakejobs"
    jobs_dir.mkdir(exist_ok=True)
    (jobs_dir / "fake_jobs_alerts.py").write_text(FAKE_JOBS)
    (tmp_path / "findings.json").write_text(json.dumps([f.to_dict() for f in findings]))
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(jobs_dir), str(REPO / "agents")]),
        FAKE_FINDINGS=str(tmp_path / "findings.json"),
        ISOLOIR_JOBS_OVERRIDE=json.dumps(
            {
                "scan": "fake_jobs_alerts:scan",
                "identity": "fake_jobs_alerts:nothing",
                "retention": "fake_jobs_alerts:nothing",
            }
        ),
    )
    env.pop("ISOLOIR_NOW", None)
    return env


def start_sink(pki: tuple[Path, Path, Path], tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    _, cert, key = pki
    auth = private_file(
        tmp_path / "sink-auth.json",
        json.dumps({"username": SMTP_USER, "password": SMTP_PASSWORD}).encode(),
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "isoloir.controller.sink",
            "--maildir",
            str(tmp_path / "maildir"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--auth-file",
            str(auth),
            "--pidfile",
            str(tmp_path / "sink.pid"),
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for(lambda: (tmp_path / "sink.pid").exists(), "the SMTP sink")
    return proc, port


def maildir_count(path: Path) -> int:
    return len(list((path / "new").glob("*"))) if (path / "new").is_dir() else 0


def test_daemon_killed_between_commit_and_send_delivers_once_after_restart(
    pki: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    sink, port = start_sink(pki, tmp_path)
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        p = make_policies(tmp_path, pki, port)
        write(p, tmp_path / "rendered")
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
        env = daemon_env(tmp_path, [public_file()])
        marker = tmp_path / "paused-before-send"
        first = subprocess.Popen(
            cmd,
            env={**env, "ISOLOIR_TEST_PAUSE_BEFORE_SEND": str(marker)},
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        daemons.append(first)
        wait_for(marker.exists, "the daemon to reach the send")
        # Crash the whole service (daemon and its job child) right after the commit.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=DEADLINE)
        spool = Spool(spool_path(state))
        assert spool.stats(time.time())["pending"] == 2
        spool.close()
        assert maildir_count(tmp_path / "maildir") == 0

        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, start_new_session=True)
        daemons.append(second)
        wait_for(lambda: maildir_count(tmp_path / "maildir") >= 2, "the delivery after restart")

        def spool_empty() -> bool:
            s = Spool(spool_path(state))
            try:
                return s.stats(time.time())["pending"] == 0
            finally:
                s.close()

        wait_for(spool_empty, "the spool to record the delivery")
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=DEADLINE)
        assert second.returncode == 0
        events = [json.loads(line)["event"] for line in out.decode().splitlines()]
        assert "alerts delivered" in events and "daemon stopped" in events
        assert maildir_count(tmp_path / "maildir") == 2
        box = mailbox.Maildir(str(tmp_path / "maildir"), create=False)
        tos = sorted(
            email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)["To"]
            for k in box.keys()
        )
        assert tos == sorted(addresses(p))
        # The reader prints what the sink received.
        shown = subprocess.run(
            [sys.executable, "-m", "isoloir.cli", "alerts", "maildir", str(tmp_path / "maildir")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "===== 2 message(s)" in shown and "Subject: [Isoloir] Alerte CRITIQUE" in shown
    finally:
        for d in daemons:
            if d.poll() is None:
                os.killpg(d.pid, signal.SIGKILL)
                d.wait()
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=DEADLINE)
    assert sink.returncode == 0 and not (tmp_path / "sink.pid").exists()
