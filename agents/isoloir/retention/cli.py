"""`isoloir retention plan|run|accept-loss|reviewed`, `isoloir suppression filter|add`,
`isoloir certificate verify|show`."""

from __future__ import annotations

import argparse
import csv
import errno
import functools
import getpass
import json
import os
import pwd
import sqlite3
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isoloir import aws, clock, runtime
from isoloir.findings import Finding
from isoloir.i18n import N_
from isoloir.policy import PolicyError, load_policies, load_rendered
from isoloir.policy.host import for_this_host
from isoloir.policy.model import Policies
from isoloir.retention import certificate, keys, losses, planning, reviews, tabular
from isoloir.retention.jobs import evaluate
from isoloir.retention.journal import Journal
from isoloir.retention.journal import db_path as journal_path
from isoloir.retention.purge import (
    MAX_TABLE_BYTES,
    UNDECLARED,
    read_dataset,
    read_undeclared,
    survey,
    undeclared_dataset,
)
from isoloir.retention.share import ShareError
from isoloir.retention.suppression import (
    ADD_ELECTION,
    Entries,
    SuppressionError,
    SuppressionList,
    filter_table,
    read_entries,
)
from isoloir.retention.suppression import db_path as suppression_path
from isoloir.statefiles import StateError
from isoloir.textsafe import escape_controls

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def _policies(args: argparse.Namespace) -> Policies | None:
    """The rendered agent config, or a policies directory (for the local target and tests)."""
    path = runtime.config_path(args.config)
    try:
        # only the elections this host serves (N4; no host.json: all of them)
        return for_this_host(load_policies(path) if path.is_dir() else load_rendered(path))
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return None


def _elections(p: Policies, only: str | None) -> list[Any] | None:
    if only is None:
        return list(p.elections)
    try:
        return [p.election(only)]
    except KeyError:
        print(f"no election {only!r} in the policies", file=sys.stderr)
        return None


def _n(value: int) -> str:
    return f"{value:,}"


# --------------------------------------------------------------------- plan
def cmd_plan(args: argparse.Namespace) -> int:
    p = _policies(args)
    if p is None:
        return EXIT_ERROR
    elections = _elections(p, args.election)
    if elections is None:
        return EXIT_ERROR
    state = runtime.state_dir(args.state_dir)
    today = clock.today()
    report: list[dict[str, Any]] = []
    with Journal(journal_path(state)) as journal:
        done = {e.id: journal.last_complete(e.id) for e in elections}
    for e in elections:
        run = done[e.id]
        st = planning.status(e, today, p.baseline.retention.warn_days, purged=run is not None)
        entry: dict[str, Any] = {
            "election": e.id,
            "due": st.due.isoformat(),
            "days_left": st.days_left,
            "phase": st.phase,
            "legal_hold": e.legal_hold,
            "legal_hold_reason": e.legal_hold_reason,
            "certificate": run.certificate if run else None,
            "bucket": e.bucket_name,
            "share": e.share_path,
            "datasets": [],
        }
        if run is None:
            s3 = aws.client("s3", e.region)
            entry["datasets"] = [
                s.to_dict(args.list)
                for s in survey(p, e, s3, with_lists=args.list, state_dir=state)
            ]
        report.append(entry)
    # a dataset that could not be surveyed (AWS unreachable, share missing) is an error
    failed = any(d["error"] for entry in report for d in entry["datasets"])
    # a table the run would refuse (not extractable, loss not accepted): exit 1, as
    # `retention run` will (CLI review N11: plan said 0)
    refused = any(
        not x["accepted"]
        for entry in report
        for d in entry["datasets"]
        if d.get("action") == "delete"
        for x in d.get("cannot_extract") or []
    )
    status = EXIT_ERROR if failed else EXIT_FINDINGS if refused else EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return status
    for entry in report:
        _print_plan(entry, args.list)
    return status


def _print_plan(entry: dict[str, Any], with_lists: bool) -> None:
    days = entry["days_left"]
    when = f"in {days} day(s)" if days > 0 else ("today" if days == 0 else f"{-days} day(s) ago")
    print(f"{entry['election']}: due {entry['due']} ({when}), {entry['phase']}")
    if entry["legal_hold"]:
        print(f"  legal hold: {entry['legal_hold_reason']} — nothing will be deleted")
    if entry["certificate"]:
        print(f"  purged; certificate {entry['certificate']}")
        return
    for d in entry["datasets"]:
        if d["error"]:
            print(f"  {d['name']} ({d['category']}): could not survey: {d['error']}")
            if not d["error"].startswith("share:") and "; share:" not in d["error"]:
                print(f"    the share part: {_n(d['files'])} files ({_n(d['share_bytes'])} bytes)")
            continue
        verb = "would delete" if d["action"] == "delete" else "keeps"
        print(
            f"  {d['name']} ({d['category']}): {verb} {_n(d['objects'])} objects "
            f"({_n(d['versions'])} versions, {_n(d['delete_markers'])} delete markers, "
            f"{_n(d['bucket_bytes'])} bytes) in s3://{entry['bucket']}, "
            f"{_n(d['files'])} files ({_n(d['share_bytes'])} bytes) in the share"
        )
        if d["action"] == "delete" and d["tables"]:
            recordable = d["opt_outs"] - d.get("opt_outs_without_identifier", 0)
            print(
                f"    {_n(d['tables'])} table(s), {_n(d['rows'])} rows: would keep "
                f"{_n(d['contacts_to_keep'])} consenting contacts, find {_n(d['opt_outs'])} "
                f"opt-out row(s) and record {_n(recordable)}"
            )
        _print_extraction_problems(entry["election"], d)
        if with_lists and d["action"] == "delete":  # names escaped: no forged lines
            for v in d["object_versions"]:
                kind = "delete marker" if v["delete_marker"] else f"{v['size']} bytes"
                where = f"s3://{entry['bucket']}/{v['key']}"
                print(escape_controls(f"    {where} version {v['version_id']} ({kind})"))
            for path in d["share_files"]:
                print(f"    {escape_controls(path)}")


def _print_extraction_problems(election: str, d: dict[str, Any]) -> None:
    """Opt-outs without an identifier, and every table the run would refuse (path + reason)."""
    if d.get("opt_outs_without_identifier"):
        print(
            f"    {_n(d['opt_outs_without_identifier'])} opt-out row(s) without a usable email "
            "or phone: they cannot be recorded"
        )
    problems = d.get("cannot_extract") or []
    refused = [x for x in problems if not x["accepted"]]
    if problems:
        print(
            f"    {_n(len(problems))} table(s) cannot be extracted: their opt-outs and consents "
            "are NOT recorded"
            + (
                "; the run refuses this dataset until "
                + ("it is" if len(refused) == 1 else f"these {len(refused)} are")
                + " fixed or accepted"
                if refused
                else "; loss accepted"
            )
        )
    for x in problems:
        note = " (loss accepted)" if x["accepted"] else ""
        print(escape_controls(f"      {x['source']}: {x['reason']}{note}"))  # no forged lines
    if refused:
        print(
            f"    to accept the loss: isoloir retention accept-loss --election {election} "
            f"--dataset {d['name']} SOURCE... (or --all)"
        )


def cmd_keys(args: argparse.Namespace) -> int:
    """`isoloir retention keys init|check [DIR]`: the same as the deploy's
    `python -m isoloir.retention.keys` (CLI review N9: not an `isoloir` command)."""
    return keys.main([args.action, *([args.secrets_dir] if args.secrets_dir else [])])


# ------------------------------------------------------------- accept-loss
def cmd_accept_loss(args: argparse.Namespace) -> int:
    """Record that the listed unreadable tables may be deleted without extraction."""
    if _as_root_in_agents_state(args, "retention accept-loss"):
        return EXIT_ERROR
    p = _policies(args)
    if p is None:
        return EXIT_ERROR
    elections = _elections(p, args.election)
    if elections is None:
        return EXIT_ERROR
    e = elections[0]
    try:
        ds = undeclared_dataset() if args.dataset == UNDECLARED else e.dataset(args.dataset)
    except KeyError:
        print(f"no dataset {args.dataset!r} in election {e.id}", file=sys.stderr)
        return EXIT_ERROR
    if ds.name != UNDECLARED and (ds.tabular is None or not ds.campaign_specific):
        print(f"dataset {ds.name} of {e.id} is not a tabular campaign dataset", file=sys.stderr)
        return EXIT_ERROR
    if not args.all and not args.sources:
        print("name the SOURCE(s) `retention plan` lists, or --all", file=sys.stderr)
        return EXIT_ERROR
    if args.all and args.sources:  # which one was meant? (CLI review N11)
        print("name the SOURCE(s) or give --all, not both", file=sys.stderr)
        return EXIT_ERROR
    try:
        if ds.name == UNDECLARED:
            problems = read_undeclared(e).problems
        else:
            problems = read_dataset(aws.client("s3", e.region), e, ds).problems
    except Exception as exc:  # noqa: BLE001 - one clear line, whatever the cloud or share says
        print(
            f"cannot read dataset {ds.name} of {e.id}: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return EXIT_ERROR
    by_source = {x.source: x for x in problems}
    unknown = [src for src in args.sources if src not in by_source]
    if unknown:
        print(
            f"{unknown[0]} is not a table of {e.id}/{ds.name} that cannot be extracted "
            "(`isoloir retention plan` lists them)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    chosen = problems if args.all else [by_source[src] for src in args.sources]
    if not chosen:
        print(f"{e.id}/{ds.name}: every table can be extracted; nothing to accept")
        return EXIT_OK
    state = runtime.state_dir(args.state_dir)
    try:
        before = losses.accepted(state, e.id, ds.name)
        total = losses.accept(state, e.id, ds.name, chosen, now=clock.now(), by=_who())
    except (OSError, losses.LossesError) as exc:
        print(f"cannot record the acceptance in {losses.path(state)}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    again = [x for x in chosen if before.get(x.source, {}).get("reason") == x.reason]
    for x in chosen:
        note = " (accepted already)" if x in again else ""
        print(escape_controls(f"accepted the loss of {x.source}: {x.reason}{note}"))
    print(
        f"{e.id}/{ds.name}: {_n(len(chosen) - len(again))} table(s) accepted now"
        + (f" ({_n(len(again))} accepted already)" if again else "")
        + f", {_n(total)} in all; the purge will delete them without extracting them, and "
        "the certificate lists them"
    )
    return EXIT_OK


# ---------------------------------------------------------------- reviewed
def cmd_reviewed(args: argparse.Namespace) -> int:
    """Record that the DPO reviewed the contacts store or a permanent dataset (E7)."""
    if _as_root_in_agents_state(args, "retention reviewed"):
        return EXIT_ERROR
    if args.contacts == (args.dataset is not None):
        print("give --contacts or --dataset NAME (one of them)", file=sys.stderr)
        return EXIT_ERROR
    if args.contacts and args.election is not None:
        print("--election goes with --dataset, not --contacts", file=sys.stderr)
        return EXIT_ERROR
    p = _policies(args)
    if p is None:
        return EXIT_ERROR
    election: str | None = None
    if args.dataset is not None:
        found = _permanent_dataset(p, args.election, args.dataset)
        if found is None:
            return EXIT_ERROR
        election = found
    state = runtime.state_dir(args.state_dir)
    now = clock.now()
    try:
        reviews.record(state, now=now, by=_who(), election=election, dataset=args.dataset or "")
    except (OSError, reviews.ReviewsError) as exc:
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"cannot record the review in {reviews.path(state)}: {text}", file=sys.stderr)
        return EXIT_ERROR
    period = p.baseline.retention.permanent_review
    if election is not None:
        period = p.election(election).dataset(args.dataset).review or period
    due = period.after(now.date()).isoformat()
    if election is None:
        store = p.baseline.retention.contacts_path
        try:
            count = len(reviews.kept_files(store))
        except OSError:
            count = 0
        print(
            f"recorded the review of the contacts store {store} ({_n(count)} kept-contacts "
            f"file(s)) on {now.date().isoformat()}; next review due on {due}"
        )
    else:
        print(
            f"recorded the review of the permanent dataset {args.dataset} of {election} on "
            f"{now.date().isoformat()}; next review due on {due}"
        )
    return EXIT_OK


def _permanent_dataset(p: Policies, election: str | None, name: str) -> str | None:
    """The election holding the permanent dataset `name`, or None (said on stderr)."""
    if election is not None:
        try:
            e = p.election(election)
        except KeyError:
            print(f"no election {election!r} in the policies", file=sys.stderr)
            return None
        try:
            ds = e.dataset(name)
        except KeyError:
            print(escape_controls(f"no dataset {name!r} in election {e.id}"), file=sys.stderr)
            return None
        if ds.campaign_specific:
            print(
                f"dataset {ds.name} of {e.id} is a campaign dataset: the purge destroys it, "
                "there is nothing to review",
                file=sys.stderr,
            )
            return None
        return e.id
    holders = [e.id for e in p.elections for d in reviews.permanent_datasets(e) if d.name == name]
    if not holders:
        print(escape_controls(f"no permanent dataset {name!r} in the policies"), file=sys.stderr)
        return None
    if len(holders) > 1:
        print(
            f"permanent dataset {name} is in several elections ({', '.join(holders)}): "
            "give --election",
            file=sys.stderr,
        )
        return None
    return holders[0]


def _as_root_in_agents_state(args: argparse.Namespace, command: str) -> bool:
    """Refuse (True, said on stderr) root writing into a state dir the agents own.

    Root would create the suppression list, the journal or the losses record
    as its own 0600 files, which the agents (and the mail guard) then cannot
    open: every mail would be deferred and the purge would fail (security N11).
    """
    if os.geteuid() != 0:
        return False
    state = runtime.state_dir(args.state_dir)
    try:
        owner = state.stat().st_uid
    except OSError:
        return False
    if owner == 0:
        return False
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    print(
        f"{command}: {state} belongs to {name}: run this as that user "
        f"(sudo -u {name} isoloir {command} ...); as root it would create files the agents "
        "cannot open",
        file=sys.stderr,
    )
    return True


def _who() -> str:
    """Who accepted: the administrator behind sudo, not root or the agents' user."""
    if os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


# ---------------------------------------------------------------------- run
def _print_finding(f: Finding) -> None:
    print(f"[{f.severity}] {f.rule_id} {f.message}")


def cmd_run(args: argparse.Namespace) -> int:
    if not args.dry_run and _as_root_in_agents_state(args, "retention run"):
        return EXIT_ERROR
    p = _policies(args)
    if p is None:
        return EXIT_ERROR
    if _elections(p, args.election) is None:
        return EXIT_ERROR
    if args.confirm_unwarned and args.election is None:
        print(
            "--confirm-unwarned needs --election: confirm one election at a time", file=sys.stderr
        )
        return EXIT_ERROR
    findings, outcomes = evaluate(
        p,
        state_dir=runtime.state_dir(args.state_dir),
        secrets_dir=runtime.secrets_dir(),
        now=clock.now(),
        dry_run=args.dry_run,
        only=args.election,
        confirm_unwarned=args.confirm_unwarned,
    )
    for f in findings:
        _print_finding(f)
    if args.dry_run:
        print("dry run: nothing was deleted; `isoloir retention plan --list` shows every item")
    for o in outcomes:
        resumed = " (resumed an interrupted run)" if o.resumed else ""
        print(f"purged {o.election}{resumed}; certificate {o.certificate}")
    if not findings and not outcomes:
        today = clock.today()
        for e in _elections(p, args.election) or []:
            print(f"{e.id}: not due until {e.retention_due} ({e.days_left(today)} days)")
    bad = {"RET-FAILED", "RET-HOLD", "RET-DUE"}
    return EXIT_FINDINGS if any(f.rule_id in bad for f in findings) else EXIT_OK


# -------------------------------------------------------------- suppression
def cmd_filter(args: argparse.Namespace) -> int:
    source = Path(args.file)
    to_stdout = args.output == "-"
    out = Path(args.output) if args.output else source.with_name(f"{source.stem}.filtered.csv")
    problem = (None if to_stdout else _output_problem(out)) or _input_problem(source)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_ERROR
    if not to_stdout and out.exists() and out.resolve() == source.resolve():
        print("the output must be another file than the input", file=sys.stderr)
        return EXIT_ERROR
    state = runtime.state_dir(args.state_dir)
    try:
        key = keys.hmac_key(runtime.secrets_dir())
        store = SuppressionList.for_filtering(suppression_path(state), key)
    except (keys.SecretError, SuppressionError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(
            f"cannot read {exc.filename or 'the HMAC key'}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_ERROR
    with store:
        if not store.key_verified:
            print(
                f"warning: {store.path} does not record its key's identifier yet (written by an "
                "older version); the next purge records it",
                file=sys.stderr,
            )
        try:
            data, result = filter_table(
                _read_input(source),
                store,
                email_column=args.email_column,
                phone_column=args.phone_column,
                name_columns=args.name_column,
                address_columns=args.address_column,
            )
        except (OSError, ValueError, csv.Error) as exc:
            print(f"{source}: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except sqlite3.Error as exc:
            print(f"cannot read the suppression list {store.path}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    try:
        if to_stdout:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            _write_atomic(out, data)
    except OSError as exc:
        print(f"cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    encoding = result.encoding + (" with BOM" if result.bom else "")
    print(
        f"{_n(result.rows)} rows read, {_n(result.removed)} removed (suppressed), "
        f"{_n(result.kept)} kept, {_n(result.without_identifier)} without email, phone or "
        f"name and address; "
        f"checked against {_n(result.entries)} suppression entries; "
        f"matched on: {result.columns}; "
        f"wrote {'the standard output' if to_stdout else out} ({encoding})",
        # with `-o -` the standard output carries the table only
        file=sys.stderr if to_stdout else sys.stdout,
    )
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    """Add addresses and phone numbers (arguments, or a file) to the suppression list."""
    if _as_root_in_agents_state(args, "suppression add"):
        return EXIT_ERROR
    if not args.values and not args.file and not args.postal:
        print(
            "name the addresses or phone numbers to add, --postal NAME ADDRESS, or --file FILE",
            file=sys.stderr,
        )
        return EXIT_ERROR
    entries = Entries()
    for i, value in enumerate(args.values, start=1):
        entries.take(value, f"argument {i}")
    for i, (name, address) in enumerate(args.postal or [], start=1):
        postal = tabular.postal_identity([name], [address])
        if postal is None:
            entries.problems.append((f"--postal {i}", "a name and an address are both needed"))
        else:
            entries.postals.append(postal)
    shown = ""
    if args.file:
        source = Path(args.file)
        shown = str(source)
        problem = _input_problem(source)
        if problem:
            print(problem, file=sys.stderr)
            return EXIT_ERROR
        try:
            read = read_entries(
                _read_input(source), email_column=args.email_column, phone_column=args.phone_column
            )
        except (OSError, ValueError, csv.Error) as exc:
            print(f"{source}: {exc}", file=sys.stderr)
            return EXIT_ERROR
        if not (read.emails or read.phones or read.problems):
            # an empty or header-only file is a wrong export, not "added 0" (CLI review N10)
            print(
                f"{source}: no address or phone number in it"
                + (f" (matched on: {read.columns})" if read.columns else "")
                + "; nothing was added",
                file=sys.stderr,
            )
            return EXIT_ERROR
        entries.emails += read.emails
        entries.phones += read.phones
        entries.without_identifier += read.without_identifier
        entries.problems += [(f"{source}:{where[5:]}", why) for where, why in read.problems]
        if read.columns:
            shown += f" (matched on: {read.columns})"
    if entries.problems and not args.skip_unreadable:
        where, why = entries.problems[0]
        more = f" (and {len(entries.problems) - 1} more)" if len(entries.problems) > 1 else ""
        print(
            f"{where}: {why}{more}; nothing was added (fix it, or pass --skip-unreadable)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return _add_entries(args, entries, shown)


def _add_entries(args: argparse.Namespace, entries: Entries, shown: str) -> int:
    state = runtime.state_dir(args.state_dir)
    if not state.is_dir():  # a typo must not start a list nobody reads
        what = "is not a directory" if state.exists() else "does not exist"
        print(f"state dir {state} {what}", file=sys.stderr)
        return EXIT_ERROR
    try:
        key = keys.hmac_key(runtime.secrets_dir())
        with SuppressionList(suppression_path(state), key) as store:
            now = clock.now()
            added, present = store.add_counted(
                entries.emails,
                entries.phones,
                postals=entries.postals,
                election=ADD_ELECTION,
                run_id=f"suppression-add-{now.strftime('%Y%m%dT%H%M%S')}",
                now=now,
            )
    except (keys.SecretError, SuppressionError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    line = f"added {_n(added)}, already present {_n(present)}"
    if entries.problems:
        where, why = entries.problems[0]
        line += f", unreadable {_n(len(entries.problems))} ({where}: {why})"
    if entries.without_identifier:
        line += f", {_n(entries.without_identifier)} row(s) without email or phone"
    given = len(entries.emails) + len(entries.phones)
    # "5 read, 1 distinct": five spellings of one number are one entry (CLI review N10)
    line += f"; {_n(given)} read, {_n(added + present)} distinct"
    print(line + (f" from {shown}" if shown else ""))
    return EXIT_OK


def _input_problem(source: Path) -> str | None:
    """Why `source` cannot be read as a prospect file (None when it can)."""
    try:
        st = source.stat()
    except OSError as exc:
        return f"{source}: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return f"{source}: not a regular file"
    if st.st_size > MAX_TABLE_BYTES:
        return f"{source}: larger than {MAX_TABLE_BYTES} bytes"
    return None


def _read_input(source: Path) -> bytes:
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = handle.read(MAX_TABLE_BYTES + 1)
    if len(data) > MAX_TABLE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_TABLE_BYTES} bytes")
    return data


def _output_problem(out: Path) -> str | None:
    """Why the output cannot be written there (checked before any work).

    The output is replaced by a rename: a symlink there (`/dev/stdout` is one)
    would be replaced itself, so it is refused, like a device or a FIFO;
    `-o -` writes to the standard output.
    """
    if out.is_symlink():
        return (
            f"cannot write {out}: a symbolic link; give the real file, or `-o -` for the "
            "standard output"
        )
    if out.is_dir():
        return f"cannot write {out}: is a directory"
    folder = out.parent
    if not folder.exists():
        return f"cannot write {out}: folder {folder} does not exist"
    if not folder.is_dir():
        return f"cannot write {out}: {folder} is not a folder"
    if out.exists() and not out.is_file():
        return f"cannot write {out}: not a regular file (`-o -` for the standard output)"
    return None


def _write_atomic(out: Path, data: bytes) -> None:
    """Temporary file in the same folder, then rename: never a half-written output."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -------------------------------------------------------------- certificate
@dataclass
class _Checked:
    result: certificate.Verification
    fingerprint: str  # sha256:... of the key used
    source: str  # where that key came from
    pinned: bool  # the key did not come from beside the certificate alone


def _check_certificate(args: argparse.Namespace) -> _Checked:
    """Read the certificate first, then the key; UnreadableError/SecretError on a bad file."""
    path = Path(args.file)
    data = certificate.read_regular(path, "certificate", certificate.MAX_CERTIFICATE_BYTES)
    pinned = False
    if args.host_key:
        secrets = runtime.secrets_dir()
        public = keys.signing_key(secrets).public_key()
        source = certificate.Reason(
            N_("this host's signing key, {path}"), path=str(secrets / keys.SIGNING_KEY_FILE)
        )
        pinned = True
    elif args.public_key:
        public = certificate.public_key_from(Path(args.public_key))
        source = certificate.Reason(N_("{path}, given with --public-key"), path=args.public_key)
        pinned = True
    else:
        beside = path.parent / certificate.PUBLIC_KEY_FILE
        public = certificate.public_key_from(beside)
        source = certificate.Reason(N_("{path}, next to the certificate"), path=str(beside))
    used = certificate.fingerprint(public)
    result = certificate.verify_bytes(data, public)
    if args.fingerprint:
        wanted = certificate.normalise_fingerprint(args.fingerprint)
        if wanted != used:
            result = certificate.Verification(
                False,
                [
                    certificate.Reason(
                        N_("the key used is {used}, not the pinned {wanted}"),
                        used=used,
                        wanted=wanted,
                    ),
                    *result.reasons,
                ],
                result.document,
            )
        pinned = True
    return _Checked(result, used, source, pinned)


_UNPINNED = certificate.Reason(
    N_(
        "UNVERIFIED: only the key found next to the certificate was used, and whoever can "
        "write that folder can replace both; compare its fingerprint with your copy, then "
        "pass --fingerprint, --public-key or --host-key"
    )
)


def cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    checked = _check_certificate(args)
    print(f"{path}: signed with key {checked.fingerprint} ({checked.source})")
    if not checked.result.ok:
        for reason in checked.result.reasons:
            print(f"{path}: {reason}", file=sys.stderr)
        return EXIT_FINDINGS
    if not checked.pinned:
        print(f"{path}: signature and content match that key, but {_UNPINNED}", file=sys.stderr)
        return EXIT_FINDINGS
    print(f"{path}: valid signature and content, verified against a pinned key")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    path = Path(args.file)
    checked = _check_certificate(args)
    result = checked.result
    if result.document is None:
        for reason in result.reasons:
            print(f"{path}: {reason}", file=sys.stderr)
        return EXIT_FINDINGS
    reasons = list(result.reasons)
    if result.ok and not checked.pinned:
        reasons.append(_UNPINNED)
    for reason in reasons:
        print(f"{path}: {reason}", file=sys.stderr)
    ok = not reasons
    try:
        text = certificate.render(
            result.document,
            args.lang,
            verified=ok,
            reasons=reasons,
            key_note=certificate.Reason(
                N_("{fingerprint} ({source})"),
                fingerprint=checked.fingerprint,
                source=checked.source,
            ),
        )
    except (KeyError, TypeError, AttributeError, ValueError):
        print(f"{path}: the certificate lacks the fields to render it", file=sys.stderr)
        return EXIT_FINDINGS
    sys.stdout.write(text)
    return EXIT_OK if ok else EXIT_FINDINGS


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Ordinary setup mistakes (state dir, secrets, clock override, unreadable file):
    one line on stderr and exit 2, never a traceback."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (OSError, sqlite3.Error) as exc:
            print(f"error: {_os_error(exc)}", file=sys.stderr)
        except (
            keys.SecretError,
            clock.ClockError,
            certificate.UnreadableError,
            ShareError,
            StateError,
        ) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR

    return run


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


def register(subparsers: Any) -> None:
    ret = subparsers.add_parser("retention", help="retention: plan and run the purges")
    ret_sub = ret.add_subparsers(dest="retention_command", metavar="ACTION", required=True)

    plan = ret_sub.add_parser("plan", help="per election: due date, hold, what would be deleted")
    runtime.add_runtime_arguments(plan)
    plan.add_argument("--election", help="only this election")
    plan.add_argument("--list", action="store_true", help="list every object version and file")
    plan.add_argument("--json", action="store_true", help="JSON output")
    plan.set_defaults(func=_guarded(cmd_plan))

    run = ret_sub.add_parser("run", help="purge the elections that are due (resumes a crash)")
    runtime.add_runtime_arguments(run)
    run.add_argument("--election", help="only this election")
    run.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    run.add_argument(
        "--confirm-unwarned",
        action="store_true",
        help="purge the election (with --election) even though its last warning was not sent "
        "24 h before: check its due date in the policy first",
    )
    run.set_defaults(func=_guarded(cmd_run))

    accept = ret_sub.add_parser(
        "accept-loss",
        help="let the purge delete tables it cannot extract (their opt-outs and consents are lost)",
    )
    runtime.add_runtime_arguments(accept)
    accept.add_argument("--election", required=True, help="the election")
    accept.add_argument(
        "--dataset",
        required=True,
        help=f"the tabular dataset ({UNDECLARED}: files outside every declared dataset)",
    )
    accept.add_argument("--all", action="store_true", help="every table `plan` lists as such")
    accept.add_argument("sources", nargs="*", metavar="SOURCE", help="as `retention plan` shows")
    accept.set_defaults(func=_guarded(cmd_accept_loss))

    reviewed = ret_sub.add_parser(
        "reviewed",
        help="record that the DPO reviewed what is kept after the campaigns: the contacts "
        "store (--contacts) or a permanent dataset (--dataset)",
    )
    runtime.add_runtime_arguments(reviewed)
    reviewed.add_argument(
        "--contacts", action="store_true", help="the permanent contacts store, every file of it"
    )
    reviewed.add_argument("--dataset", help="a permanent dataset")
    reviewed.add_argument("--election", help="its election (needed when several have it)")
    reviewed.set_defaults(func=_guarded(cmd_reviewed))

    keyring = ret_sub.add_parser(
        "keys",
        help="create (init) or check the retention keys: on the file-share host only; a "
        "workstation copies the host's HMAC key instead",
    )
    keyring.add_argument("action", choices=("init", "check"))
    keyring.add_argument(
        "secrets_dir", nargs="?", help="default: $ISOLOIR_SECRETS_DIR or /etc/isoloir/secrets"
    )
    keyring.set_defaults(func=cmd_keys)

    sup = subparsers.add_parser("suppression", help="the opt-out list that outlives elections")
    sup_sub = sup.add_subparsers(dest="suppression_command", metavar="ACTION", required=True)
    filt = sup_sub.add_parser("filter", help="remove suppressed people from a prospect CSV")
    filt.add_argument("--state-dir", help="agent state directory")
    filt.add_argument("file", help="the new prospect file (CSV; encoding and BOM kept)")
    filt.add_argument(
        "-o",
        "--output",
        help="output file, or - for the standard output (default: FILE.filtered.csv); "
        "a symlink or a device is refused",
    )
    filt.add_argument("--email-column", help="email column (default: guessed)")
    filt.add_argument("--phone-column", help="phone column (default: guessed)")
    filt.add_argument(
        "--name-column",
        action="append",
        help="a name column, repeatable (default: prenom, prenoms, nom when present)",
    )
    filt.add_argument(
        "--address-column",
        action="append",
        help="an address column, repeatable, the commune's included "
        "(default: adresse, adresse postale, commune, ville when present)",
    )
    filt.set_defaults(func=_guarded(cmd_filter))
    add = sup_sub.add_parser(
        "add", help="add addresses or phone numbers (or a STOP export, a form's CSV) at once"
    )
    add.add_argument(  # no --config: the list does not depend on the policies (N10)
        "--state-dir",
        help="agent state directory (default: $ISOLOIR_STATE_DIR or /var/lib/isoloir)",
    )
    add.add_argument("values", nargs="*", metavar="ADDRESS_OR_PHONE")
    add.add_argument(
        "--file",
        help="a CSV/TSV with an email or phone column, or one address or number per line",
    )
    add.add_argument("--email-column", help="email column of --file (default: guessed)")
    add.add_argument("--phone-column", help="phone column of --file (default: guessed)")
    add.add_argument(
        "--postal",
        nargs=2,
        action="append",
        metavar=("NAME", "ADDRESS"),
        help="a postal or door-to-door opt-out with no e-mail or phone: the person's name and "
        "address, commune included (repeatable)",
    )
    add.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="add the readable entries and count the others (default: refuse the whole input)",
    )
    add.set_defaults(func=_guarded(cmd_add))

    cert = subparsers.add_parser("certificate", help="deletion certificates")
    cert_sub = cert.add_subparsers(dest="certificate_command", metavar="ACTION", required=True)
    verify = cert_sub.add_parser("verify", help="check a certificate's signature and content")
    verify.add_argument("file")
    _pin_arguments(verify)
    verify.set_defaults(func=_guarded(cmd_verify))
    show = cert_sub.add_parser("show", help="render a certificate for the DPO")
    show.add_argument("file")
    show.add_argument("--lang", choices=("fr", "en"), default="fr")
    _pin_arguments(show)
    show.set_defaults(func=_guarded(cmd_show))


def _pin_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the trusted key comes from; without one, the result is "unverified"."""
    parser.add_argument(
        "--public-key",
        help="the signing key's PEM public key, from your own copy (pinned); default: the "
        "one next to the certificate, which alone gives 'unverified'",
    )
    parser.add_argument(
        "--fingerprint",
        help="the expected sha256 of the signing key (as printed by verify), pinned",
    )
    parser.add_argument(
        "--host-key",
        action="store_true",
        help="verify against this host's signing key (the secrets directory; read-only)",
    )
