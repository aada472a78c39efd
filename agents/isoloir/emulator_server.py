"""moto's server, with one correction for bucket policies; run by `isoloir.emulator`.

moto evaluates a bucket policy with no request context: no caller, no TLS
flag, no headers. Any statement with a `Condition` then comes out as DENIED,
whether it is a Deny or an Allow and whatever the request. Isoloir's bucket
policy is made of conditional Deny statements (non-TLS requests, puts not
encrypted with the election's key, principals other than the election's), so
under stock moto nobody, not even the election's members or the agent, can put,
read or delete an object in a Terraform-made bucket.

Here a conditional statement is left out of moto's evaluation (it cannot be
evaluated without the context), and unconditional statements keep their effect,
so a `Principal: "*"` Allow still makes an object public. The policy stored and
returned by the API is untouched: the agents read and check the real one, and
its effect is proven with `isoloir.infra.evaluate` (docs/infra.md). The emulator
serves TLS only, so the TLS-only statement has nothing to refuse.

A second correction concerns retries. AWS SDKs retry a call whose answer they
did not get (a reset connection, a 5xx, a slow TLS handshake on a loaded
machine) with the same `amz-sdk-invocation-id` header. If moto had already done
the first attempt, the retry of a create call fails with "already exists"
although nothing else created the resource. Real AWS does not drop answers
like this on loopback. The server therefore remembers the answers to recent
state-changing calls by invocation id. A retry gets the first attempt's answer,
or waits for it if the first attempt is still running. Each such retry is
written to the log.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_REMEMBERED = 4096  # answers kept, oldest forgotten first


def _unconditional(policy: bytes | str) -> str | None:
    data = json.loads(policy)
    statements = data.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if "Condition" not in s]
    if not kept:
        return None
    return json.dumps({**data, "Statement": kept})


def patch_moto() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = _unconditional(self.policy)
        if policy is None:
            return PermissionResult.NEUTRAL
        return IAMPolicy(policy).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


class RetryReplay:
    """WSGI middleware: a retried SDK call gets the answer of its first attempt."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.answers: OrderedDict[str, tuple[str, list[tuple[str, str]], bytes]] = OrderedDict()
        self.running: dict[str, threading.Event] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation or environ.get("REQUEST_METHOD", "GET") in _READS:
            return self.app(environ, start_response)
        while True:
            with self.lock:
                answer = self.answers.get(invocation)
                pending = self.running.get(invocation)
                if answer is None and pending is None:
                    done = self.running[invocation] = threading.Event()
                    break
            if answer is not None:
                status, headers, body = answer
                attempt = environ.get("HTTP_AMZ_SDK_REQUEST", "?")
                print(f"isoloir-emulator: replayed the answer to retry {attempt}", flush=True)
                start_response(status, headers)
                return [body]
            assert pending is not None
            pending.wait(120)
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, list(headers)]
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if captured and not captured[0].startswith("5"):
                with self.lock:
                    self.answers[invocation] = (captured[0], captured[1], body)
                    while len(self.answers) > _REMEMBERED:
                        self.answers.popitem(last=False)
            return [body]
        finally:
            with self.lock:
                self.running.pop(invocation, None)
            done.set()


def main() -> int:
    patch_moto()
    import moto.server
    from moto.server import main as moto_main

    serve = getattr(moto.server, "run_simple")  # noqa: B009 - patched below

    def run_simple(host: str, port: int, app: Any, **kwargs: Any) -> None:
        serve(host, port, RetryReplay(app), **kwargs)

    setattr(moto.server, "run_simple", run_simple)  # noqa: B010 - moto's own import of werkzeug

    sys.argv[0] = "moto_server"
    moto_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
