"""`isoloir person request|find|export|erase` and `isoloir register`.

Run where the agents run (the file-share host, as the agents' user): the
shares, the contacts store, the suppression list and the signing key are
there. The console shows counts and paths only, never a name, address or
number; the export file (0600) is the one place the person's values go.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import clock, runtime, safeio
from isoloir.dpo import art30, breaches, erase, evidence, export, requests, search
from isoloir.dpo.match import Query, QueryError
from isoloir.policy import PolicyError, load_policies, load_rendered
from isoloir.policy.model import Policies
from isoloir.retention import keys, share
from isoloir.textsafe import escape_controls

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_ERROR = 2


class CliError(RuntimeError):
    pass


def _policies(args: argparse.Namespace) -> Policies:
    path = runtime.config_path(args.config)
    try:
        return load_policies(path) if path.is_dir() else load_rendered(path)
    except PolicyError as exc:
        raise CliError("; ".join(str(p) for p in exc.problems)) from None


def _query(args: argparse.Namespace) -> Query:
    emails, phones = list(args.email or []), list(args.phone or [])
    name, commune = args.name, args.commune
    if args.identity_file:
        # one `email: …`, `phone: …`, `name: …`, `commune: …` per line: keeps the values
        # out of the shell history and the process list
        try:  # a FIFO or a device never blocks it (isoloir.safeio)
            raw = safeio.read_regular(Path(args.identity_file), "identity file", 64 * 1024)
        except safeio.UnreadableFile as exc:
            raise CliError(str(exc)) from None
        text = raw.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            field, sep, value = line.partition(":")
            field, value = field.strip().lower(), value.strip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not sep or field not in ("email", "phone", "name", "commune"):
                raise CliError(f"{args.identity_file}:{number}: expected email|phone|name|commune:")
            if field == "email":
                emails.append(value)
            elif field == "phone":
                phones.append(value)
            elif field == "name":
                name = value
            else:
                commune = value
    try:
        return Query.build(emails, phones, name, commune)
    except QueryError as exc:
        raise CliError(str(exc)) from None


def _find(args: argparse.Namespace, policies: Policies, query: Query) -> search.Result:
    return search.find(
        query,
        policies,
        state_dir=runtime.state_dir(args.state_dir),
        secrets_dir=runtime.secrets_dir(),
    )


def _summary(result: search.Result) -> None:
    """Counts and places only (escaped: file names are campaign staff's)."""
    print(f"{result.rows} row(s) in {len(result.places)} place(s)")
    for p in result.places:
        where = p.location + (f" version {p.version_id}" if p.version_id else "")
        if p.sheet is not None:
            where += f" sheet {p.sheet!r}"
        ds = p.dataset
        origin = (
            f"{p.election}/{ds.name}, origin {ds.origin}" if ds else f"{p.election}, undeclared"
        )
        current = " (current)" if p.kind == "bucket" and p.latest else ""
        print(escape_controls(f"  {p.kind}: {where}{current}: {len(p.rows)} row(s); {origin}"))
    if result.opt_out_list:
        print(escape_controls(f"  opt-out list not searched: {result.opt_out_list}"))
    else:
        print(f"  opt-out list: {len(result.opt_outs)} of the person's identifier(s) on it")
    if result.unsearched:
        print(f"  {len(result.unsearched)} file(s) not searched (not tables or unreadable):")
        for location, why in result.unsearched[:20]:
            print(escape_controls(f"    {location}: {why}"))
        if len(result.unsearched) > 20:
            print(f"    ... and {len(result.unsearched) - 20} more (see the export)")


# ------------------------------------------------------------------ requests
def cmd_request_open(args: argparse.Namespace) -> int:
    received = date.fromisoformat(args.received) if args.received else clock.today()
    r = requests.RequestLog(runtime.state_dir(args.state_dir)).open(
        args.kind, received, clock.now()
    )
    print(
        f"{r.id}: {args.kind} ({requests.ARTICLES[args.kind]}) received {r.received}, due {r.due}"
    )
    return EXIT_OK


def cmd_request_list(args: argparse.Namespace) -> int:
    items = requests.RequestLog(runtime.state_dir(args.state_dir)).all()
    if not args.all:
        items = [r for r in items if r.open]
    if args.json:
        print(json.dumps([r.__dict__ for r in items], indent=2, ensure_ascii=False))
        return EXIT_OK
    today = clock.today()
    for r in items:
        state = f"{r.days_left(today)} day(s) left" if r.open else r.status
        extended = " (extended)" if r.extended else ""
        print(f"{r.id} {r.kind}: received {r.received}, due {r.due}{extended}, {state}")
    if not items:
        print("no open rights request" if not args.all else "no rights request")
    return EXIT_OK


def cmd_request_extend(args: argparse.Namespace) -> int:
    log = requests.RequestLog(runtime.state_dir(args.state_dir))
    r = log.update(args.request, clock.now(), extend=True, reason=args.reason)
    print(f"{r.id}: extended to {r.due}; tell the person why before the first month ends")
    return EXIT_OK


def cmd_request_close(args: argparse.Namespace) -> int:
    log = requests.RequestLog(runtime.state_dir(args.state_dir))
    r = log.update(args.request, clock.now(), status="closed", action={"closed": args.note or ""})
    print(f"{r.id}: closed")
    return EXIT_OK


def _request(args: argparse.Namespace) -> requests.Request:
    return requests.RequestLog(runtime.state_dir(args.state_dir)).get(args.request)


# ------------------------------------------------------------ find / export
def cmd_find(args: argparse.Namespace) -> int:
    policies = _policies(args)
    query = _query(args)
    print(f"searching for {query.describe()} in {len(policies.elections)} election(s)")
    _summary(_find(args, policies, query))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    policies = _policies(args)
    query = _query(args)
    request = _request(args)
    out = Path(args.output)
    if out.exists() or out.is_symlink():
        raise CliError(f"{out} exists: an export is never replaced")
    result = _find(args, policies, query)
    now = clock.now()
    export.write(out, export.document(policies, result, request.id, now, args.lang))
    requests.RequestLog(runtime.state_dir(args.state_dir)).update(
        request.id,
        now,
        status="answered" if request.kind == "access" else request.status,
        action={"export": str(out), "places": len(result.places), "rows": result.rows},
    )
    _summary(result)
    print(f"wrote {out} (0600): send it to the person through a secure channel, then delete it")
    return EXIT_OK


def cmd_erase(args: argparse.Namespace) -> int:
    policies = _policies(args)
    query = _query(args)
    request = _request(args)
    state = runtime.state_dir(args.state_dir)
    done = erase.erase(
        query,
        policies,
        request_id=request.id,
        state_dir=state,
        secrets_dir=runtime.secrets_dir(),
        now=clock.now,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        print(f"dry run: would remove {done.rows_left} row(s); nothing was changed")
        _summary(_find(args, policies, query))
        return EXIT_OK
    record = done.record["certificate"]
    print(
        f"removed {done.rows_removed} row(s) from {record['totals']['places']} place(s) "
        f"({record['totals']['versions_deleted']} object version(s) deleted); "
        f"suppression list: {record['suppression']['added']} added, "
        f"{record['suppression']['already_present']} already present"
    )
    print(f"left after a new search: {done.rows_left} row(s)")
    versions = record["totals"]["versions_left_to_lifecycle"]
    if versions:
        print(
            f"{versions} old version(s) are left to S3's lifecycle rule(s): gone by "
            f'{done.expires_by}; run "isoloir person find" after that date to confirm'
        )
    for location in done.left_for_dpo:
        print(escape_controls(f"  left for the DPO (spreadsheet or not writable): {location}"))
    print(f"signed record: {done.path}")
    status = "closed" if done.complete else "open"
    requests.RequestLog(state).update(
        request.id,
        clock.now(),
        status=status,
        action={
            "erasure_record": str(done.path),
            "rows_removed": done.rows_removed,
            "rows_left": done.rows_left,
            "rows_pending_lifecycle": done.rows_pending_lifecycle,
            "expires_by": done.expires_by,
        },
    )
    return EXIT_OK if done.complete else EXIT_INCOMPLETE


def cmd_verify(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    public = keys.signing_key(runtime.secrets_dir()).public_key()
    problems = erase.verify_record(data, public)
    for p in problems:
        print(f"{args.file}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.file}: valid signature (this host's signing key)")
    return EXIT_INCOMPLETE if problems else EXIT_OK


# ------------------------------------------------------------------ breaches
def cmd_breach_list(args: argparse.Namespace) -> int:
    entries = breaches.sync(runtime.state_dir(args.state_dir))
    for b in entries:
        if b.decision:
            state = "notified" if b.decision["notify_cnil"] else "not notified"
            state += f" ({b.decision['decided_by']})"
        else:
            state = f"NO DECISION (notify the CNIL by {b.notify_by.isoformat()})"
        ended = f", ended {b.ended_at}" if b.ended_at else ", ongoing"
        print(escape_controls(f"{b.id} {b.resource}: aware {b.aware_at}{ended}; {state}"))
    if not entries:
        print("the breach register is empty")
    return EXIT_OK


def _breach(args: argparse.Namespace) -> breaches.Breach:
    for b in breaches.sync(runtime.state_dir(args.state_dir)):
        if b.id == args.breach:
            return b
    raise CliError(f"no breach {args.breach!r} in the register")


def cmd_breach_show(args: argparse.Namespace) -> int:
    b = _breach(args)
    policies = _policies(args)
    org = policies.baseline.organisation
    fields = breaches.form(
        b, f"{org.controller_name}, {org.controller_address}", org.dpo_contact, args.lang
    )
    if args.json:
        print(json.dumps(fields, indent=2, ensure_ascii=False))
        return EXIT_OK
    labels = dict(breaches.FORM[args.lang])
    sep = " : " if args.lang == "fr" else ": "
    for key, value in fields.items():
        print(escape_controls(f"{labels[key]}{sep}{value}"))
    return EXIT_OK


def cmd_breach_decide(args: argparse.Namespace) -> int:
    _breach(args)  # synced, and known
    b = breaches.decide(
        runtime.state_dir(args.state_dir),
        args.breach,
        notify=args.notify,
        why=args.why,
        by=args.by,
        inform_persons=args.inform_persons == "yes",
        persons_why=args.persons_why or "",
        now=clock.now(),
    )
    late = " (after the 72 hours: say why in the notification)" if b.decision["late"] else ""
    verdict = "notify the CNIL" if args.notify else "not notified"
    print(f"{b.id}: decision recorded: {verdict}{late}")
    return EXIT_OK


# ------------------------------------------------------------------ register
def cmd_register(args: argparse.Namespace) -> int:
    policies = _policies(args)
    doc = art30.build(policies, args.lang)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(art30.render(doc, args.lang))
    return EXIT_OK


# ------------------------------------------------------------------ evidence
def cmd_evidence(args: argparse.Namespace) -> int:
    policies = _policies(args)
    out = Path(args.out)
    if out.exists() or out.is_symlink():
        raise CliError(f"{out} exists: the bundle goes into a new folder")
    try:
        manifest = evidence.build(
            policies,
            runtime.state_dir(args.state_dir),
            out,
            now=clock.now(),
            audit_dir=Path(args.audit) if args.audit else None,
        )
    except BaseException:
        evidence.remove_partial(out)
        raise
    counts = manifest["counts"]
    print(
        escape_controls(
            f"{out}: {len(manifest['files'])} files (register, {counts['certificates']} "
            f"certificate(s), {counts['erasures']} erasure record(s), {counts['requests']} "
            f"request(s), {counts['breaches']} breach(es), {counts['mail_decisions']} mail "
            f"decision(s), {counts['audit_files']} audit file(s)); MANIFEST.json lists them"
        )
    )
    for what in manifest["not_found"]:
        print(escape_controls(f"not found: {what}"))
    return EXIT_OK


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (
            CliError,
            requests.RequestError,
            keys.SecretError,
            share.ShareError,
            erase.EraseError,
            clock.ClockError,
            evidence.EvidenceError,
        ) as exc:
            print(escape_controls(f"error: {exc}"), file=sys.stderr)
        except (ClientError, BotoCoreError) as exc:
            print(f"error: AWS: {type(exc).__name__}: {exc}", file=sys.stderr)
        except (OSError, ValueError) as exc:
            print(escape_controls(f"error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return EXIT_ERROR

    return run


def _identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--email", action="append", help="an e-mail address of the person")
    p.add_argument("--phone", action="append", help="a phone number of the person")
    p.add_argument("--name", help="first and last name (with --commune)")
    p.add_argument("--commune", help="the commune of their address (with --name)")
    p.add_argument(
        "--identity-file",
        help="a file of `email: …`, `phone: …`, `name: …`, `commune: …` lines (keeps the "
        "values out of the shell history)",
    )
    runtime.add_runtime_arguments(p)


def register(subparsers: Any) -> None:
    person = subparsers.add_parser("person", help="rights requests: find, export, erase a person")
    sub = person.add_subparsers(dest="person_command", metavar="ACTION", required=True)

    req = sub.add_parser("request", help="the log of rights requests and their deadlines")
    req_sub = req.add_subparsers(dest="request_command", metavar="ACTION", required=True)
    opened = req_sub.add_parser("open", help="record a request received (due in one month)")
    opened.add_argument("--kind", required=True, choices=requests.KINDS)
    opened.add_argument("--received", help="date received, YYYY-MM-DD (default: today)")
    runtime.add_runtime_arguments(opened)
    opened.set_defaults(func=_guarded(cmd_request_open))
    listed = req_sub.add_parser("list", help="open requests and days left")
    listed.add_argument("--all", action="store_true", help="closed ones too")
    listed.add_argument("--json", action="store_true")
    runtime.add_runtime_arguments(listed)
    listed.set_defaults(func=_guarded(cmd_request_list))
    ext = req_sub.add_parser("extend", help="extend by two months (art. 12(3)); tell the person")
    ext.add_argument("request")
    ext.add_argument("--reason", required=True, help="why (complexity, number of requests)")
    runtime.add_runtime_arguments(ext)
    ext.set_defaults(func=_guarded(cmd_request_extend))
    close = req_sub.add_parser("close", help="record that the request was answered")
    close.add_argument("request")
    close.add_argument("--note", help="what was done (no personal data)")
    runtime.add_runtime_arguments(close)
    close.set_defaults(func=_guarded(cmd_request_close))

    find = sub.add_parser("find", help="where the person appears (counts and places only)")
    _identity(find)
    find.set_defaults(func=_guarded(cmd_find))

    exp = sub.add_parser("export", help="write what is held about them and its origin (0600)")
    _identity(exp)
    exp.add_argument("--request", required=True, help="the request id (person request open)")
    exp.add_argument("-o", "--output", required=True, help="the new file (never replaced)")
    exp.add_argument("--lang", choices=("fr", "en"), default="fr")
    exp.set_defaults(func=_guarded(cmd_export))

    era = sub.add_parser("erase", help="remove them from every version, sign a record, suppress")
    _identity(era)
    era.add_argument("--request", required=True, help="the request id (person request open)")
    era.add_argument("--dry-run", action="store_true", help="show what would go; change nothing")
    era.set_defaults(func=_guarded(cmd_erase))

    ver = sub.add_parser("verify", help="check an erasure record against this host's key")
    ver.add_argument("file")
    ver.set_defaults(func=_guarded(cmd_verify))

    br = subparsers.add_parser("breach", help="the breach register (art. 33(5)) and decisions")
    br_sub = br.add_subparsers(dest="breach_command", metavar="ACTION", required=True)
    bl = br_sub.add_parser("list", help="every breach ever found, with its decision")
    runtime.add_runtime_arguments(bl)
    bl.set_defaults(func=_guarded(cmd_breach_list))
    bs = br_sub.add_parser("show", help="the CNIL notification form's fields for one breach")
    bs.add_argument("breach")
    bs.add_argument("--lang", choices=("fr", "en"), default="fr")
    bs.add_argument("--json", action="store_true")
    runtime.add_runtime_arguments(bs)
    bs.set_defaults(func=_guarded(cmd_breach_show))
    bd = br_sub.add_parser("decide", help="record the decision to notify the CNIL or not")
    bd.add_argument("breach")
    choice = bd.add_mutually_exclusive_group(required=True)
    choice.add_argument("--notify", dest="notify", action="store_true")
    choice.add_argument("--no-notify", dest="notify", action="store_false")
    bd.add_argument("--why", required=True, help="the justification (no personal data)")
    bd.add_argument("--by", required=True, help="who decided")
    bd.add_argument("--inform-persons", choices=("yes", "no"), required=True)
    bd.add_argument("--persons-why", help="why the persons are (not) informed")
    runtime.add_runtime_arguments(bd)
    bd.set_defaults(func=_guarded(cmd_breach_decide))

    reg = subparsers.add_parser("register", help="the register of processing (art. 30 GDPR)")
    reg.add_argument("--lang", choices=("fr", "en"), default="fr")
    reg.add_argument("--json", action="store_true", help="the fields as JSON")
    reg.add_argument("--config", help="policies directory or rendered agent config")
    reg.set_defaults(func=_guarded(cmd_register))

    ev = subparsers.add_parser(
        "evidence", help="gather what a CNIL inspection asks for into a new folder"
    )
    ev.add_argument("--out", required=True, help="the new folder (0700; never an existing one)")
    ev.add_argument("--audit", help="the folder of an outside audit (isoloir audit --out DIR)")
    runtime.add_runtime_arguments(ev)
    ev.set_defaults(func=_guarded(cmd_evidence))
