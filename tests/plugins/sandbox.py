"""Sandbox hosts for the tests: `sandbox_factory` starts hosts for the session.

Every host started through the factory is stopped at the end of the session
(processes by pid, then every mount), whatever happened in the tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from isoloir.controller import sandbox
from isoloir.controller.sandbox import SandboxHost

# The converged host (`site`) of the host tests, shared by their modules.
pytest_plugins = ["tests.plugins.hosts"]


@pytest.fixture(scope="session")
def sandbox_factory() -> Iterator[Callable[[str], SandboxHost]]:
    if os.geteuid() != 0:
        pytest.skip("the sandbox host needs root (chroot, mounts)")
    for tool in ("debootstrap", "chroot", "zstd", "ssh", "smbclient"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing; run `make system-deps`")
    # Hosts left by a test session that was killed: stop them first (by pid).
    for stale in sandbox.WORK_DIR.glob(f"pytest-*/*/{sandbox.STATE_FILE}"):
        owner = stale.parent.parent.name.removeprefix("pytest-")
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            sandbox.down(sandbox.load(stale))
    work_dir = sandbox.WORK_DIR / f"pytest-{os.getpid()}"
    started: list[SandboxHost] = []

    def start(name: str) -> SandboxHost:
        host = sandbox.up(name, work_dir=work_dir)
        started.append(host)
        return host

    try:
        yield start
    finally:
        errors = []
        for host in reversed(started):
            try:
                sandbox.down(host)
            except sandbox.SandboxError as exc:
                errors.append(str(exc))
        if not errors and work_dir.exists():
            work_dir.rmdir()
        if errors:
            raise sandbox.SandboxError("; ".join(errors))
