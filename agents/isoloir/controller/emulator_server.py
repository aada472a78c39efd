"""moto's server, with one correction for bucket policies; run by `isoloir.controller.emulator`.

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
its effect is proven with `isoloir.controller.infra.evaluate` (docs/infra.md). The emulator
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

A third correction concerns IAM enforcement (`Emulator.set_auth`). moto checks
a caller's identity policies against its own operation names (`s3:HeadBucket`,
`s3:PutPublicAccessBlock`, `s3:DeleteObject` on the bucket for a batch delete)
and against the resource `*` for KMS. Here each request is checked as AWS
authorises it instead: S3 requests by the IAM action AWS documents for the
operation ("Required permissions for Amazon S3 API operations",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html)
on the bucket or object ARN, a batch delete key by key, the account-level
public access block as `s3:PutAccountPublicAccessBlock`, and KMS calls on the
ARN of the key they name (`KeyId`, alias or ARN). moto's evaluation itself is
unchanged: an explicit Deny wins, else an Allow is needed; conditions of
identity policies are not evaluated (a statement applies whatever its
`Condition`), and the trust policy is not checked for roles assumed before
enforcement is switched on (docs/infra.md, "IAM enforcement in the tests").

A fourth correction dates the credential report when it is read (moto dates
every report 2015-02-02, although it writes it from the users of the moment).

A fifth correction concerns resource policies under enforcement. moto never
evaluates a bucket policy's or a key policy's conditions (see the first
correction), so the Deny statements that date the agents' destruction
(`DenyAgentDeletionBeforeRetention`, `DenyAgentShreddingBeforeRetention`) and
forbid them to rewrite the bucket policy would never refuse anything here,
although AWS refuses. For a session of an assumed role (the agents), each
request that IAM allowed is now also checked against the Deny statements of
the bucket's policy (S3) or of the key's policy (KMS), conditions included,
with `isoloir.controller.infra.evaluate` and this request context:
`aws:PrincipalArn` (the role's ARN, as AWS sets it for a role session),
`aws:CurrentTime` (the emulator's clock, below), `aws:SecureTransport` (true:
the emulator serves TLS only) and, on a put, the
`s3:x-amz-server-side-encryption[-aws-kms-key-id]` headers. An explicit Deny
refuses the request with AccessDenied, as AWS does. IAM users (the tests' own
administrator, which seeds data an administrator could not seed on AWS) are
not checked against resource policies: only the agents are.

A sixth correction: a refused batch delete (`DeleteObjects`) answers one
`<Error>` per object, as AWS does, but moto leaves out the `VersionId` each
one refused, which AWS includes; it is added back (`with_version_ids`). One
difference remains: the emulator refuses every object of a batch when its
resource policy refuses one of them, where AWS decides object by object; the
agents' batches hold the objects of one election's bucket, which its policy
treats alike.

The emulator's clock is the machine's, shifted by what a test sets with
`POST /isoloir-api/clock` (`{"now": "2027-05-20T23:59:59Z"}`, or `null` for the
machine's time again; `Emulator.set_clock`): a test can then stand one second
before or after an election's retention date as AWS would see it, whatever the
host believes (`ISOLOIR_NOW`).
"""

from __future__ import annotations

import json
import sys
import threading
import xml.etree.ElementTree as ET  # noqa: S405 - the emulator parses its own clients' requests
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_REMEMBERED = 4096  # answers kept, oldest forgotten first
CLOCK_PATH = "/isoloir-api/clock"


class _Clock:
    """The emulator's idea of now: the machine's time plus a shift a test sets."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def set(self, when: datetime | None) -> None:
        self.shift = timedelta(0) if when is None else when - datetime.now(UTC)


CLOCK = _Clock()


def _unconditional(policy: bytes | str) -> str | None:
    data = json.loads(policy)
    statements = data.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if "Condition" not in s]
    if not kept:
        return None
    return json.dumps({**data, "Statement": kept})


def with_version_ids(request: bytes, response: bytes | str) -> bytes | str:
    """DeleteObjects' answer with each `<Error>` naming the version it refused.

    moto writes an error per requested object, in the request's order, with its
    Key only; AWS adds the VersionId the request named (S3 API Reference,
    "DeleteObjects", and its `Error` data type:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html,
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_Error.html). An agent
    that leaves what AWS refused to the lifecycle needs to know which version
    that was (`isoloir person erase`). Each error takes the next version the
    request named for its key; an answer that does not parse is left alone."""
    try:
        asked = ET.fromstring(request)  # noqa: S314 - the emulator's own clients' request
        text = response.decode() if isinstance(response, bytes) else response
        answer = ET.fromstring(text)  # noqa: S314 - moto's own answer
    except (ET.ParseError, UnicodeDecodeError):
        return response
    versions: dict[str, list[str]] = {}
    for key, version in _batch_objects(asked):
        if version:
            versions.setdefault(key, []).append(version)
    namespace = answer.tag[1:].partition("}")[0] if answer.tag.startswith("{") else ""
    prefix = f"{{{namespace}}}" if namespace else ""
    changed = False
    for error in answer.iter(f"{prefix}Error"):
        if error.find(f"{prefix}VersionId") is not None:
            continue
        key_el = error.find(f"{prefix}Key")
        queue = versions.get("" if key_el is None else key_el.text or "", [])
        if key_el is None or not queue:
            continue
        element = ET.Element(f"{prefix}VersionId")
        element.text = queue.pop(0)
        error.insert(list(error).index(key_el) + 1, element)
        changed = True
    if not changed:
        return response
    ET.register_namespace("", namespace)
    out = ET.tostring(answer, encoding="unicode", xml_declaration=False)
    return out.encode() if isinstance(response, bytes) else out


def patch_moto() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket
    from moto.s3.responses import S3Response

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = _unconditional(self.policy)
        if policy is None:
            return PermissionResult.NEUTRAL
        return IAMPolicy(policy).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]
    delete_keys = S3Response._bucket_response_delete_keys

    def bucket_response_delete_keys(self: Any, bucket_name: str, authenticated: bool = True) -> Any:
        status, headers, body = delete_keys(self, bucket_name, authenticated)
        request = self.body if isinstance(self.body, bytes) else str(self.body or "").encode()
        return status, headers, with_version_ids(request, body)

    S3Response._bucket_response_delete_keys = bucket_response_delete_keys  # type: ignore[method-assign]
    _patch_iam_checks()
    patch_credential_report_time()


def patch_credential_report_time() -> None:
    """moto builds the credential report from the users as they are when it is
    read, but dates it 2015-02-02 whatever happens. IAM dates a report when it
    generates it, and what the report says is as of that time; the identity
    audit reads call by call every user created after it. So the report's
    time is the time it is read, as its content is."""
    from datetime import UTC, datetime

    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def get_credential_report(self: Any) -> Any:
        report = self.backend.get_credential_report()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return ActionResult({"Content": report, "ReportFormat": "text/csv", "GeneratedTime": now})

    IamResponse.get_credential_report = get_credential_report  # type: ignore[method-assign]


# IAM actions of S3 REST requests, by method and the first sub-resource found in
# the query string (the AWS page cited in the module docstring). None: the
# method's default below.
_BUCKET_ACTIONS: dict[str, dict[str, str]] = {
    "GET": {
        "accelerate": "GetAccelerateConfiguration",
        "acl": "GetBucketAcl",
        "cors": "GetBucketCORS",
        "encryption": "GetEncryptionConfiguration",
        "lifecycle": "GetLifecycleConfiguration",
        "location": "GetBucketLocation",
        "logging": "GetBucketLogging",
        "notification": "GetBucketNotification",
        "object-lock": "GetBucketObjectLockConfiguration",
        "ownershipControls": "GetBucketOwnershipControls",
        "policy": "GetBucketPolicy",
        "policyStatus": "GetBucketPolicyStatus",
        "publicAccessBlock": "GetBucketPublicAccessBlock",
        "replication": "GetReplicationConfiguration",
        "requestPayment": "GetBucketRequestPayment",
        "tagging": "GetBucketTagging",
        "uploads": "ListBucketMultipartUploads",
        "versioning": "GetBucketVersioning",
        "versions": "ListBucketVersions",
        "website": "GetBucketWebsite",
    },
    "PUT": {
        "accelerate": "PutAccelerateConfiguration",
        "acl": "PutBucketAcl",
        "cors": "PutBucketCORS",
        "encryption": "PutEncryptionConfiguration",
        "lifecycle": "PutLifecycleConfiguration",
        "logging": "PutBucketLogging",
        "notification": "PutBucketNotification",
        "object-lock": "PutBucketObjectLockConfiguration",
        "ownershipControls": "PutBucketOwnershipControls",
        "policy": "PutBucketPolicy",
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "replication": "PutReplicationConfiguration",
        "requestPayment": "PutBucketRequestPayment",
        "tagging": "PutBucketTagging",
        "versioning": "PutBucketVersioning",
        "website": "PutBucketWebsite",
    },
    "DELETE": {
        "cors": "PutBucketCORS",
        "encryption": "PutEncryptionConfiguration",
        "lifecycle": "PutLifecycleConfiguration",
        "ownershipControls": "PutBucketOwnershipControls",
        "policy": "DeleteBucketPolicy",
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "replication": "PutReplicationConfiguration",
        "tagging": "PutBucketTagging",
        "website": "DeleteBucketWebsite",
    },
}
_BUCKET_DEFAULT = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket",
                   "DELETE": "DeleteBucket"}  # fmt: skip
_OBJECT_ACTIONS: dict[str, dict[str, str]] = {
    "GET": {
        "acl": "GetObjectAcl",
        "attributes": "GetObjectAttributes",
        "legal-hold": "GetObjectLegalHold",
        "retention": "GetObjectRetention",
        "tagging": "GetObjectTagging",
        "uploadId": "ListMultipartUploadParts",
    },
    "PUT": {
        "acl": "PutObjectAcl",
        "legal-hold": "PutObjectLegalHold",
        "retention": "PutObjectRetention",
        "tagging": "PutObjectTagging",
    },
    "DELETE": {"tagging": "DeleteObjectTagging", "uploadId": "AbortMultipartUpload"},
    "POST": {"restore": "RestoreObject", "select": "GetObject"},
}
_OBJECT_DEFAULT = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject",
                   "DELETE": "DeleteObject", "POST": "PutObject"}  # fmt: skip
_VERSIONED = {"GetObject": "GetObjectVersion", "GetObjectAcl": "GetObjectVersionAcl",
              "PutObjectAcl": "PutObjectVersionAcl", "DeleteObject": "DeleteObjectVersion",
              "GetObjectTagging": "GetObjectVersionTagging",
              "PutObjectTagging": "PutObjectVersionTagging",
              "DeleteObjectTagging": "DeleteObjectVersionTagging"}  # fmt: skip
_ACCOUNT_PAB = {"GET": "GetAccountPublicAccessBlock", "PUT": "PutAccountPublicAccessBlock",
                "DELETE": "PutAccountPublicAccessBlock"}  # fmt: skip


def _sub_resource(table: dict[str, str], query: dict[str, list[str]]) -> str | None:
    return next((action for name, action in table.items() if name in query), None)


def _batch_objects(root: ET.Element) -> list[tuple[str, str | None]]:
    """(key, version id or None) of each object a DeleteObjects request names, in order."""
    objects = []
    for obj in root.iter():
        if obj.tag.rpartition("}")[2] != "Object":
            continue
        key = next((c.text or "" for c in obj if c.tag.endswith("Key")), "")
        version = next((c.text for c in obj if c.tag.endswith("VersionId")), None)
        objects.append((key, version))
    return objects


def _batch_delete(bucket: str, body: bytes) -> list[tuple[str, str]]:
    """DeleteObjects is authorised per key: DeleteObject, or DeleteObjectVersion."""
    root = ET.fromstring(body)  # noqa: S314 - the emulator's own clients' request
    return [
        ("s3:DeleteObjectVersion" if version else "s3:DeleteObject", f"arn:aws:s3:::{bucket}/{key}")
        for key, version in _batch_objects(root)
    ]


def _control_action(method: str, path: str) -> str:
    """S3 Control (account level): the public access block and access points."""
    rest = path.removeprefix("/v20180820/").strip("/").split("/")
    if rest[0] == "configuration":
        return _ACCOUNT_PAB.get(method, "PutAccountPublicAccessBlock")
    if rest[0] == "accesspoint" and len(rest) == 1:
        return "ListAccessPoints"
    if rest[0] == "accesspoint" and len(rest) == 2:
        return {"PUT": "CreateAccessPoint", "DELETE": "DeleteAccessPoint"}.get(
            method, "GetAccessPoint"
        )
    if rest[0] == "accesspoint" and rest[2] == "policyStatus":
        return "GetAccessPointPolicyStatus"
    if rest[0] == "accesspoint":
        verb = {"PUT": "Put", "DELETE": "Delete"}.get(method, "Get")
        return f"{verb}AccessPointPolicy"
    return "UnmappedControlRequest"  # not used by Isoloir: only `s3:*` or `*` allows it


def s3_checks(method: str, path: str, body: bytes) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs AWS authorises a path-style S3 request by."""
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path.startswith("/v20180820/"):
        return [(f"s3:{_control_action(method, parts.path)}", "*")]
    bucket, _, key = parts.path.lstrip("/").partition("/")
    if not bucket:
        return [("s3:ListAllMyBuckets", "*")]
    if not key:
        if method == "POST" and "delete" in query:
            return _batch_delete(bucket, body)
        action = _sub_resource(_BUCKET_ACTIONS.get(method, {}), query)
        action = action or _BUCKET_DEFAULT.get(method, "ListBucket")
        return [(f"s3:{action}", f"arn:aws:s3:::{bucket}")]
    action = _sub_resource(_OBJECT_ACTIONS.get(method, {}), query)
    action = action or _OBJECT_DEFAULT.get(method, "GetObject")
    if "versionId" in query:
        action = _VERSIONED.get(action, action)
    return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{unquote(key)}")]


def _kms_key(account: str, region: str, key_id: str) -> Any | None:
    """moto's key named by an id, alias or ARN, or None."""
    from moto.kms.models import kms_backends

    backend = kms_backends[account][region]
    try:
        return backend.keys[backend.any_id_to_key_id(key_id)]
    except (KeyError, AttributeError):
        return None


def _kms_resource(account: str, region: str, body: bytes) -> str:
    """The ARN of the key a KMS request names, or `*` (ListKeys, CreateKey...)."""
    try:
        key_id = json.loads(body or b"{}").get("KeyId")
    except ValueError:
        return "*"
    key = _kms_key(account, region, key_id) if key_id else None
    return "*" if key is None else str(key.arn)


def _bucket_policy(account: str, name: str) -> str | None:
    from moto.s3.models import s3_backends

    try:
        policy = s3_backends[account]["aws"].get_bucket(name).policy
    except Exception:  # noqa: BLE001 - no such bucket: S3 answers it, not this check
        return None
    if policy is None:
        return None
    return policy.decode() if isinstance(policy, bytes) else str(policy)


_SSE_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id")


def resource_policy_denies(
    policy: str, principal_arn: str, action: str, resource: str, context: dict[str, str]
) -> str | None:
    """The Sid of the resource policy's Deny statement that refuses this request
    (conditions evaluated), or None. A policy the evaluator cannot read is
    left to moto, as before, and said in the log."""
    from isoloir.controller.infra.evaluate import (
        Decision,
        Request,
        UnsupportedPolicy,
        evaluate,
    )

    request = Request(principal_arn, action, resource, context)
    try:
        result = evaluate(request, [], policy)
    except (UnsupportedPolicy, ValueError) as exc:
        print(f"isoloir-emulator: resource policy not evaluated ({exc})", flush=True)
        return None
    if result.decision is Decision.EXPLICIT_DENY:
        return result.reasons[0] if result.reasons else "?"
    return None


def _role_arn(access_key: Any) -> str | None:
    """The role's ARN for a role session (aws:PrincipalArn), else None."""
    from moto.iam.access_control import AssumedRoleAccessKey

    if not isinstance(access_key, AssumedRoleAccessKey):
        return None
    try:
        return str(access_key.backend.get_role(access_key._owner_role_name).arn)
    except Exception:  # noqa: BLE001 - a role deleted since: IAM's own check refuses it
        return None


def _patch_iam_checks() -> None:
    from moto.iam.access_control import IAMRequestBase

    check = IAMRequestBase.check_action_permitted

    def resource_policy_check(self: Any) -> Callable[[str, str], None] | None:
        """For a role session, a check of (action, resource ARN) against the
        Deny statements of the bucket's or key's policy; None for anyone else.
        The context is the request's, the policies read once per request."""
        principal = _role_arn(self._access_key)
        if principal is None:
            return None
        context = {
            "aws:CurrentTime": CLOCK.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:SecureTransport": "true",
        }
        headers = {str(k).lower(): str(v) for k, v in dict(self._headers).items()}
        for name in _SSE_HEADERS:
            if name in headers:
                context[f"s3:{name}"] = headers[name]
        policies: dict[str, str | None] = {}

        def policy_of(arn: str) -> str | None:
            if arn == "*":
                return None
            if self._service == "s3":
                where = arn.removeprefix("arn:aws:s3:::").split("/", 1)[0]
                if where not in policies:
                    policies[where] = _bucket_policy(self.account_id, where)
            else:
                where = arn
                if where not in policies:
                    key = _kms_key(self.account_id, self._region, arn)
                    policies[where] = None if key is None else str(key.policy)
            return policies[where]

        def deny_if_refused(action: str, arn: str) -> None:
            policy = policy_of(arn)
            if policy is None:
                return
            sid = resource_policy_denies(policy, principal, action, arn, context)
            if sid is not None:
                print(
                    f"isoloir-emulator: {action} refused by the resource policy ({sid})", flush=True
                )
                self._action = action
                self._raise_access_denied()

        return deny_if_refused

    def check_action_permitted(self: Any, resource: str) -> None:
        body = self._body if isinstance(self._body, bytes) else str(self._body or "").encode()
        if self._service == "kms":
            resource = _kms_resource(self.account_id, self._region, body)
        checks = (
            s3_checks(self._method, self._path, body)
            if self._service == "s3"
            else [(self._action, resource)]
        )
        by_resource_policy = resource_policy_check(self) if self._service in ("s3", "kms") else None
        for action, arn in checks:
            self._action = action
            check(self, arn)
            if by_resource_policy is not None:
                by_resource_policy(action, arn)

    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]


class ClockControl:
    """WSGI middleware: `POST /isoloir-api/clock` sets the emulator's clock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != CLOCK_PATH:
            return self.app(environ, start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            data = json.loads(environ["wsgi.input"].read(size) or b"{}")
            when = data.get("now")
            # a naive time cannot be subtracted from an aware one: TypeError
            CLOCK.set(None if when is None else datetime.fromisoformat(str(when)))
        except (ValueError, TypeError, AttributeError) as exc:
            CLOCK.set(None)
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"bad clock: {exc}\n".encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"now": CLOCK.now().isoformat()}).encode()]


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
        serve(host, port, ClockControl(RetryReplay(app)), **kwargs)

    setattr(moto.server, "run_simple", run_simple)  # noqa: B010 - moto's own import of werkzeug

    sys.argv[0] = "moto_server"
    moto_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
