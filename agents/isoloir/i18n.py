"""Translations: gettext catalogues of the `isoloir` domain, built with Babel.

English is the msgid language; French is the default rendering language
(baseline `alerts.language: fr`). The catalogues live in
`isoloir/locale/<lang>/LC_MESSAGES/isoloir.mo`, compiled from the `.po` files
by `make locale-mo` (a prerequisite of `make setup`, so of tests, the demo and
the wheelhouse); `make locale` re-extracts the template and updates the `.po`
files after a source string changed (docs/i18n.md).

A message whose wording depends on values is a template with named
placeholders plus a mapping of parameters (`Msg`): the template is what the
catalogue translates, the parameters are formatted in the reader's language
when the message is rendered (a nested `Msg` is translated too).
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

DOMAIN = "isoloir"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


class CatalogueError(RuntimeError):
    """A language's compiled catalogue is missing or unreadable."""


def N_(msgid: str) -> str:  # noqa: N802 - the gettext convention Babel extracts
    """Mark a string for extraction without translating it now (translated when shown)."""
    return msgid


def language_or_default(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"


@functools.cache
def translator(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (fr or en); a missing one is an error."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r} (one of {', '.join(LANGUAGES)})")
    try:
        return gettext.translation(
            DOMAIN, localedir=str(LOCALE_DIR), languages=[language], fallback=False
        )
    except OSError as exc:
        raise CatalogueError(
            f"{catalogue_path(language)}: translation catalogue missing or unreadable "
            f"({exc.__class__.__name__}); run `make locale-mo`"
        ) from None


def gettext_for(language: str, msgid: str) -> str:
    """`msgid` in `language` (the msgid itself when the catalogue has no entry)."""
    if not msgid:
        return msgid
    return translator(language_or_default(language)).gettext(msgid)


def is_msgid(text: str) -> bool:
    """True when `text` is an entry of the catalogues (so a value worth translating)."""
    fr = translator("fr")
    return bool(text) and fr.gettext(text) != text


def yes_no(value: bool, language: str) -> str:
    return gettext_for(language, "yes" if value else "no")


def format_time(value: datetime | None, language: str) -> str:
    """30/11/2026 14:05 UTC in French, 2026-11-30 14:05 UTC in English."""
    if value is None:
        return "?"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    if language_or_default(language) == "fr":
        return value.strftime("%d/%m/%Y %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M UTC")


def format_date(value: date, language: str) -> str:
    if language_or_default(language) == "fr":
        return value.strftime("%d/%m/%Y")
    return value.isoformat()


def parse_time(value: Any) -> datetime | date | None:
    """An ISO date or date-time given as text (or already parsed); None otherwise."""
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return None
    if value[4:5] != "-" or value[7:8] != "-":
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_value(value: Any, language: str) -> str:
    """A value as a reader sees it: yes/no, dates, numbers, lists joined, known words
    translated; never a Python repr."""
    if isinstance(value, Msg):
        return value.render(language)
    if isinstance(value, Mapping) and set(value) == {"msgid", "params"}:
        return Msg.from_json(value).render(language)
    if isinstance(value, bool):
        return yes_no(value, language)
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return ", ".join(format_value(v, language) for v in items) or "—"
    if isinstance(value, Mapping):
        parts = (
            f"{format_value(k, language)}: {format_value(v, language)}" for k, v in value.items()
        )
        return "; ".join(parts) or "—"
    moment = parse_time(value)
    if isinstance(moment, datetime):
        return format_time(moment, language)
    if isinstance(moment, date):
        return format_date(moment, language)
    text = str(value)
    return gettext_for(language, text) if is_msgid(text) else text


@dataclass(frozen=True)
class Msg:
    """A translatable message: an English template with {named} placeholders, and values."""

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self, language: str) -> str:
        return render(language, self.msgid, self.params)

    def to_json(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "params": params_to_json(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Msg:
        return cls(str(data["msgid"]), dict(data.get("params") or {}))


def params_to_json(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters in a JSON-safe form (a nested Msg as {"msgid", "params"})."""
    return {str(key): _json_value(value) for key, value in params.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, Msg):
        return value.to_json()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return [_json_value(v) for v in sorted(value)]
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return params_to_json(value)
    return value


def render(language: str, msgid: str, params: Mapping[str, Any] | None = None) -> str:
    """`msgid` translated into `language`, its placeholders filled with `params`."""
    text = gettext_for(language, msgid)
    if not params:
        return text
    values = {k: format_value(v, language) for k, v in params.items()}
    return text.format_map(values)
