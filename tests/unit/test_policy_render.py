"""`isoloir policy render` is deterministic and round-trips through the loader."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.policy import load_policies, load_rendered
from isoloir.policy.durations import Duration
from isoloir.policy.loader import PolicyError

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"


def render(out: Path) -> dict[str, bytes]:
    assert main(["policy", "render", "--policies", str(EXAMPLE), "--out", str(out)]) == 0
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_render_is_deterministic(tmp_path: Path) -> None:
    first = render(tmp_path / "a")
    second = render(tmp_path / "b")
    assert first == second
    assert set(first) == {
        "terraform/terraform.tfvars.json",
        "ansible/isoloir_vars.json",
        "agent/agent.json",
    }


def test_render_round_trips(tmp_path: Path) -> None:
    render(tmp_path)
    assert load_rendered(tmp_path / "agent/agent.json") == load_policies(EXAMPLE)


def test_rendered_terraform_vars(tmp_path: Path) -> None:
    render(tmp_path)
    tfvars = json.loads((tmp_path / "terraform/terraform.tfvars.json").read_text())
    election = tfvars["elections"]["exempleville-2027"]
    assert election["retention_date"] == "2027-05-21"
    assert election["bucket_name"] == "mouvement-exemple-exempleville-2027"
    assert tfvars["password_policy"]["minimum_length"] == 14
    assert tfvars["password_policy"]["max_age_days"] == 0
    # the administrators' renewal is the agents' audit, not IAM's account-wide expiry
    assert "admin_max_age_days" not in tfvars["password_policy"]


def test_agent_config_carries_the_admin_password_renewal(tmp_path: Path) -> None:
    render(tmp_path)
    agent = json.loads((tmp_path / "agent/agent.json").read_text())
    assert agent["baseline"]["passwords"]["admin_max_age_days"] == 365
    assert load_rendered(tmp_path / "agent/agent.json").baseline.passwords.admin_max_age_days == 365


def test_tampered_rendered_config_is_refused(tmp_path: Path) -> None:
    render(tmp_path)
    path = tmp_path / "agent/agent.json"
    data = json.loads(path.read_text())
    data["baseline"]["mfa"]["required"] = False
    path.write_text(json.dumps(data))
    with pytest.raises(PolicyError, match="mfa.required"):
        load_rendered(path)


def test_show_lists_due_dates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISOLOIR_NOW", "2027-05-11T12:00:00+00:00")
    assert main(["policy", "show", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "exempleville-2027" in out and "2027-05-21" in out and " 10 " in out


@pytest.mark.parametrize(
    ("text", "start", "due"),
    [
        ("P2M", date(2027, 3, 21), date(2027, 5, 21)),
        ("P1M", date(2027, 1, 31), date(2027, 2, 28)),
        ("P1Y2W", date(2024, 2, 29), date(2025, 3, 14)),
        ("P45D", date(2026, 12, 1), date(2027, 1, 15)),
    ],
)
def test_durations(text: str, start: date, due: date) -> None:
    assert Duration.parse(text).after(start) == due
    assert str(Duration.parse(text)) == text


@pytest.mark.parametrize("bad", ["6 mois", "P", "PT1H", "P1.5M", "", "P-1D"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        Duration.parse(bad)
