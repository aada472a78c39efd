"""`isoloir infra plan|apply|destroy|migrate --target local|aws [--rendered DIR]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from isoloir.controller.infra import migrate, roots
from isoloir.controller.infra.runner import TerraformError, default_run_dir, stderr_log
from isoloir.controller.infra.targets import (
    Target,
    aws_target,
    load_tfvars,
    local_target,
    set_account_public_access_block,
    stop_recorded_emulator,
)

EXIT_OK = 0
EXIT_ERROR = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "infra",
        help="provision the cloud side with Terraform (local emulator or AWS)",
        description="Run Terraform on infra/ with the variables `isoloir policy render` wrote.",
    )
    sub = parser.add_subparsers(dest="infra_command", metavar="ACTION", required=True)
    for action, text in (
        ("plan", "show what would change (adds, changes, destroys)"),
        ("apply", "plan, then apply that plan"),
        ("destroy", "destroy everything this configuration created"),
        ("migrate", "move the single root's state into the split layout's states, once"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument("--target", choices=("local", "aws"), default="local")
        p.add_argument(
            "--rendered",
            type=Path,
            default=default_run_dir() / "rendered",
            help="directory written by `isoloir policy render --out` (default .run/rendered)",
        )
        p.add_argument("--run-dir", type=Path, default=default_run_dir(), help=argparse.SUPPRESS)
        p.add_argument(
            "--hosts",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="create the file-share EC2 hosts (default: yes on aws; no on local, where "
            "the sandbox host serves the shares)",
        )
        p.add_argument("--var-file", type=Path, help="extra Terraform variables (aws target)")
        if action == "migrate":
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="print the mapping's counts per root instance; write nothing",
            )
        p.set_defaults(func=lambda args, a=action: run(a, args))
    stop = sub.add_parser("emulator-stop", help="stop the emulator the local target started")
    stop.add_argument("--run-dir", type=Path, default=default_run_dir(), help=argparse.SUPPRESS)
    stop.set_defaults(func=_emulator_stop)


def _emulator_stop(args: argparse.Namespace) -> int:
    pid = stop_recorded_emulator(args.run_dir)
    print("no emulator recorded" if pid is None else f"emulator (pid {pid}) stopped")
    return EXIT_OK


def _target(args: argparse.Namespace, tfvars: dict[str, Any]) -> Target:
    if args.target == "local":
        return local_target(args.run_dir, tfvars, stderr_log, create_hosts=bool(args.hosts))
    return aws_target(args.run_dir, args.var_file, create_hosts=args.hosts is not False)


def run(action: str, args: argparse.Namespace) -> int:
    try:
        tfvars = load_tfvars(args.rendered)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, OSError) as exc:  # not UTF-8, not JSON, unreadable (D19)
        why = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 JSON ({exc})"
        shown = args.rendered / "terraform" / "terraform.tfvars.json"
        print(f"error: {shown}: {why}; re-run `isoloir policy render`", file=sys.stderr)
        return EXIT_ERROR
    tfvars_path = args.rendered / "terraform" / "terraform.tfvars.json"
    try:
        split = roots.layout() == "split"
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    target = _target(args, tfvars)
    if action == "migrate":
        return _migrate(target, [tfvars_path, *target.var_files], dry_run=args.dry_run)
    try:
        roots.refuse_mixed_layouts("split" if split else "single", target.state_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if split:
        return _run_split(action, target, [tfvars_path, *target.var_files])
    tf = target.terraform(log=stderr_log)
    var_files = [tfvars_path, *target.var_files]
    plan_file = target.state_dir / "tfplan"
    try:
        tf.init()
        if action == "destroy":
            tf.destroy(var_files)
            print(f"destroyed ({target.name})")
            return EXIT_OK
        _, summary = tf.plan(var_files, plan_file)
        print(summary.line())
        for address, actions in sorted(summary.addresses.items()):
            print(f"  {'/'.join(actions):16} {address}")
        if action == "apply":
            if summary.changed:
                tf.apply(plan_file)
            if target.name == "local":
                set_account_public_access_block(target.env)
            outputs = tf.output()
            out_path = target.state_dir / "outputs.json"
            out_path.write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n", "utf-8")
            print(f"applied ({target.name}); outputs in {out_path}")
    except TerraformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        plan_file.unlink(missing_ok=True)
    return EXIT_OK


def _run_split(action: str, target: Target, var_files: list[Path]) -> int:
    """ISOLOIR_TF_LAYOUT=split: the roots of infra/roots/ (infra/roots.py)."""
    layout = roots.split_layout(target, log=stderr_log, show=print)
    try:
        if action == "destroy":
            done = layout.destroy()
            print(f"destroyed {len(done)} root instance(s) ({target.name})")
            return EXIT_OK
        result = layout.converge(var_files, apply=action == "apply")
        print(result.summary.line())
        if action == "apply":
            if target.name == "local":
                set_account_public_access_block(target.env)
            out_path = target.state_dir / "outputs.json"
            text = json.dumps(result.outputs, indent=2, sort_keys=True) + "\n"
            out_path.write_text(text, "utf-8")
            print(f"applied ({target.name}); outputs in {out_path}")
    except (TerraformError, roots.RootsError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _migrate(target: Target, var_files: list[Path], *, dry_run: bool) -> int:
    """The single root's state into the split layout's (infra/migrate.py). Terraform's
    own lines, which name people's users, go to a log file, not the terminal."""
    log_path = target.state_dir / "migrate.log"
    with log_path.open("a", encoding="utf-8") as log_file:

        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        try:
            report = migrate.migrate(target, var_files, dry_run=dry_run, log=log, show=print)
        except (
            migrate.MigrationError,
            TerraformError,
            roots.RootsError,
            ValueError,
            OSError,
        ) as exc:
            print(f"error: {exc}", file=sys.stderr)
            print(f"Terraform's output: {log_path}", file=sys.stderr)
            return EXIT_ERROR
    for line in report.lines():
        print(line)
    if not dry_run:
        print("set ISOLOIR_TF_LAYOUT=split for every later deploy of this target")
    return EXIT_OK
