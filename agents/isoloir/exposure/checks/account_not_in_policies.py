from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_

# IAM users the kit itself creates (agents, deploy) are not people.
SERVICE_PREFIXES = ("isoloir-",)


@check(
    id="account_not_in_policies",
    title=N_("Account of a person no longer in the policies"),
    severity=Severity.HIGH,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "Remove the account (or its membership of the election group): access ends "
        "when the person leaves the policies."
    ),
    permissions=("iam:ListUsers", "host:read /etc/passwd and /etc/group"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None:
        return
    people = {p.id for p in inv.policies.baseline.people}
    members = {e.share_group: set(e.members) for e in inv.policies.elections}
    for user in inv.identity.iam_users:
        if user.name not in people and not user.name.startswith(SERVICE_PREFIXES):
            yield Hit(
                resource=user.arn,
                message=N_("IAM user {user} is not a person of the policies."),
                params={"user": user.name},
            )
    for host_user in inv.identity.host_users:
        if host_user.service_account:
            continue  # system uid and no-login shell (e.g. the agents' own user): not a person
        if host_user.name not in people:
            yield Hit(
                resource=f"host-user:{host_user.name}",
                message=N_("Host user {user} is in {groups} but is not a person of the policies."),
                params={"user": host_user.name, "groups": list(host_user.groups)},
                evidence={"groups": list(host_user.groups)},
            )
            continue
        for group in host_user.groups:
            if group in members and host_user.name not in members[group]:
                yield Hit(
                    resource=f"host-user:{host_user.name}/{group}",
                    message=N_(
                        "Host user {user} is in {group} but is not a member of that "
                        "election any more."
                    ),
                    params={"user": host_user.name, "group": group},
                    election=group.removeprefix("el-"),
                )
