"""Fetch the S3 inventory the checks read (every S3, S3 Control, STS and KMS call).

API calls per bucket are a constant (about a dozen) unless the bucket accepts
ACLs, where each object's ACL must be read, or the bucket is public, where the
first page of keys is listed and a few objects are sampled with ranged GETs.
A bucket with ACLs disabled and no public access costs the same for 10 or
10 million objects. One unreachable bucket is recorded in `errors` and the scan
goes on. The buckets are read BUCKET_WORKERS at a time: each read waits on the
network far more than it computes, and at a national party's 577 buckets one
after the other took minutes (issue 21).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws, clock
from isoloir.exposure import accesslog, inventory_kms, pii
from isoloir.exposure.checks._common import effective_pab, public_statements
from isoloir.exposure.model import Bucket, Grant, ObjectSample, S3Inventory
from isoloir.policy.model import Policies

# Error codes that mean "not configured" rather than "could not read".
NOT_CONFIGURED = {
    "policy": {"NoSuchBucketPolicy"},
    "public_access_block": {"NoSuchPublicAccessBlockConfiguration"},
    "ownership": {"OwnershipControlsNotFoundError"},
    "encryption": {"ServerSideEncryptionConfigurationNotFoundError"},
    "lifecycle": {"NoSuchLifecycleConfiguration"},
    "tags": {"NoSuchTagSet", "NoSuchTagSetError"},
}
MAX_OBJECT_ACLS = 10_000  # objects whose ACL is read per ACL-enabled bucket
PUBLIC_LIST_KEYS = 1000  # keys listed in a public bucket to pick samples
MAX_SAMPLES = 20  # objects sampled per public bucket
RANGE_BLOCK = 64 * 1024
LOG_LOOKBACK = timedelta(days=30)  # access logs read when no exposure start is known
# Buckets read at once. Each worker makes one call at a time, so the request
# rate stays far below S3's per-prefix rates and the control-plane limits.
BUCKET_WORKERS = 8

# `fetch(log_since=...)`: one start for every resource, or the exposure start per
# finding resource (`s3://bucket`, `s3://bucket/key`; a resource not named: now).
LogSince: TypeAlias = datetime | Mapping[str, datetime] | None


def _since_of(log_since: LogSince, bucket: str, key: str | None, now: datetime) -> datetime:
    if log_since is None:
        return now - LOG_LOOKBACK
    if isinstance(log_since, datetime):
        return log_since
    resource = f"s3://{bucket}" if key is None else f"s3://{bucket}/{key}"
    return log_since.get(resource, now)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


class _Counter:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1


@dataclass
class _Clients:
    """One client per service and region, shared by the workers (botocore's
    clients are thread-safe; making them is not, hence the lock)."""

    counter: _Counter
    made: dict[tuple[str, str], Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, service: str, region: str | None = None) -> Any:
        key = (service, region or aws.default_region())
        with self.lock:
            if key not in self.made:
                c = (
                    control_client(key[1])
                    if service == "s3control"
                    else aws.client(service, key[1])
                )
                c.meta.events.register("before-call", self.counter)
                self.made[key] = c
            return self.made[key]


def _strip_account_host(request: Any, **_: Any) -> None:
    """S3 Control puts the account id in the host name: an emulator endpoint has none."""
    request.url = re.sub(r"//\d{12}\.", "//", request.url, count=1)


def control_client(region: str | None = None) -> Any:
    """An S3 Control client; against the emulator, without the account host prefix."""
    c = aws.client("s3control", region)
    if aws.endpoint_url():
        c.meta.events.register("before-sign.s3-control", _strip_account_host)
    return c


class RangedObject(io.RawIOBase):
    """A read-only, seekable view of an S3 object through ranged GETs (64 KiB blocks)."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, budget: int = 8) -> None:
        self._c, self._b, self._k, self._size = client, bucket, key, size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}
        self._budget = budget  # GETs at most

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _block(self, index: int) -> bytes:
        if index not in self._blocks:
            if self._budget <= 0:
                raise OSError("sampling budget exhausted")
            self._budget -= 1
            start = index * RANGE_BLOCK
            end = min(start + RANGE_BLOCK, self._size) - 1
            resp = self._c.get_object(Bucket=self._b, Key=self._k, Range=f"bytes={start}-{end}")
            self._blocks[index] = resp["Body"].read()
        return self._blocks[index]

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        out = bytearray()
        while len(out) < want:
            index, offset = divmod(self._pos + len(out), RANGE_BLOCK)
            chunk = self._block(index)[offset:]
            if not chunk:
                break
            out += chunk[: want - len(out)]
        buffer[: len(out)] = out
        self._pos += len(out)
        return len(out)


def _grants(acl: dict[str, Any]) -> tuple[Grant, ...]:
    out = []
    for g in acl.get("Grants", []):
        grantee = g.get("Grantee", {})
        who = grantee.get("URI") or grantee.get("ID") or grantee.get("EmailAddress") or "?"
        out.append(Grant(str(who), str(g.get("Permission", ""))))
    return tuple(out)


def _region(location: dict[str, Any]) -> str:
    value = location.get("LocationConstraint")
    if not value:
        return "us-east-1"
    return "eu-west-1" if value == "EU" else str(value)


def _call(bucket: Bucket, op: str, func: Callable[[], Any]) -> Any:
    """Run one read; record its error code on the bucket; None when it failed."""
    try:
        return func()
    except ClientError as exc:
        code = _code(exc)
        if code not in NOT_CONFIGURED.get(op, set()):
            bucket.errors = {**bucket.errors, op: code}
        return None
    except BotoCoreError as exc:
        bucket.errors = {**bucket.errors, op: type(exc).__name__}
        return None


def _fetch_bucket(clients: _Clients, name: str, inv: S3Inventory, sample: bool) -> Bucket:
    b = Bucket(name=name)
    s3 = clients.get("s3")
    loc = _call(b, "location", lambda: s3.get_bucket_location(Bucket=name))
    if loc is None:
        return b
    b.region = _region(loc)
    c = clients.get("s3", b.region)
    acl = _call(b, "acl", lambda: c.get_bucket_acl(Bucket=name))
    b.acl = _grants(acl) if acl else ()
    pol = _call(b, "policy", lambda: c.get_bucket_policy(Bucket=name))
    if pol:
        try:
            b.policy = json.loads(pol["Policy"])
        except ValueError:
            b.errors = {**b.errors, "policy": "unparsable"}
    pab = _call(b, "public_access_block", lambda: c.get_public_access_block(Bucket=name))
    if pab:
        b.public_access_block = dict(pab["PublicAccessBlockConfiguration"])
    own = _call(b, "ownership", lambda: c.get_bucket_ownership_controls(Bucket=name))
    if own:
        rules = own["OwnershipControls"].get("Rules", [])
        b.ownership = str(rules[0]["ObjectOwnership"]) if rules else None
    enc = _call(b, "encryption", lambda: c.get_bucket_encryption(Bucket=name))
    if enc:
        b.encryption = tuple(
            r.get("ApplyServerSideEncryptionByDefault", {})
            for r in enc["ServerSideEncryptionConfiguration"].get("Rules", [])
        )
    ver = _call(b, "versioning", lambda: c.get_bucket_versioning(Bucket=name))
    if ver is not None:
        b.versioning = ver.get("Status")
    lc = _call(b, "lifecycle", lambda: c.get_bucket_lifecycle_configuration(Bucket=name))
    if lc:
        b.lifecycle = tuple(lc.get("Rules", []))
    tags = _call(b, "tags", lambda: c.get_bucket_tagging(Bucket=name))
    if tags:
        b.tags = {t["Key"]: t["Value"] for t in tags.get("TagSet", [])}
    _fetch_logging(c, b, inv)
    key_id = next((r.get("KMSMasterKeyID") for r in b.encryption if r.get("KMSMasterKeyID")), None)
    if key_id:
        kms = clients.get("kms", b.region)
        desc = _call(b, "kms", lambda: kms.describe_key(KeyId=key_id))
        if desc:
            meta = desc["KeyMetadata"]
            b.kms_key_state = str(meta.get("KeyState", ""))
            b.kms_deletion_date = meta.get("DeletionDate")
    _fetch_objects(c, b, inv, sample)
    return b


def _fetch_logging(c: Any, b: Bucket, inv: S3Inventory) -> None:
    """Where the bucket's server access logs go. A read error is a warning
    (`logging:<bucket>`), not a gap in the bucket's own settings."""
    try:
        logging = c.get_bucket_logging(Bucket=b.name)
    except (ClientError, BotoCoreError) as exc:
        inv.errors[f"logging:{b.name}"] = (
            _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        )
        return
    enabled = logging.get("LoggingEnabled") or {}
    if enabled.get("TargetBucket"):
        b.logging_target = str(enabled["TargetBucket"])
        b.logging_prefix = str(enabled.get("TargetPrefix", ""))


def _fetch_objects(c: Any, b: Bucket, inv: S3Inventory, sample: bool) -> None:
    pab = effective_pab(inv, b)
    acl_public = any(g.public for g in b.acl) and not pab["IgnorePublicAcls"]
    policy_public = bool(public_statements(b.policy)) and not pab["RestrictPublicBuckets"]
    to_sample: dict[str, int] = {}
    if b.acls_enabled and not pab["IgnorePublicAcls"]:
        acls: dict[str, tuple[Grant, ...]] = {}
        paginator = c.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=b.name):
                for obj in page.get("Contents", []):
                    if len(acls) >= MAX_OBJECT_ACLS:
                        b.objects_truncated = True
                        break
                    key = str(obj["Key"])
                    got = _call(b, "object_acl", partial(c.get_object_acl, Bucket=b.name, Key=key))
                    grants = _grants(got) if got else ()
                    acls[key] = grants
                    if any(g.public for g in grants) and len(to_sample) < MAX_SAMPLES:
                        to_sample[key] = int(obj.get("Size", 0))
                if b.objects_truncated:
                    break
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            b.errors = {**b.errors, "list_objects": code}
        b.object_acls = acls
        b.objects_listed = True
    if (acl_public or policy_public) and len(to_sample) < MAX_SAMPLES:
        page = _call(
            b, "list_objects", lambda: c.list_objects_v2(Bucket=b.name, MaxKeys=PUBLIC_LIST_KEYS)
        )
        for obj in (page or {}).get("Contents", []):
            key = str(obj["Key"])
            if len(to_sample) >= MAX_SAMPLES:
                break
            if key.lower().endswith(tuple(pii.SAMPLED_SUFFIXES)):
                to_sample.setdefault(key, int(obj.get("Size", 0)))
    if not sample:
        b.public_samples = tuple(ObjectSample(k, s, None) for k, s in to_sample.items())
        return
    samples = []
    for key, size in to_sample.items():
        report = None
        if key.lower().endswith(tuple(pii.SAMPLED_SUFFIXES)) and size > 0:
            try:
                reader = io.BufferedReader(RangedObject(c, b.name, key, size), RANGE_BLOCK)
                report = pii.sample_stream(reader, key.rsplit("/", 1)[-1], size)
            except (ClientError, BotoCoreError, OSError):
                report = None
        samples.append(ObjectSample(key, size, report))
    b.public_samples = tuple(samples)


def _exposed_keys(b: Bucket, inv: S3Inventory) -> list[str | None]:
    """The keys whose reads are counted: the public objects (ACL), and for a public
    bucket every key (None) besides the sampled ones."""
    pab = effective_pab(inv, b)
    public = sorted(k for k, grants in b.object_acls.items() if any(g.public for g in grants))
    keys: list[str | None] = list(public[:MAX_SAMPLES])
    acl_public = any(g.public for g in b.acl) and not pab["IgnorePublicAcls"]
    if acl_public or (public_statements(b.policy) and not pab["RestrictPublicBuckets"]):
        keys = [None, *keys, *(s.key for s in b.public_samples if s.key not in keys)]
    return keys


def _read_evidence(clients: _Clients, b: Bucket, inv: S3Inventory, log_since: LogSince) -> None:
    """Breach evidence from the bucket's server access logs (best-effort: a read
    error is a warning `logs:<bucket>` in the inventory's errors, never raised).
    Each key's reads are counted from its own exposure start (`reads_since`)."""
    keys = _exposed_keys(b, inv)
    if not keys:
        return
    now = clock.now()
    since = {k: _since_of(log_since, b.name, k, now) for k in keys}
    batch: accesslog.LogBatch | None = None
    if b.logging_target:
        try:
            logs = clients.get("s3", b.region)
            earliest = min(since.values())
            batch = accesslog.read_logs(logs, b.logging_target, b.logging_prefix, earliest)
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            inv.errors[f"logs:{b.name}"] = code  # a warning; the finding stands
    if not b.logging_target:  # no server access logs: nothing can be said about reads
        b.read_evidence = dict.fromkeys(
            (k or "" for k in keys), {"logs_read_until": "none", "access_logging": False}
        )
        return
    b.read_evidence = {
        k or "": {
            **accesslog.evidence_for(batch, b.name, k, since[k], inv.account_id),
            "reads_since": since[k].isoformat(),
        }
        for k in keys
    }


def fetch(
    policies: Policies,
    *,
    sample: bool = True,
    region: str | None = None,
    only: Iterable[str] | None = None,
    log_since: LogSince = None,
    retention_journal: Path | None = None,
) -> S3Inventory:
    """The S3 inventory of the account the credentials belong to (`only`: these
    buckets). Every bucket is inventoried, declared or not, except the buckets of
    the elections another host serves (`policies.elsewhere`, N4): their region's
    host scans them, and two hosts would raise the same alerts twice. A host that
    does not audit the account (`policies.audits_account`) reads only its own
    elections' buckets and its region's access-log bucket: the buckets no
    election declares are the account-auditing host's."""
    logs = policies.baseline.log_bucket_names
    elsewhere = {e.bucket_name for e in policies.elsewhere}
    # and the access-log buckets of the regions only other hosts serve
    mine = {e.region for e in policies.elections}
    elsewhere |= {logs[e.region] for e in policies.elsewhere if e.region in logs} - {
        logs[r] for r in mine if r in logs
    }
    own: set[str] | None = None
    if not policies.audits_account:
        own = {e.bucket_name for e in policies.elections}
        own |= {logs[e.region] for e in policies.elections if e.region in logs}
    if retention_journal is None:
        from isoloir import runtime
        from isoloir.retention.journal import db_path

        retention_journal = db_path(runtime.state_dir())
    counter = _Counter()
    clients = _Clients(counter)
    inv = S3Inventory()
    probe = aws.client("sts", region, probe=True)
    probe.meta.events.register("before-call", counter)
    try:
        inv.account_id = str(probe.get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as exc:
        inv.errors["sts"] = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        silent = aws.no_answer(exc)
        if silent:  # nothing would answer the next calls either (CLI review D32)
            inv.errors["sts"] = silent
            inv.unanswered = True
            inv.api_calls = counter.calls
            return inv
    if inv.account_id:
        try:
            resp = clients.get("s3control", region).get_public_access_block(
                AccountId=inv.account_id
            )
            inv.account_public_access_block = dict(resp["PublicAccessBlockConfiguration"])
        except ClientError as exc:
            if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
                inv.errors["account_public_access_block"] = _code(exc)
        except BotoCoreError as exc:
            inv.errors["account_public_access_block"] = type(exc).__name__
    try:
        names = [str(b["Name"]) for b in clients.get("s3", region).list_buckets()["Buckets"]]
    except (ClientError, BotoCoreError) as exc:
        inv.errors["list_buckets"] = (
            _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        )
        names = []
    if only is not None:
        wanted = set(only)
        names = [n for n in names if n in wanted]
    inv.buckets_elsewhere = sorted(
        n for n in names if n in elsewhere or (own is not None and n not in own)
    )
    names = [n for n in names if n not in elsewhere and (own is None or n in own)]

    def one(name: str) -> Bucket:
        bucket = _fetch_bucket(clients, name, inv, sample)
        _read_evidence(clients, bucket, inv, log_since)
        return bucket

    clients.get("s3", region)  # made once before the workers need it
    with ThreadPoolExecutor(max_workers=BUCKET_WORKERS) as pool:
        for bucket in pool.map(one, sorted(names)):  # in name order, whatever finishes first
            if "location" in bucket.errors:
                inv.errors[bucket.name] = bucket.errors["location"]
            inv.buckets.append(bucket)
    regions = {b.region for b in inv.buckets if b.region}
    if policies.audits_account:  # the default region's keys too (a key no bucket uses)
        regions.add(region or aws.default_region())
    inventory_kms.fetch_keys(clients.get, regions, inv, workers=BUCKET_WORKERS)
    inventory_kms.fetch_access_points(clients.get, regions, inv)
    inv.retention_scheduled_keys = inventory_kms.retention_scheduled_keys(retention_journal)
    inv.api_calls = counter.calls
    return inv
