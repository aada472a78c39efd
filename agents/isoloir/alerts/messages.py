"""The text of alerts, in French (default) or English.

Every text comes from the gettext catalogues (isoloir.i18n): the chrome below
by key (`texts`), a finding's message and remediation from its template and
parameters, its evidence as labelled lines (isoloir.alerts.details).

A message says what, where, since when and how to fix, and nothing else: it is
built only from what a Finding carries (rule, resource, election, counts and
flags in its evidence), never from file contents or personal data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from isoloir import i18n
from isoloir.alerts import details
from isoloir.findings import Finding, Severity
from isoloir.i18n import N_

LANGUAGES = i18n.LANGUAGES

_SEVERITY = {
    Severity.INFO: N_("info"),
    Severity.LOW: N_("low"),
    Severity.MEDIUM: N_("medium"),
    Severity.HIGH: N_("high"),
    Severity.CRITICAL: N_("critical"),
}

# The alert chrome: a key per text, its English msgid; texts(language) translates them.
_KEYS: dict[str, str] = {
    "alert": N_("Alert"),
    "reminder": N_("Reminder"),
    "resolved": N_("Resolved"),
    "summary": N_("Too many alerts"),
    "digest": N_("Daily digest"),
    "test": N_("Test"),
    "no_election": N_("all elections"),
    "what": N_("What"),
    "where": N_("Where"),
    "location": N_("Location"),
    "election": N_("Election"),
    "since": N_("Since"),
    "rule": N_("Rule"),
    "severity": N_("Severity"),
    "details": N_("Details"),
    "fix": N_("How to fix"),
    "no_fix": N_("see the rule's documentation"),
    "legal_hold": N_("Legal hold (purge suspended)"),
    "fingerprint": N_("Fingerprint"),
    "resolved_body": N_("This problem no longer appears in the results of the '{job}' check."),
    "resolved_at": N_("Resolved at"),
    "reminder_body": N_("This problem is still present."),
    "summary_subject": N_("{count} alerts grouped"),
    "summary_body": N_(
        "More than {limit} alerts within {window} minutes: the next ones are "
        "grouped here instead of being sent one by one."
    ),
    "by_rule": N_("By rule"),
    "digest_subject": N_("{count} open problem(s)"),
    "digest_body": N_("Problems still open on {date}:"),
    "digest_none": N_("No open problem."),
    "test_subject": N_("test message"),
    "test_body": N_(
        "This is a test message sent by 'isoloir alerts test' through the "
        "{channel} channel. If you read it, the channel works."
    ),
    "footer": N_("-- Isoloir, campaign data protection agent. Automatic message."),
    "reads": N_("Reads"),
    "reads_found": N_(
        "read {reads} times by {requesters} outside requesters since {since} "
        "(logs read until {until})"
    ),
    # a share's audit log (evidence `reads_by: other_accounts`): accounts other than the owner
    "reads_found_accounts": N_(
        "read {reads} times by {requesters} other accounts since {since} (logs read until {until})"
    ),
    "reads_none": N_("no read found in the logs since {since} (logs read until {until})"),
    "reads_unknown": N_("access logs not read: no read can be ruled out since {since}"),
    "reads_truncated": N_("logs partly read (bounds reached)"),
    "no_log_yet": N_("no log delivered yet"),
    "draft": N_("Breach register draft"),
    "yes": N_("yes"),
    "no": N_("no"),
    "grouped": N_("Summary"),
    "grouped_subject": N_("{count} problem(s) ({elections})"),
    "grouped_body": N_("This check's non-critical problems are grouped here, one per resource:"),
    "new": N_("New"),
}

# Evidence keys that explain a legal hold; shown on their own line, never dropped.
LEGAL_HOLD_KEYS = ("legal_hold_reason", "hold_reason")
DRAFT_KEY = "breach_register_draft"  # rendered as its own block, with the reads
READS_BY = "reads_by"  # whose reads the counts are (the sentence says it; not a detail)


def texts(language: str) -> dict[str, str]:
    """The alert chrome in `language` (French when unknown), from the catalogue."""
    return {k: i18n.gettext_for(language, v) for k, v in _KEYS.items()}


def severity_label(severity: Severity, language: str) -> str:
    return i18n.gettext_for(language, _SEVERITY[severity])


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _fmt_time(value: datetime | None, language: str) -> str:
    """30/11/2026 14:05 UTC in French, 2026-11-30 14:05 UTC in English."""
    return i18n.format_time(value, language)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed


def reads_sentence(
    evidence: Mapping[str, Any], language: str, first_seen: datetime | None
) -> str | None:
    """What the access logs say about reads by outsiders since the exposure began:
    counts and times only (the evidence holds no address and no requester id)."""
    if "outside_reads" not in evidence and "logs_read_until" not in evidence:
        return None
    t = texts(language)
    since = _fmt_time(_parse_time(evidence.get("reads_since")) or first_seen, language)
    if evidence.get("logs_unreadable") or evidence.get("access_logging") is False:
        return t["reads_unknown"].format(since=since)
    until_at = _parse_time(evidence.get("logs_read_until"))
    until = _fmt_time(until_at, language) if until_at is not None else t["no_log_yet"]
    reads = int(evidence.get("outside_reads") or 0)
    if reads > 0:
        found = (
            "reads_found_accounts" if evidence.get(READS_BY) == "other_accounts" else "reads_found"
        )
        text = t[found].format(
            reads=reads,
            requesters=int(evidence.get("outside_requesters") or 0),
            since=since,
            until=until,
        )
    else:
        text = t["reads_none"].format(since=since, until=until)
    if evidence.get("logs_truncated"):
        text += ("; " if language != "fr" else " ; ") + t["reads_truncated"]
    return text


def _draft_lines(
    draft: Mapping[str, Any], reads: str | None, t: Mapping[str, str], language: str
) -> list[str]:
    """The breach-register draft as a block a DPO can paste into the register."""
    sep = details.sep(language)
    lines = [f"{t['draft']}{sep.rstrip()}"]
    lines.extend(details.evidence_lines(draft, language))
    if reads:
        lines.append(f"  - {t['reads']}{sep}{reads}")
    return lines


def legal_hold_reason(finding: Finding) -> str | None:
    for key in LEGAL_HOLD_KEYS:
        reason = finding.evidence.get(key)
        if reason:
            return str(reason)
    return None


def _finding_lines(
    finding: Finding, t: Mapping[str, str], language: str, first_seen: datetime | None
) -> list[str]:
    fingerprint = finding.fingerprint
    finding = finding.escaped()  # names come from members: no forged line, no escape code
    sep = " : " if language == "fr" else ": "
    lines = [f"{t['what']}{sep}{details.message_text(finding, language)}"]
    lines.append(f"{t['where']}{sep}{finding.resource}")
    if finding.location:
        lines.append(f"{t['location']}{sep}{finding.location}")
    lines.append(f"{t['election']}{sep}{finding.election or t['no_election']}")
    lines.append(f"{t['since']}{sep}{_fmt_time(first_seen or finding.observed_at, language)}")
    lines.append(f"{t['rule']}{sep}{finding.rule_id}")
    lines.append(f"{t['severity']}{sep}{severity_label(finding.severity, language)}")
    hold = legal_hold_reason(finding)
    if hold or finding.evidence.get("legal_hold"):
        lines.append(f"{t['legal_hold']}{sep}{hold or '-'}")
    reads = reads_sentence(finding.evidence, language, first_seen)
    if reads:
        lines.append(f"{t['reads']}{sep}{reads}")
    skip = {*LEGAL_HOLD_KEYS, "legal_hold", DRAFT_KEY, READS_BY}
    shown = details.evidence_lines(finding.evidence, language, skip=skip)
    if shown:
        lines.append(f"{t['details']}{sep.rstrip()}")
        lines.extend(shown)
    draft = finding.evidence.get(DRAFT_KEY)
    if isinstance(draft, Mapping):
        lines.extend(_draft_lines(draft, reads, t, language))
    lines.append(f"{t['fix']}{sep}{details.remediation_text(finding, language) or t['no_fix']}")
    lines.append(f"{t['fingerprint']}{sep}{fingerprint}")
    return lines


def _subject(label: str, parts: Iterable[str]) -> str:
    return "[Isoloir] " + " · ".join([label, *parts])


SUBJECT_RESOURCE_MAX = 64


def short_resource(resource: str, limit: int = SUBJECT_RESOURCE_MAX) -> str:
    """The resource as a subject shows it: whole when short, else its start and
    its end (the file name) around an ellipsis, so two resources stay apart."""
    resource = resource.removeprefix("arn:aws:s3:::")
    if len(resource) <= limit:
        return resource
    tail = resource.rsplit("/", 1)[-1]
    tail = tail[-(limit * 2 // 3) :]
    head = resource[: max(1, limit - len(tail) - 1)]
    return f"{head}…{tail}"


def render_finding(
    finding: Finding, language: str, *, first_seen: datetime | None, reminder: bool = False
) -> Rendered:
    t = texts(language)
    kind = t["reminder"] if reminder else t["alert"]
    shown = finding.escaped()
    subject = _subject(
        f"{kind} {severity_label(finding.severity, language).upper()}",
        [shown.election or t["no_election"], shown.rule_id, short_resource(shown.resource)],
    )
    lines = _finding_lines(finding, t, language, first_seen)
    if reminder:
        lines.insert(0, t["reminder_body"])
        lines.insert(1, "")
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")


def render_resolved(
    finding: Finding, language: str, *, job: str, first_seen: datetime | None, resolved_at: datetime
) -> Rendered:
    t = texts(language)
    sep = " : " if language == "fr" else ": "
    fingerprint = finding.fingerprint
    finding = finding.escaped()
    subject = _subject(t["resolved"], [finding.election or t["no_election"], finding.rule_id])
    lines = [t["resolved_body"].format(job=job), ""]
    lines += [
        f"{t['where']}{sep}{finding.resource}",
        f"{t['election']}{sep}{finding.election or t['no_election']}",
        f"{t['rule']}{sep}{finding.rule_id}",
        f"{t['since']}{sep}{_fmt_time(first_seen, language)}",
        f"{t['resolved_at']}{sep}{_fmt_time(resolved_at, language)}",
        f"{t['fingerprint']}{sep}{fingerprint}",
    ]
    hold = legal_hold_reason(finding)
    if hold:
        lines.append(f"{t['legal_hold']}{sep}{hold}")
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")


def _holds(findings: Iterable[Finding], t: Mapping[str, str], sep: str) -> list[str]:
    """One line per election under legal hold: the reason survives any grouping."""
    reasons = {f.election or t["no_election"]: legal_hold_reason(f) for f in findings}
    return [
        f"{t['legal_hold']}{sep}{election} — {reason}"
        for election, reason in sorted(reasons.items())
        if reason
    ]


def render_summary(
    items: Sequence[tuple[str, Finding]], language: str, *, limit: int, window_minutes: int
) -> Rendered:
    """One message in place of many: counts by kind, rule and election, no detail per item."""
    t = texts(language)
    sep = " : " if language == "fr" else ": "
    items = [(kind, f.escaped()) for kind, f in items]
    subject = _subject(t["summary"], [t["summary_subject"].format(count=len(items))])
    counts = Counter((kind, f.rule_id, f.election or t["no_election"]) for kind, f in items)
    lines = [
        t["summary_body"].format(limit=limit, window=window_minutes),
        "",
        f"{t['by_rule']}{sep.rstrip()}",
    ]
    for (kind, rule, election), n in sorted(counts.items()):
        lines.append(f"  - {t.get(kind, kind)} · {rule} · {election}: {n}")
    worst = max((f.severity for _, f in items), default=Severity.INFO)
    lines.append(f"{t['severity']}{sep}{severity_label(worst, language)} (max)")
    lines.extend(_holds((f for _, f in items), t, sep))
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")


def render_digest(
    open_findings: Sequence[tuple[Finding, datetime | None]], language: str, *, now: datetime
) -> Rendered:
    t = texts(language)
    open_findings = [(f.escaped(), seen) for f, seen in open_findings]
    subject = _subject(t["digest"], [t["digest_subject"].format(count=len(open_findings))])
    lines = [t["digest_body"].format(date=i18n.format_date(now.date(), language)), ""]
    sep = " : " if language == "fr" else ": "
    if not open_findings:
        lines.append(t["digest_none"])
    ordered = sorted(open_findings, key=lambda x: (-x[0].severity, x[0].rule_id, x[0].resource))
    for f, first_seen in ordered:
        lines.append(
            f"  - [{severity_label(f.severity, language)}] {f.election or t['no_election']} · "
            f"{f.rule_id} · {f.resource} ({t['since'].lower()} {_fmt_time(first_seen, language)})"
        )
    holds = _holds((f for f, _ in open_findings), t, sep)
    if holds:
        lines += ["", *holds]
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")


def render_test(language: str, *, channel: str, now: datetime) -> Rendered:
    t = texts(language)
    subject = _subject(t["test"], [t["test_subject"], _fmt_time(now, language)])
    return Rendered(subject, t["test_body"].format(channel=channel) + "\n\n" + t["footer"] + "\n")


def render_grouped(
    items: Sequence[tuple[str, Finding, datetime | None]], language: str
) -> Rendered:
    """One message for one check's non-critical news to one recipient: each
    resource on its own line with what it is and how to fix it."""
    t = texts(language)
    sep = " : " if language == "fr" else ": "
    shown = [(kind, f.escaped(), seen) for kind, f, seen in items]
    elections = sorted({f.election or t["no_election"] for _, f, _ in shown})
    subject = _subject(
        t["grouped"],
        [t["grouped_subject"].format(count=len(shown), elections=", ".join(elections))],
    )
    lines = [t["grouped_body"], ""]
    ordered = sorted(shown, key=lambda x: (-x[1].severity, x[1].rule_id, x[1].resource))
    label = {"alert": t["new"], "reminder": t["reminder"], "resolved": t["resolved"]}
    for kind, f, seen in ordered:
        lines.append(
            f"- [{severity_label(f.severity, language)}] {label.get(kind, kind)} · "
            f"{f.election or t['no_election']} · {f.resource}"
        )
        lines.append(f"    {t['what']}{sep}{details.message_text(f, language)}")
        lines.append(f"    {t['since']}{sep}{_fmt_time(seen or f.observed_at, language)}")
        if kind != "resolved":
            fix = details.remediation_text(f, language) or t["no_fix"]
            lines.append(f"    {t['fix']}{sep}{fix}")
    holds = _holds((f for _, f, _ in shown), t, sep)
    if holds:
        lines += ["", *holds]
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")
