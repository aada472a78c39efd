"""Every external command the test session starts is listed in mk/commands.txt.

A clean checkout is not a clean machine: a test that calls a command which
`make setup` never installs passes where someone installed it by hand and fails
on the next new machine. An audit hook sees every process this session starts
(`subprocess`, `os.exec*`, `os.posix_spawn`); a command resolved in the
machine's own directories must be listed, with its Debian package, in
mk/commands.txt, which `make system-deps` installs. At the end the session
fails, naming each command that is not listed (or that was not found at all).

Programs from the virtualenv, from a sandbox host's tree or written by a test
into a temporary directory are not the machine's, and are not checked.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "mk" / "commands.txt"
SYSTEM_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin")


def listed_commands(manifest: Path = MANIFEST) -> dict[str, str]:
    """The manifest's commands and their packages ("-": not a Debian package)."""
    commands: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            raise ValueError(f"{manifest}:{number}: expected 'command package [who]'")
        commands[fields[0]] = fields[1]
    return commands


def machine_command(argv0: str, path: str | None = None) -> str | None:
    """The name of a command of the machine's own, or None for anything else.

    A bare name is looked up on PATH as the child would; a name not found at
    all is still returned (that is the failure this plugin exists to catch).
    """
    if "/" not in argv0:
        found = shutil.which(argv0, path=path)
        if found is None:
            return argv0
        argv0 = found
    resolved = os.path.realpath(argv0)
    if resolved.startswith(os.path.realpath(sys.prefix) + os.sep):
        return None
    directory = os.path.dirname(argv0)
    if directory in SYSTEM_DIRS or os.path.dirname(resolved) in SYSTEM_DIRS:
        return os.path.basename(argv0)
    return None


class CommandRecorder:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def audit(self, event: str, args: tuple[object, ...]) -> None:
        try:
            argv0, env = self._argv0(event, args)
            if argv0:
                path = env.get("PATH") if isinstance(env, dict) else None
                name = machine_command(argv0, path)
                if name:
                    self.seen.add(name)
        except Exception:  # noqa: BLE001, S110 - an audit hook must never break the call it watches
            pass

    @staticmethod
    def _argv0(event: str, args: tuple[object, ...]) -> tuple[str | None, object]:
        if event == "subprocess.Popen":
            executable, argv, _cwd, env = args
            if executable:
                return os.fsdecode(executable), env  # type: ignore[arg-type]
            if isinstance(argv, (str, bytes)):
                return os.fsdecode(argv).split()[0] if argv.strip() else None, env
            first = list(argv)[0] if argv else None  # type: ignore[call-overload]
            return (os.fsdecode(first) if first is not None else None), env
        if event in {"os.exec", "os.posix_spawn"}:
            return os.fsdecode(args[0]), args[2]  # type: ignore[arg-type]
        if event == "os.system":
            command = os.fsdecode(args[0])  # type: ignore[arg-type]
            return (command.split()[0] if command.strip() else None), None
        return None, None


RECORDER = CommandRecorder()


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(RECORDER.audit)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    listed = listed_commands()
    unlisted = sorted(RECORDER.seen - set(listed))
    record = ROOT / ".run" / "commands-seen.txt"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("".join(f"{name}\n" for name in sorted(RECORDER.seen)), encoding="utf-8")
    if unlisted:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            "commands started by the tests but not listed in mk/commands.txt "
            f"(so `make setup` does not install them): {', '.join(unlisted)}"
        )
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True, bold=True)
        else:
            print(f"ERROR: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
