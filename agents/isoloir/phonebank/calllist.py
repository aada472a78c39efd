"""A call list for a phone-banking session, filtered before anyone dials.

A row is dropped when the person is on the suppression list (by e-mail, phone,
or name and address), has no usable number, or when the session does not fall
inside the policy's calling hours in the person's own local time. The local
time is the commune's: metropolitan France (Europe/Paris), or an overseas
department or collectivity with its own time zone, found from the postcode (or
INSEE code) column, else from the number's country code. A place whose time
zone cannot be told is not called. Public holidays count where the person is:
Alsace-Moselle's two extra days, and the abolition-of-slavery day of each
overseas department.

Pure: bytes in, bytes out; counts, never a number or a name, in the result.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from isoloir.policy.model import WEEKDAYS, PhoneBanking
from isoloir.retention import tabular
from isoloir.retention.suppression import (
    SuppressionList,
    guess_column,
    table_columns,
)

PARIS = "Europe/Paris"
MAX_SESSION = timedelta(hours=12)

# Postcode or INSEE code prefix -> time zone, longest prefix first. Saint-Barthélemy
# (97133) and Saint-Martin (97150) have Guadeloupe's postcodes and their own zones
# (the same offset); Monaco (98000) is not France but shares Paris's clock.
_POSTCODE_ZONES = (
    ("97133", "America/St_Barthelemy"),
    ("97150", "America/Marigot"),
    ("971", "America/Guadeloupe"),
    ("972", "America/Martinique"),
    ("973", "America/Cayenne"),
    ("974", "Indian/Reunion"),
    ("975", "America/Miquelon"),
    ("976", "Indian/Mayotte"),
    ("977", "America/St_Barthelemy"),
    ("978", "America/Marigot"),
    ("980", "Europe/Monaco"),
    ("986", "Pacific/Wallis"),
    ("987", "Pacific/Tahiti"),
    ("988", "Pacific/Noumea"),
)
# E.164 country code -> time zone (after tabular.normalise_phone). +262 covers Réunion
# and Mayotte, told apart by the next three digits.
_MAYOTTE = ("262269", "262639")
_PHONE_ZONES = (
    ("33", PARIS),
    ("262", "Indian/Reunion"),
    ("590", "America/Guadeloupe"),
    ("596", "America/Martinique"),
    ("594", "America/Cayenne"),
    ("508", "America/Miquelon"),
    ("681", "Pacific/Wallis"),
    ("689", "Pacific/Tahiti"),
    ("687", "Pacific/Noumea"),
)
# Abolition of slavery (loi 83-550, décret 83-1003): a public holiday of each department.
_ABOLITION = {
    "America/Martinique": (5, 22),
    "America/Guadeloupe": (5, 27),
    "America/Marigot": (5, 28),
    "America/Cayenne": (6, 10),
    "Indian/Reunion": (12, 20),
    "Indian/Mayotte": (4, 27),
    "America/St_Barthelemy": (10, 9),
}
POSTCODE_NAMES = ("code postal", "cp", "code commune", "code insee", "insee")
_CODE = re.compile(r"(?:\d{5}|2[AaBb]\d{3})")


class CallListError(ValueError):
    """Bad input: the message says what and where (never a cell's content)."""


def zone_of_code(code: str) -> str | None:
    """The time zone of a French postcode or INSEE commune code; None when not one."""
    text = code.strip().replace(" ", "")
    if len(text) == 4 and text.isdigit():
        text = "0" + text  # a spreadsheet dropped the leading 0 (01000 -> 1000)
    if not _CODE.fullmatch(text):
        return None
    for prefix, zone in _POSTCODE_ZONES:
        if text.startswith(prefix):
            return zone
    if text.startswith(("97", "98")):
        return None  # an overseas code we do not know: never guess Paris
    return PARIS


def zone_of_phone(e164: str) -> str | None:
    digits = e164.lstrip("+")
    if digits.startswith(_MAYOTTE):
        return "Indian/Mayotte"
    for code, zone in _PHONE_ZONES:
        if digits.startswith(code):
            return zone
    return None


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    w = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * w) // 451
    month, day = divmod(h + w - 7 * m + 114, 31)
    return date(year, month, day + 1)


def public_holidays(year: int, zone: str, code: str = "") -> set[date]:
    """France's public holidays (Code du travail L3133-1) where the person lives."""
    easter = _easter(year)
    days = {
        date(year, 1, 1),
        easter + timedelta(days=1),
        date(year, 5, 1),
        date(year, 5, 8),
        easter + timedelta(days=39),  # Ascension
        easter + timedelta(days=50),  # Whit Monday
        date(year, 7, 14),
        date(year, 8, 15),
        date(year, 11, 1),
        date(year, 11, 11),
        date(year, 12, 25),
    }
    if code.strip().startswith(("57", "67", "68")) and zone == PARIS:  # Alsace-Moselle
        days |= {easter - timedelta(days=2), date(year, 12, 26)}
    if zone in _ABOLITION:
        days.add(date(year, *_ABOLITION[zone]))
    return days


def within(rules: PhoneBanking, start: datetime, end: datetime, zone: str, code: str = "") -> bool:
    """Whether the whole session [start, end] falls in one calling window, in `zone`."""
    tz = ZoneInfo(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    if local_start.date() != local_end.date():
        return False
    day = local_start.date()
    if not rules.public_holidays and day in public_holidays(day.year, zone, code):
        return False
    name = WEEKDAYS[day.weekday()]
    begin, finish = local_start.strftime("%H:%M"), local_end.strftime("%H:%M")
    if local_end.second or local_end.microsecond:
        finish += ":01"  # 20:00:30 is after 20:00
    return any(name in w.days and w.start <= begin and finish <= w.end for w in rules.windows)


@dataclass(frozen=True)
class CallListResult:
    rows: int
    kept: int
    opted_out: int  # on the suppression list
    no_phone: int  # no usable number
    unknown_zone: int  # a code or number whose time zone cannot be told
    out_of_window: int  # outside the calling hours (or a public holiday) where they live
    zones: dict[str, int]  # kept rows per time zone


def export(
    data: bytes,
    suppression: SuppressionList,
    rules: PhoneBanking,
    start: datetime,
    end: datetime,
    *,
    phone_column: str | None = None,
    postcode_column: str | None = None,
    email_column: str | None = None,
    name_columns: Iterable[str] | None = None,
    address_columns: Iterable[str] | None = None,
) -> tuple[bytes, CallListResult]:
    """The rows to call during [start, end] (aware datetimes), same delimiter and encoding;
    formulas in cells are neutralised (the list goes back to a spreadsheet)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise CallListError("the session's start and end need a time zone")
    if end <= start:
        raise CallListError("the session ends before it starts")
    if end - start > MAX_SESSION:
        raise CallListError("a session lasts at most 12 hours: export one list per session")
    try:
        parsed = tabular.parse(data)
    except (tabular.TabularError, csv.Error) as exc:
        raise CallListError(f"unreadable: {exc}") from None
    decoded = parsed.decoded
    assert decoded is not None
    header, rows = parsed.header, parsed.rows
    if not header:
        raise CallListError("empty file: no header")
    columns = table_columns(
        header,
        rows,
        email_column=email_column,
        phone_column=phone_column,
        name_columns=name_columns,
        address_columns=address_columns,
    )
    if not columns.phones:
        raise CallListError("no phone column found (use --phone-column)")
    code_col = guess_column(header, postcode_column, POSTCODE_NAMES)
    out = io.StringIO(newline="")
    writer = csv.writer(
        out, delimiter=parsed.delimiter, lineterminator=tabular.detect_newline(decoded.text)
    )
    writer.writerow(header)
    opted = no_phone = unknown = outside = 0
    zones: dict[str, int] = {}
    for row in rows:
        emails, phones, postal = columns.of(header, row)
        if suppression.holds_any(emails, phones, postal):
            opted += 1
            continue
        phone = phones[0] if phones else None
        if not phone:
            no_phone += 1
            continue
        code = (row.get(code_col) or "").strip() if code_col else ""
        zone = zone_of_code(code) if code else zone_of_phone(phone)
        if zone is None:
            unknown += 1
            continue
        if not within(rules, start, end, zone, code):
            outside += 1
            continue
        zones[zone] = zones.get(zone, 0) + 1
        writer.writerow([tabular.safe_cell(row.get(h, "")) for h in header])
    kept = sum(zones.values())
    result = CallListResult(len(rows), kept, opted, no_phone, unknown, outside, zones)
    return decoded.bom + out.getvalue().encode(decoded.encoding, errors="replace"), result


def parse_moment(text: str, default_zone: str = PARIS) -> datetime:
    """`YYYY-MM-DDTHH:MM` in the default zone (Paris), or with an offset (+04:00)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CallListError(
            f"{text[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM, optionally +HH:MM)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(default_zone))
    return moment
