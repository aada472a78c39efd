from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="iam_access_key_age",
    title=N_("Active access key older than the policies allow"),
    severity=Severity.MEDIUM,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "Rotate the key: create a new one, switch the client, deactivate and delete the old one."
    ),
    permissions=("iam:ListUsers", "iam:ListAccessKeys"),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None:
        return
    limit = inv.policies.baseline.identity.max_access_key_age_days
    for user in inv.identity.iam_users:
        for key in user.access_keys:
            age = (inv.now - key.created).days
            if key.status == "Active" and age > limit:
                yield Hit(
                    resource=f"{user.arn}/access-key/{key.key_id}",
                    message=N_("Access key {key} of {user} is {age} days old (limit {limit})."),
                    params={"key": key.key_id, "user": user.name, "age": age, "limit": limit},
                    evidence={"age_days": age, "limit_days": limit},
                )
