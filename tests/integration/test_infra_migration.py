"""`isoloir infra migrate` with the real Terraform CLI and AWS provider against
the session's emulator: the single root applied with two elections in two
regions (a third allowed region holds only its log bucket), its state migrated
into the split layout's states (every root instance planned by the migration,
none with a change), then a split converge that skips every instance; the
buckets and keys are those of before.

The mapping and the state construction are unit-tested in
tests/unit/test_infra_migrate.py.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from isoloir import aws
from isoloir.controller.emulator import Emulator
from isoloir.controller.infra import migrate, roots
from isoloir.controller.infra.targets import local_target
from isoloir.policy.loader import load_policies
from isoloir.policy.render import terraform_vars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ELECTIONS = {"migrate-alpha-2026": "eu-west-3", "migrate-beta-2026": "eu-central-1"}
ALLOWED = ["eu-central-1", "eu-west-1", "eu-west-3"]


def _tfvars() -> dict[str, Any]:
    data = terraform_vars(load_policies(REPO / "policies"))
    slug = data["org_slug"]
    members = sorted(data["people"])
    data["allowed_regions"] = ALLOWED
    data["elections"] = {
        i: {
            "label": f"Election fictive {i}",
            "region": region,
            "bucket_name": f"{slug}-{i}",
            "retention_date": "2027-06-30",
            "legal_hold": False,
            "members": members[:2],
            "dataset_prefixes": ["prospects/"],
            "campaign_prefixes": ["prospects/"],
        }
        for i, region in ELECTIONS.items()
    }
    return data


def test_a_single_state_migrates_to_the_split_layout_without_a_change(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform CLI not on PATH")
    monkeypatch.delenv("ISOLOIR_TF_REPLAN", raising=False)
    emulator.reset()
    tfvars = _tfvars()
    vars_path = tmp_path / "terraform.tfvars.json"
    vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
    target = local_target(tmp_path, tfvars, print, create_hosts=False, emulator=emulator)
    files = [vars_path, *target.var_files]

    start = time.monotonic()
    tf = target.terraform(log=lambda line: None)
    tf.init()
    code, _ = tf.plan(files, tmp_path / "single.tfplan")
    assert code == 2
    tf.apply(tmp_path / "single.tfplan")
    before = tf.output()
    single_state = target.state_dir / "terraform.tfstate"
    managed = sum(
        len(r["instances"])
        for r in json.loads(single_state.read_text(encoding="utf-8"))["resources"]
        if r["mode"] == "managed"
    )
    applied = time.monotonic() - start

    start = time.monotonic()
    shown: list[str] = []
    report = migrate.migrate(target, files, show=shown.append)
    migrated = time.monotonic() - start
    count = roots.batch_count()
    expected = {
        "baseline",
        *(f"region-{r}" for r in ALLOWED),
        *(
            roots.Instance("elections", r, roots.batch_of(i, count)).name
            for i, r in ELECTIONS.items()
        ),
    }
    assert set(report.counts) == expected
    # every instance planned by the migration, each without a change
    labels = {i.label for i in map(roots.Instance.from_name, expected) if i is not None}
    assert len(labels) == len(expected)
    assert {line.split(": ")[0] for line in shown if line.endswith(": no change")} == labels
    assert sum(report.counts.values()) == managed
    assert report.archived is not None and report.archived.is_file()
    assert report.archived.name.startswith("terraform.tfstate.migrated-")
    assert not single_state.exists()

    # the migration planned every instance with the driver's variables (a change
    # would have undone it) and recorded their inputs: the first split deploy
    # after it skips every instance and reads the outputs the adoption wrote
    start = time.monotonic()
    layout = roots.split_layout(target)
    after = layout.converge(files)
    converged = time.monotonic() - start
    assert after.skipped and after.planned() == []
    assert {r.instance.name for r in after.results} == expected
    for key in ("bucket_names", "kms_key_arns", "log_buckets"):
        assert after.outputs[key] == {
            k: v for k, v in before[key].items() if key != "log_buckets" or k in ALLOWED
        }
    for i, region in ELECTIONS.items():
        bucket = tfvars["elections"][i]["bucket_name"]
        s3 = aws.client("s3", region)
        s3.head_bucket(Bucket=bucket)
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        key_id = rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]
        assert key_id == before["kms_key_arns"][i]
        key = aws.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
        assert key["KeyState"] == "Enabled"
    print(
        f"single apply {applied:.1f}s ({managed} resources); migrate {migrated:.1f}s "
        f"({len(expected)} instances planned, 0 changes); split converge after it "
        f"{converged:.2f}s (every instance skipped)"
    )
