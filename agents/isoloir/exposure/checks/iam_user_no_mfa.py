from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_


@check(
    id="iam_user_no_mfa",
    title=N_("IAM user with console access and no MFA"),
    severity=Severity.HIGH,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "Enrol an MFA device for the user (policies: mfa.required) or remove the console password."
    ),
    permissions=(
        "iam:ListUsers",
        "iam:GenerateCredentialReport",
        "iam:GetCredentialReport",
        "iam:ListVirtualMFADevices",
        "iam:GetLoginProfile",
        "iam:ListMFADevices",
    ),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None:
        return
    for user in inv.identity.iam_users:
        if user.console_access and user.mfa_devices == 0:
            yield Hit(
                resource=user.arn,
                message=N_("IAM user {user} can sign in to the console without MFA."),
                params={"user": user.name},
            )
