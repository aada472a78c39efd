"""What TARGET=aws needs from the policies (aws-readiness N5/N14, N6, F13): the
deploying principals and a break-glass role rendered into Terraform's
deployer_principal_arns / break_glass_role_arns, the mail guard's upstream, and
the bucket suffix. Each missing one is refused with file:line: field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.policy.loader import PolicyError, load_policies
from isoloir.policy.render import terraform_vars

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
ACCOUNT = "123456789012"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/isoloir-deploy"
SSO = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-3/"
    "AWSReservedSSO_IsoloirDeploy_*"
)
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/isoloir-break-glass"
READY = f"""
aws:
  deployer_principals:
    - {SSO}
    - {DEPLOYER}
  break_glass_roles: [{BREAK_GLASS}]
"""


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(EXAMPLE, root, symlinks=True)
    return root


def edit(root: Path, old: str, new: str) -> None:
    path = root / "baseline.yml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def make_ready(root: Path) -> None:
    edit(root, "  # bucket_suffix: 7f3a9c ", "  bucket_suffix: 7f3a9c   ")
    edit(
        root,
        "  # upstream: {host: smtp.mouvement-exemple.example, port: 587}",
        "  upstream: {host: smtp.mouvement-exemple.example, port: 25}",
    )
    with (root / "baseline.yml").open("a", encoding="utf-8") as f:
        f.write(READY)


def line_of(root: Path, fragment: str) -> int:
    text = (root / "baseline.yml").read_text(encoding="utf-8")
    return text[: text.index(fragment)].count("\n") + 1


def test_the_example_is_refused_for_aws_naming_each_missing_field(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_policies(policies)  # the local target needs none of them
    with pytest.raises(PolicyError) as caught:
        load_policies(policies, target="aws")
    shown = {p.field: p for p in caught.value.problems}
    assert set(shown) == {
        "aws.deployer_principals",
        "aws.break_glass_roles",
        "mail.upstream",
        "organisation.bucket_suffix",
    }
    assert all(p.file.endswith("baseline.yml") for p in shown.values())
    # no aws: section: the line is the file's first; the others point at their section
    assert shown["mail.upstream"].line == line_of(policies, "\nmail:") + 1
    assert shown["organisation.bucket_suffix"].line == line_of(policies, "\norganisation:") + 1
    assert "smarthost" in shown["mail.upstream"].reason
    assert main(["policy", "validate", "--target", "aws", str(policies)]) == 2
    err = capsys.readouterr().err
    assert "baseline.yml:" in err and "aws.deployer_principals" in err


def test_mail_disabled_needs_no_upstream(policies: Path) -> None:
    make_ready(policies)
    edit(policies, "  upstream: {host: smtp.mouvement-exemple.example, port: 25}\n", "")
    with pytest.raises(PolicyError) as caught:
        load_policies(policies, target="aws")
    assert [p.field for p in caught.value.problems] == ["mail.upstream"]
    edit(policies, "mail:\n  enabled: true", "mail:\n  enabled: false")
    load_policies(policies, target="aws")


def test_declared_principals_are_rendered_into_the_terraform_variables(policies: Path) -> None:
    make_ready(policies)
    data = terraform_vars(load_policies(policies, target="aws"))
    assert data["deployer_principal_arns"] == sorted([DEPLOYER, SSO])
    assert data["break_glass_role_arns"] == [BREAK_GLASS]
    assert data["mail_upstream"] == {"host": "smtp.mouvement-exemple.example", "port": 25}
    assert data["mail_guard_enabled"] is True
    assert data["alert_smtp_port"] == 587
    assert data["log_bucket_name"] == "mouvement-exemple-access-logs-7f3a9c"
    assert all(e["bucket_name"].endswith("-7f3a9c") for e in data["elections"].values())
    json.dumps(data)  # plain JSON for terraform.tfvars.json


def test_the_rendered_agent_config_keeps_the_principals(policies: Path, tmp_path: Path) -> None:
    make_ready(policies)
    out = tmp_path / "rendered"
    assert (
        main(
            ["policy", "render", "--target", "aws", "--policies", str(policies), "--out", str(out)]
        )
        == 0
    )
    from isoloir.policy.loader import load_rendered

    again = load_rendered(out / "agent" / "agent.json")
    assert again.baseline.deployer_principals == (SSO, DEPLOYER)
    assert again.baseline.break_glass_roles == (BREAK_GLASS,)


@pytest.mark.parametrize(
    ("arn", "section"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/*", "deployer_principals"),  # any role of the account
        (f"arn:aws:iam::{ACCOUNT}:role/isoloir-*", "deployer_principals"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/isoloir-deploy/alice", "deployer_principals"),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "break_glass_roles"),  # a role, not a user
        (
            f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_*",
            "break_glass_roles",
        ),
    ],
)
def test_a_malformed_principal_is_refused_with_its_line(
    policies: Path, arn: str, section: str
) -> None:
    make_ready(policies)
    old = f"    - {DEPLOYER}" if section == "deployer_principals" else f"[{BREAK_GLASS}]"
    new = f"    - '{arn}'" if section == "deployer_principals" else f"['{arn}']"
    edit(policies, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policies(policies, target="aws")
    (problem,) = caught.value.problems
    assert problem.field.startswith(f"aws.{section}"), problem
    assert problem.line == line_of(policies, arn), problem


def test_principals_of_another_account_are_refused(policies: Path) -> None:
    make_ready(policies)
    edit(policies, f"[{BREAK_GLASS}]", "[arn:aws:iam::210987654321:role/isoloir-break-glass]")
    with pytest.raises(PolicyError) as caught:
        load_policies(policies, target="aws")
    (problem,) = caught.value.problems
    assert "one account" in problem.reason and problem.field.startswith("aws."), problem
