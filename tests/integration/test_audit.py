"""`isoloir audit` on the session's converged host (issue 22, "outside auditors").

Uses the converged host of the host tests (`site`, tests/plugins/hosts.py):
Lynis runs on the host itself (installed and run by playbooks/audit.yml over
SSH, in its quick mode: no pauses), ssh-audit from the controller against the
host's sshd, testssl.sh from the controller against the relay's submission port
(STARTTLS on 587). Before the
hardening of issue 22 this host scored 66 with one warning (PKGS-7388: no
security repository).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.plugins.hosts import Site

from isoloir.controller.audit import EXIT_OK, MIN_LYNIS_INDEX, audit, run_testssl, targets

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture(scope="module")
def audited(site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    assert site.runs[0].returncode == 0, site.runs[0].stdout[-3000:]
    out = tmp_path_factory.mktemp("audit")
    lines: list[str] = []
    status, json_path, md_path = audit(
        site.inventory, out, tools=("lynis", "ssh-audit"), log=lines.append
    )
    return {
        "status": status,
        "json": json_path,
        "md": md_path,
        "report": json.loads(json_path.read_text()),
        "log": lines,
        "out": out,
    }


def test_lynis_index_and_no_warning(audited: dict[str, object], site: Site) -> None:
    report = audited["report"]
    assert isinstance(report, dict)
    (host,) = report["hosts"]
    assert host["name"] == site.host.name and not host["errors"], host["errors"]
    lynis = host["lynis"]
    # Counts only, shown with `pytest -rA` (the figures docs/hosts.md quotes).
    print(
        f"Lynis index {lynis['hardening_index']}, {len(lynis['warnings'])} warning(s),"
        f" {len(lynis['suggestions'])} suggestion(s), {lynis['tests_performed']} tests,"
        f" {len(lynis['skipped_by_profile'])} sysctl key(s) left out: "
        + " ".join(sorted({s["test"] for s in lynis["suggestions"]}))
    )
    assert lynis["version"] == "3.0.8"
    assert lynis["warnings"] == [], lynis["warnings"]
    assert lynis["hardening_index"] >= MIN_LYNIS_INDEX, (
        lynis["hardening_index"],
        [s["test"] for s in lynis["suggestions"]],
    )
    # Only kernel settings the host configures but the machine's kernel (a
    # container's) does not reflect are left out of the scan.
    assert lynis["container"] not in ("", "none")
    assert lynis["skipped_by_profile"], "the container's kernel settings were all in force?"
    assert all(s.startswith("KRNL-6000:") for s in lynis["skipped_by_profile"])
    conf = site.host.chroot("cat", "/etc/sysctl.d/90-isoloir.conf").stdout
    for skipped in lynis["skipped_by_profile"]:
        assert re.search(rf"^{re.escape(skipped.split(':', 1)[1])} = ", conf, re.MULTILINE)


def test_ssh_audit_no_failure(audited: dict[str, object], site: Site) -> None:
    report = audited["report"]
    assert isinstance(report, dict)
    (host,) = report["hosts"]
    ssh = host["ssh_audit"]
    assert ssh["port"] == site.host.ssh_port
    assert ssh["banner"].startswith("SSH-2.0-OpenSSH")
    assert ssh["failures"] == [], ssh["failures"]
    assert audited["status"] == EXIT_OK, host["misses"]


@pytest.fixture(scope="module")
def testssl(site: Site) -> dict[str, object]:
    assert site.runs[0].returncode == 0, site.runs[0].stdout[-3000:]
    (target,) = targets(json.loads(Path(site.inventory).read_text()))
    assert target.address == site.host.address and target.submission_port == 587
    return run_testssl(target)


def test_testssl_on_submission_tls12_and_13_only_aead_and_server_order(
    testssl: dict[str, object],
) -> None:
    """Issue 22 item 7, judged by testssl.sh itself (3.0.8, Debian's package)."""
    checks = testssl["checks"]
    assert isinstance(checks, dict)
    print(f"testssl on 587: {checks}")
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert checks[old] == "not offered", (old, checks)
    assert checks["TLS1_2"] == "offered", checks
    assert checks["TLS1_3"].startswith("offered"), checks  # "offered with final"
    # No anonymous (aNULL), no null, export, 64-bit, 3DES, and no CBC ("AVERAGE":
    # testssl's "Obsolete CBC ciphers"); only AEAD suites ("STRONG").
    for category in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
        assert checks[f"cipherlist_{category}"] == "not offered", (category, checks)
    assert checks["cipherlist_STRONG"] == "offered", checks
    assert checks["cipher_order"] == "server", checks
    # Nothing else testssl rates LOW or worse, but the lab's self-signed certificate
    # (its chain, trust, lifetime and revocation fields) and the DNS CAA record.
    findings = testssl["findings"]
    assert isinstance(findings, list)
    about_the_lab_certificate = re.compile(
        r"^(cert_|DNS_CAArecord|intermediate_cert|OCSP|chain_of_trust)"
    )
    others = [f for f in findings if not about_the_lab_certificate.match(f["id"])]
    assert others == [], others


def test_report_files_for_the_dpo(audited: dict[str, object], site: Site) -> None:
    json_path, md_path, out = audited["json"], audited["md"], audited["out"]
    assert isinstance(json_path, Path) and isinstance(md_path, Path) and isinstance(out, Path)
    assert json_path.parent == out and md_path.parent == out
    assert (json_path.stat().st_mode & 0o077) == 0 and (md_path.stat().st_mode & 0o077) == 0
    report = audited["report"]
    assert isinstance(report, dict)
    assert report["passed"] is True
    assert set(report["versions"]) == {"lynis", "ssh-audit", "testssl"}
    text = md_path.read_text()
    index = report["hosts"][0]["lynis"]["hardening_index"]
    assert f"Hardening index: **{index}**" in text
    assert "Result: **PASS**" in text and report["date"] in text
    # The host's raw Lynis report is kept beside the summary.
    kept = list(out.glob(f"lynis-*/{site.host.name}.dat"))
    assert len(kept) == 1 and f"hardening_index={index}" in kept[0].read_text()


def test_security_archive_from_the_hosts_own_sources(site: Site) -> None:
    """PKGS-7388: the security suite sits beside the archive the host already uses."""
    sources = site.host.chroot("cat", "/etc/apt/sources.list").stdout
    (main_uri,) = {
        parts[1]
        for parts in (line.split() for line in sources.splitlines())
        if parts[:1] == ["deb"] and len(parts) > 2 and parts[2] == "bookworm"
    }
    added = site.host.chroot("cat", "/etc/apt/sources.list.d/isoloir-security.list").stdout
    expected = re.sub(r"/debian/?$", "/debian-security", main_uri)
    assert f"deb {expected} bookworm-security main" in added.splitlines()
