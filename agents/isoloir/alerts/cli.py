"""`isoloir alerts test|flush|maildir`."""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isoloir import runtime
from isoloir.alerts import messages
from isoloir.alerts.routing import EMAIL, Destination, all_destinations, configured_channels
from isoloir.alerts.service import AlertService, build_transports
from isoloir.alerts.spool import KEEP_DAYS
from isoloir.alerts.transport import DeliveryError, Outgoing
from isoloir.alerts.webhook import payload
from isoloir.policy.model import Policies

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2

SHOWN_HEADERS = (
    "Delivered-To",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Content-Language",
    "X-Isoloir-Kind",
    "X-Isoloir-Severity",
    "X-Isoloir-Election",
    "X-Isoloir-Rule",
    "X-Isoloir-Rules",
    "X-Isoloir-Fingerprint",
)


def _policies(args: argparse.Namespace) -> Policies | None:
    """The rendered agent config, or a policies directory, as `scan` and `retention`
    take them (CLI review D24: a directory was "not a regular file")."""
    from isoloir.policy import PolicyError, load_policies, load_rendered

    path = runtime.config_path(args.config)
    try:
        return load_policies(path) if path.is_dir() else load_rendered(path)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
    return None


def test_destinations(policies: Policies) -> list[Destination]:
    """Every configured channel once; email once per person any route names."""
    routed = [d for d in all_destinations(policies.baseline) if d.channel == EMAIL]
    out = list(routed)
    for channel in configured_channels(policies.baseline.alerts):
        if channel != EMAIL:
            out.append(Destination(channel))
    return out


def cmd_test(args: argparse.Namespace) -> int:
    policies = _policies(args)
    if policies is None:
        return EXIT_ERROR
    alerts = policies.baseline.alerts
    language = args.language or alerts.language
    transports = build_transports(policies.baseline)
    dests = test_destinations(policies)
    if alerts.email is not None and not any(d.channel == EMAIL for d in dests):
        print("FAILED email: no route sends email to anyone")
        failures = 1
    else:
        failures = 0
    if not transports:
        print("no alert channel is configured", file=sys.stderr)
        return EXIT_FAILED
    now = datetime.now(UTC)
    for n, d in enumerate(dests, start=1):
        rendered = messages.render_test(language, channel=d.channel, now=now)
        template = next(
            (w.template for w in alerts.webhooks if f"webhook:{w.name}" == d.channel), "generic"
        )
        message = Outgoing(
            id=int(time.time() * 1000) * 100 + n,
            kind="test",
            channel=d.channel,
            recipient=d.recipient,
            address=d.address,
            subject=rendered.subject,
            body=rendered.body,
            payload=payload(
                template,
                kind="test",
                subject=rendered.subject,
                body=rendered.body,
                meta={"severity": "info"},
            ),
            language=language,
        )
        try:
            transports[d.channel].send(message)
        except DeliveryError as exc:
            failures += 1
            print(f"FAILED {d.label}: {exc.detail}")
        else:
            print(f"ok     {d.label}")
    return EXIT_FAILED if failures else EXIT_OK


def existing_state_dir(state: Path) -> str | None:
    """Why `state` cannot be the agents' state directory (None: it can).

    A typo must not make a new empty state look like "nothing to do".
    """
    if not state.exists():
        return f"state dir {state} does not exist"
    if not state.is_dir():
        return f"state dir {state} is not a directory"
    return None


def cmd_flush(args: argparse.Namespace) -> int:
    state = runtime.state_dir(args.state_dir)
    problem = existing_state_dir(state)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_ERROR
    policies = _policies(args)
    if policies is None:
        return EXIT_ERROR
    if args.keep_days is not None and args.keep_days < 1:
        print("--keep-days must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    keep = args.keep_days if args.keep_days is not None else KEEP_DAYS
    service = AlertService(policies, state, keep_days=keep)
    try:
        if args.revive_dead:
            print(f"revived {service.revive_dead()} dead message(s)")
        report = service.flush()
        stats = service.stats()
    finally:
        service.close()
    print(
        f"sent {report.sent}, failed {report.failed} ({report.dead} now dead); "
        f"spool: {stats['pending']} pending, {stats['retrying']} retrying, {stats['dead']} dead"
    )
    for error in report.errors:
        print(f"  {error}")
    return EXIT_FAILED if report.failed else EXIT_OK


MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _read_regular(dir_fd: int, name: str) -> tuple[bytes, float] | None:
    """The bytes and mtime of a regular file in the directory, never through a
    symlink (O_NOFOLLOW) nor blocking on a FIFO; None for anything else."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MAX_MESSAGE_BYTES), st.st_mtime
    except OSError:
        return None
    finally:
        os.close(fd)


def read_maildir(directory: Path) -> list[dict[str, Any]]:
    """The messages of a maildir, oldest first: selected headers and the text body.

    Only regular files of new/ and cur/ are read: a symlink (to /etc/shadow, say)
    or a FIFO planted there is skipped.
    """
    items = []
    for sub in ("new", "cur"):
        try:
            dfd = os.open(directory / sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            for name in sorted(os.listdir(dfd)):
                if name.startswith("."):
                    continue
                got = _read_regular(dfd, name)
                if got is None:
                    continue
                raw, mtime = got
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                body_part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
                body = body_part.get_content() if body_part is not None else ""
                headers = {h: str(msg[h]) for h in SHOWN_HEADERS if msg[h] is not None}
                key = name.split(":", 1)[0]
                items.append({"key": key, "mtime": mtime, "headers": headers, "body": body})
        finally:
            os.close(dfd)
    items.sort(key=lambda m: (m["mtime"], m["key"]))
    return items


def cmd_maildir(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not (directory / "new").is_dir():
        print(f"{directory} is not a maildir", file=sys.stderr)
        return EXIT_ERROR
    items = read_maildir(directory)
    if args.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return EXIT_OK
    for n, item in enumerate(items, start=1):
        print(f"===== message {n}/{len(items)}")
        for name, value in item["headers"].items():
            print(f"{name}: {value}")
        print()
        print(item["body"].rstrip("\n"))
    print(f"===== {len(items)} message(s)")
    return EXIT_OK


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser("alerts", help="test the alert channels, flush the spool")
    sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    test = sub.add_parser("test", help="send a test alert through every configured channel")
    runtime.add_runtime_arguments(test)
    test.add_argument("--language", choices=messages.LANGUAGES)
    test.set_defaults(func=cmd_test)

    flush = sub.add_parser("flush", help="deliver the spooled alerts that are due")
    runtime.add_runtime_arguments(flush)
    flush.add_argument("--revive-dead", action="store_true", help="retry abandoned messages")
    flush.add_argument(
        "--keep-days",
        type=int,
        help=f"forget sent/dead messages and resolved findings older than this "
        f"(default {KEEP_DAYS})",
    )
    flush.set_defaults(func=cmd_flush)

    maildir = sub.add_parser("maildir", help="print the messages a local sink received")
    maildir.add_argument("dir")
    maildir.add_argument("--json", action="store_true")
    maildir.set_defaults(func=cmd_maildir)
