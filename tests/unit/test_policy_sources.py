"""E5 of the compliance review: what a dataset's origin and legal basis allow.

The electoral list is destroyed after the election and holds no e-mail or phone
(C. élect. L.37/R.16); `public_interest` needs a task laid down by law, which no
French law gives a party; a door-to-door or membership dataset reveals political
opinions, so it declares its RGPD art. 9(2) condition. Each rule's bad case
fails validation at its line; the example passes."""

from __future__ import annotations

import pytest
from tests.unit.test_policy_validate import ELECTION, edit, policies, run_validate  # noqa: F401

from isoloir.policy import load_policies, load_rendered
from isoloir.policy.render import write


def test_the_example_declares_its_sources(policies) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    p = load_policies(policies)
    e = p.elections[0]
    assert {d.name: d.origin for d in e.datasets}["prospects"] == "opt_in_form"
    assert e.dataset("porte-a-porte").art9_condition == "explicit_consent"
    assert all(d.legal_basis != "public_interest" for d in e.datasets)


CASES = [
    (
        "electoral list kept forever",
        "    origin: door_to_door\n    legal_basis: legitimate_interest\n"
        "    # RGPD art. 9(2): a sympathy or voting intention is noted only with the person's "
        "explicit\n    # consent (explicit_consent), or not at all (none_no_opinion_data)\n"
        "    art9_condition: explicit_consent\n    category: campaign",
        "    origin: electoral_roll\n    legal_basis: legitimate_interest\n    category: permanent",
        "datasets[1].category",
        "destroyed after the election",
    ),
    (
        "electoral list with an e-mail column",
        "    origin: opt_in_form\n    legal_basis: legitimate_interest",
        "    origin: electoral_roll\n    legal_basis: legitimate_interest",
        "datasets[0].tabular.email_column",
        "holds no e-mail or phone",
    ),
    (
        "public interest",
        "legal_basis: legitimate_interest # consent",
        "legal_basis: public_interest # consent",
        "datasets[0].legal_basis",
        "no French law gives a party",
    ),
    (
        "door to door without an art. 9 condition",
        "    art9_condition: explicit_consent\n",
        "",
        "datasets[1].art9_condition",
        "reveals political opinions",
    ),
    (
        "members with no opinion",
        "    origin: door_to_door\n",
        "    origin: party_members\n",
        None,
        None,
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_each_source_rule(
    policies,  # type: ignore[no-untyped-def]  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    name: str,
    old: str,
    new: str,
    field: str | None,
    words: str | None,
) -> None:
    edit(policies, ELECTION, old, new)
    code, lines = run_validate(policies, capsys)
    if field is None:  # party_members with explicit_consent: valid; with none: refused
        assert code == 0, lines
        edit(policies, ELECTION, "art9_condition: explicit_consent", "art9_condition: "
             "none_no_opinion_data")  # fmt: skip
        code, lines = run_validate(policies, capsys)
        field, words = "datasets[1].art9_condition", "membership of a party"
    assert code == 2
    assert any(f" {field}: " in line and words in line for line in lines), lines


def test_the_condition_survives_the_rendered_config(policies, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    out = tmp_path / "build"
    write(load_policies(policies), out)
    agent = next(out.rglob("agent.json"))
    again = load_rendered(agent).elections[0]
    assert again.dataset("porte-a-porte").art9_condition == "explicit_consent"
    assert again.dataset("prospects").art9_condition == ""
