"""The breach register (RGPD art. 33(5)): permanent, with the decision to notify.

The alert spool forgets a resolved finding 90 days after it was resolved
(`alerts.spool.KEEP_DAYS`); the register does not. Every finding that carried a
breach-register draft (an exposed file holding personal data, `exposure.breach`)
is copied here the day it is seen (`sync`, run by the daily `rights` job and by
`isoloir breach list`), once per episode (fingerprint + first seen), and its end
is recorded when the finding is resolved. Entries are never removed.

Per entry the DPO records the decision (`isoloir breach decide`): notify the
CNIL or not, why, who decided, and whether the persons are informed and why.
`isoloir breach show` prints the fields of the CNIL's notification form.

The daily job reminds an undecided breach 24 and 48 hours after the agents
became aware of it, and once the 72 hours have passed.

Stored as JSON in STATE/dpo/breaches.json (0600); counts and paths only.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from isoloir.alerts.spool import spool_path
from isoloir.dpo.requests import RequestError, locked_json
from isoloir.findings import Finding, Severity
from isoloir.i18n import N_, params_to_json

RULE_UNDECIDED = "DPO-BREACH-UNDECIDED"
NOTIFY_HOURS = 72
REMIND_HOURS = (24, 48)


@dataclass
class Breach:
    id: str  # BR-<first seen, UTC>-<fingerprint[:8]>
    fingerprint: str
    rule_id: str
    resource: str
    election: str | None
    draft: dict[str, Any]  # the finding's breach_register_draft (counts and kinds only)
    started_at: str  # first seen by the agents (the start is not known earlier)
    aware_at: str
    ended_at: str = ""  # when the finding was resolved
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def notify_by(self) -> datetime:
        return datetime.fromisoformat(self.aware_at) + timedelta(hours=NOTIFY_HOURS)


def register_path(state_dir: Path) -> Path:
    return state_dir / "dpo" / "breaches.json"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _spool_rows(state_dir: Path) -> list[sqlite3.Row]:
    path = spool_path(state_dir)
    if not path.is_file():
        return []
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    db.row_factory = sqlite3.Row
    try:
        return list(
            db.execute("SELECT fingerprint, finding, state, first_seen, resolved_at FROM findings")
        )
    finally:
        db.close()


def sync(state_dir: Path) -> list[Breach]:
    """Copy the spool's breach findings into the register; returns every entry."""
    with locked_json(register_path(state_dir), "breaches") as items:
        known = {b["id"]: b for b in items}
        for row in _spool_rows(state_dir):
            try:
                finding = Finding.from_dict(json.loads(row["finding"]))
            except (ValueError, KeyError, TypeError):
                continue
            draft = finding.evidence.get("breach_register_draft")
            if not isinstance(draft, dict):
                continue
            first = datetime.fromtimestamp(row["first_seen"], UTC)
            bid = f"BR-{first.strftime('%Y%m%dT%H%M%SZ')}-{row['fingerprint'][:8]}"
            entry = known.get(bid)
            if entry is None:
                entry = asdict(
                    Breach(
                        id=bid,
                        fingerprint=row["fingerprint"],
                        rule_id=finding.rule_id,
                        resource=finding.resource,
                        election=finding.election,
                        draft=dict(draft),
                        started_at=first.isoformat(),
                        aware_at=str(draft.get("aware_at") or first.isoformat()),
                    )
                )
                items.append(entry)
                known[bid] = entry
            if row["state"] == "resolved" and row["resolved_at"] and not entry["ended_at"]:
                entry["ended_at"] = _iso(row["resolved_at"])
        return [Breach(**b) for b in items]


def all_entries(state_dir: Path) -> list[Breach]:
    path = register_path(state_dir)
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Breach(**b) for b in data["breaches"]]


def decide(
    state_dir: Path,
    breach_id: str,
    *,
    notify: bool,
    why: str,
    by: str,
    inform_persons: bool,
    persons_why: str,
    now: datetime,
) -> Breach:
    if not why.strip() or not by.strip():
        raise RequestError("a decision needs its justification and who took it")
    with locked_json(register_path(state_dir), "breaches") as items:
        for b in items:
            if b["id"] == breach_id:
                b["decision"] = {
                    "notify_cnil": notify,
                    "justification": why,
                    "decided_by": by,
                    "decided_at": now.isoformat(),
                    "inform_persons": inform_persons,
                    "persons_justification": persons_why,
                    "late": now > Breach(**b).notify_by,
                }
                return Breach(**b)
    raise RequestError(f"no breach {breach_id!r} in the register")


UNDECIDED = N_(
    "Breach {breach} ({resource}) has no recorded decision: notify the CNIL by {notify_by} "
    "or record why not."
)
UNDECIDED_LATE = N_(
    "Breach {breach} ({resource}) has no recorded decision: the 72 hours to notify the CNIL "
    "ended on {notify_by}."
)
UNDECIDED_FIX = N_(
    "Record the decision: isoloir breach decide {breach} --notify or --no-notify, --why, --by."
)


def reminders(entries: list[Breach], now: datetime) -> list[Finding]:
    """An undecided breach 24 h and 48 h after awareness (high), past 72 h (critical)."""
    out = []
    for b in entries:
        if b.decision:
            continue
        hours = (now - datetime.fromisoformat(b.aware_at)).total_seconds() / 3600
        if hours < min(REMIND_HOURS):
            continue
        late = hours >= NOTIFY_HOURS
        text = UNDECIDED_LATE if late else UNDECIDED
        params = {"breach": b.id, "resource": b.resource, "notify_by": b.notify_by}
        out.append(
            Finding(
                RULE_UNDECIDED,
                Severity.CRITICAL if late else Severity.HIGH,
                f"breach:{b.id}",
                text.format(**params),
                election=b.election,
                remediation=UNDECIDED_FIX.format(**params),
                evidence={"aware_at": b.aware_at, "notify_authority_by": b.notify_by.isoformat()},
                observed_at=now,
                message_id=text,
                remediation_id=UNDECIDED_FIX,
                params=params_to_json(params),
            )
        )
    return out


# ------------------------------------------------------------- the CNIL form
FORM = {
    "fr": (
        ("notification", "Type de notification"),
        ("controller", "Responsable de traitement"),
        ("dpo", "Délégué à la protection des données"),
        ("started_at", "Début de la violation (au plus tard)"),
        ("aware_at", "Date de prise de connaissance"),
        ("ended_at", "Fin de la violation"),
        ("circumstances", "Circonstances"),
        ("nature", "Nature de la violation"),
        ("data_categories", "Catégories de données concernées"),
        ("records", "Nombre approximatif d'enregistrements"),
        ("persons", "Catégories et nombre approximatif de personnes"),
        ("consequences", "Conséquences probables"),
        ("measures", "Mesures prises"),
        ("inform_persons", "Information des personnes concernées"),
        ("cross_border", "Violation transfrontalière"),
        ("decision", "Décision de notifier la CNIL"),
        ("notify_by", "Notifier la CNIL au plus tard le"),
    ),
    "en": (
        ("notification", "Kind of notification"),
        ("controller", "Controller"),
        ("dpo", "Data protection officer"),
        ("started_at", "Start of the breach (at the latest)"),
        ("aware_at", "Became aware on"),
        ("ended_at", "End of the breach"),
        ("circumstances", "Circumstances"),
        ("nature", "Nature of the breach"),
        ("data_categories", "Categories of data concerned"),
        ("records", "Approximate number of records"),
        ("persons", "Categories and approximate number of persons"),
        ("consequences", "Likely consequences"),
        ("measures", "Measures taken"),
        ("inform_persons", "Informing the persons concerned"),
        ("cross_border", "Cross-border breach"),
        ("decision", "Decision to notify the CNIL"),
        ("notify_by", "Notify the CNIL by"),
    ),
}


def form(b: Breach, controller: str, dpo: str, lang: str = "fr") -> dict[str, str]:
    """The notification form's fields for one entry (catalogue texts translated)."""
    from isoloir import i18n

    def tr(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(tr(v) for v in value)
        return i18n.gettext_for(lang, str(value)) if isinstance(value, str) else str(value)

    fr = lang == "fr"
    d, dec = b.draft, b.decision
    yes, no = ("oui", "non") if fr else ("yes", "no")
    pending = "à décider" if fr else "to decide"
    if dec:
        decision = (yes if dec["notify_cnil"] else no) + f" — {dec['justification']} "
        decision += f"({dec['decided_by']}, {dec['decided_at']})"
        informed = (yes if dec["inform_persons"] else no) + (
            f" — {dec['persons_justification']}" if dec.get("persons_justification") else ""
        )
    else:
        decision = pending
        advised = yes if d.get("inform_data_subjects") else no
        informed = f"{pending} ({'recommandé' if fr else 'advised'} : {advised})"
    return {
        "notification": "initiale" if fr else "initial",
        "controller": controller,
        "dpo": dpo,
        "started_at": b.started_at,
        "aware_at": b.aware_at,
        "ended_at": b.ended_at or ("en cours" if fr else "ongoing"),
        "circumstances": f"{tr(d.get('exposure', ''))} ({b.resource})",
        "nature": tr(d.get("nature", "")),
        "data_categories": tr(d.get("data_categories", [])),
        "records": str(d.get("records_estimated", "")),
        "persons": f"{tr(d.get('data_subjects', ''))} (~{d.get('records_estimated', '?')})",
        "consequences": tr(d.get("likely_consequences", "")),
        "measures": tr(d.get("measures", "")),
        "inform_persons": informed,
        "cross_border": no,
        "decision": decision,
        "notify_by": b.notify_by.isoformat(),
    }
