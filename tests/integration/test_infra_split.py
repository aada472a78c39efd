"""The split layout (ISOLOIR_TF_LAYOUT=split) with the real Terraform CLI and AWS
provider against the session's emulator: three elections in one region, a
first apply of every root instance, a second converge that skips them all, and
one more election that plans and applies its batch root only.

The roots' variables, batching and merge are unit-tested in
tests/unit/test_infra_roots.py with a stand-in CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from isoloir import aws
from isoloir.controller.emulator import Emulator
from isoloir.controller.infra import roots
from isoloir.controller.infra.targets import local_target
from isoloir.policy.loader import load_policies
from isoloir.policy.render import terraform_vars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
FIRST = ["split-alpha-2026", "split-beta-2026", "split-gamma-2026"]
ADDED = "split-delta-2026"


def _tfvars(ids: list[str]) -> dict[str, Any]:
    data = terraform_vars(load_policies(REPO / "policies"))
    slug = data["org_slug"]
    members = sorted(data["people"])
    data["elections"] = {
        i: {
            "label": f"Election fictive {i}",
            "region": REGION,
            "bucket_name": f"{slug}-{i}",
            "retention_date": "2027-06-30",
            "legal_hold": False,
            "members": members[:2],
            "dataset_prefixes": ["prospects/"],
            "campaign_prefixes": ["prospects/"],
        }
        for i in ids
    }
    return data


def _states(layout: roots.SplitLayout) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(layout.instances_dir.glob("*.tfstate"))}


def test_split_layout_applies_skips_and_adds_one_batch(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform CLI not on PATH")
    monkeypatch.delenv("ISOLOIR_TF_REPLAN", raising=False)
    emulator.reset()
    tfvars = _tfvars(FIRST)
    vars_path = tmp_path / "terraform.tfvars.json"
    vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
    target = local_target(tmp_path, tfvars, print, create_hosts=False, emulator=emulator)
    shown: list[str] = []
    layout = roots.split_layout(target, log=lambda line: None, show=shown.append)
    files = [vars_path, *target.var_files]
    count = roots.batch_count()
    batches = {roots.batch_of(i, count) for i in FIRST}
    expected = {
        "baseline",
        f"region-{REGION}",
        *(roots.Instance("elections", REGION, b).name for b in batches),
    }

    first = layout.converge(files)
    assert set(first.planned()) == expected
    assert all(r.changes > 0 for r in first.results)
    assert sorted(first.outputs["elections"]) == FIRST
    assert set(first.outputs["log_buckets"]) == {REGION}
    assert set(_states(layout)) == {f"{name}.tfstate" for name in expected}
    s3 = aws.client("s3", REGION)
    for i in FIRST:
        bucket = tfvars["elections"][i]["bucket_name"]
        assert first.outputs["bucket_names"][i] == bucket
        s3.head_bucket(Bucket=bucket)
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        by_default = rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        assert by_default["KMSMasterKeyID"] == first.outputs["kms_key_arns"][i]
    before = _states(layout)

    shown.clear()
    again = layout.converge(files)
    assert again.skipped and again.planned() == []
    assert sorted(shown) == sorted(
        f"{roots.Instance.from_name(n).label}: skipped, inputs unchanged"  # type: ignore[union-attr]
        for n in expected
    )
    assert again.outputs == first.outputs
    assert _states(layout) == before

    more = _tfvars([*FIRST, ADDED])
    vars_path.write_text(json.dumps(more), encoding="utf-8")
    shown.clear()
    added = layout.converge(files)
    new = roots.Instance("elections", REGION, roots.batch_of(ADDED, count))
    assert added.planned() == [new.name]
    line = next(s for s in shown if s.startswith(new.label + ":"))
    assert "to add" in line and "destroy" not in line
    assert (
        sum(1 for s in shown if s.endswith("skipped, inputs unchanged")) == len(added.results) - 1
    )
    s3.head_bucket(Bucket=more["elections"][ADDED]["bucket_name"])
    assert sorted(added.outputs["elections"]) == sorted([*FIRST, ADDED])
    after = _states(layout)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {f"{new.name}.tfstate"}
