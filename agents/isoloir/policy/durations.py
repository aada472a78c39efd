"""ISO-8601 durations made of calendar units (PnYnMnWnD), as retention periods."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

_PATTERN = re.compile(r"^P(?:(\d{1,4})Y)?(?:(\d{1,4})M)?(?:(\d{1,4})W)?(?:(\d{1,5})D)?$")


@dataclass(frozen=True, order=True)
class Duration:
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
        if not match or text.strip() == "P":
            raise ValueError(f"{text!r} is not an ISO-8601 duration (e.g. P6M, P1Y, P45D)")
        y, m, w, d = (int(g) if g else 0 for g in match.groups())
        return cls(y, m, w, d)

    def after(self, start: date) -> date:
        """The date this duration after `start` (month ends are clamped: 31 Jan + P1M = 28 Feb)."""
        month_index = start.month - 1 + self.months + 12 * self.years
        year = start.year + month_index // 12
        month = month_index % 12 + 1
        if year > 9999:
            raise ValueError("duration goes past year 9999")
        day = min(start.day, calendar.monthrange(year, month)[1])
        return date(year, month, day) + timedelta(weeks=self.weeks, days=self.days)

    def __str__(self) -> str:
        parts = [(self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D")]
        text = "".join(f"{n}{u}" for n, u in parts if n)
        return "P" + (text or "0D")


# Three ordinary years from here: the shortest a P3Y can be, so a day count
# (P1096D) is never let through as "three years".
_REFERENCE = date(2001, 1, 1)


def longer_than(duration: Duration, limit: Duration) -> bool:
    """Whether `duration` ends after `limit` when both start on the same (ordinary-year) day."""
    return duration.after(_REFERENCE) > limit.after(_REFERENCE)


_ONCE = {
    "fr": {"years": "chaque année", "months": "chaque mois", "weeks": "chaque semaine"},
    "en": {"years": "every year", "months": "every month", "weeks": "every week"},
}
_UNITS = {
    "fr": {"years": ("an", "ans"), "months": ("mois", "mois"), "weeks": ("semaine", "semaines")},
    "en": {"years": ("year", "years"), "months": ("month", "months"), "weeks": ("week", "weeks")},
}
_DAYS = {"fr": ("jour", "jours"), "en": ("day", "days")}


def every(duration: Duration, lang: str) -> str:
    """ "every year", "tous les 18 mois": a review period for readers (fr, else en)."""
    lang = "fr" if lang == "fr" else "en"
    units = {**_UNITS[lang], "days": _DAYS[lang]}
    parts = [
        (n, name) for name in ("years", "months", "weeks", "days") if (n := getattr(duration, name))
    ]
    if len(parts) == 1 and parts[0][0] == 1 and parts[0][1] in _ONCE[lang]:
        return _ONCE[lang][parts[0][1]]
    words = [f"{n} {units[name][n > 1]}" for n, name in parts] or [f"0 {units['days'][1]}"]
    joined = " et ".join(words) if lang == "fr" else " and ".join(words)
    return f"tous les {joined}" if lang == "fr" else f"every {joined}"
