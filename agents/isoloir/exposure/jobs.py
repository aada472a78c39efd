"""The exposure jobs the daemon runs: `scan` (S3 and shares) and `identity`."""

from __future__ import annotations

import sys

from isoloir.exposure.scan import ScanOptions, run
from isoloir.findings import Finding
from isoloir.jobs import JobContext


def _job(ctx: JobContext, opts: ScanOptions) -> list[Finding]:
    report = run(
        ctx.policies,
        ctx.now,
        opts,
        fix=ctx.fix and not ctx.dry_run,
        dry_run=ctx.dry_run,
        state_dir=ctx.state_dir,
    )
    for where, code in sorted({**report.errors, **report.fatal}.items()):
        print(f"exposure: could not read {where}: {code}", file=sys.stderr)
    # Fixed findings are still reported (evidence says "remediation: applied"): an
    # exposure that was fixed may still be a breach to notify; the next run resolves it.
    return report.findings


def scan_job(ctx: JobContext) -> list[Finding]:
    return _job(ctx, ScanOptions(s3=True, shares=True, identity=False))


def identity_job(ctx: JobContext) -> list[Finding]:
    return _job(ctx, ScanOptions(s3=False, shares=False, identity=True))
