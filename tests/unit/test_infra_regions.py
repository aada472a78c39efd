"""Opt-in regions: their provider aliases never block a plan on an account that
has not enabled them, and `isoloir policy validate` warns (without failing)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.policy.render import OPT_IN_REGIONS

REPO = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r'^provider "aws" \{\n(.*?)^\}', re.MULTILINE | re.DOTALL)
_SETTING = re.compile(r"^\s*([a-z_]+)\s*=\s*(.+?)\s*$", re.MULTILINE)


def _providers() -> dict[str, dict[str, str]]:
    """alias (or "default") -> top-level settings of infra/providers.tf."""
    text = (REPO / "infra" / "providers.tf").read_text(encoding="utf-8")
    out: dict[str, dict[str, str]] = {}
    for body in _BLOCK.findall(text):
        settings = dict(_SETTING.findall(body))
        out[settings.get("alias", '"default"').strip('"')] = settings
    return out


def test_opt_in_aliases_skip_credential_validation_and_account_lookup() -> None:
    providers = _providers()
    assert len(providers) == 7  # default + six EU regions
    for alias, settings in providers.items():
        region = settings["region"].strip('"')
        if region in OPT_IN_REGIONS:
            assert settings["skip_credentials_validation"] == "true", alias
            assert settings["skip_requesting_account_id"] == "true", alias
        else:
            # the default provider checks credentials and gives the account id
            assert settings["skip_credentials_validation"] == "local.emulated", alias
            assert "skip_requesting_account_id" not in settings, alias
    assert {p["region"].strip('"') for p in providers.values()} >= set(OPT_IN_REGIONS)


def test_validate_warns_for_an_allowed_opt_in_region(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root, symlinks=True)
    baseline = root / "baseline.yml"
    text = baseline.read_text(encoding="utf-8")
    old = "allowed: [eu-west-3, eu-west-1, eu-central-1]"
    assert text.count(old) == 1
    baseline.write_text(text.replace(old, "allowed: [eu-west-3, eu-south-2]"), "utf-8")
    assert main(["policy", "validate", str(root)]) == 0
    err = capsys.readouterr().err
    assert "eu-south-2, an opt-in region: enable it" in err
    assert main(["policy", "validate", str(REPO / "policies")]) == 0
    assert "opt-in" not in capsys.readouterr().err
