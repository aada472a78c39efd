"""`isoloir audit`: parsing the auditors' output, thresholds, the DPO report (fakes only)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from isoloir.controller import audit as A

LYNIS = """# Lynis Report
report_version_major=1
report_datetime_start=2026-12-05 08:10:40
lynis_version=3.0.8
os_fullname=Debian GNU/Linux 12 (bookworm)
hostname=isoloir-a
lynis_tests_done=246
suggestion[]=FILE-6310|Place /home on a separate partition|-|-|
suggestion[]=SSH-7408|Consider hardening SSH configuration|Port (set 22 to )|-|
hardening_index={index}
"""

SSH_AUDIT = """# general
(gen) banner: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10
(gen) software: OpenSSH 9.2p1

# key exchange algorithms
(kex) sntrup761x25519-sha512@openssh.com  -- [warn] using experimental algorithm
                                          `- [info] available since OpenSSH 8.5
(kex) curve25519-sha256                   -- [info] available since OpenSSH 7.4
(kex) diffie-hellman-group1-sha1          -- [fail] using weak elliptic curves
                                          `- [warn] using weak hashing algorithm
                                          `- [info] available since OpenSSH 2.3.0

# host-key algorithms
(key) ssh-ed25519                         -- [info] available since OpenSSH 6.5

# algorithm recommendations (for OpenSSH 9.2)
(rec) -diffie-hellman-group1-sha1         -- kex algorithm to remove
"""

TESTSSL = [
    {"id": "engine_problem", "severity": "WARN", "finding": "No engine or GOST support"},
    {"id": "SSLv3", "severity": "OK", "finding": "not offered"},
    {"id": "cipherlist_aNULL", "severity": "CRITICAL", "finding": "offered"},
    {"id": "cipher_order", "severity": "HIGH", "finding": "NOT a cipher order configured"},
    {"id": "DNS_CAArecord", "severity": "LOW", "finding": "--"},
    {"id": "cert_commonName", "severity": "INFO", "finding": "isoloir-a"},
]


def inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inventory.json"
    inv.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "isoloir_hosts": {
                            "hosts": {
                                "h1": {
                                    "ansible_host": "127.0.0.101",
                                    "ansible_port": 22,
                                    "hardening_ssh_port": 2222,
                                }
                            },
                            "vars": {},
                        }
                    }
                }
            }
        )
    )
    return inv


class FakeTools:
    """Stands in for ansible-playbook, ssh-audit, testssl and dpkg-query."""

    def __init__(self, index: int = 88, ssh: str = SSH_AUDIT, lynis_extra: str = "") -> None:
        self.index, self.ssh, self.lynis_extra = index, ssh, lynis_extra
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        name = Path(argv[0]).name
        if name == "ansible-playbook":
            fetch = Path(json.loads(argv[argv.index("-e") + 1])["audit_fetch_dir"]) / "h1"
            fetch.mkdir(parents=True)
            (fetch / "lynis-report.dat").write_text(
                LYNIS.format(index=self.index) + self.lynis_extra
            )
            (fetch / "isoloir.prf").write_text(
                "# container=isoloir-sandbox\nskip-test=KRNL-6000:fs.protected_fifos\n"
            )
            return subprocess.CompletedProcess(argv, 0, "PLAY RECAP\n", "")
        if name == "ssh-audit":
            code = 3 if "[fail]" in self.ssh else 2 if "[warn]" in self.ssh else 0
            return subprocess.CompletedProcess(argv, code, self.ssh, "")
        if name == "testssl":
            Path(argv[argv.index("--jsonfile") + 1]).write_text(json.dumps(TESTSSL))
            return subprocess.CompletedProcess(argv, 0, "", "")
        if name == "dpkg-query":
            return subprocess.CompletedProcess(
                argv, 0, {"lynis": "3.0.8-1.1"}.get(argv[-1], "1"), ""
            )
        raise AssertionError(argv)


def now() -> datetime:
    return datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)


def test_lynis_report_fields() -> None:
    parsed = A.parse_lynis_report(
        LYNIS.format(index=87) + "warning[]=PKGS-7388|No security repository|-|-|\n"
    )
    assert parsed["hardening_index"] == 87 and parsed["version"] == "3.0.8"
    assert parsed["tests_performed"] == 246
    assert [w["test"] for w in parsed["warnings"]] == ["PKGS-7388"]
    assert [s["test"] for s in parsed["suggestions"]] == ["FILE-6310", "SSH-7408"]
    assert parsed["suggestions"][1]["details"] == "Port (set 22 to )"


def test_lynis_report_without_index_is_an_error() -> None:
    with pytest.raises(A.AuditError):
        A.parse_lynis_report("lynis_version=3.0.8\nhardening_index=lots\n")


def test_ssh_audit_failures_and_warnings_per_algorithm() -> None:
    found = A.parse_ssh_audit(SSH_AUDIT)
    assert found["failures"] == [
        {"kind": "kex", "name": "diffie-hellman-group1-sha1", "note": "using weak elliptic curves"}
    ]
    assert [(w["name"], w["note"]) for w in found["warnings"]] == [
        ("sntrup761x25519-sha512@openssh.com", "using experimental algorithm"),
        ("diffie-hellman-group1-sha1", "using weak hashing algorithm"),
    ]


def test_testssl_findings_and_tool_warnings() -> None:
    found = A.parse_testssl(TESTSSL)
    assert [f["id"] for f in found["findings"]] == [
        "cipherlist_aNULL",
        "cipher_order",
        "DNS_CAArecord",
    ]
    assert [w["id"] for w in found["tool_warnings"]] == ["engine_problem"]
    # Protocols, cipher categories and the order are kept whatever their severity.
    assert found["checks"] == {
        "SSLv3": "not offered",
        "cipherlist_aNULL": "offered",
        "cipher_order": "NOT a cipher order configured",
    }
    with pytest.raises(A.AuditError):
        A.parse_testssl({"not": "a list"})


def test_targets_take_the_hardened_ssh_port(tmp_path: Path) -> None:
    (target,) = A.targets(json.loads(inventory(tmp_path).read_text()))
    assert (target.name, target.address, target.ssh_port) == ("h1", "127.0.0.101", 2222)
    with pytest.raises(A.AuditError):
        A.targets({"all": {"children": {}}})


def test_passing_hosts_exit_0_and_both_reports_are_written(tmp_path: Path) -> None:
    tools = FakeTools(index=88, ssh=SSH_AUDIT.replace("[fail]", "[warn]"))
    status, json_path, md_path = A.audit(
        inventory(tmp_path), tmp_path / "out", run=tools, now=now, log=lambda s: None
    )
    assert status == A.EXIT_OK
    report = json.loads(json_path.read_text())
    assert report["passed"] and report["date"] == "2026-12-05T08:00:00Z"
    assert report["versions"]["lynis"] == "3.0.8"
    host = report["hosts"][0]
    assert host["lynis"]["skipped_by_profile"] == ["KRNL-6000:fs.protected_fifos"]
    assert host["lynis"]["container"] == "isoloir-sandbox"
    assert host["testssl"]["port"] == 587 and len(host["testssl"]["findings"]) == 3
    md = md_path.read_text()
    assert "Hardening index: **88**" in md and "Result: **PASS**" in md
    assert "CRITICAL cipherlist\\_aNULL: offered" in md
    assert (tmp_path / "out" / "lynis-20261205T080000Z" / "h1.dat").is_file()
    # ssh-audit reaches the port sshd listens on.
    (ssh_call,) = [c for c in tools.calls if c[0] == "ssh-audit"]
    assert ssh_call[ssh_call.index("-p") + 1] == "2222"


@pytest.mark.parametrize(
    ("tools", "missed"),
    [
        (FakeTools(index=84, ssh=SSH_AUDIT.replace("[fail]", "[warn]")), "index 84 < 85"),
        (
            FakeTools(
                index=90,
                ssh=SSH_AUDIT.replace("[fail]", "[warn]"),
                lynis_extra="warning[]=PKGS-7388|No security repository|-|-|\n",
            ),
            "1 Lynis warning",
        ),
        (FakeTools(index=90), "1 ssh-audit failure"),
    ],
)
def test_a_missed_threshold_exits_1(tmp_path: Path, tools: FakeTools, missed: str) -> None:
    status, json_path, md_path = A.audit(
        inventory(tmp_path), tmp_path / "out", run=tools, now=now, log=lambda s: None
    )
    assert status == A.EXIT_THRESHOLD
    host = json.loads(json_path.read_text())["hosts"][0]
    assert any(missed in m for m in host["misses"]), host["misses"]
    assert "Result: **FAIL**" in md_path.read_text()


def test_an_auditor_that_cannot_run_exits_2(tmp_path: Path) -> None:
    tools = FakeTools()

    def broken(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        if argv[0] == "ssh-audit":
            return subprocess.CompletedProcess(argv, 1, "", "connection refused")
        return tools(argv, **kw)

    status, json_path, _ = A.audit(
        inventory(tmp_path), tmp_path / "out", run=broken, now=now, log=lambda s: None
    )
    assert status == A.EXIT_ERROR
    assert json.loads(json_path.read_text())["hosts"][0]["errors"]


def test_hostile_text_from_a_host_cannot_forge_report_lines(tmp_path: Path) -> None:
    forged = "warning[]=X-1|ok\x1b[2J <script> Result: **PASS**|-|-|\n"
    tools = FakeTools(index=90, ssh=SSH_AUDIT.replace("[fail]", "[warn]"), lynis_extra=forged)
    status, _, md_path = A.audit(
        inventory(tmp_path), tmp_path / "out", run=tools, now=now, log=lambda s: None
    )
    assert status == A.EXIT_THRESHOLD
    md = md_path.read_text()
    assert "\x1b" not in md and "<script>" not in md
    assert "Result: **PASS**" not in md and "Result: **FAIL**" in md
