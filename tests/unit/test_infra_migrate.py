"""`isoloir infra migrate`: the mapping of a single-root state onto the split
layout's instances and the states built for them, from in-process state JSON;
the migration's refusals and roll-back with stand-in Terraform objects.

The real CLI against the emulator: tests/integration/test_infra_migration.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from isoloir.cli import main
from isoloir.controller.infra import cli as infra_cli
from isoloir.controller.infra import inputs, migrate, roots
from isoloir.controller.infra.runner import PlanSummary
from isoloir.controller.infra.targets import Target

ROOT = Path(__file__).resolve().parents[2]
AWS = 'provider["registry.terraform.io/hashicorp/aws"]'
IDS = [f"election-{i:02d}" for i in range(30)]


def _entry(module: str, kind: str, name: str, *, mode: str = "managed", **item: Any) -> dict:
    entry: dict[str, Any] = {
        "mode": mode,
        "type": kind,
        "name": name,
        "provider": AWS,
        "instances": [{"schema_version": 0, "attributes": {"id": f"{kind}.{name}"}, **item}],
    }
    if module:
        entry["module"] = module
    return entry


def _state(ids: Sequence[str] = ("election-01",), *extra: dict) -> dict[str, Any]:
    resources = [
        _entry("", "aws_caller_identity", "current", mode="data"),
        _entry("module.account_baseline", "aws_iam_group", "people"),
        _entry("module.account_baseline", "aws_iam_account_password_policy", "this"),
        _entry("module.account_baseline", "aws_partition", "current", mode="data"),
        {
            **_entry("module.account_baseline", "aws_iam_user", "person"),
            "instances": [
                {"index_key": "person-a", "attributes": {}},
                {"index_key": "person-b", "attributes": {}},
            ],
        },
        {
            **_entry("module.eu_west_3[0]", "aws_s3_bucket", "logs"),
            "provider": AWS + ".eu_west_3",
        },
        {
            **_entry(
                "module.eu_west_3[0]",
                "aws_s3_bucket_policy",
                "logs",
                dependencies=["module.eu_west_3[0].aws_s3_bucket.logs"],
            ),
            "provider": AWS + ".eu_west_3",
        },
        {
            **_entry("module.eu_west_3[0].module.host[0]", "aws_instance", "this"),
            "provider": AWS + ".eu_west_3",
        },
    ]
    for i in ids:
        module = f'module.eu_west_3[0].module.election["{i}"]'
        resources += [
            {
                **_entry(
                    module,
                    "aws_kms_key",
                    "this",
                    dependencies=[
                        "module.account_baseline.aws_iam_role.agent",
                        "module.eu_west_3[0].aws_s3_bucket_policy.logs",
                    ],
                ),
                "provider": AWS + ".eu_west_3",
            },
            {
                **_entry(
                    module,
                    "aws_s3_bucket",
                    "this",
                    dependencies=[f"{module}.aws_kms_key.this"],
                ),
                "provider": AWS + ".eu_west_3",
            },
            _entry(module, "aws_region", "current", mode="data"),
        ]
    return {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 42,
        "lineage": "single-lineage",
        "outputs": {"account_id": {"value": "123456789012", "type": "string"}},
        "resources": [*resources, *extra],
    }


# ------------------------------------------------------------ mapping


def test_the_regions_are_the_single_roots_region_modules() -> None:
    text = (ROOT / "infra" / "main.tf").read_text(encoding="utf-8")
    declared = set(re.findall(r'^module "(eu_[a-z]+_\d)"', text, re.MULTILINE))
    assert declared == set(migrate.REGION_MODULES)
    for name, region in migrate.REGION_MODULES.items():
        assert f'"{region}"' in text and region == name.replace("_", "-")


@pytest.mark.parametrize(
    ("module", "instance", "new"),
    [
        ("module.account_baseline", roots.Instance("baseline"), "module.account_baseline"),
        (
            "module.account_baseline.module.policies",
            roots.Instance("baseline"),
            "module.account_baseline.module.policies",
        ),
        ("module.eu_west_3[0]", roots.Instance("region", "eu-west-3"), "module.region"),
        (
            "module.eu_central_1[0].module.host[0]",
            roots.Instance("region", "eu-central-1"),
            "module.region.module.host[0]",
        ),
        (
            'module.eu_west_1[0].module.election["e-1"]',
            roots.Instance("elections", "eu-west-1", roots.batch_of("e-1", 12)),
            'module.election["e-1"]',
        ),
        (
            'module.eu_south_2[0].module.election["e-2"].module.policies',
            roots.Instance("elections", "eu-south-2", roots.batch_of("e-2", 12)),
            'module.election["e-2"].module.policies',
        ),
    ],
)
def test_each_kind_of_module_address_maps_to_its_instance(
    module: str, instance: roots.Instance, new: str
) -> None:
    assert migrate.target_of(module, 12) == (instance, new)


@pytest.mark.parametrize(
    "module",
    [
        "",
        "module.other",
        "module.eu_west_3[1]",
        'module.eu_west_3["x"]',
        "module.account_baseline[0]",
        "module.us_east_1[0]",
        "not a module",
    ],
)
def test_other_module_addresses_map_nowhere(module: str) -> None:
    assert migrate.target_of(module, 12) is None


@pytest.mark.parametrize("count", [1, 5, 12])
def test_the_batch_of_a_moved_election_is_batch_of(count: int) -> None:
    moves = migrate.map_state(_state(IDS), count)
    for i in IDS:
        inst = roots.Instance("elections", "eu-west-3", roots.batch_of(i, count))
        modules = {r["module"] for r in moves.resources[inst]}
        assert f'module.election["{i}"]' in modules
    elections = [i for i in moves.resources if i.root == "elections"]
    assert len(elections) == len({roots.batch_of(i, count) for i in IDS})


def test_every_managed_resource_moves_and_the_data_sources_are_dropped() -> None:
    state = _state(["election-01", "election-02"])
    moves = migrate.map_state(state, 12)
    managed = sum(len(r["instances"]) for r in state["resources"] if r["mode"] == "managed")
    data = sum(1 for r in state["resources"] if r["mode"] == "data")
    assert sum(moves.counts().values()) == managed
    assert moves.dropped == data == 4
    for entries in moves.resources.values():
        assert all(r["mode"] == "managed" for r in entries)
    assert moves.counts()["baseline"] == 4
    assert moves.counts()["region-eu-west-3"] == 3


def test_the_moved_entries_get_their_new_address_provider_and_dependencies() -> None:
    moves = migrate.map_state(_state(["election-01"]), 12)
    region = {r["type"]: r for r in moves.resources[roots.Instance("region", "eu-west-3")]}
    assert region["aws_s3_bucket"]["module"] == "module.region"
    assert region["aws_s3_bucket"]["provider"] == AWS
    assert region["aws_instance"]["module"] == "module.region.module.host[0]"
    assert region["aws_s3_bucket_policy"]["instances"][0]["dependencies"] == [
        "module.region.aws_s3_bucket.logs"
    ]
    batch = roots.Instance("elections", "eu-west-3", roots.batch_of("election-01", 12))
    election = {r["type"]: r for r in moves.resources[batch]}
    # the baseline's role and the region's log bucket live in other roots now
    assert election["aws_kms_key"]["instances"][0]["dependencies"] == []
    assert election["aws_s3_bucket"]["instances"][0]["dependencies"] == [
        'module.election["election-01"].aws_kms_key.this'
    ]
    assert election["aws_s3_bucket"]["instances"][0]["attributes"] == {"id": "aws_s3_bucket.this"}
    baseline = moves.resources[roots.Instance("baseline")]
    assert {r["module"] for r in baseline} == {"module.account_baseline"}


def test_the_single_state_itself_is_not_changed() -> None:
    state = _state(["election-01"])
    text = json.dumps(state, sort_keys=True)
    migrate.map_state(state, 12)
    assert json.dumps(state, sort_keys=True) == text


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        (_entry("", "aws_s3_bucket", "stray"), "aws_s3_bucket.stray"),
        (_entry("module.other", "aws_kms_key", "k"), "module.other.aws_kms_key.k"),
        (
            _entry("module.eu_west_3[1]", "aws_s3_bucket", "logs"),
            "module.eu_west_3[1].aws_s3_bucket.logs",
        ),
    ],
)
def test_an_unmapped_resource_stops_the_migration_naming_it(entry: dict, address: str) -> None:
    with pytest.raises(migrate.MigrationError, match=re.escape(address)) as caught:
        migrate.map_state(_state(["election-01"], entry), 12)
    assert "nothing was migrated" in str(caught.value)


def test_an_unknown_state_version_is_refused() -> None:
    with pytest.raises(migrate.MigrationError, match="version 3"):
        migrate.map_state({**_state(), "version": 3}, 12)


# ------------------------------------------------------------ states


def test_a_built_state_is_version_4_serial_1_with_a_fresh_lineage_and_no_outputs() -> None:
    moves = migrate.map_state(_state(), 12)
    entries = moves.resources[roots.Instance("baseline")]
    one = migrate.build_state(entries, "1.11.4")
    two = migrate.build_state(entries, "1.11.4")
    assert one["version"] == 4 and one["serial"] == 1
    assert one["terraform_version"] == "1.11.4"
    assert one["outputs"] == {}
    assert one["resources"] == entries
    assert one["lineage"] != two["lineage"] != "single-lineage"
    assert len(one["lineage"]) == 36


def test_an_instance_without_state_or_with_an_empty_one_takes_the_moves() -> None:
    assert migrate.existing_lineage(None, "baseline") == (None, 1)
    empty = {"version": 4, "lineage": "kept", "serial": 3, "resources": []}
    assert migrate.existing_lineage(empty, "baseline") == ("kept", 4)
    state = migrate.build_state([], "1.11.4", lineage="kept", serial=4)
    assert (state["lineage"], state["serial"]) == ("kept", 4)


def test_an_already_populated_instance_is_refused() -> None:
    populated = migrate.build_state([_entry("module.region", "aws_s3_bucket", "logs")], "1.11.4")
    with pytest.raises(migrate.MigrationError, match="region-eu-west-3: its state already"):
        migrate.existing_lineage(populated, "region-eu-west-3")


def test_the_archive_name_carries_a_utc_timestamp(tmp_path: Path) -> None:
    now = datetime(2026, 12, 6, 23, 5, 9, tzinfo=UTC)
    path = migrate.archive_name(tmp_path / "terraform.tfstate", now)
    assert path == tmp_path / "terraform.tfstate.migrated-20261206T230509Z"


def test_planned_changes_name_addresses_but_only_count_the_baselines() -> None:
    results = [
        roots.RootResult(
            roots.Instance("baseline"),
            False,
            {},
            PlanSummary(1, 0, 0, {'module.account_baseline.aws_iam_user.person["x"]': ("create",)}),
        ),
        roots.RootResult(
            roots.Instance("elections", "eu-west-3", 2),
            False,
            {},
            PlanSummary(0, 1, 0, {'module.election["e"].aws_s3_bucket.this': ("update",)}),
        ),
        roots.RootResult(roots.Instance("region", "eu-west-3"), False, {}, PlanSummary(0, 0, 0)),
    ]
    lines = migrate.change_lines(results)
    assert lines == [
        "baseline: 1 resource(s) would change",
        'elections-eu-west-3-02: update module.election["e"].aws_s3_bucket.this',
    ]


# ------------------------------------------------------------ the migration, stand-ins


class FakeTerraform:
    def __init__(self, state: dict | None, pushed: dict[str, dict], name: str, path: Path) -> None:
        self.state, self.pushed, self.name, self.state_path = state, pushed, name, path
        self.infra_dir = ROOT / "infra"

    def init(self) -> None:
        pass

    def state_pull(self) -> dict | None:
        return self.state

    def state_push(self, path: Path) -> None:
        self.pushed[self.name] = json.loads(path.read_text(encoding="utf-8"))
        self.state_path.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


class FakeLayout(roots.SplitLayout):
    existing_states: dict[str, dict] = {}
    changes: dict[str, PlanSummary] = {}

    def terraform(self, inst: roots.Instance) -> Any:
        self.instance_dir(inst).mkdir(parents=True, exist_ok=True)
        return FakeTerraform(
            self.existing_states.get(inst.name), self.pushed, inst.name, self.state_path(inst)
        )

    def converge(
        self, var_files: Sequence[Path], *, apply: bool = True, adopt: bool = False
    ) -> roots.SplitConverged:
        assert adopt and not apply
        results = [
            roots.RootResult(i, False, {}, self.changes.get(i.name, PlanSummary(0, 0, 0)))
            for i in self.existing()
        ]
        return roots.SplitConverged(results, {})


@pytest.fixture
def setup(tmp_path: Path) -> tuple[migrate.Migration, FakeLayout, Path]:
    single_path = tmp_path / "terraform.tfstate"
    single_path.write_text(json.dumps(_state(["election-01"])), encoding="utf-8")
    single = FakeTerraform(_state(["election-01"]), {}, "single", single_path)
    layout = FakeLayout(state_dir=tmp_path, run_dir=tmp_path, env={}, batches=12)
    layout.pushed = {}  # type: ignore[attr-defined]
    layout.existing_states = {}
    layout.changes = {}
    now = datetime(2026, 12, 6, 23, 0, 0, tzinfo=UTC)
    m = migrate.Migration(single, layout, [], now=lambda: now)  # type: ignore[arg-type]
    return m, layout, single_path


def test_a_clean_migration_pushes_every_instance_and_archives_the_single_state(
    setup: tuple[migrate.Migration, FakeLayout, Path],
) -> None:
    m, layout, single_path = setup
    report = m.run()
    batch = roots.Instance("elections", "eu-west-3", roots.batch_of("election-01", 12)).name
    assert set(layout.pushed) == {"baseline", "region-eu-west-3", batch}  # type: ignore[attr-defined]
    assert report.counts == {"baseline": 4, batch: 2, "region-eu-west-3": 3}
    assert not single_path.exists()
    assert report.archived == single_path.with_name("terraform.tfstate.migrated-20261206T230000Z")
    assert report.archived.is_file()
    text = "\n".join(report.lines())
    assert "person" not in text and "9 resource instance(s) in 3 root instance(s)" in text


def test_a_dry_run_writes_nothing(setup: tuple[migrate.Migration, FakeLayout, Path]) -> None:
    m, layout, single_path = setup
    report = m.run(dry_run=True)
    assert sum(report.counts.values()) == 9
    assert layout.pushed == {} and single_path.is_file()  # type: ignore[attr-defined]
    assert not layout.instances_dir.exists()


def test_a_populated_instance_refuses_before_anything_is_pushed(
    setup: tuple[migrate.Migration, FakeLayout, Path],
) -> None:
    m, layout, single_path = setup
    layout.existing_states = {
        "region-eu-west-3": migrate.build_state([_entry("module.region", "x", "y")], "1.11.4")
    }
    with pytest.raises(migrate.MigrationError, match="region-eu-west-3"):
        m.run()
    assert layout.pushed == {}  # type: ignore[attr-defined]
    assert single_path.is_file()
    assert list(layout.instances_dir.iterdir()) == []


def test_a_planned_change_undoes_the_pushes_and_keeps_the_single_state(
    setup: tuple[migrate.Migration, FakeLayout, Path],
) -> None:
    m, layout, single_path = setup
    layout.changes = {
        "region-eu-west-3": PlanSummary(0, 1, 0, {"module.region.aws_s3_bucket.logs": ("update",)})
    }
    with pytest.raises(migrate.MigrationError, match=r"module\.region\.aws_s3_bucket\.logs"):
        m.run()
    assert len(layout.pushed) == 3  # type: ignore[attr-defined]
    assert single_path.is_file()
    assert list(layout.instances_dir.iterdir()) == []


# ------------------------------------------------------------ the driver's adopt mode

ADOPT_TERRAFORM = """#!{python}
# A stand-in for the terraform CLI: logs "<instance> <command>"; the instances
# named in $CHANGED plan one update, the others none; outputs made up.
import json, os, sys
from pathlib import Path

root = Path(sys.argv[1].split("=", 1)[1]).name
command = sys.argv[2]
instance = Path(os.environ["TF_DATA_DIR"]).parent
with open(os.environ["CALLS"], "a") as f:
    f.write(instance.name + " " + command + "\\n")
values = json.loads((instance / "variables.tfvars.json").read_text())
changed = instance.name in os.environ.get("CHANGED", "").split()
if command == "plan":
    sys.exit(2 if changed else 0)
if command == "show":
    rc = [{{"mode": "managed", "address": "a.b", "change": {{"actions": ["update"]}}}}]
    print(json.dumps({{"resource_changes": rc if changed else []}}))
if command == "output":
    if root == "baseline":
        out = {{"account_id": "123456789012", "agent_role_arn": "arn:role",
               "agent_instance_profile": "profile", "admin_principal_arns": ["arn:admin"],
               "user_arns": {{"p-one": "arn:user/1", "p-two": "arn:user/2"}}}}
    elif root == "region":
        out = {{"log_bucket_name": "logs", "log_bucket_region": values["region"], "host": None}}
    else:
        out = {{"elections": {{}}}}
    print(json.dumps({{k: {{"value": v}} for k, v in out.items()}}))
"""


@pytest.fixture
def adopting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[roots.SplitLayout, list[Path]]:
    binary = tmp_path / "terraform"
    binary.write_text(ADOPT_TERRAFORM.format(python=sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.delenv("CHANGED", raising=False)
    layout = roots.SplitLayout(
        state_dir=tmp_path / "infra" / "local",
        run_dir=tmp_path,
        env={},
        infra_dir=ROOT / "infra",
        binary=str(binary),
        batches=12,
        workers=1,
    )
    var_file = tmp_path / "terraform.tfvars.json"
    var_file.write_text(
        json.dumps(
            {
                "org_slug": "parti",
                "default_region": "eu-west-3",
                "log_bucket_name": "parti-logs",
                "people": ["p-one", "p-two"],
                "create_hosts": False,
                "elections": {
                    i: {
                        "region": "eu-west-3",
                        "bucket_name": f"parti-{i}",
                        "retention_date": "2027-06-30",
                        "legal_hold": False,
                        "members": ["p-one"],
                    }
                    for i in IDS[:2]
                },
            }
        )
    )
    return layout, [var_file]


def _calls(layout: roots.SplitLayout) -> list[tuple[str, str]]:
    text = (layout.run_dir / "calls").read_text()
    return [(line.split()[0], line.split()[1]) for line in text.splitlines()]


def test_adopting_applies_the_clean_plans_for_their_outputs_and_records_them(
    adopting: tuple[roots.SplitLayout, list[Path]],
) -> None:
    layout, files = adopting
    result = layout.converge(files, apply=False, adopt=True)
    calls = _calls(layout)
    names = {r.instance.name for r in result.results}
    batches = {
        roots.Instance("elections", "eu-west-3", roots.batch_of(i, 12)).name for i in IDS[:2]
    }
    assert names == {"baseline", "region-eu-west-3", *batches}
    assert {n for n, c in calls if c == "plan"} == names
    assert {n for n, c in calls if c == "apply"} == names
    assert result.changes == 0
    assert result.outputs["agent_role_arn"] == "arn:role"
    recorded = {p.parent.name for p in layout.instances_dir.rglob(inputs.RECORD)}
    assert recorded == names
    # the first deploy after the migration: every instance skipped, no command run
    (layout.run_dir / "calls").unlink()
    again = layout.converge(files)
    assert again.skipped and not (layout.run_dir / "calls").exists()
    assert again.outputs == result.outputs


def test_adopting_stops_after_a_stage_that_plans_a_change_and_applies_it_not(
    adopting: tuple[roots.SplitLayout, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, files = adopting
    monkeypatch.setenv("CHANGED", "region-eu-west-3")
    result = layout.converge(files, apply=False, adopt=True)
    calls = _calls(layout)
    assert [r.instance.name for r in result.results] == ["baseline", "region-eu-west-3"]
    assert ("region-eu-west-3", "plan") in calls
    assert ("region-eu-west-3", "apply") not in calls
    assert ("baseline", "apply") in calls
    assert result.changes == 1
    recorded = {p.parent.name for p in layout.instances_dir.rglob(inputs.RECORD)}
    assert recorded == {"baseline"}


# ------------------------------------------------------------ the command


@pytest.fixture
def command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    rendered = tmp_path / "rendered"
    (rendered / "terraform").mkdir(parents=True)
    (rendered / "terraform" / "terraform.tfvars.json").write_text("{}", encoding="utf-8")
    target = Target("local", tmp_path, {}, [])
    target.state_dir.mkdir(parents=True)
    monkeypatch.setattr(infra_cli, "_target", lambda args, tfvars: target)
    seen: dict[str, Any] = {"argv": ["infra", "migrate", "--rendered", str(rendered)]}

    def fake(target: Any, var_files: Any, *, dry_run: bool, **_: Any) -> migrate.Report:
        seen["dry_run"] = dry_run
        if "error" in seen:
            raise migrate.MigrationError(seen["error"])
        return migrate.Report({"baseline": 4, "region-eu-west-3": 3}, 5, dry_run=dry_run)

    monkeypatch.setattr(migrate, "migrate", fake)
    return seen


def test_the_command_prints_the_counts_of_a_dry_run(
    command: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command["argv"], "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert command["dry_run"] is True
    assert "baseline: 4 resource instance(s)" in out and "dry run: nothing written" in out


def test_a_refused_migration_is_an_error_exit(
    command: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    command["error"] = "module.other.aws_kms_key.k maps nowhere"
    assert main(command["argv"]) == 2
    err = capsys.readouterr().err
    assert command["dry_run"] is False
    assert "error: module.other.aws_kms_key.k maps nowhere" in err and "migrate.log" in err


def test_the_split_layout_on_an_unmigrated_target_is_refused(
    command: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = {"version": 4, "resources": [_entry("", "aws_s3_bucket", "b")]}
    state_dir = Target("local", tmp_path, {}, []).state_dir
    (state_dir / "terraform.tfstate").write_text(json.dumps(state), encoding="utf-8")
    monkeypatch.setenv(roots.LAYOUT_ENV, "split")
    argv = ["infra", "plan", "--rendered", command["argv"][-1]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "1 resource(s)" in err and "isoloir infra migrate" in err
    assert not (state_dir / "roots").exists()  # nothing planned
