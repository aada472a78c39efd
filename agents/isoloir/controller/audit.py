"""`isoloir audit` / `make audit`: the hosts judged by auditors nobody here wrote.

For every host of an Ansible inventory (the local target's, the sandbox's or
the aws target's, as `make deploy` writes it):

- **Lynis** runs on the host itself, installed there by Ansible
  (`playbooks/audit.yml`), and its report file is fetched to the controller;
- **ssh-audit** runs from the controller against the host's sshd;
- **testssl.sh** runs from the controller against the mail relay's submission
  port (STARTTLS), protocols, cipher categories, cipher order and server
  defaults only (the slow vulnerability probes are left out).

The result is written twice, for a DPO to keep: ``audit-<UTC time>.json``
(everything) and ``audit-<UTC time>.md`` (a readable summary: date, hosts, tool
versions, Lynis hardening index, warnings and suggestions, ssh-audit
failures and warnings, testssl findings). The exit status is 1 when a host
misses a threshold (Lynis index below ``--min-lynis-index``, any Lynis warning,
any ssh-audit failure), 2 when an auditor could not run, 0 otherwise.

Everything read from a host is treated as hostile: sizes are bounded and
control characters are escaped before anything is written or shown.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isoloir.textsafe import escape_controls

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "audit.yml"
GROUP = "isoloir_hosts"
MIN_LYNIS_INDEX = 85
SUBMISSION_PORT = 587
REPORT_LIMIT = 4 * 1024 * 1024  # bytes of a fetched Lynis report
TOOL_TIMEOUT_S = 900.0
PACKAGES = {"lynis": "lynis", "ssh-audit": "ssh-audit", "testssl": "testssl.sh"}
# testssl.sh groups: protocols, standard cipher categories, server preferences
# (cipher order) and server defaults (certificate).
TESTSSL_CHECKS = ("--protocols", "--std", "--server-preference", "--server-defaults")
TESTSSL_SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# The verdicts the report keeps whatever their severity (protocols offered, cipher
# categories, the server's cipher order): what a DPO and the tests read first.
TESTSSL_CHECK_IDS = re.compile(r"^(SSLv[23]|TLS1(_[123])?|cipherlist_\w+|cipher_order)$")

EXIT_OK = 0
EXIT_THRESHOLD = 1
EXIT_ERROR = 2

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class AuditError(RuntimeError):
    """An auditor could not run or its output could not be read."""


@dataclass(frozen=True)
class Target:
    """One host of the inventory, as the auditors reach it."""

    name: str
    address: str
    ssh_port: int = 22
    submission_port: int = SUBMISSION_PORT


@dataclass
class HostResult:
    name: str
    address: str
    lynis: dict[str, Any] = field(default_factory=dict)
    ssh_audit: dict[str, Any] = field(default_factory=dict)
    testssl: dict[str, Any] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _safe(text: str, limit: int = 500) -> str:
    return escape_controls(text[:limit])


# -- inventory -------------------------------------------------------------------------


def targets(inventory: Mapping[str, Any], group: str = GROUP) -> list[Target]:
    """The hosts of `group` in an inventory in Ansible's YAML/JSON form."""
    try:
        entry = inventory["all"]["children"][group]
    except (KeyError, TypeError):
        raise AuditError(f"the inventory has no group {group!r}") from None
    group_vars = entry.get("vars") or {}
    found = []
    for name, hostvars in sorted((entry.get("hosts") or {}).items()):
        merged = {**group_vars, **(hostvars or {})}
        address = str(merged.get("ansible_host") or name)
        ssh_port = int(merged.get("hardening_ssh_port") or merged.get("ansible_port") or 22)
        found.append(Target(name=str(name), address=address, ssh_port=ssh_port))
    if not found:
        raise AuditError(f"no host in group {group!r} of the inventory")
    return found


# -- Lynis -----------------------------------------------------------------------------


def parse_lynis_report(text: str) -> dict[str, Any]:
    """The fields a DPO needs from a Lynis report file (``key=value`` lines)."""
    values: dict[str, str] = {}
    warnings: list[dict[str, str]] = []
    suggestions: list[dict[str, str]] = []
    skipped: list[str] = []
    for raw in text.splitlines():
        key, sep, value = raw.partition("=")
        if not sep:
            continue
        if key in ("warning[]", "suggestion[]"):
            parts = (value.split("|") + ["", "", "", ""])[:4]
            item = {
                "test": _safe(parts[0], 40),
                "text": _safe(parts[1]),
                "details": _safe(parts[2]) if parts[2] not in ("-", "") else "",
                "solution": _safe(parts[3]) if parts[3] not in ("-", "") else "",
            }
            (warnings if key == "warning[]" else suggestions).append(item)
        elif key == "skipped_tests_roles[]":
            skipped.append(_safe(value, 80))
        elif not key.endswith("[]"):
            values[key] = value
    index = values.get("hardening_index", "")
    if not index.isdigit():
        raise AuditError("the Lynis report has no hardening index")
    return {
        "version": _safe(values.get("lynis_version", ""), 40),
        "started": _safe(values.get("report_datetime_start", ""), 40),
        "ended": _safe(values.get("report_datetime_end", ""), 40),
        "hostname": _safe(values.get("hostname", ""), 100),
        "os": _safe(values.get("os_fullname", values.get("os_version", "")), 100),
        "hardening_index": int(index),
        "tests_performed": int(values.get("lynis_tests_done", "0") or 0)
        if values.get("lynis_tests_done", "0").isdigit()
        else 0,
        "warnings": warnings,
        "suggestions": suggestions,
    }


def parse_lynis_profile(text: str) -> list[str]:
    """Tests the audit's profile left out of the scan (``skip-test=...``)."""
    return [
        _safe(line.partition("=")[2].strip(), 80)
        for line in text.splitlines()
        if line.startswith("skip-test=")
    ]


def run_lynis(
    inventory: Path, fetch_dir: Path, run: Runner = subprocess.run
) -> subprocess.CompletedProcess[str]:
    """playbooks/audit.yml: Lynis installed and run on every host, reports fetched."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOK.parent / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    return run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            "-e",
            json.dumps({"audit_fetch_dir": str(fetch_dir)}),
            str(PLAYBOOK),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(PLAYBOOK.parent),
        timeout=TOOL_TIMEOUT_S * 2,
    )


def lynis_result(fetch_dir: Path, target: Target) -> dict[str, Any]:
    host_dir = fetch_dir / target.name
    report = host_dir / "lynis-report.dat"
    if not report.is_file():
        raise AuditError(f"no Lynis report was fetched from {target.name}")
    if report.stat().st_size > REPORT_LIMIT:
        raise AuditError(f"the Lynis report of {target.name} is larger than {REPORT_LIMIT} bytes")
    result = parse_lynis_report(report.read_text(encoding="utf-8", errors="replace"))
    profile = host_dir / "isoloir.prf"
    text = profile.read_text(encoding="utf-8", errors="replace") if profile.is_file() else ""
    result["skipped_by_profile"] = parse_lynis_profile(text[:REPORT_LIMIT])
    container = re.search(r"^# container=(\S*)", text, re.MULTILINE)
    result["container"] = _safe(container.group(1), 40) if container else ""
    return result


# -- ssh-audit -------------------------------------------------------------------------

# "(kex) name   -- [warn] text" and its continuation lines "`- [fail] text".
_SSH_LINE = re.compile(r"^\((\w+)\)\s+(\S+)\s+--\s+\[(fail|warn|info)\]\s*(.*)$")
_SSH_MORE = re.compile(r"^\s+`-\s+\[(fail|warn|info)\]\s*(.*)$")


def parse_ssh_audit(text: str) -> dict[str, list[dict[str, str]]]:
    """Failures and warnings of ssh-audit's plain output (``-n``), per algorithm."""
    out: dict[str, list[dict[str, str]]] = {"failures": [], "warnings": []}
    current = ("", "")
    for line in text.splitlines():
        match = _SSH_LINE.match(line)
        if match:
            current = (match.group(1), match.group(2))
            level, note = match.group(3), match.group(4)
        else:
            more = _SSH_MORE.match(line)
            if not more or not current[1]:
                if not line.startswith(" "):
                    current = ("", "")
                continue
            level, note = more.group(1), more.group(2)
        if level == "info":
            continue
        out["failures" if level == "fail" else "warnings"].append(
            {"kind": _safe(current[0], 10), "name": _safe(current[1], 100), "note": _safe(note)}
        )
    return out


def run_ssh_audit(target: Target, run: Runner = subprocess.run) -> dict[str, Any]:
    proc = run(
        ["ssh-audit", "-n", "-p", str(target.ssh_port), target.address],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    # Exit codes of ssh-audit 2.5: 0 good, 2 warnings, 3 failures, 1 no connection.
    if proc.returncode not in (0, 2, 3):
        raise AuditError(f"ssh-audit could not audit {target.name} (exit {proc.returncode})")
    found = parse_ssh_audit(proc.stdout)
    if proc.returncode == 3 and not found["failures"]:
        raise AuditError(f"ssh-audit reported failures on {target.name} that could not be read")
    banner = re.search(r"^\(gen\) banner: (.*)$", proc.stdout, re.MULTILINE)
    return {
        "port": target.ssh_port,
        "exit_status": proc.returncode,
        "banner": _safe(banner.group(1), 200) if banner else "",
        **found,
    }


# -- testssl.sh ------------------------------------------------------------------------


def parse_testssl(entries: Any) -> dict[str, Any]:
    """Findings (severity LOW and above), the tool's own warnings, and the verdict
    of each protocol, cipher category and the cipher order (``checks``, id -> finding)."""
    out: dict[str, Any] = {"findings": [], "tool_warnings": [], "checks": {}}
    if not isinstance(entries, list):
        raise AuditError("testssl's JSON file is not a list")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        severity = str(entry.get("severity", ""))
        item = {
            "id": _safe(str(entry.get("id", "")), 80),
            "severity": _safe(severity, 20),
            "finding": _safe(str(entry.get("finding", ""))),
        }
        if TESTSSL_CHECK_IDS.match(item["id"]):
            out["checks"][item["id"]] = item["finding"]
        if severity in TESTSSL_SEVERITIES:
            out["findings"].append(item)
        elif severity in ("WARN", "FATAL"):
            out["tool_warnings"].append(item)
    return out


def run_testssl(target: Target, run: Runner = subprocess.run) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="isoloir-testssl-") as tmp:
        json_file = Path(tmp) / "testssl.json"
        proc = run(
            [
                "testssl",
                "--quiet",
                "--color",
                "0",
                "--warnings",
                "off",
                "--ip",
                "one",
                *TESTSSL_CHECKS,
                "--jsonfile",
                str(json_file),
                "--starttls",
                "smtp",
                f"{target.address}:{target.submission_port}",
            ],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
        )
        if not json_file.is_file() or json_file.stat().st_size == 0:
            raise AuditError(
                f"testssl wrote nothing for {target.name}:{target.submission_port}"
                f" (exit {proc.returncode})"
            )
        if json_file.stat().st_size > REPORT_LIMIT:
            raise AuditError(f"testssl's output for {target.name} is too large")
        try:
            entries = json.loads(json_file.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError as exc:
            raise AuditError(f"testssl's JSON file for {target.name} is unreadable") from exc
    return {"port": target.submission_port, **parse_testssl(entries)}


# -- thresholds and the report ---------------------------------------------------------


def misses(result: HostResult, min_index: int) -> list[str]:
    """Thresholds the host misses; empty when it passes."""
    out = []
    lynis = result.lynis
    if lynis:
        if lynis["hardening_index"] < min_index:
            out.append(f"Lynis hardening index {lynis['hardening_index']} < {min_index}")
        if lynis["warnings"]:
            out.append(f"{len(lynis['warnings'])} Lynis warning(s)")
    if result.ssh_audit and result.ssh_audit["failures"]:
        out.append(f"{len(result.ssh_audit['failures'])} ssh-audit failure(s)")
    return out


def tool_versions(run: Runner = subprocess.run) -> dict[str, str]:
    """The Debian package version of each auditor on the controller."""
    versions = {}
    for tool, package in PACKAGES.items():
        proc = run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        versions[tool] = _safe(proc.stdout.strip(), 40) if proc.returncode == 0 else ""
    return versions


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return re.sub(r"([\\`*_{}\[\]<>|#])", r"\\\1", text)


def markdown(report: Mapping[str, Any]) -> str:
    lines = [
        "# Isoloir host audit",
        "",
        f"- Date (UTC): {report['date']}",
        f"- Inventory: {_md(report['inventory'])}",
        f"- Thresholds: Lynis hardening index >= {report['min_lynis_index']}, no Lynis"
        " warning, no ssh-audit failure",
        f"- Result: **{'PASS' if report['passed'] else 'FAIL'}**",
        "",
        "| tool | version on the host or controller |",
        "|---|---|",
    ]
    for tool, version in report["versions"].items():
        lines.append(f"| {tool} | {_md(version) or 'not installed'} |")
    for host in report["hosts"]:
        lines += ["", f"## {_md(host['name'])} ({_md(host['address'])})", ""]
        if host["misses"]:
            lines += [f"- Missed: {_md(m)}" for m in host["misses"]]
        for error in host["errors"]:
            lines.append(f"- Could not run: {_md(error)}")
        lynis = host["lynis"]
        if lynis:
            lines += [
                "",
                "### Lynis",
                "",
                f"- Lynis {_md(lynis['version'])} on {_md(lynis['os'])},"
                f" run {_md(lynis['started'])}",
                f"- Hardening index: **{lynis['hardening_index']}**"
                f" ({lynis['tests_performed']} tests)",
                f"- Warnings: {len(lynis['warnings'])}; suggestions: {len(lynis['suggestions'])}",
            ]
            if lynis["skipped_by_profile"]:
                lines.append(
                    f"- Left out of the scan on this {_md(lynis['container']) or 'host'}"
                    " (container: the kernel is the machine's; the host's configuration sets"
                    f" them): {', '.join(_md(s) for s in lynis['skipped_by_profile'])}"
                )
            for kind in ("warnings", "suggestions"):
                if lynis[kind]:
                    lines += ["", f"{kind.capitalize()}:", ""]
                    for item in lynis[kind]:
                        extra = f" ({_md(item['details'])})" if item["details"] else ""
                        lines.append(f"- {_md(item['test'])}: {_md(item['text'])}{extra}")
        ssh = host["ssh_audit"]
        if ssh:
            lines += [
                "",
                f"### ssh-audit (port {ssh['port']})",
                "",
                f"- Server: {_md(ssh['banner'])}",
                f"- Failures: {len(ssh['failures'])}; warnings: {len(ssh['warnings'])}",
            ]
            for kind in ("failures", "warnings"):
                for item in ssh[kind]:
                    what = f"({_md(item['kind'])}) {_md(item['name'])}"
                    lines.append(f"- {kind[:-1]}: {what}: {_md(item['note'])}")
        tls = host["testssl"]
        if tls:
            lines += [
                "",
                f"### testssl.sh (port {tls['port']}, STARTTLS)",
                "",
                f"- Findings: {len(tls['findings'])}",
            ]
            for item in tls["findings"]:
                lines.append(f"- {_md(item['severity'])} {_md(item['id'])}: {_md(item['finding'])}")
    return "\n".join(lines) + "\n"


def audit(
    inventory: Path,
    out_dir: Path,
    min_index: int = MIN_LYNIS_INDEX,
    tools: Sequence[str] = ("lynis", "ssh-audit", "testssl"),
    run: Runner = subprocess.run,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    log: Callable[[str], None] = print,
) -> tuple[int, Path, Path]:
    """Run the auditors, write the JSON and Markdown reports; (exit status, paths)."""
    data = json.loads(inventory.read_text(encoding="utf-8"))
    hosts = targets(data)
    started = now()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    results = [HostResult(name=t.name, address=t.address) for t in hosts]
    versions = tool_versions(run)
    if "lynis" in tools:
        with tempfile.TemporaryDirectory(prefix="isoloir-audit-") as tmp:
            fetch_dir = Path(tmp)
            log(f"lynis: {len(hosts)} host(s), through Ansible")
            proc = run_lynis(inventory, fetch_dir, run)
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.splitlines()[-15:])
                log(escape_controls(tail))
            for target, result in zip(hosts, results, strict=True):
                try:
                    result.lynis = lynis_result(fetch_dir, target)
                except AuditError as exc:
                    result.errors.append(f"lynis: {exc}")
            kept = out_dir / f"lynis-{started:%Y%m%dT%H%M%SZ}"
            for target in hosts:
                src = fetch_dir / target.name / "lynis-report.dat"
                if src.is_file() and src.stat().st_size <= REPORT_LIMIT:
                    kept.mkdir(mode=0o700, exist_ok=True)
                    shutil.copyfile(src, kept / f"{target.name}.dat")
        versions["lynis"] = next(
            (r.lynis["version"] for r in results if r.lynis.get("version")), versions["lynis"]
        )
    for target, result in zip(hosts, results, strict=True):
        for tool, step, attr in (
            ("ssh-audit", run_ssh_audit, "ssh_audit"),
            ("testssl", run_testssl, "testssl"),
        ):
            if tool not in tools:
                continue
            log(f"{tool}: {target.name}")
            try:
                setattr(result, attr, step(target, run))
            except (AuditError, subprocess.TimeoutExpired) as exc:
                result.errors.append(f"{tool}: {exc}")
        result.misses = misses(result, min_index)
    passed = all(not r.misses and not r.errors for r in results)
    report = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inventory": str(inventory),
        "min_lynis_index": min_index,
        "tools": list(tools),
        "versions": versions,
        "passed": passed,
        "hosts": [asdict(r) for r in results],
    }
    stem = out_dir / f"audit-{started:%Y%m%dT%H%M%SZ}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(report))
    for path in (json_path, md_path):
        path.chmod(0o600)
    for r in results:
        index = r.lynis.get("hardening_index", "-")
        log(
            f"{r.name}: Lynis index {index}, {len(r.lynis.get('warnings', []))} warning(s),"
            f" {len(r.lynis.get('suggestions', []))} suggestion(s);"
            f" ssh-audit {len(r.ssh_audit.get('failures', []))} failure(s);"
            f" testssl {len(r.testssl.get('findings', []))} finding(s)"
            + (f"; {len(r.errors)} auditor error(s)" if r.errors else "")
        )
    log(f"report: {json_path} and {md_path}")
    if any(r.errors for r in results):
        return EXIT_ERROR, json_path, md_path
    return (EXIT_OK if passed else EXIT_THRESHOLD), json_path, md_path


def cmd_audit(args: argparse.Namespace) -> int:
    tools = [t for t in ("lynis", "ssh-audit", "testssl") if t not in (args.skip or [])]
    try:
        status, _, _ = audit(
            Path(args.inventory), Path(args.out), min_index=args.min_lynis_index, tools=tools
        )
    except (AuditError, OSError, ValueError) as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    return status


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "audit", help="Lynis, ssh-audit and testssl against the deployed hosts; a DPO report"
    )
    p.add_argument("--inventory", required=True, help="Ansible inventory (JSON) of the hosts")
    p.add_argument("--out", default="audit", help="directory of the reports (default: audit/)")
    p.add_argument(
        "--min-lynis-index",
        type=int,
        default=MIN_LYNIS_INDEX,
        help=f"lowest Lynis hardening index accepted (default {MIN_LYNIS_INDEX})",
    )
    p.add_argument(
        "--skip",
        action="append",
        choices=("lynis", "ssh-audit", "testssl"),
        help="leave an auditor out (repeatable)",
    )
    p.set_defaults(func=cmd_audit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isoloir")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
