"""The `mail` policy section: defaults (a baseline without it still loads),
errors naming file, line and field, and the rendered agent config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.policy import load_policies, load_rendered
from isoloir.policy.model import Mail, Upstream
from isoloir.policy.render import AGENT_CONFIG, write

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target


def baseline_without_mail(root: Path) -> Path:
    path = root / "baseline.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("# Garde du courrier")], encoding="utf-8")
    return path


def set_mail(root: Path, *lines: str) -> int:
    """Replace the example's mail section; return the line of its first field."""
    path = baseline_without_mail(root)
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "mail:\n" + "".join(f"  {x}\n" for x in lines), encoding="utf-8")
    return text.count("\n") + 2


def test_example_mail_section(policies: Path) -> None:
    mail = load_policies(policies).baseline.mail
    assert mail == Mail(
        enabled=True,
        max_visible_recipients=5,
        transparency="reject",
        language="fr",
        party_domains=("mouvement-exemple.example",),
        upstream=None,
        unsubscribe_confirm=True,
    )


def test_defaults_without_a_mail_section(policies: Path) -> None:
    path = baseline_without_mail(policies)
    text = path.read_text(encoding="utf-8").replace("language: fr ", "language: en ")
    path.write_text(text, encoding="utf-8")
    p = load_policies(policies)
    assert p.baseline.mail.language == "en"  # alerts.language
    assert p.baseline.mail.max_visible_recipients == 5 and p.baseline.mail.transparency == "reject"
    assert p.baseline.party_domains == ("mouvement-exemple.example",)  # people and organisation


def test_upstream_and_explicit_values(policies: Path) -> None:
    set_mail(
        policies,
        "max_visible_recipients: 8",
        "transparency: add",
        "party_domains: [Mouvement-Exemple.example, allies.example]",
        "upstream: {host: smtp.mouvement-exemple.example}",
        "unsubscribe_confirm: false",
    )
    mail = load_policies(policies).baseline.mail
    assert (mail.max_visible_recipients, mail.transparency, mail.unsubscribe_confirm) == (
        8,
        "add",
        False,
    )
    assert mail.party_domains == ("mouvement-exemple.example", "allies.example")
    assert mail.upstream == Upstream("smtp.mouvement-exemple.example", 587)


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("max_visible_recipients: 0", "mail.max_visible_recipients", "0 must be at least 1"),
        ("max_visible_recipients: 101", "mail.max_visible_recipients", "must be at most 100"),
        ("transparency: fix", "mail.transparency", '"fix" is not one of: reject, add'),
        ("language: de", "mail.language", "is not one of: fr, en"),
        ("party_domains: [not a domain]", "mail.party_domains[0]", "is not a domain"),
        ("upstream: {port: 25}", "mail.upstream.host", "missing required field"),
        ("max_visible: 3", "mail.max_visible", "did you mean 'max_visible_recipients'"),
        ("party_domains: [allies.example]", "mail.party_domains", "organisation.unsubscribe"),
    ],
)
def test_bad_mail_values_name_file_line_and_field(
    policies: Path, capsys: pytest.CaptureFixture[str], line: str, field: str, reason: str
) -> None:
    at = set_mail(policies, line)
    assert main(["policy", "validate", str(policies)]) == 2
    err = capsys.readouterr().err
    assert f"baseline.yml:{at}: {field}: " in err and reason in err, err


def test_render_writes_the_mail_section_and_the_agents_read_it_back(
    policies: Path, tmp_path: Path
) -> None:
    set_mail(
        policies,
        "transparency: add",
        "upstream: {host: relais.mouvement-exemple.example, port: 25}",
    )
    p = load_policies(policies)
    out = tmp_path / "out"
    write(p, out)
    data = json.loads((out / AGENT_CONFIG).read_text(encoding="utf-8"))
    assert data["baseline"]["mail"] == {
        "enabled": True,
        "max_visible_recipients": 5,
        "transparency": "add",
        "language": "fr",
        "party_domains": ["mouvement-exemple.example"],
        "upstream": {"host": "relais.mouvement-exemple.example", "port": 25},
        "unsubscribe_confirm": True,
    }
    assert load_rendered(out / AGENT_CONFIG) == p
