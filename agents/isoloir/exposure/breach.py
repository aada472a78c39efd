"""Personal-data ranking: an exposed file holding personal data is likely a breach.

The finding then becomes critical, reminds the 72-hour notification duty
(RGPD art. 33) and carries a draft entry for the breach register (art. 33.5).
The draft holds counts of records and kinds of data only, never a value.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from isoloir.exposure.pii import KIND_LABELS, PiiReport
from isoloir.findings import Severity

NOTIFY_HOURS = 72
# Kinds whose exposure is likely a high risk for the persons (art. 34: tell them).
HIGH_RISK_KINDS = frozenset({"nir", "iban"})


def kinds_text(report: PiiReport) -> str:
    return ", ".join(KIND_LABELS[k] for k in report.kinds)


def breach_sentence(report: PiiReport) -> str:
    return (
        f"it holds personal data (about {report.estimated_records} records: "
        f"{kinds_text(report)}); this is likely a personal-data breach: notify the CNIL "
        f"within {NOTIFY_HOURS} hours of becoming aware of it (RGPD art. 33) and record "
        "it in the breach register"
    )


def register_draft(
    report: PiiReport,
    *,
    resource: str,
    exposure: str,
    election: str | None,
    aware_at: datetime | None,
    measures: str,
) -> dict[str, Any]:
    """A draft breach-register entry: counts and kinds only."""
    draft: dict[str, Any] = {
        "nature": f"loss of confidentiality: {exposure}",
        "resource": resource,
        "election": election,
        "data_categories": [KIND_LABELS[k] for k in report.kinds],
        "records_in_sample": report.records_sampled,
        "records_estimated": report.estimated_records,
        "data_subjects": "voters and contacts of the campaign",
        "likely_consequences": "unsolicited contact, phishing or identity theft",
        "measures": measures,
        "notify_authority_within_hours": NOTIFY_HOURS,
        "inform_data_subjects": bool(HIGH_RISK_KINDS & set(report.kinds)),
    }
    if aware_at is not None:
        draft["aware_at"] = aware_at.isoformat()
        draft["notify_authority_by"] = (aware_at + timedelta(hours=NOTIFY_HOURS)).isoformat()
    return draft


def rank(
    report: PiiReport | None,
    base: Severity,
    *,
    resource: str,
    exposure: str,
    election: str | None,
    aware_at: datetime | None,
    measures: str,
) -> tuple[Severity, str, dict[str, Any]]:
    """Severity, extra message and evidence for an exposed file given its sample."""
    if report is None or not report.has_personal_data:
        return base, "", {}
    evidence: dict[str, Any] = dict(report.to_evidence())
    evidence["personal_data_breach_likely"] = True
    evidence["breach_register_draft"] = register_draft(
        report,
        resource=resource,
        exposure=exposure,
        election=election,
        aware_at=aware_at,
        measures=measures,
    )
    return Severity.CRITICAL, breach_sentence(report), evidence
