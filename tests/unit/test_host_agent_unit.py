"""The agents' systemd unit as the role renders it (F4, F10, L5).

F4: a seccomp-filtered call must fail with EPERM instead of killing the job
(SIGSYS); the group-ownership fix gets CAP_CHOWN and @chown only when the
policies turn it on. F10: the unit refuses to start without the retention
keys. L5: no private /tmp, so the stray-data scan sees the host's /tmp
(read-only under ProtectSystem=strict); the agents' own temp files go to TMPDIR.
Checked with `systemd-analyze verify` when the machine has it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _host_templates import render, variable

UNIT = "etc/systemd/system/isoloir-agent.service.j2"


def _config(tmp_path: Path, group_fix: bool) -> Path:
    path = tmp_path / f"agent-{group_fix}.json"
    data = {
        "format": 1,
        "baseline": {
            "remediation": {
                "s3_public_access_block": True,
                "s3_public_grants": True,
                "share_permissions": True,
                "share_group_ownership": group_fix,
            }
        },
        "elections": [],
    }
    path.write_text(json.dumps(data))
    return path


def _unit(tmp_path: Path, group_fix: bool, **extra: Any) -> str:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("python", "isoloir"):
        exe = venv / "bin" / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    values: dict[str, Any] = {
        "agents_config_src": str(_config(tmp_path, group_fix)),
        "agents_venv": str(venv),
        "isoloir_elections": [{"id": "a", "group": "el-a", "path": "/srv/elections/a"}],
        **extra,
    }
    return render("agents", UNIT, **values)


def _directives(text: str, key: str) -> list[str]:
    return re.findall(rf"(?m)^{key}=(.*)$", text)


def test_filtered_system_call_fails_with_eperm_not_sigsys(tmp_path: Path) -> None:
    text = _unit(tmp_path, group_fix=False)
    assert _directives(text, "SystemCallErrorNumber") == ["EPERM"]
    # without the group fix: chown stays filtered, no CAP_CHOWN
    assert "@chown" not in "".join(_directives(text, "SystemCallFilter"))
    assert _directives(text, "CapabilityBoundingSet") == ["CAP_FOWNER"]
    assert _directives(text, "AmbientCapabilities") == ["CAP_FOWNER"]


def test_group_ownership_fix_gets_cap_chown_and_the_chown_calls(tmp_path: Path) -> None:
    text = _unit(tmp_path, group_fix=True)
    filters = _directives(text, "SystemCallFilter")
    # the allow list first, then the deny list, then @chown allowed back (systemd.exec)
    assert filters == ["@system-service", "~@privileged @resources", "@chown"]
    assert _directives(text, "CapabilityBoundingSet") == ["CAP_FOWNER CAP_CHOWN"]
    assert _directives(text, "AmbientCapabilities") == ["CAP_FOWNER CAP_CHOWN"]
    assert "CAP_FOWNER only" not in text  # the old, wrong comment


def test_no_fix_no_capability(tmp_path: Path) -> None:
    text = _unit(tmp_path, group_fix=False, isoloir_fix_share_permissions=False)
    assert _directives(text, "CapabilityBoundingSet") == [""]


def test_unit_checks_the_retention_keys_before_starting(tmp_path: Path) -> None:
    text = _unit(tmp_path, group_fix=False)
    (pre,) = _directives(text, "ExecStartPre")
    assert pre.endswith("/bin/python -m isoloir.retention.keys check")
    assert _directives(text, "Environment").count("ISOLOIR_SECRETS_DIR=/etc/isoloir/secrets") == 1


def test_stray_scan_sees_the_hosts_tmp_read_only(tmp_path: Path) -> None:
    text = _unit(tmp_path, group_fix=False)
    assert _directives(text, "PrivateTmp") == ["no"]
    assert _directives(text, "ProtectSystem") == ["strict"]  # /tmp read-only to the agents
    assert "TMPDIR=/var/lib/isoloir/tmp" in _directives(text, "Environment")
    rw = " ".join(_directives(text, "ReadWritePaths"))
    assert "/tmp" not in rw.replace("/var/lib/isoloir", "")


def test_group_fix_value_comes_from_the_rendered_agent_json(tmp_path: Path) -> None:
    on = variable("agents", "agents_capabilities", agents_config_src=str(_config(tmp_path, True)))
    off = variable("agents", "agents_capabilities", agents_config_src=str(_config(tmp_path, False)))
    assert on == ["CAP_FOWNER", "CAP_CHOWN"] and off == ["CAP_FOWNER"]


@pytest.mark.parametrize("group_fix", [False, True])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, group_fix: bool) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = tmp_path / "isoloir-agent.service"
    unit.write_text(_unit(tmp_path, group_fix=group_fix))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
