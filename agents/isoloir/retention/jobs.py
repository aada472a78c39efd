"""The retention job the daemon runs daily: warnings, holds, purges.

Findings (no personal data: election ids, paths, counts, the hold's reason
from the policy):

- RET-WARN    J-30 / J-7 / J-1 before the due date (baseline.retention.warn_days);
              one finding per threshold so each warning is sent once.
- RET-DUE     due and not purged (dry run, the purge failed, or it waits for the
              J-1 warning to be 24 h old or for the grace day).
- RET-RESIDUE campaign files or object versions found in a dataset after its
              purge completed (written afterwards): reported, and purged again.
- RET-HOLD    due, but a legal hold stops the purge: says why, nothing deleted.
- RET-PURGED  a completed purge, with its certificate (reported for a day).
- RET-KEY     the KMS key was not scheduled for deletion, and why.
- RET-FAILED  the purge stopped with an error; the next run resumes it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws, runtime
from isoloir.findings import Finding, Severity
from isoloir.jobs import JobContext
from isoloir.policy.model import Election, Policies
from isoloir.retention import planning, share
from isoloir.retention.journal import Journal, Run
from isoloir.retention.journal import db_path as journal_path
from isoloir.retention.purge import HoldError, NotYetError, Outcome, PurgeError, Purger

RESIDUE_SAMPLE = 1000  # versions or files counted per dataset when looking for residue

REPORT_PURGED_FOR = timedelta(days=1)


def _resource(election: Election, suffix: str = "") -> str:
    return f"election/{election.id}/retention{suffix}"


def _hold_note(election: Election) -> str:
    if not election.legal_hold:
        return ""
    return f" A legal hold is active ({election.legal_hold_reason}): nothing will be deleted."


def warning_finding(st: planning.ElectionStatus, now: datetime) -> Finding:
    e = st.election
    assert st.threshold is not None
    return Finding(
        rule_id="RET-WARN",
        severity=Severity.HIGH if st.threshold <= 1 else Severity.MEDIUM,
        resource=planning.warning_resource(e.id, st.threshold),
        election=e.id,
        message=(
            f"The campaign data of {e.id} must be destroyed on {st.due.isoformat()} "
            f"({st.days_left} day(s) left).{_hold_note(e)}"
        ),
        remediation=(
            "Check what will be kept with `isoloir retention plan --election "
            f"{e.id}`; consenting contacts are kept automatically."
        ),
        evidence={
            "due": st.due.isoformat(),
            "days_left": st.days_left,
            "threshold": st.threshold,
            "legal_hold": e.legal_hold,
        },
        observed_at=now,
    )


def hold_finding(st: planning.ElectionStatus, now: datetime) -> Finding:
    e = st.election
    return Finding(
        rule_id="RET-HOLD",
        severity=Severity.HIGH,
        resource=_resource(e, "/legal-hold"),
        election=e.id,
        message=(
            f"Retention of {e.id} was due on {st.due.isoformat()} but a legal hold stops the "
            f"purge: {e.legal_hold_reason}. Nothing was deleted."
        ),
        remediation="Lift the hold in the election's policy once the case is closed.",
        evidence={
            "due": st.due.isoformat(),
            "days_overdue": -st.days_left,
            "legal_hold": True,
            "reason": e.legal_hold_reason,
            "deleted": 0,
        },
        observed_at=now,
    )


def due_finding(st: planning.ElectionStatus, now: datetime, why: str) -> Finding:
    e = st.election
    return Finding(
        rule_id="RET-DUE",
        severity=Severity.HIGH,
        resource=_resource(e),
        election=e.id,
        message=(
            f"The campaign data of {e.id} was due for destruction on {st.due.isoformat()}: {why}."
        ),
        remediation=f"Run `isoloir retention run --election {e.id}`.",
        evidence={"due": st.due.isoformat(), "days_overdue": -st.days_left},
        observed_at=now,
    )


def failed_finding(e: Election, now: datetime, error: BaseException) -> Finding:
    return Finding(
        rule_id="RET-FAILED",
        severity=Severity.HIGH,
        resource=_resource(e, "/purge"),
        election=e.id,
        message=(
            f"The purge of {e.id} stopped ({type(error).__name__}: {error}); "
            "the next run resumes it from the journal."
        ),
        remediation="Fix the cause, then run `isoloir retention run --election " + e.id + "`.",
        evidence={"error": type(error).__name__},
        observed_at=now,
    )


def residue_finding(
    e: Election, done: Run, residue: list[str], now: datetime, purging: bool
) -> Finding:
    what = "they are purged again now" if purging else "the next run purges them"
    return Finding(
        rule_id="RET-RESIDUE",
        severity=Severity.HIGH,
        resource=_resource(e, "/residue"),
        election=e.id,
        message=(
            f"Campaign data was written into the purged datasets of {e.id} after its purge "
            f"of {str(done.finished_at)[:10]}: {'; '.join(residue)}; {what}."
        ),
        remediation=(
            "Remove the election's members from its share (or remove the election from the "
            "policies) so nobody writes there any more."
        ),
        evidence={"locations": residue, "purged_at": done.finished_at},
        observed_at=now,
    )


def leftovers(e: Election, s3: Any | None = None) -> list[str]:
    """Campaign data found after a completed purge, per location (counts, never names).

    Nothing is reported when a location cannot be read: the purge itself
    reports an unreachable bucket or a missing share.
    """
    out: list[str] = []
    try:
        client = s3 if s3 is not None else aws.client("s3", e.region)
    except (BotoCoreError, ValueError):
        return out
    for ds in planning.campaign_datasets(e):
        prefix = planning.bucket_prefix(ds)
        try:
            page = client.list_object_versions(
                Bucket=e.bucket_name, Prefix=prefix, MaxKeys=RESIDUE_SAMPLE
            )
            found = len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
            more = "+" if page.get("IsTruncated") else ""
            if found:
                out.append(f"s3://{e.bucket_name}/{prefix}: {found}{more} object version(s)")
        except (ClientError, BotoCoreError):
            pass
        try:
            files = share.list_files(e.share_path, ds.share_path, limit=RESIDUE_SAMPLE)
            dirs = [] if files else share.list_dirs(e.share_path, ds.share_path)
        except (share.ShareError, OSError):
            continue
        if files or dirs:
            more = "+" if len(files) >= RESIDUE_SAMPLE else ""
            out.append(
                f"{e.share_path}/{ds.share_path}: {len(files)}{more} file(s), {len(dirs)} folder(s)"
            )
    return out


def purged_findings(
    e: Election, document: dict[str, Any], path: str, now: datetime
) -> list[Finding]:
    body = document["certificate"]
    totals = body["totals"]
    key = body["key"]
    out = [
        Finding(
            rule_id="RET-PURGED",
            severity=Severity.MEDIUM,
            resource=_resource(e, "/certificate"),
            election=e.id,
            message=(
                f"The campaign data of {e.id} was destroyed: {totals['versions']} object "
                f"versions, {totals['delete_markers']} delete markers and {totals['files']} "
                f"files; {totals['contacts_kept']} consenting contacts kept. "
                f"Certificate: {path}."
            ),
            remediation="Send the certificate to the data-protection officer "
            "(`isoloir certificate show --lang fr " + path + "`).",
            evidence={
                **totals,
                "certificate": path,
                "key_deletion_date": key.get("deletion_date"),
            },
            observed_at=now,
        )
    ]
    if not key.get("deletion_date"):
        out.append(
            Finding(
                rule_id="RET-KEY",
                severity=Severity.MEDIUM,
                resource=_resource(e, "/key"),
                election=e.id,
                message=f"The KMS key of {e.id} was not scheduled for deletion: "
                f"{key.get('deferred_reason')}.",
                remediation="Schedule the key deletion once nothing else depends on it.",
                evidence={"certificate": path},
                observed_at=now,
            )
        )
    return out


def _load(path: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def evaluate(
    policies: Policies,
    *,
    state_dir: Path,
    secrets_dir: Path,
    now: datetime,
    dry_run: bool,
    only: str | None = None,
    purge: bool = True,
) -> tuple[list[Finding], list[Outcome]]:
    """Warnings for every election; the purge of each due one (unless dry run or hold)."""
    findings: list[Finding] = []
    outcomes: list[Outcome] = []
    warn_days = policies.baseline.retention.warn_days
    with Journal(journal_path(state_dir)) as journal:
        completed = {e.id: journal.last_complete(e.id) for e in policies.elections}
    for e in policies.elections:
        if only is not None and e.id != only:
            continue
        done = completed[e.id]
        # After a purge, members may still write into the share (or the bucket):
        # what reappeared is reported and purged again, never ignored.
        residue = leftovers(e) if done is not None else []
        st = planning.status(e, now.date(), warn_days, purged=done is not None and not residue)
        if residue and done is not None:
            purging = st.phase == planning.DUE and not dry_run and purge
            findings.append(residue_finding(e, done, residue, now, purging))
        if st.phase == planning.PURGED:
            assert done is not None and done.certificate and done.finished_at
            finished = datetime.fromisoformat(done.finished_at)
            document = _load(done.certificate)
            if document is not None and now - finished <= REPORT_PURGED_FOR:
                findings += purged_findings(e, document, done.certificate, now)
            continue
        if st.phase == planning.WARNING:
            findings.append(warning_finding(st, now))
        elif st.phase == planning.HELD:
            findings.append(hold_finding(st, now))
        elif st.phase == planning.DUE:
            if dry_run or not purge:
                findings.append(due_finding(st, now, "dry run, nothing deleted"))
                continue
            try:
                outcome = Purger(policies, e, state_dir=state_dir, secrets_dir=secrets_dir).run()
            except HoldError:  # pragma: no cover - the phase is HELD then
                findings.append(hold_finding(st, now))
                continue
            except NotYetError as exc:
                findings.append(due_finding(st, now, f"the purge waits: {exc}"))
                continue
            except (
                PurgeError,
                RuntimeError,
                ClientError,
                BotoCoreError,
                OSError,
                sqlite3.Error,
            ) as exc:
                findings.append(failed_finding(e, now, exc))
                findings.append(due_finding(st, now, "the purge did not complete"))
                continue
            outcomes.append(outcome)
            findings += purged_findings(e, outcome.document, str(outcome.certificate), now)
    return findings, outcomes


def retention_job(ctx: JobContext) -> list[Finding]:
    findings, _ = evaluate(
        ctx.policies,
        state_dir=ctx.state_dir,
        secrets_dir=runtime.secrets_dir(),
        now=ctx.now,
        dry_run=ctx.dry_run,
    )
    return findings
