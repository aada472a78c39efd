"""Property test: whatever a member builds in a share (FIFOs, sockets, symlinks to and
through parents, unreadable directories, names that are not UTF-8), the scan ends
in bounded time, lists only what is inside the share and a fix touches nothing
outside it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoloir.exposure import inventory_shares, registry
from isoloir.exposure.model import Inventory, SharesInventory, ShareTree
from isoloir.exposure.remediate import remediate
from isoloir.policy import load_policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
CONTACTS = b"".join(b"p%d@exemple.example;06 39 98 00 %02d\n" % (i, i) for i in range(8))

NAMES = st.sampled_from(
    [b"a", b"b.csv", b"caf\xe9.csv", b"\xff\xfe", b"x\ny.csv", b"z\x1b[2J.txt", b"d"]
)
KINDS = st.sampled_from(
    ["dir", "file", "open_file", "fifo", "socket", "link_parent", "link_root_parent",
     "link_outside", "link_self", "unreadable_dir"]
)  # fmt: skip
TREES = st.lists(st.tuples(st.lists(NAMES, min_size=0, max_size=3), NAMES, KINDS), max_size=14)


def _make(base: bytes, parents: list[bytes], name: bytes, kind: str, outside: bytes) -> None:
    here = base
    for p in parents:
        here = here + b"/" + p
        if not os.path.lexists(here):
            os.mkdir(here, 0o755)
        if not os.path.isdir(here) or os.path.islink(here):
            return
    path = here + b"/" + name
    if os.path.lexists(path):
        return
    if kind in ("dir", "unreadable_dir"):
        os.mkdir(path, 0o000 if kind == "unreadable_dir" else 0o777)
    elif kind in ("file", "open_file"):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, CONTACTS)
        os.close(fd)
        os.chmod(path, 0o666 if kind == "open_file" else 0o640)
    elif kind == "fifo":
        os.mkfifo(path, 0o666)
    elif kind == "socket":
        if len(path) < 100:
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(path)
    elif kind == "link_parent":
        os.symlink(b"..", path)
    elif kind == "link_root_parent":
        os.symlink(b"../" * (len(parents) + 2), path)
    elif kind == "link_outside":
        os.symlink(outside, path)
    elif kind == "link_self":
        os.symlink(name, path)


def _inside(root: bytes) -> Iterator[tuple[int, int]]:
    """Every inode under root, found without following any symlink."""
    for top, dirs, files in os.walk(root, followlinks=False):
        for n in dirs + files:
            s = os.lstat(os.path.join(top, n))
            yield s.st_dev, s.st_ino
    s = os.lstat(root)
    yield s.st_dev, s.st_ino


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Timeout


POLICIES = load_policies(ROOT / "policies")
FIX = dataclasses.replace(
    POLICIES,
    baseline=dataclasses.replace(
        POLICIES.baseline,
        remediation=dataclasses.replace(POLICIES.baseline.remediation, share_permissions=True),
    ),
)


class _SwapDuringWalk:
    """Replaces os.open while the scan runs: at the n-th directory open, the share's
    top directory `d` is moved away and replaced by a symlink to the outside tree
    (what a member can do at any moment)."""

    def __init__(self, share: bytes, outside: bytes, n: int) -> None:
        self.share, self.outside, self.n = share, outside, n
        self.real = os.open

    def __call__(self, path: object, flags: int, *args: object, **kw: object) -> int:
        if flags & os.O_DIRECTORY:
            self.n -= 1
            victim = self.share + b"/d"
            if self.n == 0 and os.path.isdir(victim) and not os.path.islink(victim):
                os.rename(victim, self.share + b"/d.moved")
                os.symlink(self.outside, victim)
        return self.real(path, flags, *args, **kw)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES, st.integers(min_value=0, max_value=6))
def test_scan_and_fix_stay_inside_the_share(
    spec: list[tuple[list[bytes], bytes, str]], swap_at: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = os.fsencode(tmp)
        share = base + b"/share"
        outside = base + b"/outside"
        os.mkdir(share, 0o2770)
        os.mkdir(outside, 0o777)
        secret = outside + b"/autre.csv"
        with open(secret, "wb") as fh:
            fh.write(CONTACTS)
        os.chmod(secret, 0o666)
        for parents, name, kind in spec:
            _make(share, parents, name, kind, outside)
        known = set(_inside(share))
        before = os.lstat(secret)

        os.mkdir(outside + b"/a", 0o777)  # what the swapped `d` would lead to
        with open(outside + b"/a/b.csv", "wb") as fh:
            fh.write(CONTACTS)
        os.chmod(outside + b"/a/b.csv", 0o666)

        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(20)  # never hangs: a FIFO is never opened, loops are never followed
        real_open = os.open
        try:
            if swap_at:
                inventory_shares.os.open = _SwapDuringWalk(share, outside, swap_at)  # type: ignore[assignment]
            try:
                tree = inventory_shares.scan_tree(ShareTree("exempleville-2027", share, "g", None))
            finally:
                inventory_shares.os.open = real_open
            known |= set(_inside(share))  # what is inside after the swap counts too
            inv = Inventory(policies=FIX, now=NOW, shares=SharesInventory(trees=[tree]))
            results = registry.run(inv, scopes=["shares"])
            state = Path(tmp) / "state"
            remediate(results, FIX, state_dir=state, now=NOW, dry_run=False)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)

        for e in tree.entries:
            assert e.path == share or e.path.startswith(share + b"/")
            assert (e.dev, e.ino) in known
        assert all(p.startswith(share) for p in tree.unreadable)
        outside_inodes = set(_inside(outside))
        assert not outside_inodes & {(e.dev, e.ino) for e in tree.entries}
        after = os.lstat(secret)
        assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode) == 0o666
        assert after.st_gid == before.st_gid
        # every outcome is a finding or a clear failure: nothing under the share was
        # left world-accessible and unreported
        reported = {r.finding.resource for r in results}
        for e in tree.entries:
            if e.kind in ("file", "dir") and e.mode & 0o007:
                assert e.display in reported
        for dirpath, dirs, _files in os.walk(share):
            for d in dirs:
                if not os.path.islink(os.path.join(dirpath, d)):
                    os.chmod(os.path.join(dirpath, d), 0o700)
        shutil.rmtree(share, ignore_errors=True)
