"""`isoloir policy validate`: the example passes; each rule's bad case exits 2
with `file:line: field: reason` pointing at the offending line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.policy import load_policies

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
ELECTION = "elections/exempleville-2027.yml"


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target


def edit(root: Path, rel: str, old: str, new: str) -> int:
    """Replace one line fragment; return the (1-based) line it is on."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def run_validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["policy", "validate", str(root)])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if not line.endswith("nothing was changed.")]


def test_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "validate", str(EXAMPLE)]) == 0
    assert "valid (1 election(s)" in capsys.readouterr().out


# (name, file, old fragment, new fragment, field, words in the reason)
CASES = [
    (
        "retention not ISO-8601",
        ELECTION,
        "after: P2M",
        'after: "6 mois"',
        "retention.after",
        '"6 mois" is not an ISO-8601 duration (e.g. P6M)',
    ),
    (
        "retention before last round",
        ELECTION,
        "after: P2M",
        "date: 2027-03-01",
        "retention.date",
        "not after the last round (2027-03-21)",
    ),
    (
        "retention beyond the baseline maximum",
        ELECTION,
        "after: P2M",
        "after: P2Y",
        "retention.after",
        "later than the baseline's maximum",
    ),
    (
        "region not allowed",
        ELECTION,
        "kind: municipales",
        "kind: municipales\nregion: eu-north-1",
        "region",
        "not in the baseline's allowed regions",
    ),
    (
        "region outside the EU",
        "baseline.yml",
        "default: eu-west-3",
        "default: eu-west-2",
        "regions.default",
        "is not one of",
    ),
    (
        "id not bucket-safe",
        ELECTION,
        "id: exempleville-2027",
        "id: Exempleville_2027",
        "id",
        "bucket-safe slug",
    ),
    (
        "id not the file name",
        ELECTION,
        "id: exempleville-2027",
        "id: autreville-2027",
        "id",
        "does not match the file name",
    ),
    (
        "member unknown",
        ELECTION,
        "members: [cfictive, dmodele]",
        "members: [cfictive, inconnu]",
        "members[1]",
        "'inconnu' is not in the baseline's people",
    ),
    (
        "mfa switched off",
        "baseline.yml",
        "required: true                     # cannot",
        "required: false                     # cannot",
        "mfa.required",
        "cannot be switched off",
    ),
    (
        "password too weak",
        "baseline.yml",
        "min_length: 14",
        "min_length: 10",
        "passwords.min_length",
        "below the 80 bits",
    ),
    (
        "admin password renewal too short",
        "baseline.yml",
        "admin_max_age_days: 365",
        "admin_max_age_days: 7",
        "passwords.admin_max_age_days",
        "0 (off) or 30 to 730 days",
    ),
    (
        "admin password renewal too long",
        "baseline.yml",
        "admin_max_age_days: 365",
        "admin_max_age_days: 1000",
        "passwords.admin_max_age_days",
        "must be at most 730",
    ),
    (
        "legal hold without reason",
        ELECTION,
        "active: false",
        "active: true",
        "legal_hold.reason",
        "needs a reason",
    ),
    (
        "unknown field with suggestion",
        ELECTION,
        "legal_hold:",
        "legal_hold_:",
        "legal_hold_",
        "did you mean 'legal_hold'",
    ),
    (
        "yes read as a boolean",
        ELECTION,
        'consentement, accepted: [oui, "yes", "1"]',
        'consentement, accepted: [oui, yes, "1"]',
        "datasets[0].tabular.consent.accepted[1]",
        "quote it",
    ),
    # Control characters in any policy string (security review F2, issue 12 item 8).
    (
        "newline in label",
        ELECTION,
        "label: Municipale partielle d'Exempleville 2027",
        'label: "Muni\\n[tout]\\npath = /\\nforce user = root"',
        "label",
        "contains a control character (newline)",
    ),
    (
        "tab in scope",
        ELECTION,
        "scope: Commune d'Exempleville (99000), fictive",
        'scope: "Commune\\tfictive"',
        "scope",
        "contains a control character (tab)",
    ),
    (
        "newline in share",
        ELECTION,
        "kind: municipales",
        "share: \"/srv/elections/x\\nExecStartPre=+/bin/sh -c 'id > /root/pwned'\"\n"
        "kind: municipales",
        "share",
        "contains a control character (newline)",
    ),
    (
        "next-line in a column",
        ELECTION,
        "email_column: email",
        'email_column: "e\\Nmail"',
        "datasets[0].tabular.email_column",
        "contains a control character (next line U+0085)",
    ),
    (
        "line separator in a reason",
        ELECTION,
        'reason: ""',
        'reason: "affaire\\Lsuite"',
        "legal_hold.reason",
        "contains a control character (line separator U+2028)",
    ),
    (
        "DEL in a person's name",
        "baseline.yml",
        "name: Paul Test",
        'name: "Paul\\x7fTest"',
        "people[3].name",
        "contains a control character (DEL)",
    ),
    (
        "trailing newline in a person's id",
        "baseline.yml",
        "id: ptest",
        'id: "ptest\\n"',
        "people[3].id",
        "contains a control character (newline)",
    ),
    (
        "carriage return in a path",
        "baseline.yml",
        "path: /srv/isoloir/contacts",
        'path: "/srv/isoloir/contacts\\r"',
        "retention.permanent_contacts.path",
        "contains a control character (carriage return)",
    ),
    # An election's share is one folder under hosts.share_root (F2 addendum).
    *(
        (
            f"share {share}",
            ELECTION,
            "kind: municipales",
            f"share: {share}\nkind: municipales",
            "share",
            "must be one folder directly under hosts.share_root (/srv/elections)",
        )
        for share in (
            "/etc",
            "/",
            "/root",
            '"/srv/elections/a b"',
            "/srv/elections/x/y",
            "/srv/elections-bis/x",
            "/srv/elections/",
            "/srv/elections/.hidden",
        )
    ),
    (
        "share with ..",
        ELECTION,
        "kind: municipales",
        "share: /srv/elections/x/../../../etc\nkind: municipales",
        "share",
        "must not contain ..",
    ),
    (
        "share root a system directory",
        "baseline.yml",
        "share_root: /srv/elections",
        "share_root: /etc/elections",
        "hosts.share_root",
        "is a system directory",
    ),
    (
        "share root /",
        "baseline.yml",
        "share_root: /srv/elections",
        "share_root: /",
        "hosts.share_root",
        "is a system directory",
    ),
    # consent and opt_out naming the same column, as headers are matched (D3).
    *(
        (
            f"opt_out column {column!r} is the consent column",
            ELECTION,
            "opt_out: {column: desinscrit,",
            f"opt_out: {{column: {column},",
            "datasets[0].tabular.opt_out.column",
            "is the same column as consent",
        )
        for column in ("consentement", '" Consentement "', "CONSENTÉMENT", '"con-sente ment"')
    ),
    (
        "column without a letter",
        ELECTION,
        "phone_column: telephone",
        'phone_column: "--"',
        "datasets[0].tabular.phone_column",
        "has no letter or digit",
    ),
    (
        "overlapping dataset prefixes",
        ELECTION,
        "bucket_prefix: porte-a-porte/",
        "bucket_prefix: prospects/terrain/",
        "datasets[1].bucket_prefix",
        "overlaps datasets[0]",
    ),
]


@pytest.mark.parametrize(
    ("name", "rel", "old", "new", "field", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_each_rule_names_file_line_and_field(
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    rel: str,
    old: str,
    new: str,
    field: str,
    reason: str,
) -> None:
    line = edit(policies, rel, old, new)
    if name in ("region not allowed", "legal hold without reason"):
        line += 1  # the offending field is on the line after the edited one
    code, errors = run_validate(policies, capsys)
    assert code == 2
    shown = policies / rel
    wanted = [e for e in errors if e.startswith(f"{shown}:") and f": {field}: " in e]
    assert wanted, errors
    location, _, rest = wanted[0].partition(f": {field}: ")
    assert location == f"{shown}:{line}"
    assert reason in rest


def test_all_errors_are_reported_at_once(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(policies, ELECTION, "after: P2M", 'after: "6 mois"')
    edit(policies, "baseline.yml", "min_length: 14", "min_length: 10")
    code, errors = run_validate(policies, capsys)
    assert code == 2
    assert len(errors) == 2


def test_segregation_two_elections_one_share(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    second = (policies / ELECTION).read_text().replace("exempleville-2027", "autreville-2027")
    (policies / "elections/autreville-2027.yml").write_text(
        second.replace("kind: municipales", "kind: municipales\nshare: /srv/elections/commun")
    )
    edit(policies, ELECTION, "kind: municipales", "kind: municipales\nshare: /srv/elections/commun")
    code, errors = run_validate(policies, capsys)
    assert code == 2
    assert any(": share: share /srv/elections/commun overlaps" in e for e in errors), errors


def test_duplicate_ids(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(policies / ELECTION, policies / "elections/exempleville-2027.yaml")
    code, errors = run_validate(policies, capsys)
    assert code == 2
    assert any("is already the id of" in e for e in errors), errors


def test_yaml_syntax_error_has_a_line(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = edit(policies, ELECTION, "members: [cfictive, dmodele]", "members: [cfictive, dmodele")
    code, errors = run_validate(policies, capsys)
    assert code == 2
    assert errors[0].startswith(f"{policies / ELECTION}:")
    assert int(errors[0].split(":")[1]) >= line
    assert "not valid YAML" in errors[0]


def test_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, errors = run_validate(tmp_path / "absent", capsys)
    assert code == 2
    assert "no such policies directory" in errors[0]


def test_validate_touches_nothing(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted((p, p.read_bytes()) for p in policies.rglob("*") if p.is_file())
    edit(policies, ELECTION, "after: P2M", 'after: "6 mois"')
    snapshot = sorted((p, p.read_bytes()) for p in policies.rglob("*") if p.is_file())
    run_validate(policies, capsys)
    assert sorted((p, p.read_bytes()) for p in policies.rglob("*") if p.is_file()) == snapshot
    assert len(before) == len(snapshot)


def test_retention_ceiling_defaults_to_three_months(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Compliance review E6: the CNIL asks for deletion at the end of the
    # election; the ceiling a baseline gets without saying one is 3 months.
    text = (policies / "baseline.yml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if "max_after_last_round" not in line]
    (policies / "baseline.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    edit(policies, ELECTION, "after: P2M ", "after: P3M ")
    assert run_validate(policies, capsys) == (0, [])
    edit(policies, ELECTION, "after: P3M ", "after: P4M ")
    code, errors = run_validate(policies, capsys)
    assert code == 2
    assert any("retention.after" in e and "maximum (P3M after" in e for e in errors), errors


@pytest.mark.parametrize("days", [0, 30, 730])
def test_admin_password_renewal_bounds_are_accepted(
    policies: Path, capsys: pytest.CaptureFixture[str], days: int
) -> None:
    """CNIL 2022-100: administrators' passwords renewed at a reasonable period; 0 is off."""
    edit(policies, "baseline.yml", "admin_max_age_days: 365", f"admin_max_age_days: {days}")
    code, errors = run_validate(policies, capsys)
    assert (code, errors) == (0, [])
    assert load_policies(policies).baseline.passwords.admin_max_age_days == days


def test_admin_password_renewal_defaults_to_a_year(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(policies, "baseline.yml", "  admin_max_age_days: 365", "  # admin_max_age_days: 365")
    assert load_policies(policies).baseline.passwords.admin_max_age_days == 365


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("P4Y", "P4Y is longer than P3Y: what is kept after the campaigns must be reviewed"),
        ("P37M", "P37M is longer than P3Y"),
        ("P1096D", "P1096D is longer than P3Y"),
        ("P0D", "must be longer than zero"),
        ('"un an"', '"un an" is not an ISO-8601 duration'),
    ],
)
def test_permanent_review_is_a_duration_of_at_most_three_years(
    policies: Path, capsys: pytest.CaptureFixture[str], value: str, reason: str
) -> None:
    # Compliance review E7: what is kept after the campaigns has a review period.
    line = edit(policies, "baseline.yml", "permanent_review: P1Y ", f"permanent_review: {value} ")
    code, errors = run_validate(policies, capsys)
    assert code == 2
    shown = policies / "baseline.yml"
    assert len(errors) == 1, errors
    location, _, rest = errors[0].partition(": retention.permanent_review: ")
    assert location == f"{shown}:{line}", errors
    assert reason in rest, errors


def test_permanent_review_defaults_to_one_year_and_is_rendered(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from isoloir.policy import load_policies
    from isoloir.policy.durations import Duration
    from isoloir.policy.loader import from_normalised, normalise

    text = (policies / "baseline.yml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if "permanent_review" not in line]
    (policies / "baseline.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_validate(policies, capsys) == (0, [])
    p = load_policies(policies)
    assert p.baseline.retention.permanent_review == Duration(years=1)
    edit(
        policies,
        "baseline.yml",
        "kms_deletion_window_days: 30",
        "permanent_review: P3Y\n  kms_deletion_window_days: 30",
    )
    data = normalise(load_policies(policies))
    assert data["baseline"]["retention"]["permanent_review"] == "P3Y"
    assert from_normalised(data).baseline.retention.permanent_review == Duration(years=3)


@pytest.mark.parametrize(
    ("text", "fr", "en"),
    [
        ("P1Y", "chaque année", "every year"),
        ("P6M", "tous les 6 mois", "every 6 months"),
        ("P1Y6M", "tous les 1 an et 6 mois", "every 1 year and 6 months"),
        ("P2Y", "tous les 2 ans", "every 2 years"),
        ("P90D", "tous les 90 jours", "every 90 days"),
    ],
)
def test_review_period_in_words(text: str, fr: str, en: str) -> None:
    from isoloir.policy.durations import Duration, every

    assert every(Duration.parse(text), "fr") == fr
    assert every(Duration.parse(text), "en") == en


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("# review: P6M  ", "review: P4Y    ", "P4Y is longer than P3Y"),
        ("# review: P6M  ", "review: P0D    ", "must be longer than zero"),
        (
            "category: campaign               #",
            "category: campaign\n    review: P1Y #",
            "only a permanent dataset is reviewed",
        ),
    ],
)
def test_a_dataset_review_period_is_checked(
    policies: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, reason: str
) -> None:
    line = edit(policies, ELECTION, old, new)
    if "campaign" in old:
        line += 1
    code, errors = run_validate(policies, capsys)
    assert code == 2
    assert len(errors) == 1, errors
    location, _, rest = errors[0].partition(": datasets[")
    assert location == f"{policies / ELECTION}:{line}", errors
    assert "].review: " in rest and reason in rest, errors


def test_a_dataset_review_period_is_rendered(policies: Path) -> None:
    from isoloir.policy import load_policies
    from isoloir.policy.durations import Duration
    from isoloir.policy.loader import from_normalised, normalise

    edit(policies, ELECTION, "# review: P6M  ", "review: P6M    ")
    p = load_policies(policies)
    assert p.elections[0].dataset("benevoles").review == Duration(months=6)
    assert p.elections[0].dataset("prospects").review is None
    again = from_normalised(normalise(p))
    assert again.elections[0].dataset("benevoles").review == Duration(months=6)
