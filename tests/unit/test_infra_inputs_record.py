"""N9: the deploy skips Terraform when nothing it reads has changed.

The digest covers the variable files, the configuration (root, modules, lock
file), the backend configuration and the local state's lineage/serial; the
record is written after a successful apply and removed before any apply or
destroy. The skip itself is asserted end to end by
tests/integration/test_end_to_end.py::test_second_deploy_changes_nothing.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from isoloir.controller.infra import inputs
from isoloir.controller.infra.runner import Terraform, TerraformError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def infra(tmp_path: Path) -> Path:
    copy = tmp_path / "infra"
    shutil.copytree(ROOT / "infra", copy, ignore=shutil.ignore_patterns(".terraform", "tests"))
    return copy


@pytest.fixture()
def var_file(tmp_path: Path) -> Path:
    f = tmp_path / "terraform.tfvars.json"
    f.write_text(json.dumps({"elections": {"a": {"region": "eu-west-3"}}}))
    return f


def test_the_digest_is_stable_and_covers_the_configuration(infra: Path, var_file: Path) -> None:
    first = inputs.digest(infra, [var_file])
    assert first == inputs.digest(infra, [var_file])
    files = {p.relative_to(infra).as_posix() for p in inputs.configuration_files(infra)}
    assert {"main.tf", "versions.tf", ".terraform.lock.hcl"} <= files
    assert "modules/election_storage/main.tf" in files
    assert not any(f.endswith(".md") for f in files)


@pytest.mark.parametrize(
    "edit",
    [
        "main.tf",
        "modules/region/main.tf",
        "modules/election_storage/variables.tf",
        ".terraform.lock.hcl",
    ],
)
def test_any_configuration_change_changes_the_digest(
    infra: Path, var_file: Path, edit: str
) -> None:
    before = inputs.digest(infra, [var_file])
    with (infra / edit).open("a") as f:
        f.write("\n# edited\n")
    assert inputs.digest(infra, [var_file]) != before


def test_a_readme_edit_does_not_force_a_plan(infra: Path, var_file: Path) -> None:
    before = inputs.digest(infra, [var_file])
    with (infra / "modules" / "region" / "README.md").open("a") as f:
        f.write("\nmore prose\n")
    assert inputs.digest(infra, [var_file]) == before


def test_variables_backend_and_state_are_inputs(
    infra: Path, var_file: Path, tmp_path: Path
) -> None:
    base = inputs.digest(infra, [var_file])
    # one more election in the rendered variables
    var_file.write_text(
        json.dumps({"elections": {"a": {"region": "eu-west-3"}, "b": {"region": "eu-west-1"}}})
    )
    more = inputs.digest(infra, [var_file])
    assert more != base
    # the same files in another order are other inputs (later files win in Terraform)
    other = tmp_path / "target.tfvars.json"
    other.write_text("{}")
    assert inputs.digest(infra, [var_file, other]) != inputs.digest(infra, [other, var_file])
    # a backend configuration
    backend = tmp_path / "backend.hcl"
    backend.write_text('bucket = "x"\n')
    assert inputs.digest(infra, [var_file], backend_config=backend) != more
    # the local state: another serial (an `isoloir infra apply` in between)
    state = tmp_path / "terraform.tfstate"
    state.write_text(json.dumps({"lineage": "l-1", "serial": 4}))
    at_4 = inputs.digest(infra, [var_file], state_path=state)
    state.write_text(json.dumps({"lineage": "l-1", "serial": 5}))
    assert inputs.digest(infra, [var_file], state_path=state) != at_4
    state.unlink()  # state gone (destroyed, or another checkout)
    assert inputs.digest(infra, [var_file], state_path=state) != at_4


def test_the_record_gives_the_outputs_back_only_for_the_same_digest(tmp_path: Path) -> None:
    record = inputs.InputsRecord.in_state_dir(tmp_path / "state")
    assert record.outputs_if_unchanged("d1") is None  # never applied
    outputs = {"file_share_hosts": {"isoloir-shares-eu-west-3": {"address": "10.0.0.5"}}}
    record.write("d1", outputs)
    assert record.outputs_if_unchanged("d1") == outputs
    assert record.outputs_if_unchanged("d2") is None
    assert stat.S_IMODE(record.path.stat().st_mode) == 0o600
    record.path.write_text("{not json")
    assert record.outputs_if_unchanged("d1") is None
    record.path.write_text(json.dumps({"format": 0, "digest": "d1", "outputs": {}}))
    assert record.outputs_if_unchanged("d1") is None  # an older format never matches
    record.clear()
    assert not record.path.exists()
    record.clear()  # idempotent


@pytest.mark.parametrize(
    ("value", "forced"),
    [("", False), ("0", False), ("no", False), ("1", True), ("yes", True), ("true", True)],
)
def test_isoloir_tf_replan(value: str, forced: bool) -> None:
    assert inputs.replan_forced({inputs.REPLAN_ENV: value}) is forced
    assert inputs.replan_forced({}) is False


@pytest.mark.parametrize("action", ["apply", "destroy"])
def test_apply_and_destroy_forget_the_record_before_they_run(tmp_path: Path, action: str) -> None:
    """Even an apply that fails (here: the binary exits 1) leaves no record behind."""
    state_dir = tmp_path / "infra" / "aws"
    record = inputs.InputsRecord.in_state_dir(state_dir)
    record.write("d1", {})
    tf = Terraform(
        infra_dir=tmp_path,
        data_dir=state_dir / "tf-data",
        env={},
        binary=shutil.which("false") or "/bin/false",
        log=lambda line: None,
    )
    with pytest.raises(TerraformError):
        if action == "apply":
            tf.apply(tmp_path / "tfplan")
        else:
            tf.destroy([])
    assert not record.path.exists()


FAKE_TERRAFORM = """#!/bin/sh
# A stand-in for the terraform CLI: records each command; plan finds one change.
echo "$@" >> "$CALLS"
case "$2" in
  plan) exit 2 ;;
  show) echo '{"resource_changes": [{"mode": "managed", "address": "a.b",
        "change": {"actions": ["create"]}}]}' ;;
  output) echo '{"elections": {"value": {"e1": {"region": "eu-west-3"}}}}' ;;
esac
exit 0
"""


def test_converge_plans_once_then_skips_until_an_input_changes(
    tmp_path: Path, var_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "terraform"
    binary.write_text(FAKE_TERRAFORM)
    binary.chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("CALLS", str(calls))
    monkeypatch.delenv(inputs.REPLAN_ENV, raising=False)
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text("# configuration\n")
    state_dir = tmp_path / "state"
    tf = Terraform(
        infra_dir=infra,
        data_dir=state_dir / "tf-data",
        env={},
        state_path=state_dir / "terraform.tfstate",
        binary=str(binary),
        log=lambda line: None,
    )

    def commands() -> list[str]:
        text = calls.read_text() if calls.exists() else ""
        calls.unlink(missing_ok=True)
        return [line.split()[1] for line in text.splitlines()]

    first = inputs.converge(tf, [var_file], tmp_path / "tfplan")
    assert not first.skipped and first.changes == 1
    assert commands() == ["init", "plan", "show", "apply", "output"]
    assert first.outputs == {"elections": {"e1": {"region": "eu-west-3"}}}

    again = inputs.converge(tf, [var_file], tmp_path / "tfplan")
    assert again.skipped and again.changes == 0 and again.outputs == first.outputs
    assert commands() == []  # no Terraform command at all

    monkeypatch.setenv(inputs.REPLAN_ENV, "1")
    inputs.converge(tf, [var_file], tmp_path / "tfplan")
    assert "plan" in commands()
    monkeypatch.delenv(inputs.REPLAN_ENV)
    assert inputs.converge(tf, [var_file], tmp_path / "tfplan").skipped

    var_file.write_text(json.dumps({"elections": {}}))  # an election removed
    changed = inputs.converge(tf, [var_file], tmp_path / "tfplan")
    assert not changed.skipped and "plan" in commands()
