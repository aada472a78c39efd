"""Hostile names and trees, odd smb.conf and arguments: the shares scan stays inside
the share, keeps what it could read and says what it could not."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from isoloir import cli
from isoloir.exposure import inventory_shares, registry
from isoloir.exposure.model import Inventory, SharesInventory, ShareTree
from isoloir.exposure.remediate import remediate
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
CONTACTS = "".join(f"p{i}@exemple.example;06 39 98 00 {i:02d}\n" for i in range(10))


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    share = tmp_path / "shares" / "exempleville-2027"
    share.mkdir(parents=True)
    os.chmod(share, 0o2770)
    (tmp_path / "smb.conf").write_text(
        "[global]\n  map to guest = Never\n  server min protocol = SMB3\n"
        "  server smb encrypt = required\n"
    )
    (tmp_path / "stray").mkdir()
    return tmp_path


def _scan(tree: Path, *extra: str, smb: str = "smb.conf", stray: str = "stray") -> list[str]:
    return [
        "scan", "--shares", "--config", str(ROOT / "policies"),
        "--share-root", str(tree / "shares"), "--smb-conf", str(tree / smb),
        "--stray-path", str(tree / stray), "--state-dir", str(tree / "state"), *extra,
    ]  # fmt: skip


def _leak(tree: Path, name: str = "contacts.csv") -> Path:
    leak = tree / "shares" / "exempleville-2027" / name
    leak.write_text(CONTACTS)
    os.chmod(leak, 0o644)
    return leak


# -- smb.conf that is not UTF-8 ------------------------------------------------------


def test_latin1_smb_conf_keeps_the_other_results(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leak = _leak(tree)
    (tree / "smb-latin1.conf").write_bytes(
        b"[global]\n  map to guest = Never\n  server min protocol = SMB3\n"
        b"  server smb encrypt = required\n[exempleville-2027]\n"
        b"  path = " + os.fsencode(leak.parent) + b"\n  comment = \xc9lections municipales\n"
    )
    code = cli.main(_scan(tree, "--format", "json", smb="smb-latin1.conf"))
    out, err = capsys.readouterr()
    assert code == 1, err  # findings, not "scan failed"
    rows = [json.loads(line) for line in out.splitlines()]
    assert any(r["resource"] == str(leak) for r in rows)  # the share tree is still scanned
    assert any(r["rule_id"].startswith("samba_") for r in rows) or "smb" in err
    assert str(tree / "smb-latin1.conf") in err and "not UTF-8" in err


# -- a scope that scanned nothing, stray paths ---------------------------------------


def test_missing_share_root_exits_2_with_the_reason(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _scan(tree)
    argv[argv.index(str(tree / "shares"))] = str(tree / "nope")
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert "nope/exempleville-2027: does not exist" in err
    (tree / "afile").write_text("x\n")
    (tree / "afile-root").mkdir()
    (tree / "afile-root" / "exempleville-2027").write_text("x\n")
    argv[argv.index(str(tree / "nope"))] = str(tree / "afile-root")
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert "exempleville-2027: is not a directory" in err and "does not exist" not in err


def test_stray_path_missing_is_warned_and_a_file_is_sampled(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(_scan(tree, "--fail-on", "high", stray="nope")) == 0
    err = capsys.readouterr().err
    assert f"stray path {tree / 'nope'}: does not exist" in err
    planted = tree / "stray" / "leak.csv"
    planted.write_text(CONTACTS)
    os.chmod(planted, 0o644)
    assert cli.main(_scan(tree, "--format", "json", stray="stray/leak.csv")) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rule_id"] for r in rows if r["resource"] == str(planted)] == ["stray_personal_data"]


# -- a parent directory swapped for a symlink (F5) -----------------------------------


@pytest.fixture()
def two_trees(tmp_path: Path) -> tuple[Path, Path]:
    """Election A's share with x/y/leak.csv, another election's tree B with y/leak.csv."""
    a = tmp_path / "shares" / "exempleville-2027"
    b = tmp_path / "shares" / "autreville-2027"
    for base in (a / "x", b):
        (base / "y").mkdir(parents=True)
        leak = base / "y" / "leak.csv"
        leak.write_text(CONTACTS)
        os.chmod(leak, 0o644)
    return a, b


def _swap(a: Path, b: Path) -> None:
    """What a member of A can do: move x away and put a symlink to B in its place."""
    os.rename(a / "x", a / "x.old")
    os.symlink(b, a / "x")


def _tree(a: Path) -> ShareTree:
    return ShareTree("exempleville-2027", os.fsencode(a), "el-exempleville-2027", None)


def test_walk_never_lists_another_tree_through_a_swapped_parent(
    two_trees: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_trees
    real_open: Callable[..., int] = os.open
    swapped: list[bool] = []

    def open_then_swap(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        # once x/y was listed and is about to be opened, x becomes a symlink to B
        if not swapped and os.fsencode(path).endswith(b"y"):
            swapped.append(True)
            _swap(a, b)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(inventory_shares.os, "open", open_then_swap)
    tree = inventory_shares.scan_tree(_tree(a))
    monkeypatch.undo()
    assert swapped
    outside = (b / "y" / "leak.csv").stat()
    seen = [(getattr(e, "dev", None), getattr(e, "ino", None)) for e in tree.entries]
    assert (outside.st_dev, outside.st_ino) not in seen
    inside = (a / "x.old" / "y" / "leak.csv").stat()
    assert (inside.st_dev, inside.st_ino) in seen


def _fix_policies() -> Policies:
    p = load_policies(ROOT / "policies")
    rem = dataclasses.replace(p.baseline.remediation, share_permissions=True)
    return dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, remediation=rem))


def test_fix_never_changes_another_tree_through_a_swapped_parent(
    two_trees: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_trees
    pol = _fix_policies()
    tree = inventory_shares.scan_tree(_tree(a))
    inv = Inventory(policies=pol, now=NOW, shares=SharesInventory(trees=[tree]))
    results = registry.run(inv, scopes=["shares"])
    assert any(r.finding.resource == str(a / "x" / "y" / "leak.csv") for r in results)
    _swap(a, b)
    actions = remediate(results, pol, state_dir=tmp_path / "state", now=NOW, dry_run=False)
    assert stat.S_IMODE((b / "y" / "leak.csv").stat().st_mode) == 0o644  # untouched
    assert stat.S_IMODE(b.stat().st_mode) == stat.S_IMODE(os.stat(b).st_mode)
    refused = [x for x in actions if x.resource == str(a / "x" / "y" / "leak.csv")]
    assert refused and not refused[0].applied and refused[0].error
    # the journal holds names: owner only
    journal = tmp_path / "state" / "exposure-journal.sqlite"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


# -- hostile names in the terminal, an unusable state dir ---------------------------


def test_control_characters_in_names_are_escaped_in_the_table(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _leak(tree, "a\nLOW       share_default_acl_missing  forged\n.csv")
    _leak(tree, "z\x1b[1A\x1b[2Kok.csv")
    assert cli.main(_scan(tree)) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nLOW       share_default_acl_missing  forged" not in out
    assert "a\\x0aLOW" in out and "z\\x1b[1A" in out


def test_fix_with_an_unusable_state_dir_still_shows_the_findings(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leak = _leak(tree)
    afile = tree / "afile"
    afile.write_text("")
    argv = _scan(tree, "--fix")
    argv[argv.index(str(tree / "state"))] = str(afile)
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert str(leak) in out and "share_world_accessible" in out
    # the journal's path and why, not "(File exists)" (CLI review D30)
    journal = afile / "exposure-journal.sqlite"
    assert f"no fix applied: cannot open the journal {journal} ({afile} is not a directory)" in err
    # said once, on stderr with the other errors, not a second time in the report (D30)
    assert "no fix applied" not in out.lower() and err.lower().count("no fix applied") == 1
    assert stat.S_IMODE(leak.stat().st_mode) == 0o644


def test_a_second_fixing_scan_is_refused_while_one_runs(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from isoloir.alerts.lockfile import FileLock

    leak = _leak(tree)
    with FileLock(tree / "state" / "locks" / "job-scan.lock"):
        assert cli.main(_scan(tree, "--fix")) == 2
        assert "another scan is applying fixes" in capsys.readouterr().err
        assert stat.S_IMODE(leak.stat().st_mode) == 0o644
    cli.main(_scan(tree, "--fix"))  # once it is done, the fix goes through
    assert stat.S_IMODE(leak.stat().st_mode) == 0o640


def test_escape_controls_keeps_text_and_escapes_every_control() -> None:
    from isoloir.textsafe import escape_controls, escape_value

    assert escape_controls("Élections 2027 · liste.csv") == "Élections 2027 · liste.csv"
    assert escape_controls("a\nb\rc\x1b[2J\x7f\x9b\u2028\u202e") == (
        "a\\x0ab\\x0dc\\x1b[2J\\x7f\\x9b\\u2028\\u202e"
    )
    assert escape_value({"k\n": ["x\ty", 3]}) == {"k\\x0a": ["x\\x09y", 3]}
