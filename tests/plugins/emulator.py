"""Session-scoped AWS emulator for the tests: one moto server per test session.

Tests that need an empty account call `emulator.reset()`; the others use unique
names. moto's request log is written to `moto.log` in the fixture's directory.
The fixture also exports the emulator's settings to `os.environ` for the
session so `isoloir.aws.client()` and Terraform reach it.

`iam_enforced(emulator, admin)` switches moto's IAM enforcement on for a
block (a module's fixture) on the session's emulator: `os.environ` carries the
administrator's key (`emulator.create_admin()`) while enforcement is on;
afterwards enforcement is off again and the fake key is back. `credentials(env)` points
in-process agents at other credentials (an assumed role) for a block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from isoloir.controller.emulator import Emulator

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@contextmanager
def credentials(env: Mapping[str, str]) -> Iterator[None]:
    """`os.environ`'s AWS key (and session token, if any) taken from `env` for a block."""
    saved = {key: os.environ.get(key) for key in CREDENTIAL_KEYS}
    for key in CREDENTIAL_KEYS:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def iam_enforced(emulator: Emulator, admin: Mapping[str, str]) -> Iterator[None]:
    """Enforcement on for a block, `os.environ` holding the administrator's key.

    `admin`: `emulator.create_admin()`, made (like any role session the block
    uses, `emulator.assume_role()`) before enforcement is switched on.
    """
    with credentials(admin):
        emulator.set_auth(True)
        try:
            yield
        finally:
            emulator.set_auth(False)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    workdir = tmp_path_factory.mktemp("emulator")
    # moto's request log stays beside the certificates for a failed run's diagnosis
    emu = Emulator.start(workdir, log_path=workdir / "moto.log")
    saved = {key: os.environ.get(key) for key in emu.env()}
    os.environ.update(emu.env())
    try:
        yield emu
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        emu.stop()
