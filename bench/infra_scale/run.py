"""Terraform plan and apply time, and resource count, for 1, 5 and 20 elections.

Real Terraform CLI and AWS provider against a fresh emulator per size (moto's
server over TLS on 127.0.0.1). Elections are fictitious, spread over the
allowed EU regions. Writes infra_scale.json into --out.

    python bench/infra_scale/run.py --out bench/results [--sizes 1 5 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "agents"))

from isoloir.controller.emulator import Emulator  # noqa: E402
from isoloir.controller.infra.targets import local_target  # noqa: E402
from isoloir.policy.loader import load_policies  # noqa: E402
from isoloir.policy.render import terraform_vars  # noqa: E402

REGIONS = ["eu-west-3", "eu-west-1", "eu-central-1"]


def tfvars_for(n: int) -> dict[str, Any]:
    data = terraform_vars(load_policies(REPO / "policies"))
    slug = data["org_slug"]
    data["allowed_regions"] = REGIONS
    people = data["people"]
    data["elections"] = {
        f"bench-{i:02d}": {
            "label": f"Election fictive {i}",
            "region": REGIONS[i % len(REGIONS)],
            "bucket_name": f"{slug}-bench-{i:02d}",
            "retention_date": "2027-06-30",
            "legal_hold": False,
            "members": [people[i % len(people)]],
            "dataset_prefixes": ["prospects/"],
        }
        for i in range(n)
    }
    return data


def measure(n: int, quiet: bool) -> dict[str, Any]:
    def log(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix=f"isoloir-bench-infra-{n}-") as tmp:
        work = Path(tmp)
        emu = Emulator.start(work / "emulator")
        try:
            tfvars = tfvars_for(n)
            vars_path = work / "terraform.tfvars.json"
            vars_path.write_text(json.dumps(tfvars), encoding="utf-8")
            target = local_target(work, tfvars, log, create_hosts=False, emulator=emu)
            tf = target.terraform(log=log)
            t0 = time.monotonic()
            tf.init()
            init_s = time.monotonic() - t0
            files = [vars_path, *target.var_files]
            t0 = time.monotonic()
            _, summary = tf.plan(files, work / "bench.tfplan")
            plan_s = time.monotonic() - t0
            t0 = time.monotonic()
            tf.apply(work / "bench.tfplan")
            apply_s = time.monotonic() - t0
            t0 = time.monotonic()
            code, again = tf.plan(files, work / "again.tfplan")
            replan_s = time.monotonic() - t0
            resources = len(tf.state_addresses())
        finally:
            emu.stop()
    return {
        "elections": n,
        "regions": len({e["region"] for e in tfvars["elections"].values()}),
        "planned_adds": summary.add,
        "resources_in_state": resources,
        "init_seconds": round(init_s, 1),
        "plan_seconds": round(plan_s, 1),
        "apply_seconds": round(apply_s, 1),
        "no_change_plan_seconds": round(replan_s, 1),
        "second_plan_changes": again.add + again.change + again.destroy,
        "second_plan_exit_code": code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for infra_scale.json")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--verbose", action="store_true", help="stream Terraform's output")
    args = parser.parse_args(argv)
    results = []
    for n in args.sizes:
        row = measure(n, quiet=not args.verbose)
        print(json.dumps(row), flush=True)
        results.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "infra_scale",
        "what": "terraform plan/apply of infra/ against the emulator (hosts not created)",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "results": results,
    }
    path = args.out / "infra_scale.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
