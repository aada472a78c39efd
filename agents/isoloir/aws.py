"""boto3 sessions and clients for every part of Isoloir.

Every agent builds its AWS clients here, never with `boto3.client(...)` and a
hard-coded endpoint: `ISOLOIR_AWS_ENDPOINT` (the emulator in tests and for the
local target) and `AWS_CA_BUNDLE` (its throw-away CA) are honoured in one place.
Without them the clients talk to real AWS with the usual credential chain.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

ENDPOINT_ENV = "ISOLOIR_AWS_ENDPOINT"
CA_BUNDLE_ENV = "AWS_CA_BUNDLE"
DEFAULT_REGION = "eu-west-3"

# Every call is bounded: a black-holed endpoint (accepts TCP, never answers) or a
# firewall dropping packets costs at most about ATTEMPTS x (CONNECT + READ) seconds
# per call, not botocore's 60 s x 5. ("Config" of botocore: connect_timeout,
# read_timeout, retries; https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html)
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20
_RETRIES = {"max_attempts": 3, "mode": "standard"}
SLOW_CALL_SECONDS = 5.0  # a call still waiting after this is announced on stderr

# The first call of a scan (STS GetCallerIdentity, cheap and always allowed) is a
# probe with tighter bounds: when AWS does not answer it, nothing else is asked,
# so a black-holed endpoint fails the scan in about PROBE_ATTEMPTS x (CONNECT +
# READ) seconds plus the retry back-off (about 20 s), not minutes (CLI review D32).
PROBE_CONNECT_TIMEOUT = 5
PROBE_READ_TIMEOUT = 5
PROBE_ATTEMPTS = 2
# The errors that mean "no answer at all" (nothing was read, whatever the call).
NO_ANSWER = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def endpoint_url() -> str | None:
    """The emulator endpoint, or None for real AWS."""
    value = os.environ.get(ENDPOINT_ENV, "").strip()
    return value.rstrip("/") or None


def ca_bundle() -> str | None:
    value = os.environ.get(CA_BUNDLE_ENV, "").strip()
    return value or None


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def session(region: str | None = None) -> boto3.session.Session:
    """A boto3 session in `region` (default: AWS_REGION, else eu-west-3)."""
    return boto3.session.Session(region_name=region or default_region())


def client_kwargs(service: str, *, probe: bool = False) -> dict[str, Any]:
    """The keyword arguments `client()` passes to boto3 (endpoint, CA, config)."""
    kwargs: dict[str, Any] = {}
    endpoint = endpoint_url()
    style = "path" if endpoint else "auto"
    config = Config(
        retries={"max_attempts": PROBE_ATTEMPTS, "mode": "standard"} if probe else dict(_RETRIES),
        connect_timeout=PROBE_CONNECT_TIMEOUT if probe else CONNECT_TIMEOUT,
        read_timeout=PROBE_READ_TIMEOUT if probe else READ_TIMEOUT,
        s3={"addressing_style": style},
    )
    kwargs["config"] = config
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    bundle = ca_bundle()
    if bundle:
        kwargs["verify"] = bundle
    return kwargs


def client(
    service: str,
    region: str | None = None,
    *,
    sess: boto3.session.Session | None = None,
    probe: bool = False,
) -> Any:
    """A boto3 client for `service`, pointed at the emulator when one is configured
    (`probe`: the tighter bounds of a first call that tells whether AWS answers)."""
    s = sess or session(region)
    made = s.client(
        service, region_name=region or s.region_name, **client_kwargs(service, probe=probe)
    )
    if service == "s3control" and endpoint_url():
        # S3 Control puts the account id in the host name; an emulator endpoint has none.
        made.meta.events.register("before-sign.s3-control", _strip_account_host)
    _announce_slow_calls(made, service)
    return made


def no_answer(exc: BaseException) -> str | None:
    """When `exc` means AWS did not answer at all: one line saying where and how long
    was waited; else None."""
    if not isinstance(exc, NO_ANSWER):
        return None
    where = endpoint_url() or "AWS"
    waited = PROBE_ATTEMPTS * (PROBE_CONNECT_TIMEOUT + PROBE_READ_TIMEOUT)
    return (
        f"no answer from {where} ({type(exc).__name__}, {PROBE_ATTEMPTS} attempts, at most "
        f"about {waited} s): check the network, the proxy or ISOLOIR_AWS_ENDPOINT; "
        "nothing else was asked"
    )


def probe(region: str | None = None) -> str | None:
    """Ask STS who we are with the probe's bounds: None when AWS answered (even with
    an error), else why not (`no_answer`)."""
    try:
        client("sts", region, probe=True).get_caller_identity()
    except NO_ANSWER as exc:
        return no_answer(exc)
    except Exception:  # noqa: BLE001 - an answer (denied, no credentials): the calls say more
        return None
    return None


class _SlowCallNotice:
    """Says on stderr what a call waits for once it is slow (one line per slow call)."""

    def __init__(self, service: str, after: float) -> None:
        self.service = service
        self.after = after
        self.timer: threading.Timer | None = None

    def start(self, model: Any = None, **_: Any) -> None:
        self.stop()
        operation = getattr(model, "name", "?")
        where = endpoint_url() or "AWS"
        text = f"waiting for {self.service} ({operation}) at {where} ..."
        self.timer = threading.Timer(self.after, _say, args=(text,))
        self.timer.daemon = True
        self.timer.start()

    def stop(self, **_: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _announce_slow_calls(made: Any, service: str) -> None:
    notice = _SlowCallNotice(service, SLOW_CALL_SECONDS)
    events = made.meta.events
    events.register("before-call", notice.start)
    events.register("after-call", notice.stop)
    events.register("after-call-error", notice.stop)


def _strip_account_host(request: Any, **_: Any) -> None:
    request.url = re.sub(r"//\d{12}\.", "//", request.url, count=1)
