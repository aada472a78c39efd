"""`isoloir retention plan|run`, `isoloir suppression filter`, `isoloir certificate verify|show`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from isoloir import aws, clock, runtime
from isoloir.findings import Finding
from isoloir.policy import PolicyError, load_policies, load_rendered
from isoloir.policy.model import Policies
from isoloir.retention import certificate, keys, planning
from isoloir.retention.jobs import evaluate
from isoloir.retention.journal import Journal
from isoloir.retention.journal import db_path as journal_path
from isoloir.retention.purge import survey
from isoloir.retention.suppression import SuppressionList, filter_table
from isoloir.retention.suppression import db_path as suppression_path

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def _policies(args: argparse.Namespace) -> Policies | None:
    """The rendered agent config, or a policies directory (for the local target and tests)."""
    path = runtime.config_path(args.config)
    try:
        return load_policies(path) if path.is_dir() else load_rendered(path)
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
                s.to_dict(args.list) for s in survey(p, e, s3, with_lists=args.list)
            ]
        report.append(entry)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK
    for entry in report:
        _print_plan(entry, args.list)
    return EXIT_OK


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
            continue
        verb = "would delete" if d["action"] == "delete" else "keeps"
        print(
            f"  {d['name']} ({d['category']}): {verb} {_n(d['objects'])} objects "
            f"({_n(d['versions'])} versions, {_n(d['delete_markers'])} delete markers, "
            f"{_n(d['bucket_bytes'])} bytes) in s3://{entry['bucket']}, "
            f"{_n(d['files'])} files ({_n(d['share_bytes'])} bytes) in the share"
        )
        if d["action"] == "delete" and d["tables"]:
            print(
                f"    {_n(d['tables'])} table(s), {_n(d['rows'])} rows: would keep "
                f"{_n(d['contacts_to_keep'])} consenting contacts, record {_n(d['opt_outs'])} "
                "opt-outs"
            )
        if with_lists and d["action"] == "delete":
            for v in d["object_versions"]:
                kind = "delete marker" if v["delete_marker"] else f"{v['size']} bytes"
                print(f"    s3://{entry['bucket']}/{v['key']} version {v['version_id']} ({kind})")
            for path in d["share_files"]:
                print(f"    {path}")


# ---------------------------------------------------------------------- run
def _print_finding(f: Finding) -> None:
    print(f"[{f.severity}] {f.rule_id} {f.message}")


def cmd_run(args: argparse.Namespace) -> int:
    p = _policies(args)
    if p is None:
        return EXIT_ERROR
    if _elections(p, args.election) is None:
        return EXIT_ERROR
    findings, outcomes = evaluate(
        p,
        state_dir=runtime.state_dir(args.state_dir),
        secrets_dir=runtime.secrets_dir(),
        now=clock.now(),
        dry_run=args.dry_run,
        only=args.election,
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
    out = Path(args.output) if args.output else source.with_name(f"{source.stem}.filtered.csv")
    if out.resolve() == source.resolve():
        print("the output must be another file than the input", file=sys.stderr)
        return EXIT_ERROR
    state = runtime.state_dir(args.state_dir)
    with SuppressionList(suppression_path(state), keys.hmac_key(runtime.secrets_dir())) as store:
        try:
            data, result = filter_table(
                source.read_bytes(),
                store,
                email_column=args.email_column,
                phone_column=args.phone_column,
            )
        except (OSError, ValueError) as exc:
            print(f"{source}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    out.write_bytes(data)
    print(
        f"{_n(result.rows)} rows read, {_n(result.removed)} removed (suppressed), "
        f"{_n(result.kept)} kept, {_n(result.without_identifier)} without email or phone; "
        f"wrote {out}"
    )
    return EXIT_OK


# -------------------------------------------------------------- certificate
def cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    result = certificate.verify_file(path, Path(args.public_key) if args.public_key else None)
    if result.ok:
        print(f"{path}: valid signature and content")
        return EXIT_OK
    for reason in result.reasons:
        print(f"{path}: {reason}", file=sys.stderr)
    return EXIT_FINDINGS


def cmd_show(args: argparse.Namespace) -> int:
    path = Path(args.file)
    result = certificate.verify_file(path, Path(args.public_key) if args.public_key else None)
    if result.document is None:
        for reason in result.reasons:
            print(f"{path}: {reason}", file=sys.stderr)
        return EXIT_FINDINGS
    sys.stdout.write(certificate.render(result.document, args.lang, verified=result.ok))
    return EXIT_OK if result.ok else EXIT_FINDINGS


def register(subparsers: Any) -> None:
    ret = subparsers.add_parser("retention", help="retention: plan and run the purges")
    ret_sub = ret.add_subparsers(dest="retention_command", metavar="ACTION", required=True)

    plan = ret_sub.add_parser("plan", help="per election: due date, hold, what would be deleted")
    runtime.add_runtime_arguments(plan)
    plan.add_argument("--election", help="only this election")
    plan.add_argument("--list", action="store_true", help="list every object version and file")
    plan.add_argument("--json", action="store_true", help="JSON output")
    plan.set_defaults(func=cmd_plan)

    run = ret_sub.add_parser("run", help="purge the elections that are due (resumes a crash)")
    runtime.add_runtime_arguments(run)
    run.add_argument("--election", help="only this election")
    run.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    run.set_defaults(func=cmd_run)

    sup = subparsers.add_parser("suppression", help="the opt-out list that outlives elections")
    sup_sub = sup.add_subparsers(dest="suppression_command", metavar="ACTION", required=True)
    filt = sup_sub.add_parser("filter", help="remove suppressed people from a prospect CSV")
    filt.add_argument("--state-dir", help="agent state directory")
    filt.add_argument("file", help="the new prospect file (CSV)")
    filt.add_argument("-o", "--output", help="output file (default: FILE.filtered.csv)")
    filt.add_argument("--email-column", help="email column (default: guessed)")
    filt.add_argument("--phone-column", help="phone column (default: guessed)")
    filt.set_defaults(func=cmd_filter)

    cert = subparsers.add_parser("certificate", help="deletion certificates")
    cert_sub = cert.add_subparsers(dest="certificate_command", metavar="ACTION", required=True)
    verify = cert_sub.add_parser("verify", help="check a certificate's signature and content")
    verify.add_argument("file")
    verify.add_argument("--public-key", help="PEM public key (default: beside the certificate)")
    verify.set_defaults(func=cmd_verify)
    show = cert_sub.add_parser("show", help="render a certificate for the DPO")
    show.add_argument("file")
    show.add_argument("--lang", choices=("fr", "en"), default="fr")
    show.add_argument("--public-key", help="PEM public key (default: beside the certificate)")
    show.set_defaults(func=cmd_show)
