"""Terraform at a national party's scale: 100 and 577 elections (issue 21, N9).

For each size, against a fresh emulator (moto's server over TLS on 127.0.0.1),
with the real Terraform CLI and AWS provider, through the deploy's own
Terraform step, in the split layout by default (ISOLOIR_TF_LAYOUT=split,
`isoloir.controller.infra.roots`; `--batches` per region, `--concurrency` root
instances at a time):

- first apply: init, plan and apply of every root instance from an empty account;
- resources: the managed resources in the states afterwards;
- no-change deploy: the same inputs again (every instance skipped: no plan, no
  refresh, only the digests of its inputs);
- add one election: one more election in the variables (only the batch that
  takes it is planned and applied);
- per root instance: resources, changes, seconds, and which instances each
  converge planned.

`--layout single` measures the single root `infra/` instead
(`isoloir.controller.infra.inputs.converge`: one state, refreshed whole when an
election is added; `--refresh-plan` also times a no-change plan with a full
refresh, the cost the skip avoids; slow at 577).

Hosts are not created (`create_hosts=false`: the emulator runs no instance);
elections are fictitious, spread over the three allowed EU regions; people are
the example policies' plus `--people N` fictitious ones (default 3,000, a
national party), each election listing its share of them (at least two).
Writes DIR/infra_scale_split.json (DIR/infra_scale.json with --layout single),
one row per size.

    python bench/infra_scale/run.py --out bench/results            # 100 and 577, split
    python bench/infra_scale/run.py --out bench/results --sizes 6 --batches 2 --people 0
    python bench/infra_scale/run.py --out bench/results --sizes 20 --layout single
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "agents"))

from isoloir.controller.emulator import Emulator  # noqa: E402
from isoloir.controller.infra import roots  # noqa: E402
from isoloir.controller.infra.inputs import converge  # noqa: E402
from isoloir.controller.infra.targets import local_target  # noqa: E402
from isoloir.policy.loader import load_policies  # noqa: E402
from isoloir.policy.render import terraform_vars  # noqa: E402

REGIONS = ["eu-west-3", "eu-west-1", "eu-central-1"]
DEFAULT_SIZES = [100, 577]
DEFAULT_PEOPLE = 3000


def tfvars_for(n: int, people: int = 0) -> dict[str, Any]:
    """The example policies' variables with `n` fictitious elections (and
    `people` more fictitious people, when given)."""
    data = terraform_vars(load_policies(REPO / "policies"))
    slug = data["org_slug"]
    suffix = f"-{data['bucket_suffix']}" if data.get("bucket_suffix") else ""
    data["allowed_regions"] = REGIONS
    if people:
        data["people"] = sorted({*data["people"], *(f"militant{i:04d}" for i in range(people))})
    members = data["people"]
    # each election lists its share of the people (577 constituencies, 3,000 people:
    # five each), at least two
    per = max(2, len(members) // max(n, 1))
    data["elections"] = {
        f"bench-{i:03d}": {
            "label": f"Election fictive {i}",
            "region": REGIONS[i % len(REGIONS)],
            "bucket_name": f"{slug}-bench-{i:03d}{suffix}",
            "retention_date": "2027-06-30",
            "legal_hold": False,
            "members": sorted({members[(i * per + j) % len(members)] for j in range(per)}),
            "dataset_prefixes": ["prospects/"],
        }
        for i in range(n)
    }
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def measure(n: int, *, people: int, refresh_plan: bool, quiet: bool) -> dict[str, Any]:
    def log(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    row: dict[str, Any] = {"elections": n}
    with tempfile.TemporaryDirectory(prefix=f"isoloir-bench-infra-{n}-") as tmp:
        work = Path(tmp)
        emu = Emulator.start(work / "emulator", timeout=120)
        try:
            tfvars = tfvars_for(n, people)
            row["people"] = len(tfvars["people"])
            row["regions"] = len({e["region"] for e in tfvars["elections"].values()})
            vars_path = work / "terraform.tfvars.json"
            _write(vars_path, tfvars)
            target = local_target(work, tfvars, log, create_hosts=False, emulator=emu)
            tf = target.terraform(log=log)
            files = [vars_path, *target.var_files]
            plan = work / "bench.tfplan"

            t0 = time.monotonic()
            first = converge(tf, files, plan, show=log, force=False)
            row["first_apply_seconds"] = round(time.monotonic() - t0, 1)
            row["first_apply_changes"] = first.changes
            row["resources_in_state"] = len(tf.state_addresses())

            t0 = time.monotonic()
            same = converge(tf, files, plan, show=log, force=False)
            row["no_change_deploy_seconds"] = round(time.monotonic() - t0, 3)
            row["no_change_deploy_skipped"] = same.skipped

            if refresh_plan:
                t0 = time.monotonic()
                code, again = tf.plan(files, work / "again.tfplan")
                row["no_change_refresh_plan_seconds"] = round(time.monotonic() - t0, 1)
                row["no_change_refresh_plan_changes"] = again.add + again.change + again.destroy

            more = tfvars_for(n + 1, people)
            _write(vars_path, more)
            t0 = time.monotonic()
            added = converge(tf, files, plan, show=log, force=False)
            row["add_one_election_seconds"] = round(time.monotonic() - t0, 1)
            row["add_one_election_changes"] = added.changes
            row["add_one_election_skipped"] = added.skipped
        finally:
            emu.stop()
    return row


def _roots(done: roots.SplitConverged, layout: roots.SplitLayout | None = None) -> dict[str, Any]:
    """Per root instance: skipped, changes, seconds (and resources after an apply)."""
    out: dict[str, Any] = {}
    for r in done.results:
        row: dict[str, Any] = {
            "skipped": r.skipped,
            "changes": r.changes,
            "seconds": r.seconds,
            "plan_seconds": r.plan_seconds,
        }
        if layout is not None:
            row["resources"] = layout.resources(r.instance)
        out[r.instance.name] = row
    return out


def measure_split(
    n: int, *, people: int, batches: int, workers: int, quiet: bool
) -> dict[str, Any]:
    """The split layout's figures for `n` elections (see the module's docstring)."""

    def log(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    row: dict[str, Any] = {
        "elections": n,
        "layout": "split",
        "batches_per_region": batches,
        "concurrency": workers,
    }
    with tempfile.TemporaryDirectory(prefix=f"isoloir-bench-split-{n}-") as tmp:
        work = Path(tmp)
        emu = Emulator.start(work / "emulator", timeout=120)
        try:
            tfvars = tfvars_for(n, people)
            row["people"] = len(tfvars["people"])
            row["regions"] = len({e["region"] for e in tfvars["elections"].values()})
            vars_path = work / "terraform.tfvars.json"
            _write(vars_path, tfvars)
            target = local_target(work, tfvars, log, create_hosts=False, emulator=emu)
            layout = roots.split_layout(target, log=log, show=print if not quiet else log)
            layout.batches, layout.workers, layout.force = batches, workers, False
            files = [vars_path, *target.var_files]

            t0 = time.monotonic()
            first = layout.converge(files)
            row["first_apply_seconds"] = round(time.monotonic() - t0, 1)
            row["first_apply_changes"] = first.changes
            row["first_apply_roots"] = _roots(first, layout)
            row["root_instances"] = len(first.results)
            row["resources_in_state"] = sum(
                v["resources"] for v in row["first_apply_roots"].values()
            )

            t0 = time.monotonic()
            same = layout.converge(files)
            row["no_change_deploy_seconds"] = round(time.monotonic() - t0, 3)
            row["no_change_deploy_skipped"] = same.skipped
            row["no_change_deploy_planned"] = same.planned()

            _write(vars_path, tfvars_for(n + 1, people))
            t0 = time.monotonic()
            added = layout.converge(files)
            row["add_one_election_seconds"] = round(time.monotonic() - t0, 1)
            row["add_one_election_changes"] = added.changes
            row["add_one_election_planned"] = added.planned()
            row["add_one_election_roots"] = {
                k: v for k, v in _roots(added, layout).items() if not v["skipped"]
            }
        finally:
            emu.stop()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for infra_scale.json")
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument(
        "--people",
        type=int,
        default=DEFAULT_PEOPLE,
        help=f"fictitious people to add (default {DEFAULT_PEOPLE}, a national party)",
    )
    parser.add_argument(
        "--refresh-plan",
        action="store_true",
        help="also time a no-change plan with a full refresh (what the skip avoids)",
    )
    parser.add_argument("--verbose", action="store_true", help="stream Terraform's output")
    parser.add_argument(
        "--layout",
        choices=roots.LAYOUTS,
        default="split",
        help="split: infra/roots/ (default, ISOLOIR_TF_LAYOUT=split); single: infra/",
    )
    parser.add_argument(
        "--batches", type=int, default=roots.DEFAULT_BATCHES, help="split: batches per region"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=roots.DEFAULT_CONCURRENCY,
        help="split: root instances planned/applied at a time",
    )
    args = parser.parse_args(argv)
    results = []
    for n in args.sizes:
        if args.layout == "split":
            row = measure_split(
                n,
                people=args.people,
                batches=args.batches,
                workers=args.concurrency,
                quiet=not args.verbose,
            )
        else:
            row = measure(
                n, people=args.people, refresh_plan=args.refresh_plan, quiet=not args.verbose
            )
        print(json.dumps(row), flush=True)
        results.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "infra_scale",
        "what": (
            "the deploy's Terraform step (infra.inputs.converge on infra/, or with --layout "
            "split infra.roots on infra/roots/) against the emulator, hosts not created: "
            "first apply, no-change deploy, one more election"
        ),
        "layout": args.layout,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "results": results,
    }
    path = args.out / ("infra_scale.json" if args.layout == "single" else "infra_scale_split.json")
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
