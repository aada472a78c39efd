"""Policy text that reaches smb.conf and the agents' systemd unit cannot add a
section or a directive, even if validation let it through (issue 12 item 8).

The templates are rendered with Jinja2 as Ansible does (trim_blocks), with
Ansible's own filters for the names plain Jinja2 lacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
from ansible.plugins.filter.core import FilterModule
from ansible.plugins.test.core import TestModule as AnsibleTests

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SMB = "roles/election_shares/templates/etc/samba/smb.conf.j2"
UNIT = "roles/agents/templates/etc/systemd/system/isoloir-agent.service.j2"

SAFE = {
    "id": "exempleville-2027",
    "label": "Municipale",
    "path": "/srv/elections/exempleville-2027",
}
HOSTILE_LABEL = (
    "Muni\n[tout]\npath = /\nvalid users = @isoloir-people\nread only = no\n"
    "force user = root\r\n\x85[encore]\u2028path = /etc\\"
)
HOSTILE_SHARE = "/srv/elections/x\nExecStartPre=+/bin/sh -c 'id > /root/pwned'\\"
ODD_SHARE = '/srv/elections/a b"c%h\\d'


def render(template: str, **variables: Any) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PLAYBOOKS),
        trim_blocks=True,
        undefined=jinja2.ChainableUndefined,
        keep_trailing_newline=True,
    )
    for name, func in FilterModule().filters().items():
        env.filters.setdefault(name, func)
    for name, func in AnsibleTests().tests().items():
        env.tests.setdefault(name, func)
    return env.get_template(template).render(ansible_managed="managed", **variables)


def smb(elections: list[dict[str, str]]) -> str:
    return render(
        SMB,
        election_shares_workgroup="ISOLOIR",
        election_shares_server_string="Isoloir",
        election_shares_interfaces=[],
        election_shares_elections=[{**e, "group": f"el-{e['id']}"} for e in elections],
        election_shares_audit_log="/var/log/samba-audit/full_audit.log",
        election_shares_max_log_size=20000,
    )


def unit(paths: list[str]) -> str:
    return render(
        UNIT,
        agents_config_dir="/etc/isoloir",
        agents_user="isoloir",
        agents_state_dir="/var/lib/isoloir",
        agents_venv="/opt/isoloir",
        agents_contacts_path="/srv/isoloir/contacts",
        agents_fix_share_permissions=True,
        agents_fix_share_group_ownership=False,
        agents_capabilities=["CAP_FOWNER"],
        agents_elections=[
            {"id": f"e{i}", "path": p, "group": f"el-e{i}"} for i, p in enumerate(paths)
        ],
    )


def smb_structure(text: str) -> list[tuple[str, str]]:
    """(section, parameter name) for every setting line; comments skipped."""
    section = ""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            found.append((section, ""))
        else:
            found.append((section, line.partition("=")[0].strip()))
    return found


def test_smb_conf_label_and_path_cannot_add_a_share_or_a_parameter() -> None:
    reference = smb_structure(smb([SAFE]))
    text = smb([{**SAFE, "label": HOSTILE_LABEL, "path": HOSTILE_SHARE}])
    assert smb_structure(text) == reference
    assert "[tout]" not in text.splitlines() and "force user" not in reference
    # Samba joins a line ending in a backslash with the next one.
    assert not [line for line in text.splitlines() if line.rstrip().endswith("\\")]
    for ch in "\r\x85\u2028\u2029":
        assert ch not in text


def unit_directives(text: str) -> list[str]:
    return [
        line.partition("=")[0]
        for line in text.splitlines()
        if line.strip() and not line.startswith(("#", ";", "["))
    ]


def systemd_unquote(value: str) -> str:
    """One double-quoted word as systemd reads it: backslash takes the next
    character literally, `%%` is a percent sign (systemd.syntax, systemd.unit)."""
    assert value.startswith('"') and value.endswith('"'), value
    inner, out, i = value[1:-1], [], 0
    while i < len(inner):
        c = inner[i]
        if c == "\\":
            out.append(inner[i + 1])
            i += 2
            continue
        assert c != '"', f"unescaped quote in {value!r}"
        if c == "%":
            assert inner[i + 1] == "%", f"unescaped specifier in {value!r}"
            i += 1
        out.append(c)
        i += 1
    return "".join(out)


def read_write_paths(text: str) -> list[str]:
    return [
        systemd_unquote(line.partition("=")[2])
        for line in text.splitlines()
        if line.startswith("ReadWritePaths=")
    ]


def test_unit_share_path_cannot_add_a_directive() -> None:
    reference = unit_directives(unit([SAFE["path"]]))
    text = unit([HOSTILE_SHARE])
    assert unit_directives(text) == reference
    assert not [line for line in text.splitlines() if line.startswith("ExecStartPre=+")]
    assert read_write_paths(text)[-1].startswith("/srv/elections/xExecStartPre=+/bin/sh")
    assert not [line for line in text.splitlines() if line.rstrip().endswith("\\")]


@pytest.mark.parametrize("odd", [ODD_SHARE, "/srv/elections/deux mots"])
def test_unit_read_write_paths_one_quoted_path_per_line(odd: str) -> None:
    paths = read_write_paths(unit([SAFE["path"], odd]))
    assert paths == ["/var/lib/isoloir", "/srv/isoloir/contacts", SAFE["path"], odd]


def test_unit_renders_without_elections() -> None:
    text = unit([])
    assert read_write_paths(text) == ["/var/lib/isoloir", "/srv/isoloir/contacts"]
    assert re.search(r"^ExecStart=", text, re.M)
