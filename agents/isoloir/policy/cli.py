"""`isoloir policy validate|render|show`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from isoloir import clock
from isoloir.policy import render
from isoloir.policy.loader import PolicyError, load_policies
from isoloir.policy.model import Policies
from isoloir.policy.outfiles import WriteError

EXIT_INVALID = 2


def _report(exc: PolicyError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    count = len(exc.problems)
    print(
        f"{count} problem{'s' if count != 1 else ''} found; nothing was changed.",
        file=sys.stderr,
    )


def _load(directory: str, target: str = "local") -> Policies | None:
    try:
        return load_policies(directory, target=target)
    except PolicyError as exc:
        _report(exc)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    p = _load(args.dir, args.target)
    if p is None:
        return EXIT_INVALID
    for warning in render.opt_in_warnings(p):
        print(warning, file=sys.stderr)
    print(f"{args.dir}: valid ({len(p.elections)} election(s), {len(p.baseline.people)} people)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    p = _load(args.policies, args.target)
    if p is None:
        return EXIT_INVALID
    try:
        written = render.write(p, Path(args.out))
    except PolicyError as exc:
        _report(exc)
        return EXIT_INVALID
    except WriteError as exc:
        print(f"render: {exc}; nothing was written", file=sys.stderr)
        return EXIT_INVALID
    for path in written:
        print(f"wrote {path}")
    return 0


def show_text(p: Policies) -> str:
    today = clock.today()
    org = p.baseline.organisation
    pw = p.baseline.passwords
    lines = [
        f"{org.party} — data controller: {org.controller_name}",
        f"regions: {', '.join(p.baseline.regions.allowed)} (default {p.baseline.regions.default})",
        f"passwords: {pw.min_length}+ characters from {pw.min_classes} classes "
        f"({pw.entropy_bits:.0f} bits, profile {pw.profile}); MFA: {p.baseline.mfa.method}",
        "",
    ]
    header = ("election", "kind", "rounds", "retention due", "days left", "legal hold")
    rows: list[tuple[str, ...]] = [header]
    for e in p.elections:
        left = e.days_left(today)
        rows.append(
            (
                e.id,
                e.kind,
                " / ".join(r.isoformat() for r in e.rounds),
                e.retention_due.isoformat(),
                str(left) if left > 0 else ("due today" if left == 0 else f"overdue by {-left}"),
                f"yes: {e.legal_hold_reason}" if e.legal_hold else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not p.elections:
        lines.append("(no election declared)")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    p = _load(args.dir)
    if p is None:
        return EXIT_INVALID
    print(show_text(p))
    return 0


def register(subparsers: Any) -> None:
    policy = subparsers.add_parser("policy", help="validate, render and show the policies")
    sub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    validate = sub.add_parser("validate", help="check every policy file; exit 2 on any error")
    validate.add_argument("dir", nargs="?", default="policies")
    validate.add_argument(
        "--target",
        choices=("local", "aws"),
        default="local",
        help="aws: also refuse what a real deploy needs and lacks (deployers, "
        "break-glass role, mail upstream, bucket suffix)",
    )
    validate.set_defaults(func=cmd_validate)

    rend = sub.add_parser("render", help="write Terraform, Ansible and agent inputs")
    rend.add_argument("--out", required=True, help="output directory")
    rend.add_argument("--policies", default="policies", help="policies directory")
    rend.add_argument(
        "--target",
        choices=("local", "aws"),
        default="local",
        help="aws: refuse policies a real deploy cannot use (as `validate --target aws`)",
    )
    rend.set_defaults(func=cmd_render)

    show = sub.add_parser("show", help="elections, rounds, retention due dates, legal holds")
    show.add_argument("dir", nargs="?", default="policies")
    show.set_defaults(func=cmd_show)
