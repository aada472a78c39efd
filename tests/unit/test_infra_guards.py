"""A purged election's shredded key is not re-created: the driver refuses to plan
while the election is still listed (moto in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from isoloir.controller.infra.runner import Terraform, TerraformError
from isoloir.controller.infra.targets import aws_target

REGION = "eu-west-3"


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("ISOLOIR_AWS_ENDPOINT", "AWS_CA_BUNDLE", "ISOLOIR_CLOCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def _election(election_id: str, *, shredded: bool) -> None:
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(Description=election_id)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/isoloir/{election_id}", TargetKeyId=key)
    if shredded:
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=30)


def _var_file(tmp_path: Path) -> Path:
    path = tmp_path / "terraform.tfvars.json"
    elections = {
        "passee-2025": {"region": REGION, "retention_date": "2025-06-30"},
        "encours-2025": {"region": REGION, "retention_date": "2025-07-31"},
        "future-2099": {"region": REGION, "retention_date": "2099-01-01"},
    }
    path.write_text(json.dumps({"elections": elections}), encoding="utf-8")
    return path


def test_plan_is_refused_while_a_purged_election_is_listed(account: None, tmp_path: Path) -> None:
    _election("passee-2025", shredded=True)
    _election("encours-2025", shredded=False)
    _election("future-2099", shredded=True)  # not due: never looked at
    tf = aws_target(tmp_path / "run", None).terraform()
    ran = tmp_path / "terraform-ran"
    tf.binary = str(tmp_path / "terraform")
    Path(tf.binary).write_text(f"#!/bin/sh\ntouch {ran}\nexit 0\n", encoding="utf-8")
    Path(tf.binary).chmod(0o755)
    with pytest.raises(TerraformError) as refused:
        tf.plan([_var_file(tmp_path)], tmp_path / "p.tfplan")
    message = str(refused.value)
    assert "passee-2025" in message and "remove policies/elections/" in message
    assert "encours-2025" not in message and "future-2099" not in message
    assert not ran.exists(), "terraform must not run"


def test_no_purged_election_no_refusal(account: None, tmp_path: Path) -> None:
    _election("passee-2025", shredded=False)
    tf = aws_target(tmp_path / "run", None).terraform()
    assert isinstance(tf, Terraform) and tf.before_plan is not None
    tf.before_plan([_var_file(tmp_path)])  # nothing raised


def _refused(tmp_path: Path, elections: dict[str, dict[str, str]]) -> str | None:
    """Run the aws target's pre-plan guard; the refusal's message, or None."""
    path = tmp_path / "vars.tfvars.json"
    path.write_text(json.dumps({"elections": elections}), encoding="utf-8")
    tf = aws_target(tmp_path / "run", None).terraform()
    assert tf.before_plan is not None
    try:
        tf.before_plan([path])
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        return str(exc)
    return None


PASSEE = {"region": REGION, "retention_date": "2025-06-30", "bucket_name": "parti-passee-2025"}


def test_refused_after_the_waiting_period_when_kms_dropped_key_and_alias(
    account: None, tmp_path: Path
) -> None:
    """aws-readiness F14: once the window ends, KMS deletes the key and its alias;
    DescribeKey on the alias answers NotFound. The bucket still names the key in
    its default encryption, so the guard still refuses."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(
        Bucket=PASSEE["bucket_name"], CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    gone = f"arn:aws:kms:{REGION}:123456789012:key/00000000-0000-4000-8000-00000000dead"
    s3.put_bucket_encryption(
        Bucket=PASSEE["bucket_name"],
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": gone,
                    }
                }
            ]
        },
    )
    message = _refused(tmp_path, {"passee-2025": PASSEE})
    assert message is not None and "passee-2025" in message and "deleted" in message


def test_a_shredded_election_stays_refused_once_every_trace_in_aws_is_gone(
    account: None, tmp_path: Path
) -> None:
    """Found shredded once (pending deletion), recorded in the target's state
    directory: refused again after the alias and the bucket are gone too."""
    _election("passee-2025", shredded=True)
    assert _refused(tmp_path, {"passee-2025": PASSEE}) is not None
    boto3.client("kms", region_name=REGION).delete_alias(AliasName="alias/isoloir/passee-2025")
    message = _refused(tmp_path, {"passee-2025": PASSEE})
    assert message is not None and "passee-2025" in message
    # Another election reusing the id with a new bucket is a new election.
    renamed = {**PASSEE, "bucket_name": "parti-passee-2025-bis"}
    assert _refused(tmp_path, {"passee-2025": renamed}) is None
