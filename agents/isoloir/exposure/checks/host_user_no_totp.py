from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity


@check(
    id="host_user_no_totp",
    title="Host user in an election group without TOTP enrolled",
    severity=Severity.HIGH,
    scope="identity",
    reflex="secure the data",
    remediation="Have the user run google-authenticator (TOTP) before the next login; SSH "
    "and sudo require it.",
    permissions=("host:read /etc/passwd, /etc/group and ~/.google_authenticator",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None:
        return
    for user in inv.identity.host_users:
        # a service account (system uid, no-login shell) never logs in: no TOTP to enrol
        if not user.totp_enrolled and not user.service_account:
            yield Hit(
                resource=f"host-user:{user.name}",
                message=f"User {user.name} (groups {', '.join(user.groups)}) has no TOTP enrolled.",
                election=user.groups[0].removeprefix("el-") if len(user.groups) == 1 else None,
                evidence={"groups": list(user.groups)},
            )
