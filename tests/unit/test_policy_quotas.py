"""`isoloir policy validate` refuses what AWS would refuse at apply time, naming
AWS's rule: an election whose bucket policy (S3: 20 KB) or key policy (KMS:
32 KB) would not hold its members, 256 characters per tag value, S3's bucket
naming rules, the `<slug>-` prefix of election buckets; and validates
`hosts.aws` (AMI and subnet per region), which `isoloir policy render` writes
into `host_image_ids` / `subnet_ids`. At 577 elections and 3,000 people:
tests/unit/test_access_quotas.py.

One fixture per rule: exit 2, `file:line: field: reason`."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.policy import access, load_policies
from isoloir.policy import render as policy_render
from isoloir.policy.loader import (
    IAM_GROUPS_PER_USER,
    TAG_VALUE_MAX,
    bucket_name_problem,
    election_policy_sizes,
    iam_group_count,
    iam_groups_of,
    load_rendered,
    tag_problems,
    terraform_tags,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "policies"
ELECTION = "elections/exempleville-2027.yml"
AMI = "ami-0fedcba9876543210"
SUBNET = "subnet-0fedcba9876543210"


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target


def edit(root: Path, rel: str, old: str, new: str) -> int:
    """Replace one fragment; return the (1-based) line it starts on."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def line_of(root: Path, rel: str, fragment: str) -> int:
    text = (root / rel).read_text(encoding="utf-8")
    assert text.count(fragment) == 1, fragment
    return text[: text.index(fragment)].count("\n") + 1


def add_election(root: Path, election_id: str, members: str = "[cfictive, dmodele]") -> Path:
    """A copy of the example election under another id (same members by default)."""
    text = (root / ELECTION).read_text(encoding="utf-8")
    text = text.replace("id: exempleville-2027", f"id: {election_id}")
    text = text.replace("members: [cfictive, dmodele]", f"members: {members}")
    path = root / "elections" / f"{election_id}.yml"
    path.write_text(text, encoding="utf-8")
    return path


def validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["policy", "validate", str(root)])
    err = capsys.readouterr().err
    return code, [x for x in err.splitlines() if not x.endswith("nothing was changed.")]


def only_error(
    root: Path, capsys: pytest.CaptureFixture[str], rel: str, field: str
) -> tuple[int, str]:
    """Exit 2 and the one `file:line: field: reason` line about `field` in `rel`:
    returns (line, reason)."""
    code, errors = validate(root, capsys)
    assert code == 2, errors
    shown = root / rel
    wanted = [e for e in errors if e.startswith(f"{shown}:") and f": {field}: " in e]
    assert len(wanted) == 1, errors
    location, _, reason = wanted[0].partition(f": {field}: ")
    return int(location.rsplit(":", 1)[1]), reason


# ------------------------------------------------------------ IAM quotas


def test_a_person_in_many_elections_is_in_two_iam_groups_only(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No IAM group per election (aws-readiness N3): cfictive, an administrator,
    member of 21 elections, is in people and admins; the elections' bucket and
    key policies name them instead."""
    for i in range(20):
        add_election(policies, f"partielle-{i}-2027")
    code, errors = validate(policies, capsys)
    assert code == 0, errors
    p = load_policies(policies)
    cfictive = p.baseline.person("cfictive")
    assert sum("cfictive" in e.members for e in p.elections) == 21
    assert iam_groups_of(p, cfictive) == ["people", "admins"]
    assert len(iam_groups_of(p, cfictive)) <= IAM_GROUPS_PER_USER


def test_the_group_count_follows_the_terraform() -> None:
    """iam_groups_of() mirrors infra/modules/account_baseline: two groups,
    people and admins, and nothing in the module made per election."""
    text = (REPO / "infra/modules/account_baseline/main.tf").read_text(encoding="utf-8")
    groups = set(re.findall(r'^resource "aws_iam_group" "(\w+)"', text, re.MULTILINE))
    members = set(re.findall(r'^resource "aws_iam_group_membership" "(\w+)"', text, re.MULTILINE))
    assert groups == members == {"people", "admins"}
    assert 'resource "aws_iam_user_group_membership"' not in text
    assert "var.elections" not in text and "elections" not in (
        REPO / "infra/modules/account_baseline/variables.tf"
    ).read_text(encoding="utf-8")
    p = load_policies(EXAMPLE)
    cfictive = p.baseline.person("cfictive")  # admin, member of the example election
    assert iam_groups_of(p, cfictive) == ["people", "admins"]
    assert iam_groups_of(p, p.baseline.person("ptest")) == ["people"]
    assert iam_group_count(p) == 2


def test_a_quota_declared_below_two_groups_is_still_refused(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(policies, "baseline.yml", "identity:\n", "aws:\n  iam_groups_quota: 1\n\nidentity:\n")
    code, errors = validate(policies, capsys)
    assert code == 2
    assert any("aws.iam_groups_quota" in e for e in errors), errors[:5]


# ------------------------------------------------------------ members in policies


def _people(n: int, width: int = 31) -> tuple[str, str]:
    """(baseline people entries, YAML list of their ids): n people whose ids are
    `width` characters long, the longest the schema accepts."""
    ids = [f"m{i:05d}".ljust(width, "x") for i in range(n)]
    entries = "".join(
        f"  - id: {x}\n    name: Membre {i}\n    email: m{i}@mouvement-exemple.example\n"
        for i, x in enumerate(ids)
    )
    return entries, "[" + ", ".join(ids) + "]"


def _largest_fitting(policies: Path) -> int:
    """Members of 31-character ids that fit in the example election's bucket policy."""
    p = load_policies(policies)
    e = p.election("exempleville-2027")
    n = 0
    while True:
        members = tuple(f"m{i:05d}".ljust(31, "x") for i in range(n + 1))
        bucket, key = election_policy_sizes(p, dataclasses.replace(e, members=members))
        if bucket > access.S3_BUCKET_POLICY_MAX or key > access.KMS_KEY_POLICY_MAX:
            return n
        n += 1


@pytest.mark.parametrize("extra", [0, 1])
def test_members_are_refused_only_past_the_bucket_policy_size(
    policies: Path, capsys: pytest.CaptureFixture[str], extra: int
) -> None:
    """The largest election the bucket policy (20 KB) holds is accepted, one more
    member is refused at the election file's `members` line, naming the rule."""
    most = _largest_fitting(policies)
    assert 200 <= most <= 300, most  # the figure docs/infra.md gives
    entries, ids = _people(most + extra)
    edit(policies, "baseline.yml", "people:\n", "people:\n" + entries)
    edit(policies, ELECTION, "members: [cfictive, dmodele]", f"members: {ids}")
    if not extra:
        code, errors = validate(policies, capsys)
        assert code == 0, errors[:3]
        p = load_policies(policies)
        bucket, key = election_policy_sizes(p, p.election("exempleville-2027"))
        assert bucket <= access.S3_BUCKET_POLICY_MAX < bucket + 73
        assert key <= access.KMS_KEY_POLICY_MAX
        return
    line, reason = only_error(policies, capsys, ELECTION, "members")
    assert line == line_of(policies, ELECTION, "members: [")
    assert f"{most + 1} members make the election's bucket policy" in reason
    assert "S3 allows 20 KB (20,480 bytes" in reason
    assert f"{most} of these members fit, remove 1 or split the election" in reason


# ------------------------------------------------------------ tag values


def test_every_tag_the_terraform_writes_is_modelled() -> None:
    """terraform_tags() must know every tag key infra/ writes: a new tag computed
    from the policies (e.g. a list of elections) must be modelled, so that its
    length is checked."""
    keys: set[str] = set()
    pattern = re.compile(r'^\s*"?((?:isoloir:[a-z-]+)|Name)"?\s*=', re.MULTILINE)
    for tf in (REPO / "infra").rglob("*.tf"):
        if "tests" in tf.parts:
            continue
        keys.update(pattern.findall(tf.read_text(encoding="utf-8")))
    modelled = {key for _, _, key, _ in terraform_tags(load_policies(EXAMPLE))}
    assert keys, "no tag found in infra/"
    assert keys <= modelled, f"tags infra/ writes but the loader does not check: {keys - modelled}"


def test_a_tag_value_over_256_characters_is_refused() -> None:
    """The policies' schemas bound every field tagged today (ids, slug, dates), and
    the host carries a count of its elections, not their list (F11): no policy file
    reaches the limit, so the rule is shown on the tags the loader computes."""
    long = [("elections/x.yml", "file-share host eu-west-3", "isoloir:elections", "e" * 257)]
    problems = tag_problems(long)
    assert len(problems) == 1
    assert "would be 257 characters long" in str(problems[0])
    assert f"AWS allows {TAG_VALUE_MAX} per tag value" in str(problems[0])
    assert tag_problems([("b", "r", "k", "v" * TAG_VALUE_MAX)]) == []


def test_many_elections_in_one_region_keep_the_host_tags_short(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 12 elections of 20+ characters in eu-west-3: their ids joined would exceed 256.
    for i in range(11):
        add_election(policies, f"legislatives-circo-{i:02d}", members="[]")
    p = load_policies(policies)
    assert len(" ".join(e.id for e in p.elections)) > TAG_VALUE_MAX
    host = [t for t in terraform_tags(p) if t[1] == "file-share host eu-west-3"]
    assert ("isoloir:election-count", "12") in [(k, v) for _, _, k, v in host]
    assert all(len(v) <= TAG_VALUE_MAX for *_, v in terraform_tags(p))


# ------------------------------------------------------------ bucket names

BUCKET_CASES = [
    (
        "over 63 characters",
        "mouvement-exemple-" + "a" * 46,
        "is 64 characters long; S3 allows 3 to 63",
    ),
    ("upper case", "mouvement-exemple-Ville", "only lower-case letters, digits, dots and hyphens"),
    ("underscore", "mouvement-exemple_ville", "only lower-case letters, digits, dots and hyphens"),
    ("ends with a hyphen", "mouvement-exemple-", "must begin and end with a letter or digit"),
    ("two adjacent dots", "mouvement-exemple..ville", "must not contain two adjacent dots"),
    ("IP-like", "192.168.5.4", "must not be formatted as an IP address"),
    ("xn-- prefix", "xn--mouvement-exemple", "must not start with xn--"),
    ("-s3alias suffix", "mouvement-exemple-ville-s3alias", "must not end with -s3alias"),
    ("a dot", "mouvement-exemple.ville", "must not contain dots"),
    ("not the slug prefix", "autre-parti-ville", "must start with 'mouvement-exemple-'"),
]


@pytest.mark.parametrize(
    ("name", "bucket", "reason"), BUCKET_CASES, ids=[c[0] for c in BUCKET_CASES]
)
def test_each_bucket_rule_names_file_line_and_field(
    policies: Path, capsys: pytest.CaptureFixture[str], name: str, bucket: str, reason: str
) -> None:
    line = edit(policies, ELECTION, "kind: municipales", f'bucket: "{bucket}"\nkind: municipales')
    at, said = only_error(policies, capsys, ELECTION, "bucket")
    assert at == line
    assert reason in said, said


def test_a_default_bucket_name_is_checked_on_the_id(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # slug (30) + "-" + id (28) = 59: fine; a slug starting with xn-- breaks every name.
    line = edit(policies, "baseline.yml", "slug: mouvement-exemple", "slug: xn--mouvement")
    at, said = only_error(policies, capsys, "baseline.yml", "organisation.slug")
    assert at == line
    assert "'xn--mouvement-access-logs'" in said and "must not start with xn--" in said


def test_the_s3_rules_alone() -> None:
    assert bucket_name_problem("mouvement-exemple-exempleville-2027") is None
    assert bucket_name_problem("ab") == "is 2 characters long; S3 allows 3 to 63"
    assert "IP address" in str(bucket_name_problem("10.0.0.1"))
    assert "reserve" in str(bucket_name_problem("sthree-abc"))


# ------------------------------------------------------------ hosts.aws

HOSTS_AWS = f"""  stray_data_paths: [/tmp, /home, /var/www]
  aws:
    image_ids: {{eu-west-3: {AMI}}}
    subnet_ids: {{eu-west-3: {SUBNET}}}
"""


def test_hosts_aws_is_rendered_into_the_terraform_variables(policies: Path, tmp_path: Path) -> None:
    edit(policies, "baseline.yml", "  stray_data_paths: [/tmp, /home, /var/www]\n", HOSTS_AWS)
    p = load_policies(policies)
    tfvars = policy_render.terraform_vars(p)
    assert tfvars["host_image_ids"] == {"eu-west-3": AMI}
    assert tfvars["subnet_ids"] == {"eu-west-3": SUBNET}
    # ... and survives the agents' rendered config (normalise / load_rendered).
    out = tmp_path / "rendered"
    policy_render.write(p, out)
    again = load_rendered(out / policy_render.AGENT_CONFIG)
    assert dict(again.baseline.hosts.image_ids) == {"eu-west-3": AMI}
    declared = (REPO / "infra" / "variables.tf").read_text(encoding="utf-8")
    assert 'variable "host_image_ids"' in declared and 'variable "subnet_ids"' in declared
    written = json.loads((out / policy_render.TERRAFORM_VARS).read_text(encoding="utf-8"))
    assert written["subnet_ids"] == {"eu-west-3": SUBNET}


HOST_CASES = [
    (
        "AMI id",
        f"eu-west-3: {AMI}}}",
        "eu-west-3: ami-XYZ}",
        "hosts.aws.image_ids.eu-west-3",
        '"ami-XYZ" is not an AMI id',
    ),
    (
        "subnet id",
        f"eu-west-3: {SUBNET}}}",
        "eu-west-3: sub-0123}",
        "hosts.aws.subnet_ids.eu-west-3",
        '"sub-0123" is not a subnet id',
    ),
    (
        "region outside the EU",
        f"image_ids: {{eu-west-3: {AMI}}}",
        f"image_ids: {{eu-west-2: {AMI}}}",
        "hosts.aws.image_ids.eu-west-2",
        "unknown field",
    ),
    (
        "region not allowed",
        f"image_ids: {{eu-west-3: {AMI}}}",
        f"image_ids: {{eu-west-3: {AMI}, eu-north-1: {AMI}}}",
        "hosts.aws.image_ids.eu-north-1",
        "not in regions.allowed",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "field", "reason"), HOST_CASES, ids=[c[0] for c in HOST_CASES]
)
def test_each_hosts_aws_rule_names_file_line_and_field(
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    old: str,
    new: str,
    field: str,
    reason: str,
) -> None:
    edit(policies, "baseline.yml", "  stray_data_paths: [/tmp, /home, /var/www]\n", HOSTS_AWS)
    line = edit(policies, "baseline.yml", old, new)
    at, said = only_error(policies, capsys, "baseline.yml", field)
    assert at == line
    assert reason in said, said


# -- F13: predictable global bucket names -----------------------------------------------


def test_bucket_suffix_names_every_default_bucket(policies: Path, tmp_path: Path) -> None:
    edit(
        policies,
        "baseline.yml",
        "  slug: mouvement-exemple ",
        "  bucket_suffix: 7f3a9c\n  slug: mouvement-exemple ",
    )
    p = load_policies(policies)
    assert (
        p.election("exempleville-2027").bucket_name == "mouvement-exemple-exempleville-2027-7f3a9c"
    )
    logs = p.baseline.log_bucket_names
    assert logs["eu-west-3"] == "mouvement-exemple-access-logs-7f3a9c"
    assert logs["eu-west-1"] == "mouvement-exemple-access-logs-7f3a9c-eu-west-1"
    # Terraform and the agents read the same names.
    tfvars = policy_render.terraform_vars(p)
    assert tfvars["log_bucket_name"] == "mouvement-exemple-access-logs-7f3a9c"
    buckets = {e["bucket_name"] for e in tfvars["elections"].values()}
    assert buckets == {"mouvement-exemple-exempleville-2027-7f3a9c"}
    out = tmp_path / "render"
    policy_render.write(p, out)
    again = load_rendered(out / policy_render.AGENT_CONFIG)
    assert again.baseline.organisation.bucket_suffix == "7f3a9c"
    assert (
        again.election("exempleville-2027").bucket_name
        == p.election("exempleville-2027").bucket_name
    )


@pytest.mark.parametrize("bad", ["ABC123", "abc", "a" * 13, "ab-cd", "'12 34'"])
def test_bucket_suffix_must_be_short_lower_case(
    policies: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    line = edit(
        policies,
        "baseline.yml",
        "  slug: mouvement-exemple ",
        f"  bucket_suffix: {bad}\n  slug: mouvement-exemple ",
    )
    code, errors = validate(policies, capsys)
    assert code == 2
    assert any(
        f"baseline.yml:{line}:" in e and "organisation.bucket_suffix" in e for e in errors
    ), errors


def test_without_suffix_names_are_unchanged(policies: Path) -> None:
    p = load_policies(policies)
    assert p.election("exempleville-2027").bucket_name == "mouvement-exemple-exempleville-2027"
    assert p.baseline.log_bucket_name == "mouvement-exemple-access-logs"


def test_a_long_slug_and_suffix_leave_no_room_for_the_region(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = "p" * 28
    edit(
        policies,
        "baseline.yml",
        "  slug: mouvement-exemple ",
        f"  bucket_suffix: abcdef012345\n  slug: {slug} ",
    )
    code, errors = validate(policies, capsys)
    assert code == 2
    assert any("organisation.bucket_suffix" in e and "at most 50" in e for e in errors), errors


@pytest.mark.parametrize(
    ("retention", "expected"),
    [("after: P1Y ", 2), ("date: 9999-05-21 ", 0)],
)
def test_a_last_round_near_year_9999_is_a_problem_not_a_traceback(
    policies: Path, capsys: pytest.CaptureFixture[str], retention: str, expected: int
) -> None:
    # Found by the property test: the baseline's ceiling after the last round
    # overflowed the calendar and raised instead of reporting.
    edit(policies, ELECTION, "rounds: [2027-03-14, 2027-03-21]", "rounds: [9999-03-14, 9999-03-21]")
    edit(policies, ELECTION, "after: P2M ", retention)
    code, errors = validate(policies, capsys)
    assert code == expected, errors
    if expected:
        assert any("retention.after" in e and "year 9999" in e for e in errors), errors
