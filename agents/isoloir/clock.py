"""The agents' clock.

`ISOLOIR_NOW` (an ISO-8601 timestamp) overrides the real time. It exists for
`make demo` and the tests, which move past an election's retention date; a
deployed agent never has it set, and `isoloir status` reports when it is.

While it is set, the retention purge skips its check of the host clock against
AWS's (the `Date` header of an S3 response): AWS keeps the real time, which the
override deliberately contradicts. Without it, a host clock that disagrees with
AWS's by more than a few minutes stops every purge (docs/retention.md).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

ENV_VAR = "ISOLOIR_NOW"


class ClockError(ValueError):
    """The clock override is not a valid timestamp."""


def overridden() -> bool:
    return bool(os.environ.get(ENV_VAR))


def now() -> datetime:
    """Aware UTC datetime: the override when set, else the real time."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ClockError(f"{ENV_VAR}={raw!r} is not an ISO-8601 timestamp") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def today() -> date:
    return now().date()
