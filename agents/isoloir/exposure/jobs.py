"""The exposure jobs the daemon runs: `scan` (S3 and shares) and `identity`."""

from __future__ import annotations

import socket
import sys

from isoloir.exposure.scan import ScanOptions, run
from isoloir.jobs import JobContext, JobResult
from isoloir.textsafe import escape_controls


def _job(ctx: JobContext, opts: ScanOptions) -> JobResult:
    report = run(
        ctx.policies,
        ctx.now,
        opts,
        fix=ctx.fix and not ctx.dry_run,
        dry_run=ctx.dry_run,
        state_dir=ctx.state_dir,
    )
    for where, code in sorted({**report.errors, **report.fatal}.items()):
        print(escape_controls(f"exposure: could not read {where}: {code}"), file=sys.stderr)
    if report.fix_refused:
        print(escape_controls(f"exposure: no fix applied: {report.fix_refused}"), file=sys.stderr)
    # Fixed findings are still reported (evidence says "remediation: applied"): an
    # exposure that was fixed may still be a breach to notify; the next run resolves it.
    # A scope that could not be read fails the run; nothing it holds is resolved.
    failure = "; ".join(f"could not read {k}: {v}" for k, v in sorted(report.fatal.items()))
    return JobResult(report.findings, unread=report.unread, failure=failure)


def scan_job(ctx: JobContext) -> JobResult:
    # Reads of an exposed object (S3) or share file (a path) are counted from when its
    # finding was first seen (the alert state knows it); no open finding: from now.
    from isoloir.alerts.service import exposure_starts

    since = {**exposure_starts(ctx.state_dir), **exposure_starts(ctx.state_dir, prefix="/")}
    result = _job(ctx, ScanOptions(s3=True, shares=True, identity=False, exposure_since=since))
    # Mail the guard held (a personal-data table sent outside): a likely breach.
    from isoloir.mailguard.held import held_findings

    result.extend(held_findings(ctx.state_dir, ctx.now, host=socket.gethostname()))
    return result


def identity_job(ctx: JobContext) -> JobResult:
    return _job(ctx, ScanOptions(s3=False, shares=False, identity=True))
