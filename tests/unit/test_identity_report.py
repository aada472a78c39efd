"""The identity audit reads the credential report once instead of three IAM calls
per user (issue 21: 3,000 people took minutes), and stays right where the report
is older than the account: a user created since it was generated is read call by
call, a virtual MFA enrolled since counts, an MFA the report saw is checked.

In process: moto's mock_aws for the real API shapes, and a fake client that
counts the calls and serves a report older than the account.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws
from isoloir.exposure import inventory_identity, scan
from isoloir.exposure.model import IdentityInventory
from isoloir.exposure.scan import ScanOptions
from isoloir.policy import load_policies

ROOT = Path(__file__).resolve().parents[2]

GENERATED = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_2_active,access_key_2_last_rotated\n"
)


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in process, with the emulator's dating of the credential report."""
    from moto.iam.responses import IamResponse

    from isoloir.controller.emulator_server import patch_credential_report_time

    use_in_process_aws(monkeypatch)
    monkeypatch.setattr(IamResponse, "get_credential_report", IamResponse.get_credential_report)
    patch_credential_report_time()
    with mock_aws():
        yield


def _per_user_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The IAM operations named per user that fetch_iam makes from here on."""
    calls: list[str] = []
    made = aws.client

    def counting(service: str, region: str | None = None) -> Any:
        client = made(service, region)

        def note(params: dict[str, Any], model: Any, **_: Any) -> None:
            if "UserName" in params:
                calls.append(f"{model.name}:{params['UserName']}")

        client.meta.events.register("provide-client-params.iam", note)
        return client

    monkeypatch.setattr(inventory_identity.aws, "client", counting)
    return calls


def _by_name(inv: IdentityInventory) -> dict[str, Any]:
    return {u.name: u for u in inv.iam_users}


def test_the_report_and_the_calls_agree(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same account read from the report and call by call gives the same users."""
    iam = aws.client("iam")
    for name in ("afictif", "bmodele", "cexemple", "dtemoin"):
        iam.create_user(UserName=name, Path="/isoloir/")
    for name in ("afictif", "bmodele", "cexemple"):
        iam.create_login_profile(UserName=name, Password="Fiction-0199001234!")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="afictif")["VirtualMFADevice"]
    iam.enable_mfa_device(
        UserName="afictif",
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    key = iam.create_access_key(UserName="dtemoin")["AccessKey"]["AccessKeyId"]

    calls = _per_user_calls(monkeypatch)
    fast = IdentityInventory()
    inventory_identity.fetch_iam(fast, password_ages=True)
    assert fast.errors == {} and fast.iam_fetched and fast.credential_report_time is not None
    # from the report and the virtual devices: only the key holder's keys are asked for
    assert calls == ["ListAccessKeys:dtemoin"]
    monkeypatch.undo()
    use_in_process_aws(monkeypatch)

    def no_report(iam: Any, inv: IdentityInventory, **_: Any) -> None:
        return None

    monkeypatch.setattr(inventory_identity, "fetch_credential_report", no_report)
    slow = IdentityInventory()
    inventory_identity.fetch_iam(slow, password_ages=False)
    assert slow.errors == {} and slow.iam_fetched

    got, want = _by_name(fast), _by_name(slow)
    assert sorted(got) == sorted(want) == ["afictif", "bmodele", "cexemple", "dtemoin"]
    for name in got:
        assert got[name].console_access == want[name].console_access, name
        assert got[name].mfa_devices == want[name].mfa_devices, name
        assert got[name].access_keys == want[name].access_keys, name
    assert got["afictif"].mfa_devices == 1 and got["bmodele"].mfa_devices == 0
    assert not got["dtemoin"].console_access
    assert [k.key_id for k in got["dtemoin"].access_keys] == [key]
    # the dates only when asked for
    assert got["bmodele"].password_last_changed is not None
    assert all(u.password_last_changed is None for u in slow.iam_users)


class StaleIam:
    """IAM as the scan meets it a few hours after the last report: counts calls."""

    def __init__(self, users: list[dict[str, Any]], report: str, virtual: list[str]) -> None:
        self.users, self.report, self.virtual = users, report, virtual
        self.calls: list[tuple[str, str]] = []
        self.mfa: dict[str, int] = {}
        self.keys: dict[str, list[dict[str, Any]]] = {}
        self.profiles: set[str] = set()
        self.report_error: str | None = None

    def get_paginator(self, op: str) -> Any:
        iam = self

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                iam.calls.append((op, ""))
                if op == "list_users":
                    return [{"Users": iam.users}]
                return [{"VirtualMFADevices": [{"User": {"UserName": n}} for n in iam.virtual]}]

        return Pages()

    def generate_credential_report(self) -> dict[str, str]:
        if self.report_error:
            raise ClientError({"Error": {"Code": self.report_error}}, "GenerateCredentialReport")
        return {"State": "COMPLETE"}

    def get_credential_report(self) -> dict[str, Any]:
        self.calls.append(("get_credential_report", ""))
        return {"Content": (HEADER + self.report).encode(), "GeneratedTime": GENERATED}

    def get_login_profile(self, UserName: str) -> dict[str, Any]:  # noqa: N803
        self.calls.append(("get_login_profile", UserName))
        if UserName not in self.profiles:
            raise ClientError({"Error": {"Code": "NoSuchEntity"}}, "GetLoginProfile")
        return {"LoginProfile": {"CreateDate": GENERATED + timedelta(hours=1)}}

    def list_mfa_devices(self, UserName: str) -> dict[str, Any]:  # noqa: N803
        self.calls.append(("list_mfa_devices", UserName))
        return {"MFADevices": [{}] * self.mfa.get(UserName, 0)}

    def list_access_keys(self, UserName: str) -> dict[str, Any]:  # noqa: N803
        self.calls.append(("list_access_keys", UserName))
        return {"AccessKeyMetadata": self.keys.get(UserName, [])}

    def get_account_password_policy(self) -> dict[str, Any]:
        return {"PasswordPolicy": {"MinimumPasswordLength": 14}}

    def per_user(self) -> list[tuple[str, str]]:
        return sorted(c for c in self.calls if c[1])


def _user(name: str, created: datetime) -> dict[str, Any]:
    return {"UserName": name, "Arn": f"arn:aws:iam::1:user/isoloir/{name}", "CreateDate": created}


def _row(name: str, console: bool, mfa: bool, key_date: str = "N/A") -> str:
    pw = "true" if console else "false"
    changed = "2026-01-01T00:00:00+00:00" if console else "N/A"
    active = "true" if key_date != "N/A" else "false"
    return (
        f"{name},arn:aws:iam::1:user/isoloir/{name},2025-01-01T00:00:00+00:00,{pw},N/A,"
        f"{changed},N/A,{str(mfa).lower()},{active},{key_date},false,N/A\n"
    )


@pytest.fixture()
def stale(monkeypatch: pytest.MonkeyPatch) -> StaleIam:
    old = GENERATED - timedelta(days=300)
    users = [_user(f"militant{i:04d}", old) for i in range(200)]
    users += [_user("enrolled", old), _user("fidokey", old), _user("keyholder", old)]
    users.append(_user("newcomer", GENERATED + timedelta(minutes=30)))
    report = "".join(_row(f"militant{i:04d}", True, True) for i in range(200))
    report += _row("enrolled", True, False)  # no MFA at report time, a virtual one now
    report += _row("fidokey", True, True)  # MFA, not a virtual device
    report += _row("keyholder", False, False, "2026-06-01T00:00:00+00:00")
    iam = StaleIam(users, report, [f"militant{i:04d}" for i in range(200)] + ["enrolled"])
    iam.profiles = {"newcomer"}
    iam.keys["keyholder"] = [
        {"AccessKeyId": "AKIAFICTIVE000000001", "Status": "Active", "CreateDate": old}
    ]
    monkeypatch.setattr(inventory_identity.aws, "client", lambda service, region=None: iam)
    return iam


def test_calls_per_user_only_where_the_report_cannot_say(stale: StaleIam) -> None:
    inv = IdentityInventory()
    inventory_identity.fetch_iam(inv, password_ages=True)
    assert inv.errors == {} and inv.iam_fetched
    users = _by_name(inv)
    assert len(users) == 204
    # 200 people with a virtual MFA: no call of their own
    assert stale.per_user() == [
        ("get_login_profile", "newcomer"),
        ("list_access_keys", "keyholder"),
        ("list_access_keys", "newcomer"),
        ("list_mfa_devices", "fidokey"),
        ("list_mfa_devices", "newcomer"),
    ]
    assert users["enrolled"].mfa_devices == 1  # enrolled since the report: not reported
    assert users["fidokey"].mfa_devices == 0  # the report's MFA is gone: reported
    assert users["newcomer"].console_access and users["newcomer"].mfa_devices == 0
    assert [k.key_id for k in users["keyholder"].access_keys] == ["AKIAFICTIVE000000001"]
    assert users["militant0001"].password_last_changed == datetime(2026, 1, 1, tzinfo=UTC)


def test_without_the_report_every_user_is_read(stale: StaleIam) -> None:
    stale.report_error = "AccessDenied"
    inv = IdentityInventory()
    inventory_identity.fetch_iam(inv, password_ages=False)
    # the report is only needed for the password ages: without them, no gap
    assert inv.errors == {} and inv.iam_fetched
    assert len({name for _, name in stale.per_user()}) == 204
    aged = IdentityInventory()
    inventory_identity.fetch_iam(aged, password_ages=True)
    assert aged.errors == {"iam:GetCredentialReport": "AccessDenied"}


def test_only_the_account_auditing_host_reports_the_account(aws_env: None, tmp_path: Path) -> None:
    """N hosts, one alert: a host whose host.json says it does not audit the
    account neither reads IAM nor reports it, and never announces it resolved."""
    iam = aws.client("iam")
    iam.create_user(UserName="bmodele", Path="/isoloir/")
    iam.create_login_profile(UserName="bmodele", Password="Fiction-0199001234!")
    policies = load_policies(ROOT / "policies")
    (tmp_path / "group").write_text("root:x:0:\n")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    opts = ScanOptions(
        s3=False,
        shares=False,
        identity=True,
        group_file=tmp_path / "group",
        passwd_file=tmp_path / "passwd",
    )
    now = datetime.now(UTC)
    auditor = scan.run(policies, now, opts)
    assert "iam_user_no_mfa" in {f.rule_id for f in auditor.findings}
    assert "iam_user_no_mfa" not in auditor.unread.rules
    other = scan.run(dataclasses.replace(policies, audits_account=False), now, opts)
    assert other.inventory is not None and other.inventory.identity is not None
    assert other.inventory.identity.iam_users == []  # IAM not read at all
    assert not [f for f in other.findings if f.rule_id in scan.account_rules()]
    assert {"iam_user_no_mfa", "iam_password_policy", "s3_account_public_access_block"} <= (
        other.unread.rules
    )
