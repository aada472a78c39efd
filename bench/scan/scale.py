"""`isoloir scan` at a national party's scale (issue 21): 577 elections, 3,000 IAM users.

On the emulator (moto's server over TLS on 127.0.0.1), staged with boto3 as
the deploy leaves an account (much faster than Terraform, same API surface for
the scan): per election a bucket with SSE-KMS under its own key (rotation on),
versioning, public access block, BucketOwnerEnforced, one object and access
logs to its region's log bucket (no lifecycle rule and no TLS-only policy: the
findings those raise are part of the measured work); 3,000 IAM users, each
with a login profile, named as the people of a generated policies directory (so
they are declared). Elections spread over the three allowed EU regions.

Then the real CLI, in a child process, as an administrator runs it:
`isoloir scan --s3 --identity --config DIR --format json` (one host serving
every election, the worst case; `--host-region R` serves one region's, as the
agents on that region's host do with /etc/isoloir/host.json: the default
region's host also audits the account, another region's host does not).
Measured: wall seconds, exit code, findings, peak RSS. Goal: under 120 s for
every election and the account from one process.
Writes DIR/scan_scale.json.

    python bench/scan/scale.py --out bench/results [--elections 577] [--users 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "agents"))

REGIONS = ["eu-west-3", "eu-west-1", "eu-central-1"]
GOAL_SECONDS = 120
EXAMPLE = "exempleville-2027"
THREADS = 16


def election_id(i: int) -> str:
    return f"circo-{i:03d}"


def write_policies(dest: Path, elections: int, users: int) -> Path:
    """The example policies with `elections` elections and `users` people."""
    root = dest / "policies"
    shutil.copytree(ROOT / "policies", root)
    base = root / "baseline.yml"
    text = base.read_text(encoding="utf-8")
    people = "".join(
        f"  - id: militant{i:04d}\n    name: Militant Fictif {i}\n"
        f"    email: militant{i:04d}@mouvement-exemple.example\n"
        for i in range(users)
    )
    marker = "\npeople:\n"
    assert marker in text, "the example baseline no longer has a people: list"
    text = text.replace(marker, marker + people, 1)
    base.write_text(text, encoding="utf-8")
    example = (root / "elections" / f"{EXAMPLE}.yml").read_text(encoding="utf-8")
    (root / "elections" / f"{EXAMPLE}.yml").unlink()
    for i in range(elections):
        eid = election_id(i)
        body = example.replace(f"id: {EXAMPLE}\n", f"id: {eid}\nregion: {REGIONS[i % 3]}\n", 1)
        (root / "elections" / f"{eid}.yml").write_text(body, encoding="utf-8")
    return root


def stage(policies_dir: Path, threads: int) -> dict[str, Any]:
    """The account as the deploy leaves it, for the scan to read."""
    from isoloir import aws
    from isoloir.policy import load_policies

    p = load_policies(policies_dir)
    t0 = time.monotonic()
    logs: dict[str, str] = {}
    for region in REGIONS:
        # named as infra/modules/region names them (declared, not shadow storage)
        name = p.baseline.log_bucket_names[region]
        aws.client("s3", region).create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
        )
        # the server access logs' delivery, as the region module's log bucket allows it
        aws.client("s3", region).put_bucket_policy(
            Bucket=name,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "S3ServerAccessLogs",
                            "Effect": "Allow",
                            "Principal": {"Service": "logging.s3.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": f"arn:aws:s3:::{name}/*",
                        }
                    ],
                }
            ),
        )
        logs[region] = name

    def bucket(i: int) -> None:
        e = p.elections[i]
        s3 = aws.client("s3", e.region)
        kms = aws.client("kms", e.region)
        key = kms.create_key(
            Description=f"isoloir {e.id}", Tags=[{"TagKey": "isoloir:election", "TagValue": e.id}]
        )["KeyMetadata"]["Arn"]
        kms.enable_key_rotation(KeyId=key)
        s3.create_bucket(
            Bucket=e.bucket_name, CreateBucketConfiguration={"LocationConstraint": e.region}
        )
        s3.put_public_access_block(
            Bucket=e.bucket_name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_ownership_controls(
            Bucket=e.bucket_name,
            OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        )
        s3.put_bucket_versioning(
            Bucket=e.bucket_name, VersioningConfiguration={"Status": "Enabled"}
        )
        s3.put_bucket_encryption(
            Bucket=e.bucket_name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        s3.put_bucket_logging(
            Bucket=e.bucket_name,
            BucketLoggingStatus={
                "LoggingEnabled": {"TargetBucket": logs[e.region], "TargetPrefix": f"{e.id}/"}
            },
        )
        s3.put_object(Bucket=e.bucket_name, Key="prospects/lot-1.csv", Body=b"nom;email\n")

    def user(person: str) -> None:
        iam = aws.client("iam")
        iam.create_user(UserName=person, Path="/isoloir/")
        iam.create_login_profile(
            UserName=person, Password="Fictif-" + person + "-0199!", PasswordResetRequired=True
        )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(bucket, range(len(p.elections))))
        list(pool.map(user, [x.id for x in p.baseline.people if x.id.startswith("militant")]))
    return {
        "buckets": len(p.elections) + len(logs),
        "kms_keys": len(p.elections),
        "iam_users": sum(1 for x in p.baseline.people if x.id.startswith("militant")),
        "stage_seconds": round(time.monotonic() - t0, 1),
    }


def scan(
    policies_dir: Path, work: Path, env: dict[str, str], host_file: Path | None
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "isoloir.cli", "scan", "--s3", "--identity",
        "--config", str(policies_dir), "--state-dir", str(work / "state"),
        "--format", "json", "--group-file", str(work / "group"),
        "--passwd-file", str(work / "passwd"),
    ]  # fmt: skip
    (work / "group").write_text("root:x:0:\n")
    (work / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    child_env = {**env, "PYTHONPATH": str(ROOT / "agents")}
    if host_file is not None:
        child_env["ISOLOIR_HOST_FILE"] = str(host_file)
    out_path, err_path = work / "scan.out", work / "scan.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=child_env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    findings = []
    for line in out_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("type") != "action":
            findings.append(item)
    return {
        "scan_seconds": round(seconds, 1),
        "scan_exit": proc.returncode,
        "findings": len(findings),
        "findings_by_rule": _count(f.get("rule_id", "?") for f in findings),
        "stderr_lines": len(err_path.read_bytes().splitlines()),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def _bucket_workers() -> int:
    from isoloir.exposure import inventory_s3

    return inventory_s3.BUCKET_WORKERS


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    from isoloir.controller.emulator import Emulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--elections", type=int, default=577)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=THREADS, help="staging threads")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="isoloir-bench-scan-scale-"))
    result: dict[str, Any] = {"elections": args.elections, "iam_users_requested": args.users}
    try:
        policies = write_policies(tmp, args.elections, args.users)
        with Emulator.start(tmp / "emulator", timeout=120) as emu:
            env = {**os.environ, **emu.env()}
            os.environ.update(emu.env())
            result.update(stage(policies, args.threads))
            result["all_elections"] = scan(policies, tmp, env, None)
            # a region's host: its region's elections only (N4); the default
            # region's host also audits the account (IAM, undeclared buckets),
            # the others do not (host.json "account_audit")
            host = tmp / "host.json"
            for label, region, account in (
                ("account_host", "eu-west-3", True),
                ("region_host", "eu-west-1", False),
            ):
                ids = [election_id(i) for i in range(args.elections) if REGIONS[i % 3] == region]
                host.write_text(json.dumps({"elections": ids, "account_audit": account}))
                result[label] = {
                    "region": region,
                    "elections": len(ids),
                    "account_audit": account,
                    **scan(policies, tmp, env, host),
                }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["goal_seconds"] = GOAL_SECONDS
    result["goal_met"] = result["all_elections"]["scan_seconds"] <= GOAL_SECONDS
    result["scan_workers"] = _bucket_workers()
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "scan_scale.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
