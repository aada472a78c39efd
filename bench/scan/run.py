"""Benchmark of the exposure scan; writes DIR/scan.json.

- files per second of the share walk on a 200,000-file tree, against
  `find ROOT -perm -o+r` on the same (warm) tree; goal: at least half of find's rate;
- peak RSS of `isoloir scan --shares` on that tree (goal <= 80 MB), measured
  with wait4() on the child process;
- S3 API calls for a bucket of 10 and of 10,000 objects with ACLs disabled,
  counted with botocore's before-call event (goal: the same for both).

Then, unless --no-scale, bench/scan/scale.py (577 elections, 3,000 IAM users:
`isoloir scan --s3 --identity` on the emulator) writes DIR/scan_scale.json.

Usage: python bench/scan/run.py --out DIR [--files N] [--objects N] [--no-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "agents"))

ELECTION = "exempleville-2027"
PER_DIR = 1000
CONTACTS = b"nom;email;telephone\n" + b"".join(
    b"Nom%d;n%d@example.org;06 00 00 %02d %02d\n" % (i, i, i // 100, i % 100) for i in range(30)
)


def build_tree(root: Path, files: int) -> dict[str, int]:
    """`files` files in directories of 1,000; 1 in 200 is world-readable (CSV with contacts)."""
    share = root / ELECTION
    world = 0
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for d in range((files + PER_DIR - 1) // PER_DIR):
        sub = share / f"d{d // 20:03d}" / f"lot{d:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        base = os.fsencode(sub) + b"/"
        for i in range(min(PER_DIR, files - d * PER_DIR)):
            n = d * PER_DIR + i
            if n % 200 == 0:
                fd = os.open(base + b"f%06d.csv" % n, flags, 0o644)
                os.write(fd, CONTACTS)
                world += 1
            else:
                fd = os.open(base + b"f%06d.dat" % n, flags, 0o640)
            os.close(fd)
    return {"files": files, "world_readable": world}


def wait_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit status) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


WALK = """
import os, sys, time
sys.path.insert(0, sys.argv[2])
from isoloir.exposure import inventory_shares
from isoloir.exposure.model import ShareTree
inventory_shares.MAX_SAMPLES_PER_TREE = int(sys.argv[3])
t0 = time.perf_counter()
tree = inventory_shares.scan_tree(ShareTree(None, os.fsencode(sys.argv[1]), "g", None))
sampled = sum(1 for e in tree.entries if e.pii is not None)
print(tree.scanned_entries, len(tree.entries), time.perf_counter() - t0, sampled)
"""


def bench_walk(root: Path, rounds: int = 5) -> dict[str, float]:
    """Best of `rounds`, find / scan / walk alone interleaved so load spikes hit all three."""
    share = root / ELECTION
    subprocess.run(["find", str(share), "-perm", "-o+r"], stdout=subprocess.DEVNULL, check=True)

    def walk(samples: int) -> tuple[float, int, int, int]:
        out = subprocess.run(
            [sys.executable, "-c", WALK, str(share), str(ROOT / "agents"), str(samples)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return float(out[2]), int(out[0]), int(out[1]), int(out[3])

    finds, scans, bares = [], [], []
    for _ in range(rounds):
        finds.append(wait_rss(["find", str(share), "-perm", "-o+r"])[0])
        scans.append(walk(5000))  # as the agent runs: exposed files sampled
        bares.append(walk(0))  # the walk alone, no content sampled
    find_s = min(finds)
    walk_s, entries, kept, sampled = min(scans)
    bare_s = min(bares)[0]
    return {
        "entries": entries,
        "entries_kept": kept,
        "files_sampled": sampled,
        "scan_seconds": round(walk_s, 3),
        "scan_entries_per_second": round(entries / walk_s),
        "walk_only_seconds": round(bare_s, 3),
        "walk_only_entries_per_second": round(entries / bare_s),
        "find_seconds": round(find_s, 3),
        "find_entries_per_second": round(entries / find_s),
        "ratio_to_find": round(find_s / walk_s, 3),
        "walk_only_ratio_to_find": round(find_s / bare_s, 3),
        "goal_ratio_to_find": 0.5,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count() or 1,
    }


def bench_rss(root: Path, tmp: Path) -> dict[str, float | int]:
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    conf = tmp / "smb.conf"
    conf.write_text("[global]\n   server min protocol = SMB3\n")
    cmd = [
        sys.executable, "-m", "isoloir.cli", "scan", "--shares", "--config", str(ROOT / "policies"),
        "--share-root", str(root), "--smb-conf", str(conf), "--stray-path", str(empty),
        "--state-dir", str(tmp / "state"), "--format", "json",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "agents")}
    seconds, rss, code = wait_rss(cmd, env)
    return {"cli_seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1),
            "goal_peak_rss_mb": 80, "cli_exit": code}  # fmt: skip


def bench_s3(objects: int, tmp: Path) -> dict[str, object]:
    from isoloir import aws
    from isoloir.controller.emulator import Emulator
    from isoloir.exposure import inventory_s3
    from isoloir.policy import load_policies

    policies = load_policies(ROOT / "policies")
    calls: dict[str, int] = {}
    with Emulator.start(tmp / "emulator") as emu:
        os.environ.update(emu.env())
        s3 = aws.client("s3")
        for i, count in enumerate((10, objects)):
            name = f"bench-scan-{i}-{count}"
            s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
            )
            s3.put_bucket_ownership_controls(
                Bucket=name,
                OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            )

            def put(i: int, bucket: str = name) -> None:
                s3.put_object(Bucket=bucket, Key=f"prospects/f{i:06d}.csv", Body=b"x")

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(put, range(count)))
            inv = inventory_s3.fetch(policies, only=[name])
            calls[str(count)] = inv.api_calls
    return {
        "s3_api_calls_by_object_count": calls,
        "s3_calls_independent_of_objects": len(set(calls.values())) == 1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--no-scale", action="store_true", help="skip bench/scan/scale.py")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="isoloir-bench-scan-"))
    try:
        root = tmp / "shares"
        t0 = time.perf_counter()
        result: dict[str, object] = dict(build_tree(root, args.files))
        result["build_seconds"] = round(time.perf_counter() - t0, 1)
        result.update(bench_walk(root))
        result.update(bench_rss(root, tmp))
        result.update(bench_s3(args.objects, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["goals_met"] = {
        "rate": float(result["ratio_to_find"]) >= 0.5,  # type: ignore[arg-type]
        "rss": float(result["peak_rss_mb"]) <= 80,  # type: ignore[arg-type]
        "s3_calls": bool(result["s3_calls_independent_of_objects"]),
    }
    (out / "scan.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not args.no_scale:  # its own process: the emulator's environment stays its own
        scale = Path(__file__).with_name("scale.py")
        done = subprocess.run([sys.executable, str(scale), "--out", str(out)], check=False)
        return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
