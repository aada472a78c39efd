"""The emulator fixture: moto's real server over TLS, reachable through isoloir.aws."""

from __future__ import annotations

import ssl
import urllib.request

import pytest

from isoloir import aws
from isoloir.emulator import Emulator

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
