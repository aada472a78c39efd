"""`isoloir calllist export`: the call list of one phone-banking session."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from isoloir import clock, runtime
from isoloir.phonebank.calllist import CallListError, export, parse_moment
from isoloir.policy import PolicyError, load_policies, load_rendered
from isoloir.retention import keys
from isoloir.retention.cli import _input_problem, _output_problem, _read_input, _write_atomic
from isoloir.retention.suppression import SuppressionError, SuppressionList
from isoloir.retention.suppression import db_path as suppression_path

EXIT_OK = 0
EXIT_ERROR = 2


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def cmd_export(args: argparse.Namespace) -> int:
    source = Path(args.file)
    out = Path(args.output) if args.output else source.with_name(f"{source.stem}.appels.csv")
    problem = _input_problem(source) or _output_problem(out)
    if problem:
        return _fail(problem)
    if out.exists() and out.resolve() == source.resolve():
        return _fail("the output must be another file than the input")
    try:
        start = parse_moment(args.start) if args.start else clock.now()
        end = parse_moment(args.end) if args.end else start + timedelta(minutes=args.minutes)
    except CallListError as exc:
        return _fail(f"--start/--end: {exc}")
    except clock.ClockError as exc:
        return _fail(str(exc))
    if args.minutes <= 0:
        return _fail("--minutes must be more than 0")
    config = runtime.config_path(args.config)
    try:
        policies = load_policies(config) if config.is_dir() else load_rendered(config)
    except PolicyError as exc:
        return _fail("; ".join(str(p) for p in exc.problems[:3]))
    state = runtime.state_dir(args.state_dir)
    try:
        key = keys.hmac_key(runtime.secrets_dir())
        store = SuppressionList.for_filtering(suppression_path(state), key)
    except (keys.SecretError, SuppressionError) as exc:
        return _fail(f"{exc} (the call list is never exported unfiltered)")
    except OSError as exc:
        return _fail(f"cannot read {exc.filename or 'the HMAC key'}: {exc.strerror or exc}")
    with store:
        try:
            data, result = export(
                _read_input(source),
                store,
                policies.baseline.phone_banking,
                start,
                end,
                phone_column=args.phone_column,
                postcode_column=args.postcode_column,
                email_column=args.email_column,
                name_columns=args.name_column,
                address_columns=args.address_column,
            )
        except (CallListError, ValueError) as exc:
            return _fail(f"{source}: {exc}")
        except OSError as exc:
            return _fail(f"{source}: {exc.strerror or exc}")
        except sqlite3.Error as exc:
            return _fail(f"cannot read the suppression list {store.path}: {exc}")
    try:
        _write_atomic(out, data)
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or exc}")
    zones = ", ".join(f"{z} {n}" for z, n in sorted(result.zones.items())) or "none"
    print(
        f"session {start.isoformat(timespec='minutes')} to {end.isoformat(timespec='minutes')}: "
        f"{result.rows} rows read, {result.kept} to call ({zones}); dropped: "
        f"{result.opted_out} opted out, {result.out_of_window} outside the calling hours "
        f"where they live, {result.no_phone} without a usable number, {result.unknown_zone} "
        f"whose time zone is unknown; wrote {out}"
    )
    return EXIT_OK


def register(subparsers: Any) -> None:
    calllist = subparsers.add_parser(
        "calllist", help="phone banking: the call list of a session, filtered"
    )
    sub = calllist.add_subparsers(dest="calllist_command", metavar="ACTION", required=True)
    exp = sub.add_parser(
        "export",
        help="drop opt-outs and the people outside the calling hours where they live",
    )
    runtime.add_runtime_arguments(exp)
    exp.add_argument("file", help="the call list (CSV; delimiter, encoding and BOM kept)")
    exp.add_argument(
        "-o", "--output", help="output file (default: FILE.appels.csv); a symlink is refused"
    )
    exp.add_argument(
        "--start",
        help="the session's start, YYYY-MM-DDTHH:MM in Paris time or with an offset (default: now)",
    )
    exp.add_argument("--end", help="the session's end (default: --minutes after the start)")
    exp.add_argument("--minutes", type=int, default=60, help="the session's length (default: 60)")
    exp.add_argument("--phone-column", help="phone column (default: guessed)")
    exp.add_argument(
        "--postcode-column",
        help="postcode or INSEE code column, which gives the time zone (default: guessed; "
        "without it, the number's country code)",
    )
    exp.add_argument("--email-column", help="email column (default: guessed)")
    exp.add_argument("--name-column", action="append", help="a name column, repeatable")
    exp.add_argument("--address-column", action="append", help="an address column, repeatable")
    exp.set_defaults(func=cmd_export)
