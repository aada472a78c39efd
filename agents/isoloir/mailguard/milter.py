"""The relay's adapter: Postfix hands each message to the guard over the milter
protocol (docs/mailguard.md, "Relay").

Postfix's smtpd talks to this process through a unix socket (or a 127.0.0.1
port). For each message it collects the SASL login (`{auth_authen}`), the
envelope and the raw message, calls `Guard.evaluate` once at the end of the
message and applies the verdict before Postfix queues anything:

- reject: the verdict's SMTP code and French + English text, message refused;
- accept: suppressed recipients deleted from the envelope, headers added, the
  body replaced when the verdict says so (every recipient dropped: discarded);
- hold: the message goes to Postfix's hold queue (`isoloir mailguard release`
  or `delete` decides);
- unsubscribe: the guard has recorded the sender's opt-out; a message that is
  more than a plain opt-out goes to the DPO as an attachment of a copy handed
  to Postfix's `sendmail` (deferred, 451, when that fails: never lost); the
  short confirmation (if any) goes the same way; the message itself is then
  discarded.

The milter library comes from Debian's python3-milter (module `Milter`).
Logs: one JSON line per message with counts only, never an address, a login,
a subject or a name.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any, Protocol

from isoloir.policy.model import Policies

# Milter result codes (libmilter's SMFIS_*), the values python3-milter uses;
# kept here so the pure part imports without the C module.
CONTINUE, REJECT, DISCARD, ACCEPT, TEMPFAIL = 0, 1, 2, 3, 4
SENDMAIL = "/usr/sbin/sendmail"
BODY_CHUNK = 65536
MAX_REPLY_LINES = 32  # libmilter's smfi_setmlreply limit
MAX_REPLY_LINE = 400  # an SMTP reply line stays far below 512 octets
MAX_BODY_BYTES = 50 * 1024 * 1024  # the guard's own limit (guard.MAX_MESSAGE_BYTES)


class Actions(Protocol):
    """The milter actions available at the end of a message (Milter.Base's)."""

    def setreply(self, rcode: str, xcode: str | None, msg: str, *more: str) -> Any: ...
    def delrcpt(self, rcpt: str) -> Any: ...
    def addheader(self, field: str, value: str, idx: int = -1) -> Any: ...
    def chgheader(self, field: str, idx: int, value: str | None) -> Any: ...
    def replacebody(self, body: bytes) -> Any: ...
    def quarantine(self, reason: str) -> Any: ...


def bare(address: str) -> str:
    """An envelope address without its angle brackets and ESMTP noise, lower-cased."""
    return address.strip().removeprefix("<").removesuffix(">").strip().lower()


@dataclass
class Collected:
    """What one message brought: envelope, login, headers and body (raw bytes)."""

    login: str | None = None
    mail_from: str = ""
    recipients: list[str] = field(default_factory=list)  # as Postfix sent them
    headers: list[bytes] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    client: str | None = None  # the connecting server's address (rate limits only)
    body_bytes: int = 0

    def add_body(self, chunk: bytes, limit: int) -> None:
        """Keep the body up to one byte over `limit`: enough for the guard to refuse
        it as too large, never the whole of a huge message in memory (N15)."""
        room = limit + 1 - self.body_bytes
        if room > 0:
            part = bytes(chunk[:room])
            self.body.append(part)
            self.body_bytes += len(part)

    def add_header(self, name: str, value: bytes) -> None:
        # Postfix sends folded values with bare LF; the message is CRLF.
        text = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.headers.append(name.encode("ascii", "replace") + b": " + text + b"\r\n")

    def header_count(self, name: str) -> int:
        prefix = name.lower().encode("ascii", "replace") + b":"
        return sum(1 for h in self.headers if h.lower().startswith(prefix))

    def message(self) -> bytes:
        return b"".join(self.headers) + b"\r\n" + b"".join(self.body)

    def reset_message(self) -> None:
        """A new MAIL FROM on the same connection: forget the previous message."""
        self.mail_from = ""
        self.recipients.clear()
        self.headers.clear()
        self.body.clear()
        self.body_bytes = 0


def reply_lines(text: str) -> list[str]:
    """The verdict's text as SMTP reply lines: no '%' surprises, bounded length and count."""
    lines: list[str] = []
    for raw in text.splitlines() or [""]:
        line = " ".join(raw.replace("%", "%%").split())
        while len(line) > MAX_REPLY_LINE:
            cut = line.rfind(" ", 0, MAX_REPLY_LINE)
            cut = cut if cut > 0 else MAX_REPLY_LINE
            lines.append(line[:cut])
            line = line[cut:].lstrip()
        if line:
            lines.append(line)
    return lines[:MAX_REPLY_LINES] or ["Refused by the party's mail guard"]


def apply(verdict: Any, collected: Collected, ctx: Actions) -> tuple[int, int]:
    """Apply a verdict through the milter actions; returns (milter code, dropped count)."""
    action = verdict.action
    if action == "reject":
        code = int(verdict.smtp_code) if verdict.smtp_code else 550
        lines = reply_lines(verdict.text)
        ctx.setreply(str(code), verdict.smtp_status or None, lines[0], *lines[1:])
        return (TEMPFAIL if 400 <= code < 500 else REJECT), 0
    if action == "unsubscribe":
        return DISCARD, 0
    dropped = {bare(a) for a in verdict.drop}
    kept = 0
    removed = 0
    for rcpt in collected.recipients:
        if bare(rcpt) in dropped:
            ctx.delrcpt(rcpt)
            removed += 1
        else:
            kept += 1
    if collected.recipients and kept == 0:
        return DISCARD, removed
    for name in getattr(verdict, "remove_headers", ()):
        # Every occurrence, the last first (indexes count occurrences from 1).
        for idx in range(collected.header_count(name), 0, -1):
            ctx.chgheader(name, idx, None)
    for name, value in verdict.add_headers:
        ctx.addheader(name, value)
    if verdict.new_body is not None:
        body = bytes(verdict.new_body)
        for start in range(0, max(len(body), 1), BODY_CHUNK):
            ctx.replacebody(body[start : start + BODY_CHUNK])
    if action == "hold":
        ctx.quarantine(reply_lines(verdict.text)[0][:200])
    return ACCEPT, removed


def log_line(verdict: Any, collected: Collected, dropped: int, queue_id: str | None) -> str:
    """One JSON line with counts only (no address, login, subject or name)."""
    counts = {str(k): int(v) for k, v in dict(getattr(verdict, "counts", {}) or {}).items()}
    return json.dumps(
        {
            "event": "mail decision",
            "queue_id": queue_id or "",
            "action": verdict.action,
            "rule": verdict.rule,
            "recipients": len(collected.recipients),
            "dropped": dropped,
            "counts": counts,
        },
        sort_keys=True,
    )


def log(line: str) -> None:
    print(line, flush=True)


# -- the guard's runtime --------------------------------------------------------------


class Runtime:
    """Policies, keys and state shared by every connection (one per process).

    The suppression list (SQLite) is opened per thread: libmilter runs the
    callbacks in its own (C) threads. They are keyed by thread id, not
    `threading.local`: Python gives a foreign thread a fresh thread state at
    each callback, and a later one may get a dead one's local data.
    """

    def __init__(
        self,
        policies: Policies,
        state_dir: Path,
        hmac_key: bytes | None,
        *,
        sendmail: Sequence[str] = (SENDMAIL,),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        authserv_id: str | None = None,
    ) -> None:
        self.policies = policies
        self.state_dir = state_dir
        self.hmac_key = hmac_key
        self.sendmail = tuple(sendmail)
        self.clock = clock
        self.authserv_id = authserv_id or None
        self.unsubscribe_address = policies.baseline.organisation.unsubscribe.lower()
        self._stores: dict[int, Any] = {}
        self._lock = threading.Lock()

    def unsubscribe_only(self, recipients: Sequence[str]) -> bool:
        """Every recipient is the unsubscribe address: the body is never needed."""
        return bool(recipients) and all(bare(r) == self.unsubscribe_address for r in recipients)

    def suppression(self) -> Any:
        """This thread's copy of the suppression list (the agents' export, opened on
        first use), or None without a key."""
        if self.hmac_key is None:
            return None
        thread = threading.get_ident()
        with self._lock:
            store = self._stores.get(thread)
        if store is None:
            from isoloir.mailguard.lookup import Snapshot

            store = Snapshot(self.state_dir, self.hmac_key)
            with self._lock:
                self._stores[thread] = store
        return store

    def evaluate(self, collected: Collected) -> Any:
        from isoloir.mailguard.guard import Envelope, Guard

        now = self.clock()
        guard = Guard(
            self.policies,
            suppression=self.suppression(),
            today=now.date(),
            state_dir=self.state_dir,
            now=self.clock,
            authserv_id=self.authserv_id,
        )
        envelope = Envelope(
            login=collected.login,
            mail_from=bare(collected.mail_from),
            recipients=tuple(bare(r) for r in collected.recipients),
            client=collected.client,
        )
        return guard.evaluate(envelope, collected.message())

    def record(self, verdict: Any) -> None:
        from isoloir.mailguard import decisions

        decisions.record(self.state_dir, verdict, now=self.clock())

    def record_held(self, verdict: Any, queue_id: str) -> None:
        """Keep the held message's queue id: the scan alerts until it is settled."""
        from isoloir.mailguard import decisions

        decisions.record_held(self.state_dir, queue_id, verdict, now=self.clock())

    def send(self, reply: EmailMessage) -> bool:
        """The confirmation through Postfix's sendmail: null sender (RFC 3834).

        The recipient comes from the To header (-t), never from the command
        line, which the journal records with every line a process logs.
        """
        run = subprocess.run(  # noqa: S603 - fixed argv
            [*self.sendmail, "-i", "-t", "-f", "<>"],
            input=reply.as_bytes(policy=SMTP_POLICY),
            capture_output=True,
            timeout=30,
            check=False,
        )
        if run.returncode != 0:
            log(json.dumps({"event": "message not sent", "exit": run.returncode}))
        return run.returncode == 0


def process(runtime: Runtime, collected: Collected, ctx: Actions, queue_id: str | None) -> int:
    """The end of one message: evaluate, apply, record, log; the milter code."""
    verdict = runtime.evaluate(collected)
    forward = getattr(verdict, "forward", None)
    if verdict.action == "unsubscribe" and forward is not None and not runtime.send(forward):
        # The DPO's copy is the only one kept: the sender's server tries again.
        ctx.setreply(
            "451", "4.3.0",
            "Erreur temporaire, reessayez plus tard / Temporary error, try again later",
        )  # fmt: skip
        log(json.dumps({"event": "copy for the DPO not sent: deferred"}))
        return TEMPFAIL
    reply = getattr(verdict, "reply", None)
    if verdict.action == "unsubscribe" and reply is not None:
        runtime.send(reply)
    code, dropped = apply(verdict, collected, ctx)
    runtime.record(verdict)
    if verdict.action == "hold" and queue_id:
        runtime.record_held(verdict, queue_id)
    log(log_line(verdict, collected, dropped, queue_id))
    return code


# -- python3-milter glue --------------------------------------------------------------


def make_milter_class(runtime: Runtime) -> type:
    """The Milter.Base subclass bound to `runtime` (imports Debian's Milter here)."""
    import Milter

    class GuardMilter(Milter.Base):  # type: ignore[misc]
        def __init__(self) -> None:
            self.collected = Collected()

        def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
            address = hostaddr[0] if isinstance(hostaddr, tuple) and hostaddr else None
            self.collected.client = str(address) if address else None
            return CONTINUE

        def envfrom(self, mail_from: str, *params: str) -> int:
            self.collected.reset_message()
            self.collected.mail_from = mail_from
            self.collected.login = self.getsymval("{auth_authen}") or None
            return CONTINUE

        def envrcpt(self, to: str, *params: str) -> int:
            self.collected.recipients.append(to)
            return CONTINUE

        @Milter.decode("bytes")  # type: ignore[untyped-decorator]
        def header(self, name: str, value: bytes) -> int:
            self.collected.add_header(name, value)
            return CONTINUE

        def body(self, chunk: bytes) -> int:
            # An opt-out's body is read too (review E2): a request in it goes to the DPO.
            self.collected.add_body(chunk, MAX_BODY_BYTES)
            return CONTINUE

        def eom(self) -> int:
            try:
                return process(runtime, self.collected, self, self.getsymval("i"))
            except Exception as exc:  # noqa: BLE001 - any failure must defer, never pass
                log(json.dumps({"event": "guard error", "error": type(exc).__name__}))
                self.setreply(
                    "451",
                    "4.3.0",
                    "Erreur temporaire du controle du message, reessayez plus tard / "
                    "Temporary error while checking the message, try again later",
                )
                return TEMPFAIL
            finally:
                self.collected.reset_message()

        def abort(self) -> int:
            self.collected.reset_message()
            return CONTINUE

        def close(self) -> int:
            return CONTINUE

    return GuardMilter


MILTER_FLAGS_NAMES = ("ADDHDRS", "CHGHDRS", "CHGBODY", "DELRCPT", "QUARANTINE")


def serve(runtime: Runtime, socket: str, timeout: int = 600) -> None:
    """Run the milter on `socket` (unix:/path or inet:PORT@127.0.0.1) until stopped."""
    import Milter

    check_socket(socket)
    os.umask(0o007)  # the unix socket: the guard's user and Postfix's group only
    flags = 0
    for name in MILTER_FLAGS_NAMES:
        flags |= getattr(Milter, name)
    Milter.factory = make_milter_class(runtime)
    Milter.set_flags(flags)
    log(json.dumps({"event": "mail guard listening", "socket": socket}))
    Milter.runmilter("isoloir-mailguard", socket, timeout)
    log(json.dumps({"event": "mail guard stopped"}))


def check_socket(socket: str) -> None:
    """unix:/absolute/path, or inet:PORT@127.x.y.z (loopback only)."""
    kind, _, where = socket.partition(":")
    if kind in ("unix", "local") and where.startswith("/"):
        return
    if kind == "inet":
        port, _, host = where.partition("@")
        if port.isdigit() and host.startswith("127."):
            return
    raise ValueError(
        f"milter socket {socket!r}: use unix:/path or inet:PORT@127.0.0.1 (loopback only)"
    )


def load_runtime(
    config: Path, state_dir: Path, secrets_dir: Path, authserv_id: str | None = None
) -> Runtime:
    """The runtime from the rendered policies and the retention HMAC key."""
    from isoloir.policy.loader import load_rendered
    from isoloir.retention import keys

    policies = load_rendered(config)
    key = keys.hmac_key(secrets_dir)
    return Runtime(policies, state_dir, key, authserv_id=authserv_id)
