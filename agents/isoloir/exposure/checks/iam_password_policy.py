from __future__ import annotations

from collections.abc import Iterator

from isoloir.exposure.model import Inventory
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_, Msg

CLASSES = ("RequireLowercaseCharacters", "RequireUppercaseCharacters", "RequireNumbers",
           "RequireSymbols")  # fmt: skip


@check(
    id="iam_password_policy",
    title=N_("Account password policy weaker than the policies"),
    severity=Severity.HIGH,
    scope="identity",
    reflex="secure the data",
    remediation=N_(
        "Apply the password policy rendered from the policies (terraform apply of "
        "the account baseline)."
    ),
    permissions=("iam:GetAccountPasswordPolicy",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    if inv.identity is None or not inv.identity.iam_fetched:
        return
    rules = inv.policies.baseline.passwords
    pp = inv.identity.password_policy
    if pp is None:
        yield Hit(
            resource="aws-account:password-policy",
            message=N_("The AWS account has no password policy."),
        )
        return
    weak: list[Msg] = []
    if int(pp.get("MinimumPasswordLength", 0)) < rules.min_length:
        weak.append(
            Msg(
                N_("minimum length {found} < {wanted}"),
                {"found": pp.get("MinimumPasswordLength"), "wanted": rules.min_length},
            )
        )
    if sum(1 for c in CLASSES if pp.get(c)) < rules.min_classes:
        weak.append(
            Msg(N_("fewer than {wanted} character classes required"), {"wanted": rules.min_classes})
        )
    if int(pp.get("PasswordReusePrevention", 0)) < rules.reuse_prevention:
        weak.append(
            Msg(
                N_("reuse prevention {found} < {wanted}"),
                {"found": pp.get("PasswordReusePrevention", 0), "wanted": rules.reuse_prevention},
            )
        )
    if weak:
        yield Hit(
            resource="aws-account:password-policy",
            message=N_("The AWS account password policy is weaker than the policies: {weak}."),
            params={"weak": weak},
            evidence={"weaknesses": [w.to_json() for w in weak]},
        )
