"""`isoloir mailguard`: the relay's guard and its hold queue (docs/mailguard.md).

    isoloir mailguard serve [--socket unix:/path | inet:PORT@127.0.0.1]
    isoloir mailguard test --host ADDR --login ID [--password-file F] [--cafile CERT]
    isoloir mailguard held                 # the hold queue: ids and counts only
    isoloir mailguard release QUEUEID      # deliver a held message now
    isoloir mailguard delete QUEUEID       # destroy a held message

`release`, `delete` and `held` run Postfix's own tools (postsuper, postqueue)
on the relay host, as root.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from isoloir import clock, runtime

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
DEFAULT_SOCKET = "unix:/var/spool/postfix/isoloir-mailguard/milter.sock"
POSTSUPER = "/usr/sbin/postsuper"
POSTQUEUE = "/usr/sbin/postqueue"
QUEUE_ID = re.compile(r"^[0-9A-Za-z]{5,32}$")
TEST_DOMAIN = "isoloir-test.example"


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


# -- serve ----------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from isoloir.mailguard import milter
    from isoloir.policy.loader import PolicyError
    from isoloir.retention.keys import SecretError

    try:
        milter.check_socket(args.socket)
        run = milter.load_runtime(
            runtime.config_path(args.config),
            runtime.state_dir(args.state_dir),
            runtime.secrets_dir(),
            authserv_id=args.authserv_id or os.environ.get("ISOLOIR_MAIL_AUTHSERV_ID") or None,
        )
    except (ValueError, OSError, PolicyError, SecretError) as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    try:
        import Milter  # noqa: F401 - Debian's python3-milter, checked before serving
    except ImportError:
        return fail(
            "the Milter module (Debian package python3-milter) is not importable from this "
            "Python; see docs/mailguard.md, Relay"
        )
    try:
        milter.serve(run, args.socket)
    except Exception as exc:  # noqa: BLE001 - libmilter's errors (socket, threads), one line
        return fail(f"cannot serve the milter on {args.socket}: {exc}")
    return EXIT_OK


# -- sync: the guard's copy of the suppression list ----------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    """Export the suppression list's digests for the guard (run as the agents' user)."""
    from isoloir.mailguard import lookup
    from isoloir.retention import keys
    from isoloir.retention.keys import SecretError
    from isoloir.retention.suppression import SuppressionError

    state = runtime.state_dir(args.state_dir)
    if not (state / "mailguard").is_dir():
        return fail(f"{state / 'mailguard'} does not exist (the mail_guard role makes it)")
    try:
        entries = lookup.export(state, keys.hmac_key(runtime.secrets_dir()))
    except (OSError, SecretError, SuppressionError) as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    print(f"exported {entries} suppression entries for the mail guard")
    return EXIT_OK


# -- the hold queue -------------------------------------------------------------------


def _queue_id(value: str) -> str:
    if not QUEUE_ID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Postfix queue id")
    return value


class QueueError(RuntimeError):
    """Postfix's queue could not be read or changed; the message says why, in one line."""


def _postfix(tool: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a Postfix tool; QueueError when Postfix is not installed here."""
    if not Path(tool).exists():
        raise QueueError(
            f"{tool} is missing: Postfix is not installed here; run this on the relay host"
        )
    try:
        return subprocess.run([tool, *argv], capture_output=True, text=True, check=False)  # noqa: S603
    except OSError as exc:
        raise QueueError(f"cannot run {tool}: {exc.strerror}") from None


def _reason(run: subprocess.CompletedProcess[str]) -> str:
    """Postfix's own words (its last stderr line), without control characters."""
    lines = [ln for ln in (run.stderr or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else f"exit status {run.returncode}"
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def held_messages(postqueue: str | None = None) -> list[dict[str, Any]]:
    """The hold queue from `postqueue -j`: id, arrival, size, recipient count (no address).

    QueueError (one line, Postfix's reason) when the queue cannot be read."""
    run = _postfix(postqueue or POSTQUEUE, ["-j"])
    if run.returncode != 0:
        raise QueueError(f"postqueue -j failed: {_reason(run)}")
    out = []
    for number, line in enumerate(run.stdout.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise QueueError(f"postqueue -j: line {number} is not JSON") from None
        if not isinstance(entry, dict):
            raise QueueError(f"postqueue -j: line {number} is not a queue entry")
        if entry.get("queue_name") != "hold":
            continue
        try:
            out.append(
                {
                    "queue_id": str(entry.get("queue_id", "")),
                    "arrival_time": int(entry.get("arrival_time", 0)),
                    "size": int(entry.get("message_size", 0)),
                    "recipients": len(entry.get("recipients", [])),
                }
            )
        except (TypeError, ValueError):
            raise QueueError(f"postqueue -j: line {number} is not a queue entry") from None
    return out


def _why_held(state: Path) -> dict[str, Any]:
    """The guard's record of each held message (election, counts), by queue id."""
    from isoloir.mailguard import decisions

    try:
        return {h.queue_id: h for h in decisions.open_holds(state)}
    except Exception:  # noqa: BLE001 - the listing works without the guard's record
        return {}


def cmd_held(args: argparse.Namespace) -> int:
    try:
        held = held_messages()
    except QueueError as exc:
        return fail(str(exc))
    why = _why_held(runtime.state_dir(args.state_dir))
    now = clock.now().timestamp()
    for m in held:
        record = why.get(m["queue_id"])
        m["age_minutes"] = (
            max(0, int((now - m["arrival_time"]) // 60)) if m["arrival_time"] else None
        )
        m["election"] = record.election if record else None
        m["attachments_personal"] = record.tables if record else None
        m["recipients_outside"] = record.outside if record else None
    if args.format == "json":
        print(json.dumps(held, indent=2))
    else:
        for m in held:
            age = f"{m['age_minutes']} min ago" if m["age_minutes"] is not None else "age unknown"
            reason = (
                f"election {m['election']}, {m['attachments_personal']} attachment(s) with "
                f"personal data to {m['recipients_outside']} recipient(s) outside the party"
                if m["election"] or m["attachments_personal"] is not None
                else "not held by the guard (or its record is gone)"
            )
            print(
                f"{m['queue_id']}  {age}  {m['size']} bytes  {m['recipients']} recipient(s)"
                f"  {escape(reason)}"
            )
        print(f"{len(held)} message(s) held")
    return EXIT_OK


def escape(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _in_hold(queue_id: str) -> bool:
    return any(m["queue_id"] == queue_id for m in held_messages())


def _guard_state(args: argparse.Namespace) -> Path | None:
    """The state directory when it holds the guard's directory, else None (a typo
    must not scatter markers in a new tree)."""
    state = runtime.state_dir(args.state_dir)
    return state if (state / "mailguard").is_dir() else None


def cmd_release(args: argparse.Namespace) -> int:
    state = _guard_state(args)
    if state is None:
        return fail(f"no mail guard state in {runtime.state_dir(args.state_dir)} (--state-dir?)")
    try:
        if not _in_hold(args.queue_id):
            return fail(f"{args.queue_id} is not in the hold queue (see isoloir mailguard held)")
        run = _postfix(POSTSUPER, ["-H", args.queue_id])
    except QueueError as exc:
        return fail(str(exc))
    if run.returncode != 0 or "released from hold" not in run.stderr.lower():
        return fail(f"postsuper -H {args.queue_id} failed: {_reason(run)}")
    # Released mail goes to the deferred queue: deliver it now, not at the next queue run.
    subprocess.run([POSTQUEUE, "-i", args.queue_id], capture_output=True, check=False)  # noqa: S603
    _settled(state, args.queue_id, "released")
    print(f"{args.queue_id}: released, handed to delivery")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    state = _guard_state(args)
    if state is None:
        return fail(f"no mail guard state in {runtime.state_dir(args.state_dir)} (--state-dir?)")
    try:
        run = _postfix(POSTSUPER, ["-d", args.queue_id, "hold"])
    except QueueError as exc:
        return fail(str(exc))
    if run.returncode != 0:
        return fail(f"postsuper -d {args.queue_id} failed: {_reason(run)}")
    if "deleted: 1 message" not in run.stderr.lower():
        return fail(f"{args.queue_id} is not in the hold queue (see isoloir mailguard held)")
    _settled(state, args.queue_id, "deleted")
    print(f"{args.queue_id}: deleted from the hold queue")
    return EXIT_OK


def _settled(state: Path, queue_id: str, how: str) -> None:
    """The scan stops reporting the held message (its alert is then resolved)."""
    from isoloir.mailguard import decisions

    try:
        decisions.settle(state, queue_id, how, now=clock.now())
    except OSError as exc:
        print(
            f"warning: {how}, but not recorded in {state}: {exc.strerror or exc}; the scan "
            "keeps reporting it",
            file=sys.stderr,
        )


# -- test -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    expect: str  # "accepted" | "refused" | "held"
    message: EmailMessage
    recipients: tuple[str, ...]
    submission: bool = True  # False: port 25, no AUTH (the unsubscribe address)


def _fictive(n: int, start: int = 1) -> list[str]:
    return [f"electeur{i:02d}@{TEST_DOMAIN}" for i in range(start, start + n)]


def _message(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def test_cases(policies: Any, login: str, sender: str) -> list[Case]:
    """One message of each kind, with fictitious recipients (@isoloir-test.example)."""
    org = policies.baseline.organisation
    limit = policies.baseline.mail.max_visible_recipients
    mine = [e for e in policies.elections if login in e.members] or list(policies.elections)
    notice = "Bonjour.\n"
    if mine:
        from isoloir.mailguard import transparency

        e = mine[0]
        notice += "\n" + transparency.notice(
            policies, e, transparency.origins(e, None), policies.baseline.mail.language
        )
    many = _fictive(limit + 1)
    lu = f"<mailto:{org.unsubscribe}>"
    visible = _message(sender, "Test: visible recipients", notice, To=", ".join(many))
    visible["List-Unsubscribe"] = lu
    bcc = _message(sender, "Test: Bcc with the notice", notice, To=sender)
    bcc["List-Unsubscribe"] = lu
    bare = _message(sender, "Test: bulk without the notice", "Bonjour.\n", To=sender)
    held = _message(sender, "Test: contact file to outside", "Le fichier.\n", To=many[0])
    rows = "".join(
        f"Fictif{i};Test;electeur{i:02d}@{TEST_DOMAIN};06 39 98 00 {i:02d}\n" for i in range(1, 21)
    )
    held.add_attachment(
        ("nom;prenom;email;telephone\n" + rows).encode(),
        maintype="text",
        subtype="csv",
        filename="contacts.csv",
    )
    unsub = _message(f"electeur99@{TEST_DOMAIN}", "STOP", "STOP\n", To=org.unsubscribe)
    return [
        Case("visible recipients (To/Cc over the limit)", "refused", visible, tuple(many)),
        Case("bulk in Bcc with the notice", "accepted", bcc, tuple(_fictive(limit + 1, 20))),
        Case("bulk without the notice", "refused", bare, tuple(_fictive(limit + 1, 40))),
        Case("contact file to outside the party", "held", held, (many[0],)),
        Case("mail to the unsubscribe address", "accepted", unsub, (org.unsubscribe,), False),
    ]


def _send(case: Case, args: argparse.Namespace, password: str, context: ssl.SSLContext) -> str:
    port = args.port if case.submission else args.smtp_port
    sender = str(case.message["From"])
    try:
        with smtplib.SMTP(args.host, port, timeout=60) as client:
            client.ehlo()
            if case.submission:
                client.starttls(context=context)
                client.ehlo()
                client.login(args.login, password)
            refused = client.send_message(case.message, sender, list(case.recipients))
    except smtplib.SMTPDataError as exc:
        return f"refused {exc.smtp_code}"
    except smtplib.SMTPRecipientsRefused:
        return "refused at RCPT"
    except smtplib.SMTPException as exc:
        return f"refused ({type(exc).__name__})"
    except OSError as exc:
        return f"not sent ({type(exc).__name__})"
    return "accepted" if not refused else f"accepted, {len(refused)} recipient(s) refused"


def cmd_test(args: argparse.Namespace) -> int:
    from isoloir.policy.loader import PolicyError, load_rendered

    try:
        policies = load_rendered(runtime.config_path(args.config))
    except (OSError, PolicyError) as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if args.password_file:
        try:
            password = Path(args.password_file).read_text().strip()
        except OSError as exc:
            return fail(f"{args.password_file}: {exc.strerror}")
    else:
        password = os.environ.get("ISOLOIR_MAIL_PASSWORD") or getpass.getpass("password: ")
    context = ssl.create_default_context(cafile=args.cafile)
    if args.cafile:
        context.check_hostname = False  # a self-signed relay certificate, pinned by --cafile
    # The relay lets a login send only as its own address (security N16).
    person = next((p for p in policies.baseline.people if p.id == args.login), None)
    sender = args.sender or (person.email if person else f"{args.login}@{TEST_DOMAIN}")
    before = _held_count()
    results = []
    for case in test_cases(policies, args.login, sender):
        got = _send(case, args, password, context)
        if case.expect == "held" and got == "accepted":
            now = _held_count()
            if now is None or before is None:
                got = "accepted (run `isoloir mailguard held` on the relay to see it held)"
            else:
                got = "held" if now > before else "accepted (not held)"
            before = now
        mark = (
            "?   "
            if got.startswith("accepted (run")
            else ("ok  " if got.startswith(case.expect) else "FAIL")
        )
        results.append(mark)
        print(f"{mark} {case.name}: {got} (expected {case.expect})")
    return EXIT_FAILED if "FAIL" in results else EXIT_OK


def _held_count() -> int | None:
    """Messages in the hold queue when this runs on the relay host, else None."""
    if not Path(POSTQUEUE).exists():
        return None
    try:
        return len(held_messages())
    except QueueError:
        return None


# -- parser ---------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    mg = subparsers.add_parser("mailguard", help="the campaign mail guard on the relay")
    sub = mg.add_subparsers(dest="mailguard_command", metavar="ACTION", required=True)

    serve = sub.add_parser("serve", help="run the guard as Postfix's milter")
    serve.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"unix:/path or inet:PORT@127.0.0.1 ({DEFAULT_SOCKET})",
    )
    serve.add_argument(
        "--authserv-id",
        help="trust Authentication-Results with this authserv-id for unsubscribe "
        "confirmations ($ISOLOIR_MAIL_AUTHSERV_ID; none: no confirmation is sent)",
    )
    runtime.add_runtime_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    sync = sub.add_parser(
        "sync", help="export the suppression list for the guard (as the agents' user)"
    )
    runtime.add_runtime_arguments(sync)
    sync.set_defaults(func=cmd_sync)

    test = sub.add_parser("test", help="send one message of each kind through the relay")
    test.add_argument("--host", required=True, help="the relay's address")
    test.add_argument("--port", type=int, default=587, help="submission port (587)")
    test.add_argument("--smtp-port", type=int, default=25, help="port of the unsubscribe address")
    test.add_argument("--login", required=True, help="a person's login (member of an election)")
    test.add_argument("--password-file", help="file holding the password (else prompted)")
    test.add_argument("--sender", help="envelope sender (default: the login's policy address)")
    test.add_argument("--cafile", help="the relay's certificate or CA (PEM)")
    test.add_argument("--config", help="rendered agent config (default: /etc/isoloir/agent.json)")
    test.set_defaults(func=cmd_test)

    held = sub.add_parser("held", help="the hold queue: ids, age, why, counts; never an address")
    held.add_argument("--format", choices=("text", "json"), default="text")
    runtime.add_runtime_arguments(held)
    held.set_defaults(func=cmd_held)

    release = sub.add_parser("release", help="deliver a held message (postsuper -H)")
    release.add_argument("queue_id", type=_queue_id, metavar="QUEUEID")
    runtime.add_runtime_arguments(release)
    release.set_defaults(func=cmd_release)

    delete = sub.add_parser("delete", help="destroy a held message (postsuper -d)")
    delete.add_argument("queue_id", type=_queue_id, metavar="QUEUEID")
    runtime.add_runtime_arguments(delete)
    delete.set_defaults(func=cmd_delete)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isoloir")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mailguard", *(argv or [])])
    return int(args.func(args))
