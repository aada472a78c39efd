"""`isoloir scan`: find exposure on S3, on the shares and in identities.

Exit 0: nothing at or above the threshold; 1: findings at or above it (after
the fixes applied by `--fix`); 2: an error (policies unreadable, a whole scope
unreachable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from isoloir import clock, runtime
from isoloir.alerts.lockfile import FileLock, LockBusy
from isoloir.exposure.scan import ScanOptions, ScanReport, remaining, run
from isoloir.findings import Finding, Severity
from isoloir.policy import PolicyError, load_policies, load_rendered
from isoloir.policy.host import for_this_host
from isoloir.policy.model import Policies
from isoloir.textsafe import escape_controls

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def _policies(config: str | None) -> Policies | None:
    path = runtime.config_path(config)
    try:
        # only the elections this host serves (N4; no host.json: all of them)
        return for_this_host(load_policies(path) if path.is_dir() else load_rendered(path))
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
    return None


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(findings: list[Finding], incomplete: list[str] | None = None) -> str:
    """The findings as a table, then one line each; names escaped (a file name cannot
    forge or erase lines). `incomplete`: what could not be read, said on stdout too."""
    findings = [f.escaped() for f in findings]
    unread = [escape_controls(w) for w in incomplete or []]
    if not findings:
        if unread:
            return f"No findings (incomplete: could not read {', '.join(unread)})."
        return "No findings."
    rows = [("SEVERITY", "RULE", "ELECTION", "RESOURCE")]
    rows += [
        (str(f.severity).upper(), f.rule_id, f.election or "-", _cell(f.resource, 60))
        for f in findings
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    for f in findings:
        state = f.evidence.get("remediation")
        suffix = f" [fix {state}]" if state else ""
        lines.append(f"- {f.rule_id}: {f.message}{suffix}")
    if unread:
        lines.append("")
        lines.append(f"Incomplete: could not read {', '.join(unread)}; findings there are unknown.")
    return "\n".join(lines)


def emit(report: ScanReport, fmt: str, out: Any = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        for f in report.findings:
            print(f.to_json(), file=out)
        for a in report.actions:
            print(json.dumps({"type": "action", **a.to_dict()}, sort_keys=True), file=out)
        return
    # Why no fix was applied is said once, on stderr, by cmd_scan (CLI review D30).
    print(table(report.findings, sorted(report.fatal)), file=out)
    if report.actions:
        print("", file=out)
        verb = "Would" if not any(a.applied for a in report.actions) else "Did"
        print(f"{verb} remediate:", file=out)
        for a in report.actions:
            status = "done" if a.applied else (f"failed ({a.error})" if a.error else "dry run")
            shown = escape_controls(a.resource)
            print(f"  {a.action:<60} {shown}  [{status}]", file=out)


def _fix_lock(state_dir: Path) -> FileLock | bool | None:
    """The daemon's scan lock, so two fixing scans never journal the same change twice.

    False: another scan holds it; None: no lock could be made (the journal step
    then says why no fix is applied).
    """
    lock = FileLock(state_dir / "locks" / "job-scan.lock")
    try:
        lock.acquire()
    except LockBusy:
        return False
    except OSError:
        return None
    return lock


def cmd_scan(args: argparse.Namespace) -> int:
    policies = _policies(args.config)
    if policies is None:
        return EXIT_ERROR
    chosen = args.s3 or args.shares or args.identity
    opts = ScanOptions(
        s3=args.s3 or not chosen,
        shares=args.shares or not chosen,
        identity=args.identity or not chosen,
        share_root=args.share_root,
        smb_conf=args.smb_conf,
        stray_paths=tuple(args.stray_path) if args.stray_path is not None else None,
        group_file=Path(args.group_file),
        passwd_file=Path(args.passwd_file),
        buckets=tuple(args.bucket) if args.bucket else None,
    )
    try:
        threshold = Severity.parse(args.fail_on or policies.baseline.alerts.min_severity)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    state_dir = runtime.state_dir(args.state_dir)
    lock = _fix_lock(state_dir) if args.fix and not args.dry_run else None
    if lock is False:
        print(
            f"another scan is applying fixes ({state_dir}/locks/job-scan.lock): "
            "no fix applied; try again when it is done",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        report = run(
            policies, clock.now(), opts, fix=args.fix, dry_run=args.dry_run, state_dir=state_dir
        )
    except (OSError, ValueError, clock.ClockError) as exc:
        print(f"scan failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if isinstance(lock, FileLock):
            lock.release()
    emit(report, args.format)
    for where, code in sorted(report.errors.items()):
        print(escape_controls(f"warning: could not read {where}: {code}"), file=sys.stderr)
    for where, code in sorted(report.fatal.items()):
        if where not in report.errors:
            print(escape_controls(f"error: could not read {where}: {code}"), file=sys.stderr)
    if report.fix_refused:
        print(escape_controls(f"no fix applied: {report.fix_refused}"), file=sys.stderr)
    if report.fatal or report.fix_refused:
        return EXIT_ERROR
    left = remaining(report)
    return EXIT_FINDINGS if any(f.severity >= threshold for f in left) else EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scan",
        help="find public sharing and weak settings (S3, shares, identities)",
        description="Scan S3, the shares and the identities; all three unless one is chosen.",
    )
    runtime.add_runtime_arguments(p)
    p.add_argument("--s3", action="store_true", help="scan S3 buckets")
    p.add_argument("--shares", action="store_true", help="scan share trees, Samba, stray data")
    p.add_argument("--identity", action="store_true", help="scan IAM and host accounts")
    p.add_argument("--fix", action="store_true", help="apply the fixes the policies allow")
    p.add_argument("--dry-run", action="store_true", help="list what --fix would change")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--fail-on", help="severity threshold for exit 1 (default: alerts.min_severity)")
    p.add_argument("--share-root", help="root of the election shares (default: from policies)")
    p.add_argument("--smb-conf", help="smb.conf to resolve with testparm (default: /etc/samba)")
    p.add_argument(
        "--stray-path",
        action="append",
        help="where to look for stray data (repeatable; default: from policies)",
    )
    p.add_argument("--bucket", action="append", help="scan only this bucket (repeatable)")
    p.add_argument("--group-file", default="/etc/group", help=argparse.SUPPRESS)
    p.add_argument("--passwd-file", default="/etc/passwd", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_scan)
