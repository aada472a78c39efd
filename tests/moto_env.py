"""The environment of a unit test that runs boto3 against moto in-process."""

from __future__ import annotations

import pytest

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a metadata service
}


def use_in_process_aws(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """Fake credentials, no emulator endpoint nor CA bundle of the shell: calls go to moto."""
    for key, value in {**FAKE_CREDENTIALS, **extra}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ISOLOIR_AWS_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
