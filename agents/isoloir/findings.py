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
        }

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
        )
