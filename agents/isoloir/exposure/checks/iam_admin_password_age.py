"""An administrator's console password older than passwords.admin_max_age_days.

CNIL deliberation 2022-100 drops forced periodic changes for ordinary users
(the policies' max_age_days: 0, which IAM applies account-wide) but still asks
a reasonable periodic renewal of privileged accounts. IAM's password policy
cannot single the administrators out, so the identity audit reports it. The
date is the credential report's password_last_changed (see
inventory_identity: GetLoginProfile's CreateDate does not move when a password
is changed). An administrator is a person of the policies with `admin: true`,
whose IAM user has the person's id as name (infra/modules/account_baseline).
"""

from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="iam_admin_password_age",
    title=N_("Administrator's console password older than the policies allow"),
    severity=Severity.MEDIUM,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "The administrator changes their console password (IAM console, Security credentials; "
        "or aws iam change-password), to a new one that follows the password rules. CNIL "
        "deliberation 2022-100 asks a periodic renewal of administrators' passwords "
        "(policies: passwords.admin_max_age_days). IAM's credential report can be up to 4 "
        "hours old: a change made since shows at the next audit after that."
    ),
    permissions=(
        "iam:ListUsers",
        "iam:GetLoginProfile",
        "iam:GenerateCredentialReport",
        "iam:GetCredentialReport",
    ),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    limit = inv.policies.baseline.passwords.admin_max_age_days
    if inv.identity is None or limit <= 0:
        return
    admins = {p.id for p in inv.policies.baseline.people if p.admin}
    for user in inv.identity.iam_users:
        if user.name not in admins or not user.console_access:
            continue
        if user.password_last_changed is None:
            continue  # not in the credential report (created since): the next audit
        age = (inv.now - user.password_last_changed).days
        if age > limit:
            yield Hit(
                resource=user.arn,
                message=N_(
                    "The console password of administrator {user} was last set {age} days ago "
                    "(limit {limit})."
                ),
                params={"user": user.name, "age": age, "limit": limit},
                evidence={"age_days": age, "limit_days": limit},
            )
