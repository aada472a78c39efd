"""A local SMTP server that keeps what it receives in a maildir (local target, tests).

    python -m isoloir.controller.sink --maildir DIR --host 127.0.0.1 --port N \
        [--tls-cert CERT --tls-key KEY [--implicit-tls]] [--auth-file FILE] [--pidfile FILE]

It listens on a loopback address only. With a certificate it offers STARTTLS
and requires it (or speaks TLS from the first byte with --implicit-tls); with an
auth file (the same root-only JSON as the agent's SMTP credentials) it requires
AUTH after TLS. Every message is stored once per envelope recipient with a
`Delivered-To` header, as a real mail server would deliver it. SIGTERM stops it
and removes the pidfile. Read the maildir with `isoloir alerts maildir DIR`.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import hmac
import http.server
import ipaddress
import json
import mailbox
import os
import signal
import ssl
import sys
import threading
import time
import warnings
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from isoloir.alerts.secrets import read_smtp_credentials


def received(maildir: Path, subject_part: str) -> dict[str, EmailMessage]:
    """The messages of a sink's maildir whose subject holds `subject_part`, by the
    recipient they were delivered to (Delivered-To)."""
    out: dict[str, EmailMessage] = {}
    for _, raw in mailbox.Maildir(str(maildir), create=False).items():
        msg = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
        if subject_part in str(msg.get("Subject", "")):
            out[str(msg["Delivered-To"]).strip()] = msg
    return out


class MaildirHandler:
    """aiosmtpd handler: store each message in a maildir; optionally refuse the first K."""

    def __init__(self, maildir: Path, *, refuse_first: int = 0) -> None:
        self.maildir = maildir
        # Maildir(create=True) makes tmp/new/cur only when the folder itself is new.
        for sub in ("tmp", "new", "cur"):
            (Path(maildir) / sub).mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(maildir), create=True)
        self.refuse_first = refuse_first
        self.refused = 0
        self.accepted = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.refused < self.refuse_first:
                self.refused += 1
                return "451 4.3.0 Temporary failure, try again later"
            raw = envelope.original_content or envelope.content or b""
            if isinstance(raw, str):
                raw = raw.encode()
            for rcpt in envelope.rcpt_tos:
                self.box.add(f"Delivered-To: {rcpt}\r\n".encode() + raw)
            self.accepted += 1
        return "250 2.0.0 Stored"


def _authenticator(username: str, password: str) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, username.encode()) and hmac.compare_digest(
            auth_data.password, password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SystemExit(f"refusing to listen on {host}: loopback addresses only")


def make_controller(
    handler: MaildirHandler,
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    implicit_tls: bool = False,
    credentials: tuple[str, str] | None = None,
) -> Controller:
    """An aiosmtpd controller (not started) for the given security settings."""
    _check_loopback(host)
    kwargs: dict[str, Any] = {"hostname": host, "port": port, "server_hostname": "isoloir-sink"}
    if tls_cert and tls_key:
        context = server_tls_context(tls_cert, tls_key)
        if implicit_tls:
            kwargs["ssl_context"] = context
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        else:
            kwargs.update(tls_context=context, require_starttls=True)
    if credentials is not None:
        # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the whole
        # connection is already encrypted, so AUTH may be offered at once.
        kwargs.update(
            authenticator=_authenticator(*credentials),
            auth_required=True,
            auth_require_tls=not implicit_tls,
        )
    return Controller(handler, **kwargs)


class _WebhookReceiver(http.server.BaseHTTPRequestHandler):
    """Stores each POSTed webhook (headers + JSON body) as one file."""

    directory: Path

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
        body = self.rfile.read(length)
        record = {
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": body.decode("utf-8", "replace"),
        }
        name = f"{time.time_ns()}.json"
        (self.directory / name).write_text(json.dumps(record, ensure_ascii=False) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def start_webhook_sink(host: str, port: int, directory: Path) -> http.server.HTTPServer:
    _check_loopback(host)
    directory.mkdir(parents=True, exist_ok=True)
    handler = type("Receiver", (_WebhookReceiver,), {"directory": directory})
    server = http.server.HTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="webhook-sink", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoloir.controller.sink", description=__doc__)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth-file", help="root-only JSON {username, password}")
    parser.add_argument("--pidfile", help="default: <maildir>/sink.pid")
    parser.add_argument("--webhook-port", type=int, help="also receive webhooks over HTTP")
    parser.add_argument("--webhook-dir", help="where received webhooks are stored")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    credentials = None
    if args.auth_file:
        creds = read_smtp_credentials(args.auth_file)
        credentials = (creds.username, creds.password)
    maildir = Path(args.maildir)
    handler = MaildirHandler(maildir)
    controller = make_controller(
        handler,
        args.host,
        args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        implicit_tls=args.implicit_tls,
        credentials=credentials,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    if args.webhook_port:
        hooks = Path(args.webhook_dir) if args.webhook_dir else maildir.parent / "webhooks"
        start_webhook_sink(args.host, args.webhook_port, hooks)
    pidfile = Path(args.pidfile) if args.pidfile else maildir / "sink.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    tls = "implicit" if args.implicit_tls else ("starttls" if args.tls_cert else "none")
    print(
        json.dumps(
            {
                "event": "sink listening",
                "host": args.host,
                "port": args.port,
                "tls": tls,
                "auth": credentials is not None,
                "maildir": str(maildir),
            }
        ),
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        controller.stop()
        pidfile.unlink(missing_ok=True)
    print(json.dumps({"event": "sink stopped", "messages": handler.accepted}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
