"""The split layout (ISOLOIR_TF_LAYOUT=split): batching, per-root variables,
the merge of the roots' outputs, and the skip per root instance with a
stand-in terraform CLI that logs which instance ran which command.

The real CLI against the emulator: tests/integration/test_infra_split.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from isoloir.controller.infra import inputs, roots

ROOT = Path(__file__).resolve().parents[2]
IDS = [f"election-{i:02d}" for i in range(40)]


def _variables(ids: list[str], *, region: str = "eu-west-3", hosts: bool = False) -> dict[str, Any]:
    return {
        "org_slug": "parti",
        "default_region": "eu-west-3",
        "allowed_regions": ["eu-west-3", "eu-west-1"],
        "log_bucket_name": "parti-access-logs",
        "people": ["alice", "bob"],
        "administrators": ["alice"],
        "admin_networks": ["192.0.2.0/24"],
        "create_hosts": hosts,
        "elections": {
            i: {
                "label": i,
                "region": region,
                "bucket_name": f"parti-{i}",
                "retention_date": "2027-06-30",
                "legal_hold": False,
                "members": ["bob", "alice"],
                "campaign_prefixes": ["prospects/"],
            }
            for i in ids
        },
    }


# ------------------------------------------------------------ batching


def test_a_batch_is_the_first_32_bits_of_sha256_modulo_the_count() -> None:
    for i in IDS:
        expected = int(hashlib.sha256(i.encode()).hexdigest()[:8], 16) % 12
        assert roots.batch_of(i, 12) == expected
        assert 0 <= roots.batch_of(i, 5) < 5


def test_batching_is_stable_and_independent_of_the_other_ids() -> None:
    alone = {i: b for (_, b), ids in roots.batches(_variables(IDS[:5]), 12).items() for i in ids}
    crowd = {i: b for (_, b), ids in roots.batches(_variables(IDS), 12).items() for i in ids}
    assert all(crowd[i] == b for i, b in alone.items())
    # one more election moves no other one
    more = {
        i: b for (_, b), ids in roots.batches(_variables([*IDS, "x-new"]), 12).items() for i in ids
    }
    assert {i: b for i, b in more.items() if i != "x-new"} == crowd
    # every non-empty batch is listed, each election once
    assert sorted(i for ids in roots.batches(_variables(IDS), 12).values() for i in ids) == IDS


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, 12), ({roots.BATCHES_ENV: "2"}, 2), ({roots.BATCHES_ENV: ""}, 12)],
)
def test_the_batch_count(env: dict[str, str], expected: int) -> None:
    assert roots.batch_count(env) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [(roots.BATCHES_ENV, "0"), (roots.BATCHES_ENV, "x"), (roots.CONCURRENCY_ENV, "-1")],
)
def test_bad_counts_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        roots.batch_count({name: value}) if name == roots.BATCHES_ENV else roots.concurrency(
            {name: value}
        )


def test_the_layout_defaults_to_single() -> None:
    assert roots.layout({}) == "single"
    assert roots.layout({roots.LAYOUT_ENV: "split"}) == "split"
    with pytest.raises(ValueError, match=roots.LAYOUT_ENV):
        roots.layout({roots.LAYOUT_ENV: "several"})


@pytest.mark.parametrize(
    "inst",
    [
        roots.Instance("baseline"),
        roots.Instance("region", "eu-central-1"),
        roots.Instance("elections", "eu-west-3", 7),
    ],
)
def test_instance_names_round_trip(inst: roots.Instance) -> None:
    assert roots.Instance.from_name(inst.name) == inst
    assert roots.Instance("elections", "eu-west-3", 7).label == "elections eu-west-3/07"


# ------------------------------------------------------------ variables and outputs

BASELINE_OUT = {
    "account_id": "123456789012",
    "user_arns": {p: f"arn:aws:iam::123456789012:user/isoloir/{p}" for p in ("alice", "bob")},
    "agent_role_arn": "arn:aws:iam::123456789012:role/isoloir/agent",
    "agent_instance_profile": "isoloir-parti-agent",
    "human_groups": ["isoloir-parti-people", "isoloir-parti-admins"],
    "mfa_policy_arn": "arn:aws:iam::123456789012:policy/isoloir/mfa",
    "admin_principal_arns": ["arn:aws:iam::123456789012:user/deployer"],
}


def test_a_batch_root_gets_its_elections_only_with_members_as_arns() -> None:
    variables = _variables(IDS)
    for (region, _), ids in roots.batches(variables, 12).items():
        values = roots.batch_vars(variables, region, ids, BASELINE_OUT, "parti-access-logs")
        assert sorted(values["elections"]) == sorted(ids)
        e = values["elections"][ids[0]]
        assert e["member_arns"] == [BASELINE_OUT["user_arns"][p] for p in ("alice", "bob")]
        assert set(e) == {
            "bucket_name",
            "retention_date",
            "legal_hold",
            "member_arns",
            "campaign_prefixes",
        }
        assert values["agent_role_arn"] == BASELINE_OUT["agent_role_arn"]
        assert "people" not in values and "admin_networks" not in values


def test_the_region_root_names_elections_only_when_it_has_a_host() -> None:
    off = roots.region_vars(_variables(IDS[:3]), "eu-west-3", BASELINE_OUT)
    assert off["host_elections"] == [] and "elections" not in off
    assert roots.region_vars(_variables(IDS[:4]), "eu-west-3", BASELINE_OUT) == off
    on = roots.region_vars(_variables(IDS[:3], hosts=True), "eu-west-3", BASELINE_OUT)
    assert on["host_elections"] == IDS[:3]
    assert on["instance_profile"] == BASELINE_OUT["agent_instance_profile"]


def _declared(path: Path, kind: str) -> set[str]:
    return set(re.findall(rf'^{kind} "([a-z_]+)"', path.read_text(), re.MULTILINE))


@pytest.mark.parametrize("root", roots.ROOTS)
def test_every_variable_written_is_declared_by_its_root(root: str) -> None:
    declared = _declared(ROOT / "infra" / "roots" / root / "variables.tf", "variable")
    variables = {
        **_variables(IDS[:3], hosts=True),
        "aws_endpoint": "https://127.0.0.1:4566",
        "host_image_ids": {"eu-west-3": "ami-12345678"},
        "subnet_ids": {"eu-west-3": "subnet-1"},
        "deployer_principal_arns": [],
        "break_glass_role_arns": [],
        "manage_account_public_access_block": False,
        "kms_deletion_window_days": 7,
        "lifecycle_backstop_days": 14,
        "mail_guard_enabled": False,
        "force_destroy_logs": True,
        "host_detailed_monitoring": False,
        "extra_tags": {},
    }
    if root == "baseline":
        values = roots.baseline_vars(variables)
    elif root == "region":
        values = roots.region_vars(variables, "eu-west-3", BASELINE_OUT)
    else:
        values = roots.batch_vars(variables, "eu-west-3", IDS[:3], BASELINE_OUT, "logs")
    assert set(values) <= declared


def test_the_merged_outputs_have_the_single_roots_shape() -> None:
    variables = _variables(["a-one", "b-two"], hosts=True)
    host = {
        "instance_id": "i-1",
        "private_ip": "10.0.0.5",
        "public_ip": None,
        "data_volume_id": "vol-1",
        "elections": ["a-one", "b-two"],
        "region": "eu-west-3",
    }
    regions = {
        "eu-west-3": {
            "log_bucket_name": "parti-access-logs",
            "log_bucket_region": "eu-west-3",
            "host": host,
        }
    }
    storage = {
        i: {
            "region": "eu-west-3",
            "bucket_name": f"parti-{i}",
            "bucket_arn": f"arn:aws:s3:::parti-{i}",
            "kms_key_arn": f"arn:key/{i}",
            "kms_alias": f"alias/isoloir/{i}",
        }
        for i in ("a-one", "b-two")
    }
    batches = [
        {"elections": {"a-one": storage["a-one"]}},
        {"elections": {"b-two": storage["b-two"]}},
    ]
    merged = roots.merge_outputs(variables, BASELINE_OUT, regions, batches)
    assert set(merged) == _declared(ROOT / "infra" / "outputs.tf", "output")
    assert merged["elections"] == storage
    assert merged["bucket_names"] == {"a-one": "parti-a-one", "b-two": "parti-b-two"}
    assert merged["log_buckets"] == {"eu-west-3": "parti-access-logs"}
    assert merged["hosts"] == {"eu-west-3": host}
    assert merged["file_share_hosts"] == {
        "isoloir-shares-eu-west-3": {
            "address": "10.0.0.5",
            "ssh_user": "isoloir-deploy",
            "region": "eu-west-3",
            "elections": ["a-one", "b-two"],
            "data_volume_id": "vol-1",
        }
    }
    # what the inventory reads (inventory.from_terraform takes `terraform output -json`'s shape)
    from isoloir.controller import inventory

    data = inventory.from_terraform({k: {"value": v} for k, v in merged.items()})
    assert "isoloir-shares-eu-west-3" in json.dumps(data)


# ------------------------------------------------------------ the skip, per root

FAKE_TERRAFORM = """#!{python}
# A stand-in for the terraform CLI: logs "<instance> <command>"; every plan has
# one change; outputs are made up from the instance's variable file.
import json, os, sys
from pathlib import Path

root = Path(sys.argv[1].split("=", 1)[1]).name
command = sys.argv[2]
instance = Path(os.environ["TF_DATA_DIR"]).parent
with open(os.environ["CALLS"], "a") as f:
    f.write(f"{{instance.name}} {{command}}\\n")
values = json.loads((instance / "variables.tfvars.json").read_text())
if command == "plan":
    sys.exit(2)
if command == "show":
    print(json.dumps({{"resource_changes": [
        {{"mode": "managed", "address": "a.b", "change": {{"actions": ["create"]}}}}]}}))
if command == "output":
    if root == "baseline":
        out = {baseline}
    elif root == "region":
        out = {{"log_bucket_name": "logs-" + values["region"],
               "log_bucket_region": values["region"], "host": None}}
    else:
        out = {{"elections": {{i: {{"region": values["region"], "bucket_name": e["bucket_name"],
                "bucket_arn": "arn:aws:s3:::" + e["bucket_name"], "kms_key_arn": "k-" + i,
                "kms_alias": "alias/isoloir/" + i}} for i, e in values["elections"].items()}}}}
    print(json.dumps({{k: {{"value": v}} for k, v in out.items()}}))
"""


@pytest.fixture()
def split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> roots.SplitLayout:
    binary = tmp_path / "terraform"
    binary.write_text(FAKE_TERRAFORM.format(python=sys.executable, baseline=repr(BASELINE_OUT)))
    binary.chmod(0o755)
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.delenv(inputs.REPLAN_ENV, raising=False)
    guarded: list[int] = []
    layout = roots.SplitLayout(
        state_dir=tmp_path / "infra" / "local",
        run_dir=tmp_path,
        env={},
        infra_dir=ROOT / "infra",
        binary=str(binary),
        batches=12,
        workers=2,
        before_plan=lambda files: guarded.append(len(files)),
    )
    layout.guarded = guarded  # type: ignore[attr-defined]
    return layout


def _commands(tmp_path: Path) -> list[tuple[str, str]]:
    calls = tmp_path / "calls"
    text = calls.read_text() if calls.exists() else ""
    calls.unlink(missing_ok=True)
    return [(line.split()[0], line.split()[1]) for line in text.splitlines()]


def test_a_second_converge_runs_nothing_and_one_election_plans_one_batch(
    split: roots.SplitLayout, tmp_path: Path
) -> None:
    ids = IDS[:6]
    var_file = tmp_path / "terraform.tfvars.json"
    var_file.write_text(json.dumps(_variables(ids)))
    shown: list[str] = []
    split.show = shown.append

    first = split.converge([var_file])
    batch_names = {
        roots.Instance("elections", r, b).name for (r, b) in roots.batches(_variables(ids), 12)
    }
    planned = {name for name, cmd in _commands(tmp_path) if cmd == "plan"}
    assert planned == {"baseline", "region-eu-west-3", *batch_names}
    assert not first.skipped and first.changes == len(planned)
    assert sorted(first.outputs["elections"]) == ids
    assert first.outputs["agent_role_arn"] == BASELINE_OUT["agent_role_arn"]
    assert first.outputs["log_buckets"] == {"eu-west-3": "logs-eu-west-3"}
    assert "baseline: 1 to add" in shown
    # each batch instance's variable file holds its own elections only
    for name in batch_names:
        inst = roots.Instance.from_name(name)
        assert inst is not None
        values = json.loads((split.instance_dir(inst) / roots.VARIABLES_FILE).read_text())
        assert {roots.batch_of(i, 12) for i in values["elections"]} == {inst.batch}
    assert split.guarded == [1]  # type: ignore[attr-defined]

    shown.clear()
    again = split.converge([var_file])
    assert _commands(tmp_path) == []  # no terraform command at all
    assert again.skipped and again.changes == 0 and again.outputs == first.outputs
    assert "baseline: skipped, inputs unchanged" in shown
    assert len(shown) == len(planned)

    new = "x-new-election"
    var_file.write_text(json.dumps(_variables([*ids, new])))
    added = split.converge([var_file])
    calls = _commands(tmp_path)
    new_batch = roots.Instance("elections", "eu-west-3", roots.batch_of(new, 12)).name
    assert {name for name, cmd in calls if cmd == "plan"} == {new_batch}
    assert {name for name, _ in calls} == {new_batch}
    assert added.planned() == [new_batch]
    assert sorted(added.outputs["elections"]) == sorted([*ids, new])


def test_an_emptied_batch_is_planned_once_more(split: roots.SplitLayout, tmp_path: Path) -> None:
    ids = IDS[:3]
    var_file = tmp_path / "terraform.tfvars.json"
    var_file.write_text(json.dumps(_variables(ids)))
    split.converge([var_file])
    _commands(tmp_path)
    var_file.write_text(json.dumps(_variables(ids[1:])))  # the first one archived
    gone = roots.Instance("elections", "eu-west-3", roots.batch_of(ids[0], 12))
    left = {roots.batch_of(i, 12) for i in ids[1:]}
    split.converge([var_file])
    planned = {name for name, cmd in _commands(tmp_path) if cmd == "plan"}
    assert planned == {gone.name}
    values = json.loads((split.instance_dir(gone) / roots.VARIABLES_FILE).read_text())
    expected = sorted(i for i in ids[1:] if roots.batch_of(i, 12) == gone.batch)
    assert sorted(values["elections"]) == expected
    assert (gone.batch in left) == bool(expected)


def test_a_failed_root_stops_the_later_stages(
    split: roots.SplitLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var_file = tmp_path / "terraform.tfvars.json"
    var_file.write_text(json.dumps(_variables(IDS[:3])))
    split.binary = "/bin/false"
    with pytest.raises(roots.RootsError, match="baseline"):
        split.converge([var_file])
    assert not (split.instances_dir / "region-eu-west-3").exists()


def test_non_json_variable_files_are_refused(tmp_path: Path) -> None:
    hcl = tmp_path / "extra.tfvars"
    hcl.write_text("create_hosts = true\n")
    with pytest.raises(ValueError, match="JSON"):
        roots.load_variables([hcl])


def test_the_deploy_runs_the_split_layout_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from isoloir.controller import deploy
    from isoloir.controller.infra import targets

    rendered = tmp_path / "rendered"
    (rendered / "terraform").mkdir(parents=True)
    (rendered / targets.TFVARS).write_text(json.dumps(_variables(IDS[:2])))
    called: list[str] = []

    def split_converge(self: roots.SplitLayout, files: Any, apply: bool = True) -> Any:
        called.append("split")
        return roots.SplitConverged([], {"elections": {}})

    def single_converge(*args: Any, **kwargs: Any) -> Any:
        called.append("single")
        return inputs.Converged(True, {"elections": {}})

    monkeypatch.setattr(roots.SplitLayout, "converge", split_converge)
    monkeypatch.setattr(inputs, "converge", single_converge)
    monkeypatch.setattr(targets, "set_account_public_access_block", lambda env: None)
    lines: list[str] = []
    d = deploy.Deployment(
        target="local",
        policies_dir=tmp_path,
        run_dir=tmp_path / "run",
        out=lines.append,
        rendered=rendered,
        env={"ISOLOIR_AWS_ENDPOINT": "https://127.0.0.1:4566", "AWS_CA_BUNDLE": "/dev/null"},
    )
    (tmp_path / "run").mkdir()
    monkeypatch.delenv(roots.LAYOUT_ENV, raising=False)
    d.step_terraform()
    assert called == ["single"]
    monkeypatch.setenv(roots.LAYOUT_ENV, "split")
    d.step_terraform()
    assert called == ["single", "split"] and d.terraform_skipped


def test_a_remote_backend_gets_one_state_key_per_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infra = tmp_path / "infra"
    for root in roots.ROOTS:
        (infra / "roots" / root).mkdir(parents=True)
        (infra / "roots" / root / "backend.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    config = tmp_path / "backend.aws.hcl"
    config.write_text('bucket = "parti-isoloir-tfstate"\n')
    monkeypatch.delenv(roots.STATE_PREFIX_ENV, raising=False)
    layout = roots.SplitLayout(
        state_dir=tmp_path / "state",
        run_dir=tmp_path,
        env={},
        infra_dir=infra,
        backend_config=config,
    )
    args = layout.terraform(roots.Instance("elections", "eu-west-3", 7)).init_args()
    assert f"-backend-config={config}" in args
    assert "-backend-config=key=isoloir/roots/elections-eu-west-3-07.tfstate" in args
    assert not any(a.startswith("-backend-config=path=") for a in args)
    # the single root's wrapper is unchanged: no key setting unless given
    local = roots.SplitLayout(state_dir=tmp_path / "s", run_dir=tmp_path, env={})
    local_args = local.terraform(roots.Instance("baseline")).init_args()
    assert not any("key=" in a for a in local_args)
    assert any(a.startswith("-backend-config=path=") for a in local_args)


def _state(path: Path, managed: int) -> None:
    resources = [
        {"mode": "managed", "type": "aws_s3_bucket", "name": f"b{i}", "instances": [{}]}
        for i in range(managed)
    ]
    resources.append({"mode": "data", "type": "aws_partition", "name": "p", "instances": [{}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 4, "resources": resources}), encoding="utf-8")


def test_a_single_state_with_resources_refuses_the_split_layout(tmp_path: Path) -> None:
    _state(tmp_path / "terraform.tfstate", 3)
    roots.refuse_mixed_layouts("single", tmp_path)
    with pytest.raises(ValueError, match=r"3 resource\(s\).*isoloir infra migrate"):
        roots.refuse_mixed_layouts("split", tmp_path)
    # emptied by a destroy, or migrated (renamed away): the split layout may start
    _state(tmp_path / "terraform.tfstate", 0)
    roots.refuse_mixed_layouts("split", tmp_path)


def test_split_instances_refuse_the_single_layout(tmp_path: Path) -> None:
    split = tmp_path / "roots"
    (split / "baseline").mkdir(parents=True)
    _state(split / "baseline.tfstate", 0)  # destroyed: nothing left in it
    (split / "not-an-instance").mkdir()
    roots.refuse_mixed_layouts("single", tmp_path)
    (split / "elections-eu-west-3-04").mkdir()  # a remote backend: no local state
    with pytest.raises(ValueError, match=r"1 root instance\(s\).*ISOLOIR_TF_LAYOUT=split"):
        roots.refuse_mixed_layouts("single", tmp_path)
    roots.refuse_mixed_layouts("split", tmp_path)


def test_another_batch_count_is_refused_before_any_command(
    split: roots.SplitLayout, tmp_path: Path
) -> None:
    var_file = tmp_path / "terraform.tfvars.json"
    var_file.write_text(json.dumps(_variables(IDS[:6])))
    split.converge([var_file], apply=False)  # a plan records nothing
    assert not (split.instances_dir / roots.BATCHES_FILE).exists()
    split.converge([var_file])
    assert (split.instances_dir / roots.BATCHES_FILE).read_text() == "12\n"
    _commands(tmp_path)
    split.batches = 24
    with pytest.raises(roots.RootsError, match="in 12 batch\\(es\\).*ISOLOIR_TF_BATCHES=12"):
        split.converge([var_file])
    assert _commands(tmp_path) == []
    split.batches = 12
    assert split.converge([var_file]).skipped


def test_a_deployment_without_the_record_is_refused_fewer_batches(
    split: roots.SplitLayout, tmp_path: Path
) -> None:
    """Made before the count was recorded: a batch that could not exist with the
    new count gives it away; otherwise the count is taken as it is."""
    var_file = tmp_path / "terraform.tfvars.json"
    var_file.write_text(json.dumps(_variables(IDS[:6])))
    split.converge([var_file])
    (split.instances_dir / roots.BATCHES_FILE).unlink()
    highest = max(i.batch for i in split.existing() if i.root == "elections")
    split.batches = highest  # batch `highest` cannot exist with that count
    with pytest.raises(roots.RootsError, match=f"more than {highest}"):
        split.converge([var_file])
    split.batches = 12
    split.converge([var_file])
    assert (split.instances_dir / roots.BATCHES_FILE).read_text() == "12\n"
