"""The retention job the daemon runs daily: warnings, holds, purges.

Findings (no personal data: election ids, paths, counts, the hold's reason
from the policy):

- RET-WARN    J-30 / J-7 / J-1 before the due date (baseline.retention.warn_days);
              one finding per threshold so each warning is sent once.
- RET-DUE     due and not purged (dry run, the purge failed, it waits for root's
              share lock or the J-1 warning to be 24 h old, or nobody was warned
              and an administrator must confirm).
- RET-RESIDUE campaign files or object versions found in a dataset after its
              purge completed (written afterwards): reported, and purged again.
- RET-HOLD    due, but a legal hold stops the purge: says why, nothing deleted.
- RET-PURGED  a completed purge, with its certificate (reported for a day).
- RET-KEY     the KMS key was not scheduled for deletion, and why.
- RET-FAILED  the purge stopped with an error; the next run resumes it.
- RET-REVIEW  what is kept after the campaigns is due for its periodic review
              (retention/reviews.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws, runtime
from isoloir.findings import Finding, Severity, from_templates
from isoloir.i18n import N_, Msg
from isoloir.jobs import JobContext
from isoloir.policy.model import Election, Policies
from isoloir.retention import planning, reviews, share, sharelock
from isoloir.retention.journal import Journal, Run
from isoloir.retention.journal import db_path as journal_path
from isoloir.retention.purge import (
    HoldError,
    NotYetError,
    Outcome,
    PurgeError,
    Purger,
    declared_paths,
)

RESIDUE_SAMPLE = 1000  # versions or files counted per dataset when looking for residue

REPORT_PURGED_FOR = timedelta(days=1)

log = logging.getLogger("isoloir.retention")


def _resource(election: Election, suffix: str = "") -> str:
    return f"election/{election.id}/retention{suffix}"


def _finding(
    *,
    rule_id: str,
    severity: Severity,
    resource: str,
    election: Election,
    message: str,
    remediation: str,
    params: dict[str, Any],
    evidence: dict[str, Any],
    now: datetime,
) -> Finding:
    """A finding about one election, its texts from catalogue templates."""
    return from_templates(
        rule_id=rule_id,
        severity=severity,
        resource=resource,
        message=message,
        remediation=remediation,
        params={"election": election.id, **params},
        election=election.id,
        evidence=evidence,
        observed_at=now,
    )


def warning_finding(st: planning.ElectionStatus, now: datetime) -> Finding:
    e = st.election
    assert st.threshold is not None
    if e.legal_hold:
        message = N_(
            "The campaign data of {election} must be destroyed on {due} ({days} day(s) left). "
            "A legal hold is active ({reason}): nothing will be deleted."
        )
    else:
        message = N_(
            "The campaign data of {election} must be destroyed on {due} ({days} day(s) left)."
        )
    return _finding(
        rule_id="RET-WARN",
        severity=Severity.HIGH if st.threshold <= 1 else Severity.MEDIUM,
        resource=planning.warning_resource(e.id, st.threshold),
        election=e,
        message=message,
        remediation=N_(
            "Check what will be kept with `isoloir retention plan --election {election}`; "
            "consenting contacts are kept automatically."
        ),
        params={
            "due": st.due.isoformat(),
            "days": st.days_left,
            "reason": e.legal_hold_reason or "",
        },
        evidence={
            "due": st.due.isoformat(),
            "days_left": st.days_left,
            "threshold": st.threshold,
            "legal_hold": e.legal_hold,
        },
        now=now,
    )


def hold_finding(st: planning.ElectionStatus, now: datetime) -> Finding:
    e = st.election
    return _finding(
        rule_id="RET-HOLD",
        severity=Severity.HIGH,
        resource=_resource(e, "/legal-hold"),
        election=e,
        message=N_(
            "Retention of {election} was due on {due} but a legal hold stops the purge: "
            "{reason}. Nothing was deleted."
        ),
        remediation=N_("Lift the hold in the election's policy once the case is closed."),
        params={"due": st.due.isoformat(), "reason": e.legal_hold_reason or ""},
        evidence={
            "due": st.due.isoformat(),
            "days_overdue": -st.days_left,
            "legal_hold": True,
            "reason": e.legal_hold_reason,
            "deleted": 0,
        },
        now=now,
    )


def due_finding(st: planning.ElectionStatus, now: datetime, why: str | Msg) -> Finding:
    e = st.election
    return _finding(
        rule_id="RET-DUE",
        severity=Severity.HIGH,
        resource=_resource(e),
        election=e,
        message=N_("The campaign data of {election} was due for destruction on {due}: {why}."),
        remediation=N_("Run `isoloir retention run --election {election}`."),
        params={"due": st.due.isoformat(), "why": why},
        evidence={"due": st.due.isoformat(), "days_overdue": -st.days_left},
        now=now,
    )


def failed_finding(e: Election, now: datetime, error: BaseException) -> Finding:
    return _finding(
        rule_id="RET-FAILED",
        severity=Severity.HIGH,
        resource=_resource(e, "/purge"),
        election=e,
        message=N_(
            "The purge of {election} stopped ({error_type}: {error}); the next run resumes it "
            "from the journal."
        ),
        remediation=N_("Fix the cause, then run `isoloir retention run --election {election}`."),
        params={"error_type": type(error).__name__, "error": str(error)},
        evidence={"error": type(error).__name__},
        now=now,
    )


def residue_finding(
    e: Election, done: Run, residue: list[Msg], now: datetime, purging: bool
) -> Finding:
    what = N_("they are purged again now") if purging else N_("the next run purges them")
    return _finding(
        rule_id="RET-RESIDUE",
        severity=Severity.HIGH,
        resource=_resource(e, "/residue"),
        election=e,
        message=N_(
            "Campaign data was written into the purged datasets of {election} after its purge "
            "of {purged}: {locations}; {what}."
        ),
        remediation=N_(
            "Remove the election's members from its share (or remove the election from the "
            "policies) so nobody writes there any more."
        ),
        params={"purged": str(done.finished_at)[:10], "locations": residue, "what": what},
        evidence={"locations": [r.to_json() for r in residue], "purged_at": done.finished_at},
        now=now,
    )


def leftovers(e: Election, s3: Any | None = None) -> list[Msg]:
    """Campaign data found after a completed purge, per location (counts, never names).

    Nothing is reported when a location cannot be read: the purge itself
    reports an unreachable bucket or a missing share.
    """
    out: list[Msg] = []
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
                out.append(
                    Msg(
                        N_("{location}: {count} object version(s)"),
                        {"location": f"s3://{e.bucket_name}/{prefix}", "count": f"{found}{more}"},
                    )
                )
        except (ClientError, BotoCoreError):
            pass
        try:
            files = share.list_files(e.share_path, ds.share_path, limit=RESIDUE_SAMPLE)
            dirs = [] if files else share.list_dirs(e.share_path, ds.share_path)
        except (share.ShareError, OSError):
            continue
        if files or dirs:
            out.append(_share_residue(f"{e.share_path}/{ds.share_path}", files, dirs))
    # the rest of the election's folder is purged too (files saved outside the datasets)
    declared = declared_paths(e)
    try:
        files = share.list_files(e.share_path, "", limit=RESIDUE_SAMPLE, declared=declared)
        dirs = [] if files else share.list_dirs(e.share_path, "", declared=declared)
    except (share.ShareError, OSError):
        return out
    if files or dirs:
        out.append(_share_residue(f"{e.share_path} (outside the datasets)", files, dirs))
    return out


def _share_residue(location: str, files: list[share.ShareFile], dirs: list[str]) -> Msg:
    more = "+" if len(files) >= RESIDUE_SAMPLE else ""
    return Msg(
        N_("{location}: {files} file(s), {dirs} folder(s)"),
        {"location": location, "files": f"{len(files)}{more}", "dirs": len(dirs)},
    )


def purged_findings(
    e: Election, document: dict[str, Any], path: str, now: datetime
) -> list[Finding]:
    body = document["certificate"]
    totals = body["totals"]
    key = body["key"]
    unrecorded = sum(
        int(d.get("opt_outs_without_identifier", 0) or 0)
        for d in body.get("datasets", [])
        if isinstance(d, dict)
    )
    if unrecorded:  # CLI review D29: said, not only counted in the JSON
        message = N_(
            "The campaign data of {election} was destroyed: {versions} object versions, "
            "{delete_markers} delete markers and {files} files; {contacts_kept} consenting "
            "contacts kept; {unrecorded} opt-out row(s) had no usable email, phone, or name "
            "and address, and could not be recorded. Certificate: {path}."
        )
    else:
        message = N_(
            "The campaign data of {election} was destroyed: {versions} object versions, "
            "{delete_markers} delete markers and {files} files; {contacts_kept} consenting "
            "contacts kept. Certificate: {path}."
        )
    out = [
        _finding(
            rule_id="RET-PURGED",
            severity=Severity.MEDIUM,
            resource=_resource(e, "/certificate"),
            election=e,
            message=message,
            remediation=N_(
                "Send the certificate to the data-protection officer "
                "(`isoloir certificate show --lang fr {path}`)."
            ),
            params={
                "versions": totals["versions"],
                "delete_markers": totals["delete_markers"],
                "files": totals["files"],
                "contacts_kept": totals["contacts_kept"],
                "unrecorded": unrecorded,
                "path": path,
            },
            evidence={
                **totals,
                "certificate": path,
                "key_deletion_date": key.get("deletion_date"),
            },
            now=now,
        )
    ]
    if not key.get("deletion_date"):
        out.append(
            _finding(
                rule_id="RET-KEY",
                severity=Severity.MEDIUM,
                resource=_resource(e, "/key"),
                election=e,
                message=N_("The KMS key of {election} was not scheduled for deletion: {reason}."),
                remediation=N_("Schedule the key deletion once nothing else depends on it."),
                params={"reason": str(key.get("deferred_reason"))},
                evidence={"certificate": path},
                now=now,
            )
        )
    return out


def _load(path: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data


def request_share_lock(state_dir: Path, election: Election) -> None:
    """Ask root's share-lock service to stop the election's share accepting writes."""
    try:
        if sharelock.request(state_dir, election.id):
            log.info("share lock requested", extra={"fields": {"election": election.id}})
    except OSError as exc:
        log.warning(
            "share lock not requested",
            extra={"fields": {"election": election.id, "error": exc.strerror or str(exc)}},
        )


def evaluate(
    policies: Policies,
    *,
    state_dir: Path,
    secrets_dir: Path,
    now: datetime,
    dry_run: bool,
    only: str | None = None,
    purge: bool = True,
    confirm_unwarned: bool = False,
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
        if done is not None and not dry_run:
            request_share_lock(state_dir, e)
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
                findings.append(due_finding(st, now, N_("dry run, nothing deleted")))
                continue
            try:
                outcome = Purger(
                    policies,
                    e,
                    state_dir=state_dir,
                    secrets_dir=secrets_dir,
                    confirm_unwarned=confirm_unwarned,
                ).run()
            except HoldError:  # pragma: no cover - the phase is HELD then
                findings.append(hold_finding(st, now))
                continue
            except NotYetError as exc:
                findings.append(
                    due_finding(st, now, Msg(N_("the purge waits: {error}"), {"error": str(exc)}))
                )
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
                findings.append(due_finding(st, now, N_("the purge did not complete")))
                continue
            outcomes.append(outcome)
            request_share_lock(state_dir, e)
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
    return findings + reviews.findings(ctx.policies, state_dir=ctx.state_dir, now=ctx.now)
