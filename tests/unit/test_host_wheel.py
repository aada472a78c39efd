"""What a file-share host receives: the agents, never the controller.

The hosts' wheel is built from a copy of the project without
`isoloir.controller` (deploy, demo, preflight, sandbox, emulator, local
target, Terraform runner, inventory, alert sink); no module outside that
package imports it, so the agents run without it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from isoloir.controller.inventory import build_host_wheel

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "agents" / "isoloir"
CONTROLLER = "isoloir.controller"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_host_module_imports_the_controller() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "controller":
            continue
        bad = sorted(m for m in _imports(path) if m == CONTROLLER or m.startswith(CONTROLLER + "."))
        if bad:
            offenders[str(rel)] = bad
    assert offenders == {}


def test_the_host_wheel_has_the_agents_and_no_controller(tmp_path: Path) -> None:
    wheel = build_host_wheel(REPO, tmp_path / "build")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("isoloir/controller/")]
    for needed in (
        "isoloir/daemon.py",
        "isoloir/exposure/scan.py",
        "isoloir/retention/purge.py",
        "isoloir/alerts/service.py",
        "isoloir/mailguard/guard.py",
        "isoloir/cli.py",
    ):
        assert needed in names, needed
    # The CLI of such a host: the agents' commands, none of the controller's.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from isoloir.cli import main; main(sys.argv[2:])"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, str(site), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for command in ("scan", "retention", "run", "status", "alerts", "suppression"):
        assert command in out.stdout
    for command in ("deploy", "demo", "preflight"):
        assert f"    {command} " not in out.stdout, out.stdout
