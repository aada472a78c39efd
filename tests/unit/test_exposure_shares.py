"""The share walk on a real temp tree: no symlink followed, permission-denied
directories survived (scanner run as a non-root user), non-UTF-8 names, a
10 GiB sparse file sampled not read; the encryption heuristic; local fixes."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isoloir.exposure import inventory_shares, registry
from isoloir.exposure.model import Inventory, SharesInventory, ShareTree
from isoloir.exposure.remediate import Journal, remediate
from isoloir.policy import load_policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, tzinfo=UTC)
EL = "exempleville-2027"
OTHER_GID = 47123  # stands for another election's group
CONTACTS = "nom;email;telephone\n" + "".join(
    f"Nom{i};n{i}@example.org;06 00 00 {i // 100:02d} {i % 100:02d}\n" for i in range(60)
)


@pytest.fixture(scope="module")
def policies():  # type: ignore[no-untyped-def]
    return load_policies(ROOT / "policies")


@pytest.fixture()
def share(tmp_path: Path) -> Iterator[Path]:
    """A share tree (and an outside directory a symlink points to)."""
    root = tmp_path / "shares" / EL
    (root / "prospects").mkdir(parents=True)
    (root / "benevoles").mkdir()
    for d in (root, root / "prospects", root / "benevoles"):
        os.chmod(d, 0o2770)
    ok = root / "prospects" / "ok.csv"
    ok.write_text(CONTACTS)
    os.chmod(ok, 0o640)
    leak = root / "prospects" / "liste.csv"
    leak.write_text(CONTACTS)
    os.chmod(leak, 0o644)
    foreign = root / "benevoles" / "autre.csv"
    foreign.write_text("x\n")
    os.chmod(foreign, 0o660)
    os.chown(foreign, -1, OTHER_GID)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(CONTACTS)
    os.chmod(outside / "secret.csv", 0o644)
    (root / "raccourci").symlink_to(outside)
    (root / "prospects" / "fichier.csv").symlink_to(outside / "secret.csv")
    bad = os.fsencode(root / "benevoles") + b"/caf\xe9-\xff.csv"
    with open(bad, "wb") as fh:
        fh.write(CONTACTS.encode())
    os.chmod(bad, 0o604)
    os.mkfifo(root / "benevoles" / "tube.csv", 0o644)
    yield root


def _tree(root: Path) -> ShareTree:
    return ShareTree(
        election=EL,
        root=os.fsencode(root),
        group="el-" + EL,
        gid=None,
        other_election_gids={OTHER_GID: "autre-2027"},
    )


def test_walk_records_deviations_and_never_follows_symlinks(share: Path) -> None:
    tree = inventory_shares.scan_tree(_tree(share))
    paths = {e.path: e for e in tree.entries}
    assert os.fsencode(share / "prospects" / "liste.csv") in paths
    assert os.fsencode(share / "prospects" / "ok.csv") not in paths  # 0640, right group
    assert not any(b"secret.csv" in p for p in paths)  # nothing read through a link
    link = paths[os.fsencode(share / "raccourci")]
    assert link.kind == "link" and link.link_target == os.fsencode(share.parent.parent / "outside")
    leak = paths[os.fsencode(share / "prospects" / "liste.csv")]
    assert leak.pii is not None and set(leak.pii.kinds) == {"email", "phone"}
    odd = [p for p in paths if p.endswith(b"caf\xe9-\xff.csv")]
    assert odd and paths[odd[0]].display.endswith("caf\\xe9-\\xff.csv")
    fifo = paths[os.fsencode(share / "benevoles" / "tube.csv")]
    assert fifo.kind == "other" and fifo.pii is None
    assert tree.scanned_entries == 10


def test_sparse_10_gib_file_is_sampled_not_read(share: Path) -> None:
    huge = share / "prospects" / "export.csv"
    with open(huge, "wb") as fh:
        fh.write(CONTACTS.encode())
        fh.truncate(10 * 1024**3)
    os.chmod(huge, 0o644)

    def rchar() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar")

    before = rchar()
    tree = inventory_shares.scan_tree(_tree(share))
    read = rchar() - before
    entry = next(e for e in tree.entries if e.path.endswith(b"export.csv"))
    assert entry.size == 10 * 1024**3
    assert entry.pii is not None and entry.pii.sampled_bytes == 1024
    assert entry.pii.estimated_records > 1_000_000
    assert read < 1024 * 1024  # a few KiB of samples and directory reads, not 10 GiB


SCANNER = """
import json, os, sys
from isoloir.exposure import inventory_shares
from isoloir.exposure.model import ShareTree
os.setgid(65534); os.setuid(65534)
t = inventory_shares.scan_tree(ShareTree(None, os.fsencode(sys.argv[1]), "g", None))
print(json.dumps({"unreadable": [os.fsdecode(p) for p in t.unreadable],
                  "entries": [os.fsdecode(e.path) for e in t.entries],
                  "scanned": t.scanned_entries}))
"""


def test_permission_denied_directory_is_survived() -> None:
    base = Path(tempfile.mkdtemp(prefix="isoloir-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        (base / "locked").mkdir(mode=0o700)
        (base / "locked" / "inside.csv").write_text(CONTACTS)
        (base / "open").mkdir(mode=0o755)
        (base / "open" / "visible.csv").write_text(CONTACTS)
        os.chmod(base / "open" / "visible.csv", 0o644)
        proc = subprocess.run(
            [sys.executable, "-c", SCANNER, str(base)], capture_output=True, text=True, check=True
        )
        out = json.loads(proc.stdout)
        assert out["unreadable"] == [str(base / "locked")]
        assert str(base / "open" / "visible.csv") in out["entries"]
        assert out["scanned"] == 4  # base, locked, open, visible.csv
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)


def test_encryption_heuristic_with_dm_crypt_and_lvm(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda1 / ext4 rw 0 0\n"
        "/dev/mapper/vg-data /srv ext4 rw 0 0\n"
        "/dev/mapper/plain /srv/plain xfs rw 0 0\n"
        "tmpfs /srv/ram tmpfs rw 0 0\n"
        "/dev/mapper/cr\\040yes /srv/with\\040space ext4 rw 0 0\n"
    )
    sysb = tmp_path / "block"
    for name, uuid in {
        "dm-0": "CRYPT-LUKS2-abc-cryptdata",
        "vg-data": "LVM-xyz",
        "plain": "LVM-plain",
        "cr yes": "CRYPT-PLAIN-x",
    }.items():
        (sysb / name / "dm").mkdir(parents=True)
        (sysb / name / "dm" / "uuid").write_text(uuid + "\n")
        (sysb / name / "slaves").mkdir()
    (sysb / "vg-data" / "slaves" / "dm-0").mkdir()
    (sysb / "plain" / "slaves" / "vda2").mkdir()

    def enc(path: str) -> bool | None:
        found: bool | None = inventory_shares.encryption_of(path, mounts=mounts, sys_block=sysb)[3]
        return found

    assert enc("/srv/elections/x") is True  # LVM on LUKS
    assert enc("/srv/plain/x") is False
    assert enc("/srv/ram/x") is None
    assert enc("/srv/with space/x") is True
    assert enc("/home/x") is False  # /dev/vda1, no dm


def test_stray_files_found_outside_shares_only(tmp_path: Path, share: Path) -> None:
    stray_dir = tmp_path / "home" / "dmodele"
    stray_dir.mkdir(parents=True)
    (stray_dir / "contacts.csv").write_text(CONTACTS)
    (stray_dir / "courses.txt").write_text("pain\nlait\n")
    (stray_dir / "signature.txt").write_text("Paul, 06 12 34 56 78\n")
    found = inventory_shares.find_stray([str(tmp_path)], [os.fsencode(share)])
    names = sorted(os.path.basename(f.path) for f in found)
    assert names == [b"contacts.csv", b"secret.csv"]  # outside/secret.csv too; nothing in the share


def _policies_with(policies, **flags: bool):  # type: ignore[no-untyped-def]
    rem = dataclasses.replace(policies.baseline.remediation, **flags)
    return dataclasses.replace(
        policies, baseline=dataclasses.replace(policies.baseline, remediation=rem)
    )


def test_fix_dry_run_then_apply_with_journal(share: Path, tmp_path: Path, policies) -> None:  # type: ignore[no-untyped-def]
    pol = _policies_with(policies, share_permissions=True, share_group_ownership=True)
    tree = inventory_shares.scan_tree(dataclasses.replace(_tree(share), gid=4242))
    inv = Inventory(policies=pol, now=NOW, shares=SharesInventory(trees=[tree]))
    results = registry.run(inv, scopes=["shares"])
    leak = share / "prospects" / "liste.csv"
    foreign = share / "benevoles" / "autre.csv"
    state = tmp_path / "state"

    planned = remediate(results, pol, state_dir=state, now=NOW, dry_run=True)
    assert {a.resource for a in planned} >= {str(leak), str(foreign)}
    assert all(not a.applied for a in planned)
    assert stat.S_IMODE(leak.stat().st_mode) == 0o644 and not state.exists()

    # a file swapped for a symlink after the scan is not followed by the fix
    swapped = os.fsencode(share / "benevoles") + b"/caf\xe9-\xff.csv"
    os.unlink(swapped)
    os.symlink(share.parent.parent / "outside" / "secret.csv", swapped)

    done = remediate(results, pol, state_dir=state, now=NOW, dry_run=False)
    assert stat.S_IMODE(leak.stat().st_mode) == 0o640
    assert foreign.stat().st_gid == 4242
    outside = share.parent.parent / "outside" / "secret.csv"
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # untouched
    failed = [a for a in done if a.error]
    assert [a.resource for a in failed] == [
        "/".join([str(share / "benevoles"), "caf\\xe9-\\xff.csv"])
    ]
    journal = Journal(state)
    entries = journal.entries()
    journal.close()
    chmod = [e for e in entries if e["resource"] == str(leak)]
    assert chmod and json.loads(chmod[0]["previous"]) == {"mode": "0o644"}
    assert leak.exists() and foreign.exists()  # nothing deleted

    # share_group_ownership off in the policies: no chgrp even with --fix
    off = _policies_with(policies, share_permissions=True, share_group_ownership=False)
    assert not any(
        a.rule_id == "share_foreign_group"
        for a in remediate(results, off, state_dir=state, now=NOW, dry_run=True)
    )


def test_walk_survives_readdir_failing_after_opendir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. /proc/<pid>/map_files of a bind-mounted /proc under a stray-data path:
    # root opens it, reading it fails with EACCES; the walk records it and goes on
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "f.csv").write_text("x\n")
    real = os.scandir

    class Failing:
        def __init__(self, inner: Iterator[os.DirEntry[bytes]]) -> None:
            self.inner = inner

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def __iter__(self) -> Failing:
            return self

        def __next__(self) -> os.DirEntry[bytes]:
            raise PermissionError(13, "Permission denied")

    def scandir(fd: int) -> object:
        # the walk lists directories by descriptor: find which one this is
        where = os.readlink(f"/proc/self/fd/{fd}")
        return Failing(real(fd)) if where.endswith("/bad") else real(fd)

    monkeypatch.setattr(inventory_shares.os, "scandir", scandir)
    unreadable: list[bytes] = []
    seen = [p for p, _ in inventory_shares.walk(os.fsencode(tmp_path), unreadable)]
    assert unreadable == [os.fsencode(tmp_path / "bad")]
    assert os.fsencode(tmp_path / "good" / "f.csv") in seen


def test_the_fix_journal_forgets_fixes_older_than_90_days(tmp_path: Path, policies) -> None:  # type: ignore[no-untyped-def]
    """Security review N12: the remediation journal (paths, often people's names)
    was never pruned. A fixing scan forgets the fixes older than 90 days, and the
    old path is gone from the file's bytes too."""
    from datetime import timedelta

    state = tmp_path / "state"
    journal = Journal(state)
    old_path = "/srv/isoloir/el/prospects/Dupont-Jeanne-adhesion.csv"
    recent_path = "/srv/isoloir/el/prospects/recent.csv"
    for days, path in ((91, old_path), (89, recent_path)):
        journal.record(NOW - timedelta(days=days), "share_world_accessible", path, "chmod", {}, "")
    journal.close()
    assert b"Dupont-Jeanne" in (state / "exposure-journal.sqlite").read_bytes()

    remediate([], policies, state_dir=state, now=NOW, dry_run=False)

    journal = Journal(state)
    kept = [e["resource"] for e in journal.entries()]
    journal.close()
    assert kept == [recent_path]
    assert b"Dupont-Jeanne" not in (state / "exposure-journal.sqlite").read_bytes()
