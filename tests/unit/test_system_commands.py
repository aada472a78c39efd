"""mk/commands.txt lists every command the controller and the tests run, and
`make system-deps` installs the package of each.

The session-wide audit (tests/plugins/commands.py) catches what a run starts;
this module catches, without running it, a literal `subprocess.run(["x", ...])`
anywhere in the package, the tests or the benchmarks whose command is not
listed, and checks the list against the Makefile and against dpkg.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.plugins.commands import MANIFEST, CommandRecorder, listed_commands, machine_command

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_CALLS = {"run", "Popen", "check_output", "check_call", "call"}


def literal_commands() -> dict[str, list[str]]:
    """First words of literal argv lists handed to subprocess, with where."""
    found: dict[str, list[str]] = {}
    for folder in ("agents/isoloir", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "subprocess"
                    and node.func.attr in SUBPROCESS_CALLS
                    and node.args
                ):
                    continue
                argv = node.args[0]
                if (
                    isinstance(argv, (ast.List, ast.Tuple))
                    and argv.elts
                    and isinstance(argv.elts[0], ast.Constant)
                    and isinstance(argv.elts[0].value, str)
                ):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(argv.elts[0].value, []).append(where)
    return found


def test_every_literal_subprocess_command_is_listed() -> None:
    listed = listed_commands()
    found = literal_commands()
    assert found, "the scan found no subprocess call at all: it is broken"
    unlisted = {name: where for name, where in found.items() if name not in listed}
    assert not unlisted, f"add these to {MANIFEST.name} with their Debian package: {unlisted}"


def test_make_system_deps_installs_every_listed_package() -> None:
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "system-deps"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages = {package for package in listed_commands().values() if package != "-"}
    assert "nftables" in packages
    for package in packages:
        assert f" {package} " in dry_run or f" {package};" in dry_run, package
    for command, package in listed_commands().items():
        if package != "-":
            assert f" {command} " in dry_run or f" {command};" in dry_run, command


def test_listed_packages_provide_their_commands() -> None:
    """After `make system-deps`, dpkg says each command comes from its listed package."""
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian machine")
    wrong: list[str] = []
    for command, package in listed_commands().items():
        if package == "-":
            continue
        found = shutil.which(command, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        assert found, f"{command} is missing: `make system-deps` should have installed {package}"
        owners: set[str] = set()
        for candidate in {found, os.path.realpath(found), "/bin/" + command, "/sbin/" + command}:
            proc = subprocess.run(
                ["dpkg-query", "-S", candidate],  # noqa: S607
                capture_output=True,
                text=True,
                check=False,
            )
            for line in proc.stdout.splitlines():
                owners.update(name.strip().split(":")[0] for name in line.split(": ")[0].split(","))
        if package not in owners:
            owner = sorted(owners) or "no package"
            wrong.append(f"{command}: listed as {package}, dpkg says {owner}")
    assert not wrong, wrong


def test_recorder_sees_a_missing_command_and_ignores_the_venv(tmp_path: Path) -> None:
    recorder = CommandRecorder()
    recorder.audit("subprocess.Popen", (None, ["no-such-command-isoloir", "-x"], None, None))
    recorder.audit("subprocess.Popen", (None, ["sh", "-c", "true"], None, None))
    venv_tool = Path(os.sys.prefix) / "bin" / "python"
    recorder.audit("subprocess.Popen", (None, [str(venv_tool)], None, None))
    script = tmp_path / "fake-tool"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    recorder.audit("os.posix_spawn", (str(script), [str(script)], {}))
    assert recorder.seen == {"no-such-command-isoloir", "sh"}
    assert machine_command("/usr/bin/env") == "env"
    assert machine_command(str(script)) is None
