"""The emulator's check of resource policies for role sessions, and its clock
(isoloir.controller.emulator_server): the dated Deny refuses one second before
midnight of the retention date and not one second after; the clock endpoint
shifts what aws:CurrentTime is."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET  # noqa: S405 - test data built here
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from isoloir.controller import emulator_server
from isoloir.controller.emulator_server import (
    CLOCK,
    CLOCK_PATH,
    ClockControl,
    resource_policy_denies,
)

ROLE = "arn:aws:iam::123456789012:role/isoloir/isoloir-agents"
MEMBER = "arn:aws:iam::123456789012:user/isoloir/people/cfictive"
OBJECT = "arn:aws:s3:::isoloir-exempleville-2027/prospects/liste.csv"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyAgentDeletionBeforeRetention",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                "Resource": "arn:aws:s3:::isoloir-exempleville-2027/*",
                "Condition": {
                    "ArnLike": {"aws:PrincipalArn": [ROLE]},
                    "DateLessThan": {"aws:CurrentTime": "2027-05-21T00:00:00Z"},
                },
            },
            {
                "Sid": "DenyPutsWithAnotherKey",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::isoloir-exempleville-2027/*",
                "Condition": {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": ["k"]},
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                },
            },
        ],
    }
)


def _at(when: str) -> dict[str, str]:
    return {"aws:CurrentTime": when, "aws:SecureTransport": "true"}


def test_the_dated_deny_holds_until_midnight_of_the_date() -> None:
    before = _at("2027-05-20T23:59:59Z")
    after = _at("2027-05-21T00:00:01Z")
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        sid = resource_policy_denies(POLICY, ROLE, action, OBJECT, before)
        assert sid == "resource:DenyAgentDeletionBeforeRetention"
        assert resource_policy_denies(POLICY, ROLE, action, OBJECT, after) is None
    # a member is not the agents: the dated Deny is not theirs
    assert resource_policy_denies(POLICY, MEMBER, "s3:DeleteObject", OBJECT, before) is None
    # reads are not destruction
    assert resource_policy_denies(POLICY, ROLE, "s3:GetObject", OBJECT, before) is None


def test_the_put_headers_are_in_the_context() -> None:
    ctx = _at("2027-06-01T00:00:00Z")
    assert resource_policy_denies(POLICY, ROLE, "s3:PutObject", OBJECT, ctx) is None
    wrong = {**ctx, "s3:x-amz-server-side-encryption-aws-kms-key-id": "another"}
    assert resource_policy_denies(POLICY, ROLE, "s3:PutObject", OBJECT, wrong) is not None
    right = {**ctx, "s3:x-amz-server-side-encryption-aws-kms-key-id": "k"}
    assert resource_policy_denies(POLICY, ROLE, "s3:PutObject", OBJECT, right) is None


def test_a_policy_the_evaluator_cannot_read_is_left_to_moto(
    capsys: pytest.CaptureFixture[str],
) -> None:
    odd = json.dumps(
        {
            "Statement": [
                {"Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "s3:*", "Resource": "*"}
            ]
        }  # fmt: skip
    )
    assert resource_policy_denies(odd, ROLE, "s3:DeleteObject", OBJECT, _at("2027")) is None
    assert "not evaluated" in capsys.readouterr().out


def _call(app: ClockControl, body: bytes) -> tuple[str, bytes]:
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]]) -> None:
        status.append(s)

    environ: dict[str, Any] = {
        "PATH_INFO": CLOCK_PATH,
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    out = b"".join(app(environ, start_response))
    return status[0], out


def test_the_clock_endpoint_shifts_the_emulators_time() -> None:
    passed: list[str] = []

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        passed.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    app = ClockControl(inner)
    try:
        status, _ = _call(app, json.dumps({"now": "2027-05-20T23:59:59+00:00"}).encode())
        assert status.startswith("200")
        assert abs(CLOCK.now() - datetime(2027, 5, 20, 23, 59, 59, tzinfo=UTC)) < timedelta(
            seconds=5
        )
        status, _ = _call(app, b'{"now": "not a date"}')
        assert status.startswith("400")  # refused, and the machine's time is back
        assert abs(CLOCK.now() - datetime.now(UTC)) < timedelta(seconds=5)
        status, _ = _call(app, b'{"now": "2027-05-20T23:59:59"}')  # no time zone
        assert status.startswith("400")
        assert not passed  # never reached moto
        environ = {"PATH_INFO": "/", "REQUEST_METHOD": "GET"}
        app(environ, lambda s, h: None)
        assert passed == ["/"]
    finally:
        emulator_server.CLOCK.set(None)


NS = "http://s3.amazonaws.com/doc/2006-03-01/"
ASKED = (
    f'<Delete xmlns="{NS}"><Quiet>true</Quiet>'
    "<Object><Key>a.csv</Key><VersionId>v1</VersionId></Object>"
    "<Object><Key>b.csv</Key></Object>"
    "<Object><Key>a.csv</Key><VersionId>v2</VersionId></Object>"
    "</Delete>"
).encode()


def _errors(body: str) -> list[dict[str, str]]:
    root = ET.fromstring(body)
    return [
        {child.tag.rpartition("}")[2]: child.text or "" for child in error}
        for error in root.iter(f"{{{NS}}}Error")
    ]


def test_a_refused_batch_delete_names_each_refused_version() -> None:
    """moto's errors carry the Key only; AWS's the VersionId the request named too."""
    moto_answer = (
        f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{NS}">'
        + "".join(
            f"<Error><Key>{k}</Key><Code>AccessDenied</Code>"
            "<Message>Access Denied</Message></Error>"
            for k in ("a.csv", "b.csv", "a.csv")
        )
        + "</DeleteResult>"
    )
    fixed = emulator_server.with_version_ids(ASKED, moto_answer)
    assert isinstance(fixed, str)
    assert _errors(fixed) == [
        {"Key": "a.csv", "VersionId": "v1", "Code": "AccessDenied", "Message": "Access Denied"},
        {"Key": "b.csv", "Code": "AccessDenied", "Message": "Access Denied"},  # none named
        {"Key": "a.csv", "VersionId": "v2", "Code": "AccessDenied", "Message": "Access Denied"},
    ]
    # bytes in, bytes out; an answer without errors or not XML is left as it was
    assert isinstance(emulator_server.with_version_ids(ASKED, moto_answer.encode()), bytes)
    clean = f'<DeleteResult xmlns="{NS}"><Deleted><Key>a.csv</Key></Deleted></DeleteResult>'
    assert emulator_server.with_version_ids(ASKED, clean) == clean
    assert emulator_server.with_version_ids(ASKED, "not xml") == "not xml"
