"""Once purged, the election's share stops accepting writes (issue 13, item 5).

Root locks a temporary share tree (these tests run as root, as `make test`
does); every permission is then tried by a child process that drops to a
member's or the agents' numeric ids, so the kernel decides, not the test.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _host_templates import render
from tests.unit.test_retention_purge_safety import EID, PAST_DUE, World
from tests.unit.test_retention_purge_safety import aws_env as aws_env  # noqa: F401 - fixture

from isoloir.retention import sharelock
from isoloir.retention.jobs import evaluate
from isoloir.retention.share import ShareError

GID = 61000  # the election's group (el-<id>); numeric ids need no account
MEMBER = 61002
OTHER_MEMBER = 61003
AGENTS = 61001


def as_user(uid: int, groups: list[int], action: Callable[[], Any]) -> int:
    """Run `action` in a child with these ids; 0 when it worked, else the errno."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.setgroups(groups)
            os.setgid(groups[0] if groups else uid)
            os.setuid(uid)
            action()
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:  # noqa: BLE001 - the child never returns into pytest
            code = 254
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def member(action: Callable[[], Any], uid: int = MEMBER) -> int:
    return as_user(uid, [GID], action)


def agents(action: Callable[[], Any]) -> int:
    return as_user(AGENTS, [AGENTS], action)


def create(path: Path) -> Callable[[], None]:
    return lambda: path.write_bytes(b"x")


def share_tree(w: World) -> dict[str, Path]:
    """A share as members leave it: their files, their folder, odd entries."""
    share = w.election_share
    for d in (share, share / "prospects", share / "reunions"):
        os.chown(d, 0, GID)
        d.chmod(0o2770)
    kept = share / "benevoles"  # not a campaign dataset: stays writable
    kept.mkdir()
    os.chown(kept, 0, GID)
    kept.chmod(0o2770)
    own = share / "prospects" / "liste.csv"
    own.write_bytes(b"nom\nFictif\n")
    os.chown(own, MEMBER, GID)
    own.chmod(0o660)
    sub = share / "reunions" / "dossier-perso"
    sub.mkdir()
    os.chown(sub, MEMBER, GID)
    sub.chmod(0o2770)
    inner = sub / "cr.txt"
    inner.write_bytes(b"compte rendu")
    os.chown(inner, MEMBER, GID)
    subprocess.run(["setfacl", "-m", f"u:{OTHER_MEMBER}:rw", str(inner)], check=True)
    outside = w.root / "ailleurs.txt"
    outside.write_bytes(b"hors du partage")
    outside.chmod(0o666)
    (share / "prospects" / "lien").symlink_to(outside)
    os.mkfifo(share / "prospects" / "tube.csv")
    twin = w.root / "jumeau.txt"
    twin.write_bytes(b"deux liens")
    os.chown(twin, MEMBER, GID)
    os.link(twin, share / "reunions" / "jumeau.txt")
    return {"own": own, "sub": sub, "inner": inner, "outside": outside, "kept": kept}


@pytest.fixture()
def world() -> Iterator[World]:
    # pytest's tmp_path sits under a 0700 directory: the children dropping to
    # a member's ids must reach the tree, so it lives in /var/tmp (0755).
    root = Path(tempfile.mkdtemp(prefix="isoloir-share-lock-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield World(root, PAST_DUE, permanent=True)
    finally:
        shutil.rmtree(root)


def test_a_locked_share_refuses_every_write_by_members(world: World) -> None:
    t = share_tree(world)
    e = world.policies().election(EID)
    share = world.election_share
    # Before: members write in every folder.
    assert member(create(share / "prospects" / "avant.csv")) == 0

    counts = sharelock.lock(e, AGENTS, GID)
    assert (counts.folders, counts.files) == (4, 3)  # share, 2 datasets, 1 sub; 3 files
    assert counts.left == 3  # the symlink, the FIFO and the hard-linked file

    for target in (
        share / "nouveau.csv",
        share / "prospects" / "apres.csv",
        t["sub"] / "apres.txt",
    ):
        assert member(create(target)) == errno.EACCES, target
        assert not target.exists()
    assert member(lambda: t["own"].write_bytes(b"change")) == errno.EACCES
    assert member(lambda: t["own"].chmod(0o666)) == errno.EPERM  # no longer theirs
    assert member(lambda: t["own"].unlink()) == errno.EACCES
    assert member(lambda: t["sub"].rename(share / "reunions" / "x")) == errno.EACCES
    assert member(lambda: t["inner"].write_bytes(b"x"), uid=OTHER_MEMBER) == errno.EACCES
    # Still readable by the election's group, never by others.
    assert member(t["own"].read_bytes) == 0
    assert stat.S_IMODE(t["own"].stat().st_mode) == 0o440 and t["own"].stat().st_uid == 0
    assert as_user(OTHER_MEMBER, [OTHER_MEMBER], t["own"].read_bytes) == errno.EACCES
    # A permanent dataset keeps accepting writes.
    assert member(create(t["kept"] / "nouveau-benevole.csv")) == 0
    # The agents still remove what appears later (RET-RESIDUE).
    assert agents(lambda: t["own"].unlink()) == 0
    # Nothing outside the share was touched through the symlink or the hard link.
    assert stat.S_IMODE(t["outside"].stat().st_mode) == 0o666
    assert (world.root / "jumeau.txt").stat().st_uid == MEMBER


def test_the_roles_chmod_on_the_next_converge_keeps_the_lock(world: World) -> None:
    share_tree(world)
    sharelock.lock(world.policies().election(EID), AGENTS, GID)
    prospects = world.election_share / "prospects"
    assert stat.S_IMODE(prospects.stat().st_mode) == 0o2770  # what the role asks for
    prospects.chmod(0o2770)  # the role's `file` task, if it ever changes something
    assert member(create(prospects / "apres.csv")) == errno.EACCES


def test_a_dataset_folder_swapped_for_a_symlink_is_refused(world: World) -> None:
    share_tree(world)
    elsewhere = world.root / "autre-election"
    elsewhere.mkdir()
    os.chown(elsewhere, MEMBER, GID)
    (world.election_share / "reunions" / "dossier-perso" / "cr.txt").unlink()
    (world.election_share / "reunions" / "dossier-perso").rmdir()
    (world.election_share / "reunions" / "jumeau.txt").unlink()
    (world.election_share / "reunions").rmdir()
    (world.election_share / "reunions").symlink_to(elsewhere)
    with pytest.raises(ShareError, match="symlink"):
        sharelock.lock(world.policies().election(EID), AGENTS, GID)
    assert elsewhere.stat().st_uid == MEMBER
    assert os.listxattr(elsewhere) == []


def test_the_purge_requests_the_lock_and_root_applies_it(
    world: World, aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.seed_bucket(aws_env)
    for d in (world.election_share, *world.election_share.iterdir()):
        os.chown(d, 0, GID)
        d.chmod(0o2770)
    request = sharelock.request_path(world.state, EID)
    evaluate(
        world.policies(),
        state_dir=world.state,
        secrets_dir=world.secrets,
        now=datetime.now(UTC),
        dry_run=True,
    )
    assert not request.exists()  # a dry run asks for nothing
    _, outcomes = world.evaluate()
    assert [o.election for o in outcomes] == [EID]
    assert request.exists()

    monkeypatch.setattr(sharelock, "_ids", lambda e, user: (AGENTS, GID))
    monkeypatch.setattr(sharelock, "_gid", lambda e: GID)
    lock_dir = world.root / "share-lock"
    prospects = world.election_share / "prospects"
    assert sharelock.apply(world.policies(), world.state, lock_dir, "isoloir") == 0
    record = json.loads((lock_dir / f"{EID}.json").read_text())
    assert record["election"] == EID and record["folders"] == 3
    assert member(create(prospects / "apres.csv")) == errno.EACCES

    # An administrator's unlock holds against the next runs, until `lock`.
    sharelock.unlock_and_record(world.policies().election(EID), lock_dir)
    assert member(create(prospects / "reouvert.csv")) == 0
    assert sharelock.apply(world.policies(), world.state, lock_dir, "isoloir") == 0
    assert member(create(prospects / "encore.csv")) == 0
    assert not (lock_dir / f"{EID}.json").exists()
    sharelock.lock_and_record(world.policies().election(EID), lock_dir, "isoloir")
    assert member(create(prospects / "refuse.csv")) == errno.EACCES
    assert not (lock_dir / f"{EID}.unlocked").exists()


def test_a_missing_share_fails_that_election_and_says_so(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.state.mkdir()
    sharelock.request(world.state, EID)
    (world.election_share / "prospects").rmdir()
    monkeypatch.setattr(sharelock, "_ids", lambda e, user: (AGENTS, GID))
    lock_dir = world.root / "share-lock"
    assert sharelock.apply(world.policies(), world.state, lock_dir, "isoloir") == 1
    err = capsys.readouterr().err
    assert f"share lock: {EID}: dataset directory" in err and "not found" in err
    assert not (lock_dir / f"{EID}.json").exists()


def test_the_acl_blob_is_what_setfacl_writes(world: World) -> None:
    folder = world.election_share / "prospects"
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.setxattr(fd, sharelock.ACL_ACCESS, sharelock.locked_dir_acl(AGENTS))
    finally:
        os.close(fd)
    shown = subprocess.run(
        ["getfacl", "-nc", str(folder)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown[:5] == [
        "user::rwx",
        f"user:{AGENTS}:rwx",
        "group::r-x",
        "mask::rwx",
        "other::---",
    ]


UNITS = ["isoloir-share-lock.service", "isoloir-share-lock.path", "isoloir-share-lock.timer"]


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_accepts_the_share_lock_units(tmp_path: Path, unit: str) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    for name in UNITS:
        text = render(
            "agents",
            f"etc/systemd/system/{name}.j2",
            agents_venv=str(venv),
            agents_config_src="",
            isoloir_elections=[{"id": "a", "group": "el-a", "path": "/srv/elections/a"}],
        )
        (tmp_path / name).write_text(text)
    service = (tmp_path / "isoloir-share-lock.service").read_text()
    assert 'ReadWritePaths="/srv/elections/a"' in service
    assert " apply\n" in service and "--agents-user isoloir" in service
    run = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


def test_the_lock_never_asks_for_a_setgid_bit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's RestrictSUIDSGID= refuses (EPERM) any chmod naming S_ISUID/S_ISGID;
    the setgid bit of the folders is kept as it was, not set again."""
    share_tree(world)
    modes: list[int] = []
    real = os.fchmod

    def fchmod(fd: int, mode: int) -> None:
        modes.append(mode)
        real(fd, mode)

    monkeypatch.setattr(os, "fchmod", fchmod)
    sharelock.lock(world.policies().election(EID), AGENTS, GID)
    assert modes and not [m for m in modes if m & (stat.S_ISUID | stat.S_ISGID)]
    for folder in (world.election_share, world.election_share / "prospects"):
        assert folder.stat().st_mode & stat.S_ISGID


# -- a member cannot block the purge; nothing of the election's folder survives it (N6, N8)
def chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
    os.chown(path, uid, gid)


def agents_evaluate(w: World) -> dict[str, Any]:
    """The retention job as the agents' ids (their group, every election's group)."""
    out = w.state / "result.json"
    out.unlink(missing_ok=True)

    def run() -> None:
        found, outcomes = w.evaluate()
        out.write_text(
            json.dumps(
                {
                    "rules": sorted(f.rule_id for f in found),
                    "messages": [f.message for f in found],
                    "purged": [o.election for o in outcomes],
                }
            )
        )

    assert as_user(AGENTS, [AGENTS, GID], run) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def member_owned(path: Path, data: bytes | None = None) -> Path:
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    os.chown(path, MEMBER, GID)
    return path


def test_a_member_cannot_block_the_purge_and_nothing_outside_the_datasets_survives(
    world: World, aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_retention_purge_safety import PEOPLE, _csv

    from isoloir.retention import keys, losses, purge
    from isoloir.retention.suppression import SuppressionList
    from isoloir.retention.suppression import db_path as suppression_db

    w = world
    w.seed_bucket(aws_env)
    share = w.election_share
    (share / "benevoles").mkdir()
    for d in (share, share / "prospects", share / "reunions", share / "benevoles"):
        os.chown(d, 0, GID)
        d.chmod(0o2770)
    # The four one-line attacks of the review (N6)...
    liste = member_owned(share / "prospects" / "liste.csv", PEOPLE)
    liste.chmod(0)
    sub = member_owned(share / "prospects" / "sub")
    member_owned(sub / "notes.txt", b"notes")
    sub.chmod(0o500)
    deep = share / "reunions"
    for _ in range(1200):
        deep = member_owned(deep / "d")
    member_owned(deep / "fond.txt", b"au fond")
    member_owned(share / "prospects" / "vieux.xls", b"\xd0\xcf\x11\xe0 not really")
    # ... and files outside every declared dataset (N8): the top, another folder.
    chloe = ["Chloé", "Essai", "chloe@exemple.example", "06 39 98 00 03", "X", "", "oui"]
    member_owned(share / "export-final.csv", _csv([chloe]))
    divers = member_owned(share / "divers")
    member_owned(divers / "cr.txt", b"compte rendu")
    kept = member_owned(share / "benevoles" / "equipe.csv", b"nom\nFictif\n")
    # The agents' own state, as the deploy leaves it.
    for path in (w.state, w.contacts):
        path.mkdir(exist_ok=True)
    for path in (w.state, w.secrets, w.contacts):
        chown_tree(path, AGENTS, AGENTS)
    lock_dir = w.root / "share-lock"
    lock_dir.mkdir()
    monkeypatch.setenv("ISOLOIR_SHARE_LOCK_DIR", str(lock_dir))
    monkeypatch.setattr(purge, "LOCK_WAIT", 0.0)
    monkeypatch.setattr(sharelock, "_ids", lambda e, user: (AGENTS, GID))

    # 1. Due: the purge first asks root to lock the folder, and waits for it.
    first = agents_evaluate(w)
    assert first["purged"] == [] and "RET-DUE" in first["rules"], first
    assert any("not locked yet" in m for m in first["messages"])
    assert sharelock.request_path(w.state, EID).exists()
    assert liste.exists() and (divers / "cr.txt").exists()

    # 2. Root's service locks the whole folder but the permanent dataset.
    assert sharelock.apply(w.policies(), w.state, lock_dir, "isoloir") == 0
    for target in (share / "neuf.csv", divers / "neuf.txt", share / "prospects" / "autre.xls"):
        assert member(create(target)) == errno.EACCES, target
    assert member(create(share / "benevoles" / "nouveau.csv")) == 0

    # 3. The unreadable spreadsheet stops the purge until its loss is accepted, once:
    #    nobody can drop another one now.
    second = agents_evaluate(w)
    assert second["purged"] == [] and "RET-FAILED" in second["rules"], second
    assert any("vieux.xls" in m for m in second["messages"])
    problem = losses.TableProblem("share:prospects/vieux.xls", "not read")
    assert (
        as_user(
            AGENTS,
            [AGENTS, GID],
            lambda: losses.accept(
                w.state, EID, "prospects", [problem], now=datetime.now(UTC), by="admin"
            ),
        )
        == 0
    )

    # 4. The purge goes through: nothing of the campaign is left anywhere in the folder.
    third = agents_evaluate(w)
    assert third["purged"] == [EID], third
    assert sorted(p.name for p in share.iterdir()) == ["benevoles", "prospects", "reunions"]
    assert list((share / "prospects").iterdir()) == []
    assert list((share / "reunions").iterdir()) == []
    assert kept.exists() and (share / "benevoles" / "nouveau.csv").exists()
    cert = json.loads(w.certificates()[0].read_text())["certificate"]
    assert cert["share_locked_at"]  # root locked the folder before anything was read
    outside = {d["name"]: d for d in cert["datasets"]}[purge.UNDECLARED]
    assert (outside["files"], outside["directories"], outside["opt_outs"]) == (2, 1, 1)
    # Chloé's opt-out, only in the file saved at the top, was recorded before it went.
    store = SuppressionList(suppression_db(w.state), keys.hmac_key(w.secrets))
    try:
        assert store.contains("chloe@exemple.example", None)
        assert store.contains("basile@exemple.example", None)
    finally:
        store.close()
