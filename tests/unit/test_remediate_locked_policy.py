"""The public-policy fix on a bucket whose policy the agents may not change
(an election's, DenyAgentPolicyChange): AWS answers AccessDenied, so the fix
turns the bucket's public access block on instead and says so; any other error
is still a failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws
from isoloir.exposure import remediate

BUCKET = "parti-exemple-exempleville-2027"
NOW = datetime(2027, 6, 1, tzinfo=UTC)
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Keep", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
         "Resource": f"arn:aws:s3:::{BUCKET}/*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/*"},
    ],
}  # fmt: skip


def _refusing(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Clients whose policy changes AWS answers with `code`."""
    made = aws.client

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "PutBucketPolicy")

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        c = made(service, *args, **kwargs)
        for op in ("PutBucketPolicy", "DeleteBucketPolicy"):
            c.meta.events.register(f"before-call.s3.{op}", refuse)
        return c

    monkeypatch.setattr(remediate.aws, "client", client)


@pytest.fixture()
def bucket(monkeypatch: pytest.MonkeyPatch) -> Any:
    use_in_process_aws(monkeypatch)
    with mock_aws():
        s3 = aws.client("s3")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(POLICY))
        yield s3


def test_a_locked_policy_gets_the_public_access_block_instead(
    bucket: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _refusing(monkeypatch, "AccessDenied")
    journal = remediate.Journal(tmp_path)
    try:
        done = remediate._bucket_policy(BUCKET, journal, NOW, "s3_bucket_policy_public")
    finally:
        journal.close()
    assert done == remediate.Instead(remediate.POLICY_LOCKED)
    pab = bucket.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert pab == remediate.PAB_ON
    # the statement is left for an administrator, as AWS leaves it
    after = json.loads(bucket.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert [s["Sid"] for s in after["Statement"]] == ["Keep", "PublicRead"]


def test_another_refusal_is_still_a_failure(
    bucket: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _refusing(monkeypatch, "MalformedPolicy")
    journal = remediate.Journal(tmp_path)
    try:
        with pytest.raises(ClientError):
            remediate._bucket_policy(BUCKET, journal, NOW, "s3_bucket_policy_public")
    finally:
        journal.close()
    with pytest.raises(ClientError):  # and no block was put in its place
        bucket.get_public_access_block(Bucket=BUCKET)


def test_an_unlocked_policy_loses_its_public_statements(bucket: Any, tmp_path: Path) -> None:
    journal = remediate.Journal(tmp_path)
    try:
        assert remediate._bucket_policy(BUCKET, journal, NOW, "s3_bucket_policy_public") is None
    finally:
        journal.close()
    after = json.loads(bucket.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert [s["Sid"] for s in after["Statement"]] == ["Keep"]
