"""A person whose TOTP enrolment window is open (L10).

During the window (48 h by default) one key-only SSH login shows the TOTP
secret: whoever holds the person's SSH key then can take it. Reported while
open, at a lower severity than a missing TOTP; once the window closes the
enrolment script refuses and `host_user_no_totp` reports it.
"""

from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="host_user_totp_pending",
    title=N_("TOTP enrolment window open for a host user"),
    severity=Severity.MEDIUM,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "Ask the person to log in now with their SSH key to see their TOTP secret "
        "once; the window closes by itself at the time shown."
    ),
    permissions=("host:read /var/lib/isoloir-totp-status/<user>",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None:
        return
    for user in inv.identity.host_users:
        status = user.totp_status
        if user.service_account or status.state != "pending":
            continue
        if status.expires is None or status.since is None or status.expires <= inv.now:
            continue  # closed: host_user_no_totp
        yield Hit(
            resource=f"host-user:{user.name}",
            message=N_("TOTP enrolment of {user} open since {since}, closes at {expires}."),
            params={
                "user": user.name,
                "since": status.since.isoformat(),
                "expires": status.expires.isoformat(),
            },
            election=user.groups[0].removeprefix("el-") if len(user.groups) == 1 else None,
            evidence={
                "groups": list(user.groups),
                "since": status.since.isoformat(),
                "expires": status.expires.isoformat(),
            },
        )
