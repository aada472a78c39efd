"""Compliance review E8: an administrator's console password older than
passwords.admin_max_age_days is reported (CNIL 2022-100, privileged accounts),
from the credential report's password_last_changed; ordinary users, fresh
passwords and unknown dates are not.

The check runs over in-process inventories; the inventory is read from IAM in
process (moto's mock_aws) and from a fake client for the report's states.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws
from isoloir.exposure import inventory_identity, registry
from isoloir.exposure.model import IamUser, IdentityInventory, Inventory
from isoloir.exposure.scan import unread_of
from isoloir.findings import Severity
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
CHECK = "iam_admin_password_age"
# The example policies: cfictive and bexemple are administrators, dmodele is not.
ADMIN, OTHER = "cfictive", "dmodele"


@pytest.fixture(scope="module")
def policies() -> Policies:
    return load_policies(ROOT / "policies")


def _with_limit(policies: Policies, days: int) -> Policies:
    pw = dataclasses.replace(policies.baseline.passwords, admin_max_age_days=days)
    return dataclasses.replace(
        policies, baseline=dataclasses.replace(policies.baseline, passwords=pw)
    )


def _user(name: str, *, console: bool = True, age: int | None = None) -> IamUser:
    last = None if age is None else NOW - timedelta(days=age)
    return IamUser(name, f"arn:aws:iam::1:user/isoloir/{name}", console, 1, (), last)


def _hits(policies: Policies, users: list[IamUser], now: datetime = NOW) -> list[Any]:
    ident = IdentityInventory(iam_users=users, iam_fetched=True)
    inv = Inventory(policies=policies, now=now, identity=ident)
    check = registry.discover()[CHECK]
    return [r.finding for r in registry.run(inv, scopes=["identity"], checks={CHECK: check})]


def test_the_example_renews_administrators_yearly(policies: Policies) -> None:
    assert policies.baseline.passwords.admin_max_age_days == 365
    assert policies.baseline.passwords.max_age_days == 0  # ordinary users: no forced change
    assert {p.id for p in policies.baseline.people if p.admin} == {"cfictive", "bexemple"}


def test_an_old_administrator_password_is_reported(policies: Policies) -> None:
    (finding,) = _hits(policies, [_user(ADMIN, age=400)])
    assert finding.resource == f"arn:aws:iam::1:user/isoloir/{ADMIN}"
    assert finding.evidence == {"age_days": 400, "limit_days": 365}
    assert finding.severity == Severity.MEDIUM
    assert "400" in finding.message and ADMIN in finding.message


def test_fresh_other_and_unknown_are_not(policies: Policies) -> None:
    users = [
        _user(ADMIN, age=365),  # at the limit, not past it
        _user("bexemple", age=30),
        _user(OTHER, age=2000),  # not an administrator: no forced change (CNIL 2022-100)
        _user("isoloir-agent", age=2000),
    ]
    assert _hits(policies, users) == []
    # no console password, or a date the report does not know (user created since)
    assert _hits(policies, [_user(ADMIN, console=False, age=900), _user("bexemple")]) == []


def test_the_setting_off_or_shorter(policies: Policies) -> None:
    assert _hits(_with_limit(policies, 0), [_user(ADMIN, age=4000)]) == []
    (finding,) = _hits(_with_limit(policies, 90), [_user(ADMIN, age=100)])
    assert finding.evidence == {"age_days": 100, "limit_days": 90}


# -- the credential report ---------------------------------------------------------

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,"
    "password_last_changed,password_next_rotation,mfa_active\n"
)


def test_the_report_is_parsed() -> None:
    text = HEADER + (
        "<root_account>,arn:aws:iam::1:root,2020-01-01T00:00:00+00:00,not_supported,"
        "2026-01-01T00:00:00+00:00,not_supported,not_supported,true\n"
        "cfictive,arn:aws:iam::1:user/isoloir/cfictive,2024-01-01T00:00:00+00:00,true,"
        "N/A,2025-02-03T04:05:06+00:00,N/A,true\n"
        "dmodele,arn:aws:iam::1:user/isoloir/dmodele,2024-01-01T00:00:00+00:00,false,"
        "N/A,N/A,N/A,false\n"
    )
    dates = inventory_identity.parse_credential_report(text.encode())
    assert dates == {"cfictive": datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC), "dmodele": None}


def test_a_login_profile_made_since_the_report_counts() -> None:
    """A password is never older than its login profile (deleted and made again)."""
    reported, remade = NOW - timedelta(days=500), NOW - timedelta(days=2)
    assert inventory_identity._last_set(reported, remade) == remade
    assert inventory_identity._last_set(reported, reported - timedelta(days=9)) == reported
    assert inventory_identity._last_set(None, remade) is None  # unknown to the report


class FakeIam:
    """The two report calls, in the states IAM answers with."""

    def __init__(self, states: list[str], content: bytes = HEADER.encode()) -> None:
        self.states = states
        self.content = content
        self.gets = 0

    def generate_credential_report(self) -> dict[str, str]:
        return {"State": self.states.pop(0) if len(self.states) > 1 else self.states[0]}

    def get_credential_report(self) -> dict[str, Any]:
        self.gets += 1
        return {"Content": self.content, "GeneratedTime": NOW, "ReportFormat": "text/csv"}


def test_the_report_is_waited_for() -> None:
    inv = IdentityInventory()
    waits: list[float] = []
    iam = FakeIam(["STARTED", "INPROGRESS", "COMPLETE"])
    assert inventory_identity.fetch_credential_report(iam, inv, sleep=waits.append) == {}
    assert len(waits) == 2 and iam.gets == 1
    assert inv.credential_report_time == NOW and inv.errors == {}


def test_a_report_never_ready_makes_the_audit_incomplete() -> None:
    inv = IdentityInventory()
    waits: list[float] = []
    iam = FakeIam(["INPROGRESS"])
    assert inventory_identity.fetch_credential_report(iam, inv, sleep=waits.append) is None
    assert len(waits) == inventory_identity.REPORT_TRIES - 1 and iam.gets == 0
    assert inv.errors == {"iam:GetCredentialReport": "ReportInProgress"}
    # what was not read is not announced resolved
    unread = unread_of(Inventory(load_policies(ROOT / "policies"), NOW, identity=inv), {})
    assert CHECK in unread.rules


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    use_in_process_aws(monkeypatch)


def test_the_inventory_reads_the_dates_from_iam(aws_env: None, policies: Policies) -> None:
    """moto dates a password at its user's creation: a year and more later, the
    administrator's is reported, the other person's is not."""
    with mock_aws():
        iam = aws.client("iam")
        for name in (ADMIN, OTHER, "bexemple"):
            iam.create_user(UserName=name, Path="/isoloir/")
        for name in (ADMIN, OTHER):
            iam.create_login_profile(UserName=name, Password="Fiction-0199001234!")
        inv = IdentityInventory()
        inventory_identity.fetch_iam(inv, password_ages=True)
        assert inv.errors == {} and inv.iam_fetched
        assert inv.credential_report_time is not None
        users = {u.name: u for u in inv.iam_users}
        assert users["bexemple"].password_last_changed is None  # no console password
        set_at = users[ADMIN].password_last_changed
        assert set_at is not None and abs(datetime.now(UTC) - set_at) < timedelta(hours=1)
        later = set_at + timedelta(days=400)
        result = registry.run(
            Inventory(policies=policies, now=later, identity=inv),
            scopes=["identity"],
            checks={CHECK: registry.discover()[CHECK]},
        )
        assert [r.finding.resource for r in result] == [users[ADMIN].arn]
        assert result[0].finding.evidence["age_days"] == 400

        # without the setting, no date is kept (the report still says who has what)
        off = IdentityInventory()
        inventory_identity.fetch_iam(off, password_ages=False)
        assert off.errors == {} and off.iam_fetched
        assert all(u.password_last_changed is None for u in off.iam_users)
