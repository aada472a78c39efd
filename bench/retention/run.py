"""Retention purge benchmark: the agent's batched purge against a plain boto3 loop.

Seeds two buckets on the emulator (moto over TLS, started here unless
ISOLOIR_AWS_ENDPOINT names one) with the same N objects x 3 versions, then:
  - agent: `Purger.run()` for a due election whose campaign dataset holds them
    (journal, DeleteObjects with up to 1,000 keys, certificate);
  - plain: list the versions, then one DeleteObject call per version.
Counts the API requests of each with botocore's event hooks and writes
DIR/retention.json. The emulator's speed is not AWS's; the request counts are
what carries over.

    python bench/retention/run.py --out bench/results [--objects 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "agents"))

from isoloir import aws  # noqa: E402
from isoloir.controller.emulator import Emulator  # noqa: E402
from isoloir.policy import load_policies  # noqa: E402
from isoloir.retention.purge import Purger  # noqa: E402

REGION = "eu-west-3"
VERSIONS = 3


def client(service: str) -> Any:
    kwargs = aws.client_kwargs(service)
    kwargs["config"] = kwargs["config"].merge(Config(max_pool_connections=32))
    return aws.session(REGION).client(service, region_name=REGION, **kwargs)


def counted(c: Any) -> Counter[str]:
    calls: Counter[str] = Counter()

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    c.meta.events.register("before-call.*.*", hook)
    return calls


def seed(s3: Any, kms: Any, bucket: str, objects: int) -> None:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key_id = kms.create_key(Description=f"bench {bucket}")["KeyMetadata"]["KeyId"]
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_id,
                    }
                }
            ]
        },
    )

    # Plain PUTs over kept-alive TLS connections: the emulator does not check
    # signatures while authentication is off, and seeding is not what is measured.
    endpoint = urllib.parse.urlsplit(os.environ["ISOLOIR_AWS_ENDPOINT"])
    ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    local = threading.local()
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAISOLOIREMULATOR0/20260601/"
        f"{REGION}/s3/aws4_request, SignedHeaders=host, Signature={'0' * 64}",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    }

    def put(i: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPSConnection(endpoint.hostname, endpoint.port, context=ctx)
        for v in range(VERSIONS):
            local.conn.request(
                "PUT", f"/{bucket}/prospects/{i:06d}.txt", body=f"{v}".encode(), headers=headers
            )
            response = local.conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"seeding failed: HTTP {response.status}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(objects)))


def policies_dir(root: Path, bucket: str) -> Path:
    text = (REPO / "policies" / "baseline.yml").read_text(encoding="utf-8")
    text = text.replace("path: /srv/isoloir/contacts", f"path: {root / 'contacts'}")
    text = text.replace("share_root: /srv/elections", f"share_root: {root / 'shares'}")
    (root / "policies" / "elections").mkdir(parents=True)
    (root / "policies" / "baseline.yml").write_text(text, encoding="utf-8")
    (root / "policies" / "elections" / "bench-2026.yml").write_text(
        "id: bench-2026\nlabel: Banc d'essai\nkind: municipales\n"
        "rounds: [2026-03-15, 2026-03-22]\nretention:\n  date: 2026-05-22\n"
        f"members: [cfictive]\nbucket: {bucket}\ndatasets:\n"
        "  - name: prospects\n    bucket_prefix: prospects/\n    share_path: prospects\n"
        "    origin: electoral_roll\n    legal_basis: legitimate_interest\n"
        "    category: campaign\n    no_opt_outs: objets de mesure, aucune personne\n",
        encoding="utf-8",
    )
    return root / "policies"


def bench_agent(root: Path, bucket: str, total: int) -> dict[str, Any]:
    s3, kms = client("s3"), client("kms")
    calls = counted(s3)
    policies = load_policies(policies_dir(root, bucket))
    purger = Purger(
        policies,
        policies.election("bench-2026"),
        state_dir=root / "state",
        secrets_dir=root / "secrets",
        s3=s3,
        kms=kms,
    )
    start = time.perf_counter()
    outcome = purger.run()
    seconds = time.perf_counter() - start
    totals = outcome.document["certificate"]["totals"]
    assert totals["versions"] == total, totals
    return {
        "seconds": round(seconds, 3),
        "versions_per_second": round(total / seconds, 1),
        "objects_per_second": round(totals["objects"] / seconds, 1),
        "delete_objects_requests": calls["DeleteObjects"],
        "list_object_versions_requests": calls["ListObjectVersions"],
        "all_s3_requests": sum(calls.values()),
        "minimum_delete_requests": math.ceil(total / 1000),
        "includes": "journal, certificate signing, KMS key scheduling",
    }


def bench_plain(bucket: str, total: int) -> dict[str, Any]:
    s3 = client("s3")
    calls = counted(s3)
    start = time.perf_counter()
    versions: list[tuple[str, str]] = []
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix="prospects/"
    ):
        versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        versions += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
    for key, vid in versions:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=vid)
    seconds = time.perf_counter() - start
    assert len(versions) == total
    return {
        "seconds": round(seconds, 3),
        "versions_per_second": round(total / seconds, 1),
        "objects_per_second": round(total / VERSIONS / seconds, 1),
        "delete_object_requests": calls["DeleteObject"],
        "list_object_versions_requests": calls["ListObjectVersions"],
        "all_s3_requests": sum(calls.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for retention.json")
    parser.add_argument("--objects", type=int, default=10_000, help="objects (x3 versions)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = args.objects * VERSIONS

    with tempfile.TemporaryDirectory(prefix="isoloir-bench-retention-") as tmp:
        root = Path(tmp)
        emu = Emulator.from_env()
        owned = emu is None
        if emu is None:
            emu = Emulator.start(root / "emulator")
            os.environ.update(emu.env())
        os.environ["ISOLOIR_NOW"] = "2026-06-01T04:00:00+00:00"
        os.environ["ISOLOIR_SECRETS_DIR"] = str(root / "secrets")
        try:
            tag = os.urandom(4).hex()
            agent_bucket, plain_bucket = (
                f"mouvement-exemple-bench-{tag}-agent",
                f"bench-{tag}-plain",
            )
            s3, kms = client("s3"), client("kms")
            t0 = time.perf_counter()
            seed(s3, kms, agent_bucket, args.objects)
            seed(s3, kms, plain_bucket, args.objects)
            seeding = time.perf_counter() - t0
            agent = bench_agent(root, agent_bucket, total)
            plain = bench_plain(plain_bucket, total)
        finally:
            if owned:
                emu.stop()
    result = {
        "benchmark": "retention purge",
        "objects": args.objects,
        "versions_per_object": VERSIONS,
        "versions_total": total,
        "agent": agent,
        "plain_boto3_loop": plain,
        "speedup": round(plain["seconds"] / agent["seconds"], 2),
        "request_ratio": round(plain["all_s3_requests"] / agent["all_s3_requests"], 1),
        "seeding_seconds": round(seeding, 1),
        "emulator": "moto server over TLS on 127.0.0.1",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    path = out / "retention.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
