"""Session-scoped AWS emulator for the tests: one moto server per test session.

Tests that need an empty account call `emulator.reset()`; the others use unique
names. moto's request log is written to `moto.log` in the fixture's directory.
The fixture also exports the emulator's settings to `os.environ` for the
session so `isoloir.aws.client()` and Terraform reach it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from isoloir.emulator import Emulator


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
