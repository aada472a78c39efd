"""Who hears about a finding: the policies' routes, by severity and election.

Each email recipient is a destination of its own, so every message has exactly
one address in `To` and nobody sees who else was told. A webhook is one
destination whatever the route's recipients.
"""

from __future__ import annotations

from dataclasses import dataclass

from isoloir.findings import Severity
from isoloir.policy.model import Alerts, Baseline

EMAIL = "email"
WEBHOOK_PREFIX = "webhook:"


@dataclass(frozen=True, order=True)
class Destination:
    channel: str  # "email" or "webhook:<name>"
    recipient: str = ""  # person id for email, "" for a webhook
    address: str = ""  # the email address; never logged

    @property
    def label(self) -> str:
        """What logs and reports may show: the channel and the person id."""
        return f"{self.channel}:{self.recipient}" if self.recipient else self.channel


def configured_channels(alerts: Alerts) -> list[str]:
    channels = [EMAIL] if alerts.email is not None else []
    return channels + [WEBHOOK_PREFIX + w.name for w in alerts.webhooks]


def destinations(baseline: Baseline, severity: Severity, election: str | None) -> list[Destination]:
    """Every destination a finding of this severity and election goes to, no duplicates."""
    alerts = baseline.alerts
    if severity < Severity.parse(alerts.min_severity):
        return []
    webhooks = {w.name for w in alerts.webhooks}
    found: dict[tuple[str, str], Destination] = {}
    for route in alerts.routes:
        if severity < Severity.parse(route.min_severity) or not route.matches(election):
            continue
        for channel in route.channels:
            if channel == EMAIL:
                if alerts.email is None:
                    continue
                for person_id in route.recipients:
                    try:
                        person = baseline.person(person_id)
                    except KeyError:
                        continue  # the loader rejects unknown ids; stay safe anyway
                    if person.email:
                        found.setdefault(
                            (EMAIL, person_id), Destination(EMAIL, person_id, person.email)
                        )
            elif channel.startswith(WEBHOOK_PREFIX) and channel[len(WEBHOOK_PREFIX) :] in webhooks:
                found.setdefault((channel, ""), Destination(channel))
    return sorted(found.values())


def all_destinations(baseline: Baseline) -> list[Destination]:
    """Every destination any route names (for digests and `alerts test`)."""
    out: dict[tuple[str, str], Destination] = {}
    for severity in Severity:
        for route in baseline.alerts.routes:
            for election in route.elections:
                for d in destinations(baseline, severity, None if election == "*" else election):
                    out.setdefault((d.channel, d.recipient), d)
    return sorted(out.values())
