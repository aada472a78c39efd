"""A person in an election group who cannot pass (or has not passed) TOTP.

PAM reads the secret in /var/lib/isoloir-totp/<user>; the agents read the
root-written status of it (see inventory_identity). Enrolled: nothing to say.
Pending within its window: `host_user_totp_pending` (lower severity). No
secret, an expired enrolment window, or no readable status: this check.
"""

from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import HostUser, Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


def _election(user: HostUser) -> str | None:
    return user.groups[0].removeprefix("el-") if len(user.groups) == 1 else None


@check(
    id="host_user_no_totp",
    title=N_("Host user in an election group without TOTP enrolled"),
    severity=Severity.HIGH,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "Open (or re-open) the person's TOTP enrolment: an administrator deletes "
        "/var/lib/isoloir-totp/<user> and its .pending marker, runs the playbook, and the person "
        "logs in with their SSH key within the enrolment window (docs/hosts.md)."
    ),
    permissions=("host:read /etc/passwd, /etc/group and /var/lib/isoloir-totp-status/<user>",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None:
        return
    for user in inv.identity.host_users:
        # a service account (system uid, no-login shell) never logs in: no TOTP to enrol
        if user.service_account:
            continue
        status = user.totp_status
        groups = ", ".join(user.groups)
        if status.state == "enrolled":
            continue
        if status.state == "pending":
            if status.expires is None or status.expires > inv.now:
                continue  # open window: host_user_totp_pending
            message = N_(
                "User {user} (groups {groups}) never enrolled: the TOTP enrolment "
                "window closed at {expires}."
            )
            state = N_("expired")
        elif status.state == "none":
            message = N_("User {user} (groups {groups}) has no TOTP secret.")
            state = "none"
        else:
            message = N_(
                "User {user} (groups {groups}): TOTP enrolment cannot be verified ({problem})."
            )
            state = "unknown"
        yield Hit(
            resource=f"host-user:{user.name}",
            message=message,
            params={
                "user": user.name,
                "groups": groups,
                "expires": status.expires.isoformat() if status.expires else "?",
                "problem": status.problem or N_("unknown"),
            },
            election=_election(user),
            evidence={"groups": list(user.groups), "totp_state": state},
        )
