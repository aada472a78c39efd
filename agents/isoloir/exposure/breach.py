"""Personal-data ranking: an exposed file holding personal data is likely a breach.

The finding then becomes critical, reminds the 72-hour notification duty
(RGPD art. 33) and carries a draft entry for the breach register (art. 33.5).
The draft holds counts of records and kinds of data only, never a value; its
texts are catalogue msgids (English), rendered in the alert's language.

Every file the kit watches belongs to a political party (an election's
bucket or share, the party's hosts): whoever is in it is presumed to share or
be targeted for the party's opinions, a special category of data (RGPD art. 9;
review E1). Its exposure is therefore a high risk for the persons, whatever
the patterns found: the draft lists presumed political opinions among the
data, and says the persons are to be informed (art. 34).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from isoloir.exposure.pii import KIND_LABELS, PiiReport
from isoloir.findings import Severity
from isoloir.i18n import N_, Msg

NOTIFY_HOURS = 72
# Kinds whose exposure is a high risk for the persons on their own (art. 34: tell them);
# a party's file is one anyway, for the opinions it reveals.
HIGH_RISK_KINDS = frozenset({"nir", "iban"})
POLITICAL_OPINIONS = N_("presumed political opinions (RGPD art. 9)")


def kinds(report: PiiReport) -> list[str]:
    return [KIND_LABELS[k] for k in report.kinds]


def breach_sentence(report: PiiReport) -> Msg:
    return Msg(
        N_(
            "it holds personal data (about {records} records: {kinds}); this is likely a "
            "personal-data breach: notify the CNIL within {hours} hours of becoming aware of "
            "it (RGPD art. 33) and record it in the breach register; a political party's file "
            "reveals the presumed political opinions of the people in it, so the risk is high: "
            "inform them (RGPD art. 34)"
        ),
        {"records": report.estimated_records, "kinds": kinds(report), "hours": NOTIFY_HOURS},
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
    """A draft breach-register entry: counts and kinds only (`exposure` and `measures`
    are catalogue msgids, like every text of the draft)."""
    draft: dict[str, Any] = {
        "nature": N_("loss of confidentiality"),
        "exposure": exposure,
        "resource": resource,
        "election": election,
        "data_categories": [*kinds(report), POLITICAL_OPINIONS],
        "records_in_sample": report.records_sampled,
        "records_estimated": report.estimated_records,
        "data_subjects": N_("voters and contacts of the campaign"),
        "likely_consequences": N_(
            "disclosure of presumed political opinions, unsolicited contact, phishing or "
            "identity theft"
        ),
        "measures": measures,
        "notify_authority_within_hours": NOTIFY_HOURS,
        "risk": N_("high risk"),
        # art. 34: high risk, for the opinions a party's file reveals (and NIR/IBAN besides)
        "inform_data_subjects": True,
        "special_category": True,
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
) -> tuple[Severity, Msg | None, dict[str, Any]]:
    """Severity, extra message (None: no personal data) and evidence for an exposed file
    given its sample."""
    if report is None or not report.has_personal_data:
        return base, None, {}
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
