"""The check registry: every check declared once, in its own file.

A check module in `isoloir.exposure.checks` decorates one function with
`@check(...)`; the registered id must be the module's name (the registry
refuses a mismatch). `discover()` imports every module of the package, so
adding a check is adding one file and its test. Checks are pure: they read an
`Inventory` and yield `Hit`s; `run()` turns hits into `Finding`s carrying the
check's metadata.

Texts are catalogue msgids (English, marked with `N_` so Babel extracts them):
a check's title and remediation, and each Hit's message, a template with
{named} placeholders whose values are in `params`. The Finding keeps the
English rendering in `message` (JSON and state stay readable) and carries the
template and its values, so each alert is written in its reader's language.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from isoloir import i18n
from isoloir.exposure.model import Inventory
from isoloir.findings import Finding, Severity

SCOPES = ("s3", "shares", "identity")


@dataclass(frozen=True)
class Hit:
    """What a check found about one resource (no personal data)."""

    resource: str
    message: str  # a catalogue msgid: N_("Bucket {bucket} ...") with {named} placeholders
    election: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity | None = None  # overrides the check's severity (personal data found)
    target: Any = None  # what a remediation acts on (raw path, bucket name...)
    location: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)  # values of the placeholders

    def text(self, language: str = "en") -> str:
        return i18n.render(language, self.message, self.params)


Evaluate = Callable[[Inventory], Iterable[Hit]]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    scope: str  # s3 | shares | identity
    reflex: str  # the CNIL reflex or control it serves
    remediation: str
    permissions: tuple[str, ...]
    evaluate: Evaluate
    fix: str | None = None  # name of the remediation rule in baseline.remediation


@dataclass(frozen=True)
class Result:
    check: Check
    finding: Finding
    target: Any


CHECKS: dict[str, Check] = {}
PACKAGE = "isoloir.exposure.checks"


class RegistryError(RuntimeError):
    pass


def check(
    *,
    id: str,  # noqa: A002 - the registry's own vocabulary
    title: str,
    severity: Severity,
    scope: str,
    reflex: str,
    remediation: str,
    permissions: Iterable[str] = (),
    fix: str | None = None,
) -> Callable[[Evaluate], Check]:
    """Register the decorated function as check `id` (which must be its module's name)."""
    if scope not in SCOPES:
        raise RegistryError(f"check {id}: unknown scope {scope!r}")

    def decorate(func: Evaluate) -> Check:
        module = func.__module__.rpartition(".")[2]
        if module != id:
            raise RegistryError(f"check id {id!r} differs from its module name {module!r}")
        if id in CHECKS and CHECKS[id].evaluate.__module__ != func.__module__:
            raise RegistryError(f"check {id!r} declared twice")
        declared = Check(
            id=id,
            title=title,
            severity=severity,
            scope=scope,
            reflex=reflex,
            remediation=remediation,
            permissions=tuple(permissions),
            evaluate=func,
            fix=fix,
        )
        CHECKS[id] = declared
        return declared

    return decorate


def discover() -> dict[str, Check]:
    """Import every module of the checks package; return the registry by id."""
    package = importlib.import_module(PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{PACKAGE}.{info.name}")
    return dict(sorted(CHECKS.items()))


def run(
    inventory: Inventory,
    *,
    scopes: Iterable[str] = SCOPES,
    observed_at: datetime | None = None,
    checks: Mapping[str, Check] | None = None,
) -> list[Result]:
    """Evaluate the checks of `scopes` over `inventory`."""
    wanted = set(scopes)
    results: list[Result] = []
    for chk in (checks or discover()).values():
        if chk.scope not in wanted:
            continue
        for hit in chk.evaluate(inventory):
            finding = Finding(
                rule_id=chk.id,
                severity=hit.severity if hit.severity is not None else chk.severity,
                resource=hit.resource,
                message=hit.text("en"),
                election=hit.election,
                location=hit.location or inventory.host,
                remediation=chk.remediation,
                evidence=dict(hit.evidence),
                observed_at=observed_at,
                message_id=hit.message,
                remediation_id=chk.remediation,
                params=i18n.params_to_json(hit.params),
            )
            results.append(Result(chk, finding, hit.target))
    results.sort(key=lambda r: (-int(r.finding.severity), r.finding.rule_id, r.finding.resource))
    return results


def permissions(scopes: Iterable[str] = SCOPES) -> list[str]:
    """The API permissions the checks of `scopes` need (for least-privilege IAM)."""
    wanted = set(scopes)
    perms = {p for c in discover().values() if c.scope in wanted for p in c.permissions}
    return sorted(perms)
