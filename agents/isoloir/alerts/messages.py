"""The text of alerts, in French (default) or English.

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

from isoloir.findings import Finding, Severity

LANGUAGES = ("fr", "en")

_SEVERITY = {
    "fr": {
        Severity.INFO: "info",
        Severity.LOW: "faible",
        Severity.MEDIUM: "moyenne",
        Severity.HIGH: "élevée",
        Severity.CRITICAL: "critique",
    },
    "en": {s: s.name.lower() for s in Severity},
}

_T: dict[str, dict[str, str]] = {
    "fr": {
        "alert": "Alerte",
        "reminder": "Rappel",
        "resolved": "Résolu",
        "summary": "Trop d'alertes",
        "digest": "Résumé quotidien",
        "test": "Test",
        "no_election": "toutes élections",
        "what": "Quoi",
        "where": "Où",
        "location": "Emplacement",
        "election": "Élection",
        "since": "Depuis",
        "rule": "Règle",
        "severity": "Gravité",
        "details": "Détails",
        "fix": "Comment corriger",
        "no_fix": "voir la documentation de la règle",
        "legal_hold": "Gel juridique (purge suspendue)",
        "fingerprint": "Empreinte",
        "resolved_body": (
            "Ce problème n'apparaît plus dans les résultats de la vérification « {job} »."
        ),
        "resolved_at": "Résolu le",
        "reminder_body": "Ce problème est toujours présent.",
        "summary_subject": "{count} alertes regroupées",
        "summary_body": (
            "Plus de {limit} alertes en {window} minutes : les suivantes sont regroupées "
            "ici au lieu d'être envoyées une par une."
        ),
        "by_rule": "Par règle",
        "digest_subject": "{count} problème(s) ouvert(s)",
        "digest_body": "Problèmes encore ouverts au {date} :",
        "digest_none": "Aucun problème ouvert.",
        "test_subject": "message de test",
        "test_body": (
            "Ceci est un message de test envoyé par « isoloir alerts test » "
            "via le canal {channel}. Si vous le lisez, ce canal fonctionne."
        ),
        "footer": "— Isoloir, agent de protection des données de campagne. Message automatique.",
        "reads": "Lectures",
        "reads_found": (
            "lu {reads} fois par {requesters} demandeur(s) extérieur(s) depuis le {since} "
            "(journaux lus jusqu'au {until})"
        ),
        "reads_none": (
            "aucune lecture trouvée dans les journaux depuis le {since} "
            "(journaux lus jusqu'au {until})"
        ),
        "reads_unknown": (
            "journaux d'accès non lus : aucune lecture ne peut être exclue depuis le {since}"
        ),
        "reads_truncated": "lecture partielle des journaux (limites atteintes)",
        "no_log_yet": "aucun journal reçu",
        "draft": "Brouillon pour le registre des violations",
        "yes": "oui",
        "no": "non",
        "grouped": "Récapitulatif",
        "grouped_subject": "{count} problème(s) ({elections})",
        "grouped_body": (
            "Les problèmes non critiques de cette vérification sont regroupés ici, "
            "un par ressource :"
        ),
        "new": "Nouveau",
    },
    "en": {
        "alert": "Alert",
        "reminder": "Reminder",
        "resolved": "Resolved",
        "summary": "Too many alerts",
        "digest": "Daily digest",
        "test": "Test",
        "no_election": "all elections",
        "what": "What",
        "where": "Where",
        "location": "Location",
        "election": "Election",
        "since": "Since",
        "rule": "Rule",
        "severity": "Severity",
        "details": "Details",
        "fix": "How to fix",
        "no_fix": "see the rule's documentation",
        "legal_hold": "Legal hold (purge suspended)",
        "fingerprint": "Fingerprint",
        "resolved_body": "This problem no longer appears in the results of the '{job}' check.",
        "resolved_at": "Resolved at",
        "reminder_body": "This problem is still present.",
        "summary_subject": "{count} alerts grouped",
        "summary_body": (
            "More than {limit} alerts within {window} minutes: the next ones are grouped "
            "here instead of being sent one by one."
        ),
        "by_rule": "By rule",
        "digest_subject": "{count} open problem(s)",
        "digest_body": "Problems still open on {date}:",
        "digest_none": "No open problem.",
        "test_subject": "test message",
        "test_body": (
            "This is a test message sent by 'isoloir alerts test' through the {channel} channel. "
            "If you read it, the channel works."
        ),
        "footer": "-- Isoloir, campaign data protection agent. Automatic message.",
        "reads": "Reads",
        "reads_found": (
            "read {reads} times by {requesters} outside requesters since {since} "
            "(logs read until {until})"
        ),
        "reads_none": "no read found in the logs since {since} (logs read until {until})",
        "reads_unknown": "access logs not read: no read can be ruled out since {since}",
        "reads_truncated": "logs partly read (bounds reached)",
        "no_log_yet": "no log delivered yet",
        "draft": "Breach register draft",
        "yes": "yes",
        "no": "no",
        "grouped": "Summary",
        "grouped_subject": "{count} problem(s) ({elections})",
        "grouped_body": "This check's non-critical problems are grouped here, one per resource:",
        "new": "New",
    },
}

# Evidence keys that explain a legal hold; shown on their own line, never dropped.
LEGAL_HOLD_KEYS = ("legal_hold_reason", "hold_reason")
DRAFT_KEY = "breach_register_draft"  # rendered as its own block, with the reads
_MAX_VALUE = 200


def texts(language: str) -> dict[str, str]:
    return _T[language if language in _T else "fr"]


def severity_label(severity: Severity, language: str) -> str:
    return _SEVERITY[language if language in _SEVERITY else "fr"][severity]


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _fmt_time(value: datetime | None) -> str:
    if value is None:
        return "?"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _value(v: Any) -> str:
    text = str(v)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


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
    since = _fmt_time(_parse_time(evidence.get("reads_since")) or first_seen)
    if evidence.get("logs_unreadable") or evidence.get("access_logging") is False:
        return t["reads_unknown"].format(since=since)
    until_at = _parse_time(evidence.get("logs_read_until"))
    until = _fmt_time(until_at) if until_at is not None else t["no_log_yet"]
    reads = int(evidence.get("outside_reads") or 0)
    if reads > 0:
        text = t["reads_found"].format(
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


def _draft_value(v: Any, t: Mapping[str, str]) -> str:
    if isinstance(v, bool):
        return t["yes"] if v else t["no"]
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) or "-"
    return "-" if v is None else _value(v)


def _draft_lines(
    draft: Mapping[str, Any], reads: str | None, t: Mapping[str, str], sep: str
) -> list[str]:
    """The breach-register draft as a block a DPO can paste into the register."""
    lines = [f"{t['draft']}{sep.rstrip()}"]
    lines.extend(f"  - {k}: {_draft_value(v, t)}" for k, v in draft.items())
    if reads:
        lines.append(f"  - {t['reads'].lower()}: {reads}")
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
    lines = [f"{t['what']}{sep}{finding.message}"]
    lines.append(f"{t['where']}{sep}{finding.resource}")
    if finding.location:
        lines.append(f"{t['location']}{sep}{finding.location}")
    lines.append(f"{t['election']}{sep}{finding.election or t['no_election']}")
    lines.append(f"{t['since']}{sep}{_fmt_time(first_seen or finding.observed_at)}")
    lines.append(f"{t['rule']}{sep}{finding.rule_id}")
    lines.append(f"{t['severity']}{sep}{severity_label(finding.severity, language)}")
    hold = legal_hold_reason(finding)
    if hold or finding.evidence.get("legal_hold"):
        lines.append(f"{t['legal_hold']}{sep}{hold or '-'}")
    reads = reads_sentence(finding.evidence, language, first_seen)
    if reads:
        lines.append(f"{t['reads']}{sep}{reads}")
    skip = {*LEGAL_HOLD_KEYS, "legal_hold", DRAFT_KEY}
    details = {k: v for k, v in finding.evidence.items() if k not in skip}
    if details:
        lines.append(f"{t['details']}{sep.rstrip()}")
        lines.extend(f"  - {k}: {_value(details[k])}" for k in sorted(details))
    draft = finding.evidence.get(DRAFT_KEY)
    if isinstance(draft, Mapping):
        lines.extend(_draft_lines(draft, reads, t, sep))
    lines.append(f"{t['fix']}{sep}{finding.remediation or t['no_fix']}")
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
        f"{t['since']}{sep}{_fmt_time(first_seen)}",
        f"{t['resolved_at']}{sep}{_fmt_time(resolved_at)}",
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
    lines = [t["digest_body"].format(date=now.strftime("%Y-%m-%d")), ""]
    sep = " : " if language == "fr" else ": "
    if not open_findings:
        lines.append(t["digest_none"])
    ordered = sorted(open_findings, key=lambda x: (-x[0].severity, x[0].rule_id, x[0].resource))
    for f, first_seen in ordered:
        lines.append(
            f"  - [{severity_label(f.severity, language)}] {f.election or t['no_election']} · "
            f"{f.rule_id} · {f.resource} ({t['since'].lower()} {_fmt_time(first_seen)})"
        )
    holds = _holds((f for f, _ in open_findings), t, sep)
    if holds:
        lines += ["", *holds]
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")


def render_test(language: str, *, channel: str, now: datetime) -> Rendered:
    t = texts(language)
    subject = _subject(t["test"], [t["test_subject"], now.strftime("%Y-%m-%d %H:%M UTC")])
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
        lines.append(f"    {t['what']}{sep}{f.message}")
        lines.append(f"    {t['since']}{sep}{_fmt_time(seen or f.observed_at)}")
        if kind != "resolved":
            lines.append(f"    {t['fix']}{sep}{f.remediation or t['no_fix']}")
    holds = _holds((f for _, f, _ in shown), t, sep)
    if holds:
        lines += ["", *holds]
    return Rendered(subject, "\n".join([*lines, "", t["footer"]]) + "\n")
