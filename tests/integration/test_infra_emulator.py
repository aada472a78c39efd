"""The emulator fixture: moto's real server over TLS, reachable through isoloir.aws."""

from __future__ import annotations

import ssl
import urllib.request

import pytest

from isoloir import aws
from isoloir.controller.emulator import Emulator

pytestmark = pytest.mark.integration


def test_emulator_serves_tls_with_its_own_ca(emulator: Emulator) -> None:
    assert emulator.endpoint.startswith("https://127.0.0.1:")
    # The system trust store does not know the throw-away CA...
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(emulator.endpoint + "/moto-api/reset", timeout=10)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    # ...the bundle the emulator hands out does.
    # (a GET on the reset API is harmless: moto answers 400, "Need to POST")
    ctx = ssl.create_default_context(cafile=str(emulator.ca_bundle))
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(emulator.endpoint + "/moto-api/reset", context=ctx, timeout=10)
    assert answered.value.code == 400


def test_clients_reach_the_emulator_and_reset_empties_it(emulator: Emulator) -> None:
    s3 = aws.client("s3", "eu-west-3")
    assert s3.meta.endpoint_url == emulator.endpoint
    name = "isoloir-emulator-smoke"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    emulator.reset()
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_retried_call_gets_its_first_answer(emulator: Emulator) -> None:
    """An SDK retry (same invocation id) of a create call that moto already did
    is answered with the first attempt's answer instead of "already exists";
    another call creating the same name still fails."""
    iam = aws.client("iam")
    invocation = {"id": "11111111-2222-4333-8444-555555555555"}

    def same_invocation(request: object, **_: object) -> None:
        request.headers["amz-sdk-invocation-id"] = invocation["id"]  # type: ignore[attr-defined]

    iam.meta.events.register("before-send.iam.CreateGroup", same_invocation)
    name = "isoloir-retry-replay"
    first = iam.create_group(GroupName=name)["Group"]
    again = iam.create_group(GroupName=name)["Group"]  # the "retry"
    assert again["GroupId"] == first["GroupId"]
    assert [g["GroupName"] for g in iam.list_groups()["Groups"]].count(name) == 1
    invocation["id"] = "66666666-7777-4888-9999-000000000000"  # a different call
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException):
        iam.create_group(GroupName=name)
    iam.delete_group(GroupName=name)
