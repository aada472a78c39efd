"""Findings: what a check reports, shared by the agents and the alerting.

A finding names a rule, a resource and an election, never personal data:
counts and paths only. Its fingerprint is stable across runs so alerts can be
de-duplicated and resolved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from isoloir.textsafe import escape_controls, escape_value


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {value!r} (one of {names})") from None

    def __str__(self) -> str:
        return self.name.lower()


def fingerprint(rule_id: str, resource: str) -> str:
    """Stable identity of a finding: the rule and the resource it is about."""
    return hashlib.sha256(f"{rule_id}\x00{resource}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    resource: str  # an ARN, a bucket/key, a path on a host: never file content
    message: str  # one sentence naming the resource, no personal data
    election: str | None = None
    location: str = ""  # host name, region or account
    remediation: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)  # counts, flags, no personal data
    observed_at: datetime | None = None
    # The message and remediation as catalogue templates (English msgids with {named}
    # placeholders) and their values, so each reader gets them in their language;
    # `message`/`remediation` keep the English text (JSON, state, logs). Empty: the
    # English text is itself looked up in the catalogue.
    message_id: str = ""
    remediation_id: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule_id, self.resource)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": str(self.severity),
            "election": self.election,
            "resource": self.resource,
            "location": self.location,
            "message": self.message,
            "remediation": self.remediation,
            "evidence": dict(self.evidence),
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
            "fingerprint": self.fingerprint,
            "message_id": self.message_id,
            "remediation_id": self.remediation_id,
            "params": dict(self.params),
        }

    def escaped(self) -> Finding:
        """The same finding with its texts safe to show (control characters escaped).

        Use it for display only: the fingerprint is the original's.
        """
        return Finding(
            rule_id=escape_controls(self.rule_id),
            severity=self.severity,
            resource=escape_controls(self.resource),
            message=escape_controls(self.message),
            election=None if self.election is None else escape_controls(self.election),
            location=escape_controls(self.location),
            remediation=escape_controls(self.remediation),
            evidence=escape_value(dict(self.evidence)),
            observed_at=self.observed_at,
            message_id=self.message_id,
            remediation_id=self.remediation_id,
            params=escape_value(dict(self.params)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        observed = data.get("observed_at")
        return cls(
            rule_id=str(data["rule_id"]),
            severity=Severity.parse(str(data["severity"])),
            resource=str(data["resource"]),
            message=str(data["message"]),
            election=data.get("election"),
            location=str(data.get("location", "")),
            remediation=str(data.get("remediation", "")),
            evidence=dict(data.get("evidence") or {}),
            observed_at=datetime.fromisoformat(observed) if observed else None,
            message_id=str(data.get("message_id") or ""),
            remediation_id=str(data.get("remediation_id") or ""),
            params=dict(data.get("params") or {}),
        )


def _under(resource: str, prefix: str) -> bool:
    if resource == prefix:
        return True
    sep = prefix if prefix.endswith(("/", ":")) else prefix + "/"
    return resource.startswith(sep)


@dataclass(frozen=True)
class Unread:
    """What a run could not read, so could not observe either way.

    An open finding covered here was neither seen again nor seen gone: it stays
    open (it is never announced resolved) and keeps its first-seen time. `rules`
    covers every finding of a rule (a whole scope unread); `resources` covers a
    resource and everything under it (`s3://bucket` and `s3://bucket/key`, a
    directory and its files; a prefix ending in ":" or "/" covers what starts
    with it).
    """

    rules: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    reasons: Mapping[str, str] = field(default_factory=dict)  # where -> error, for people

    def __bool__(self) -> bool:
        return bool(self.rules or self.resources or self.reasons)

    def covers(self, finding: Finding) -> bool:
        if finding.rule_id in self.rules:
            return True
        return any(_under(finding.resource, p) for p in self.resources)


def from_templates(
    *,
    rule_id: str,
    severity: Severity,
    resource: str,
    message: str,
    remediation: str,
    params: Mapping[str, Any],
    **fields: Any,
) -> Finding:
    """A finding whose message and remediation are catalogue templates (English msgids
    with {named} placeholders): the English text for JSON and state, the template and
    its values for alerts in the reader's language. `fields`: the other Finding fields."""
    from isoloir import i18n

    return Finding(
        rule_id=rule_id,
        severity=severity,
        resource=resource,
        message=i18n.render("en", message, params),
        remediation=i18n.render("en", remediation, params),
        message_id=message,
        remediation_id=remediation,
        params=i18n.params_to_json(params),
        **fields,
    )
