"""Sandbox Debian hosts for the tests and the local target.

A sandbox host is a Debian bookworm tree made with ``debootstrap`` that boots
a real systemd as PID 1 of its own PID, mount and cgroup namespaces (a
"container" in systemd's words). It shares the machine's network namespace,
so every service inside is configured before boot to listen on the host's
own loopback address (127.0.0.0/8) only. Ansible reaches its sshd over real
SSH exactly as it reaches a cloud host. Several hosts can run at once on
different loopback addresses.

- The tree is built once from the Debian mirror found in the machine's apt
  configuration and cached as a tarball outside the repository
  (``/var/cache/isoloir/sandbox-<hash>.tar.zst``, the hash covering the suite
  and the package list); later hosts are unpacked from it in seconds.
- Mounted from the machine (visible to the tests): the tree bound on itself, a
  private ``/dev`` (tmpfs with the usual nodes, a new ``devpts`` instance,
  ``/dev/shm``) and a tmpfs ``/run``; the machine's devices are never visible
  inside. Mounted inside the namespaces only: ``/proc`` (``/proc/sys``
  read-only), a read-only ``/sys`` and the host's own cgroup2 subtree.
- Bootstrap, like cloud-init on a cloud host: a dedicated ``isoloir-deploy``
  account with a generated ed25519 key and password-less sudo, reachable with
  the key only. Root never logs in over SSH, not even for the bootstrap.
- ``init="systemd"`` (the default): ``ssh.service`` and ``smbd.service`` run
  under systemd and the inventory says ``isoloir_service_manager: systemd``.
  ``init="chroot"`` keeps the former init-less mode: a pidfile service manager
  (``/usr/local/sbin/isoloir-sandbox-service``) and ``sandbox`` in the
  inventory.
- Teardown: SIGRTMIN+3 to the host's systemd (a clean halt), SIGKILL after a
  bounded wait, then every process left whose root directory is the tree (by
  pid), then everything below the tree is unmounted, deepest first, and checked
  before the tree is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

SUITE = "bookworm"
VARIANT = "minbase"
# What the roles and the tests need inside the host. Changing this list changes
# the cache key, so the next run builds a new tree.
PACKAGES: tuple[str, ...] = (
    "acct",
    "acl",
    "aide",
    "aide-common",
    "apt-listchanges",
    "ca-certificates",
    "chkrootkit",
    "cracklib-runtime",
    "debsums",
    "iproute2",
    "libpam-google-authenticator",
    "libpam-modules",
    "libpam-pwquality",
    "libpam-runtime",
    "libpam-tmpdir",
    "libsasl2-modules",
    "lynis",
    "needrestart",
    "nftables",
    "openssh-server",
    "pamtester",
    "postfix",
    "procps",
    "python3",
    "python3-apt",
    "python3-milter",
    "python3-venv",
    "samba",
    "samba-vfs-modules",
    "sasl2-bin",
    "sudo",
    "sysstat",
    "systemd",
    "unattended-upgrades",
)
CACHE_DIR = Path(os.environ.get("ISOLOIR_SANDBOX_CACHE", "/var/cache/isoloir"))
# Trees of running hosts (root-only: made by root, with root's umask).
WORK_DIR = Path(os.environ.get("ISOLOIR_SANDBOX_DIR", "/var/tmp/isoloir-sandbox"))  # noqa: S108
DEPLOY_USER = "isoloir-deploy"
SERVICE_SCRIPT = "/usr/local/sbin/isoloir-sandbox-service"
STATE_FILE = "sandbox.json"
# How a host runs: a real systemd as PID 1 of its own namespaces (the default),
# or the former init-less chroot with a pidfile service manager.
INITS = ("systemd", "chroot")
DEFAULT_INIT = "systemd"
BOOT_TIMEOUT_S = 90.0
HALT_TIMEOUT_S = 20.0
# Parent of the hosts' cgroups in the machine's cgroup2 hierarchy.
CGROUP_PARENT = "isoloir-sandbox"
# systemd's way to know it runs in a container (see "The Container Interface",
# https://systemd.io/CONTAINER_INTERFACE/).
CONTAINER_ENV = "isoloir-sandbox"
# Masked before the first boot: nmbd would answer NetBIOS on every interface,
# samba-ad-dc needs a domain, and the apt timers would reach the mirror on
# their own (the inventory turns them off: hardening_unattended_upgrades_timers).
MASKED_UNITS = ("nmbd.service", "samba-ad-dc.service", "apt-daily.timer", "apt-daily-upgrade.timer")

APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))

# The service manager used inside the sandbox (no init there). Pidfiles are the
# daemons' own; `start` says "started" only when it started something, which
# keeps Ansible runs idempotent.
_SERVICE_SCRIPT_TEXT = r"""#!/bin/sh
# isoloir-sandbox-service: start/stop/restart/reload/status of sshd and smbd in a
# sandbox host, which has no init. Installed by isoloir.controller.sandbox, never on real hosts.
set -eu
name="${1:?usage: isoloir-sandbox-service sshd|smbd start|stop|restart|reload|status}"
action="${2:?missing action}"
case "$name" in
  ssh|sshd) name=sshd; pidfile=/run/sshd.pid
       set -- /usr/sbin/sshd -E /var/log/sshd.log; mkdir -p /run/sshd; chmod 0755 /run/sshd ;;
  smbd) pidfile=/run/samba/smbd.pid
       set -- /usr/sbin/smbd --daemon; mkdir -p /run/samba /var/log/samba ;;
  *) echo "unknown service: $name" >&2; exit 2 ;;
esac
running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
start() {
  if running; then echo "$name already running"; return 0; fi
  "$@"
  i=0
  while ! running; do
    i=$((i + 1)); [ "$i" -le 100 ] || { echo "$name did not start" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name started"
}
stop() {
  if ! running; then echo "$name not running"; return 0; fi
  pid="$(cat "$pidfile")"; kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -le 100 ] || { kill -9 "$pid"; break; }
    sleep 0.1
  done
  rm -f "$pidfile"; echo "$name stopped"
}
case "$action" in
  start) start "$@" ;;
  stop) stop ;;
  restart) stop; start "$@" ;;
  reload)
    if running; then kill -HUP "$(cat "$pidfile")"; echo "$name reloaded"; else start "$@"; fi ;;
  status) if running; then echo "$name running"; else echo "$name stopped"; exit 3; fi ;;
  *) echo "unknown action: $action" >&2; exit 2 ;;
esac
"""

# sshd configuration of a fresh sandbox host, before the hardening role
# replaces it: the deploy account only, with its key only.
_BOOTSTRAP_SSHD = """# Written by isoloir.controller.sandbox; the hardening role replaces it.
ListenAddress {address}:{port}
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
AllowUsers {user}
UsePAM yes
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
"""


# Samba configuration of a fresh host, before the election_shares role replaces
# it: the host's loopback address only (smbd starts at boot, as on Debian).
_BOOTSTRAP_SMB = """# Written by isoloir.controller.sandbox; the election_shares role replaces it.
[global]
\tserver role = standalone server
\tmap to guest = Never
\trestrict anonymous = 2
\tdisable netbios = yes
\tsmb ports = 445
\tinterfaces = {address}/8
\tbind interfaces only = yes
\tload printers = no
\tprintcap name = /dev/null
"""

# Run by `sh` as PID 1 of the new PID namespace, in the new mount and cgroup
# namespaces ($1: the tree): the kernel file systems only this host sees, then
# systemd. /proc/sys and /sys are read-only, so systemd-sysctl, udev and the
# like skip themselves and never touch the machine's kernel settings.
_BOOT_SCRIPT = r"""set -eu
root="$1"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"
exec setpriv --bounding-set -sys_module,-sys_time chroot "$root" /lib/systemd/systemd --system
"""

# Moves itself into the host's cgroup ($1: its cgroup.procs), then makes the
# namespaces and runs _BOOT_SCRIPT ($2) on the tree ($3).
_LAUNCH_SCRIPT = (
    'echo $$ > "$1" && exec unshare --pid --fork --mount --cgroup --propagation private'
    ' -- sh -c "$2" isoloir-boot "$3"'
)


class SandboxError(RuntimeError):
    """The sandbox host could not be built, started or stopped."""


@dataclass(frozen=True)
class SandboxHost:
    """One running sandbox host, as recorded in its state file."""

    name: str
    workdir: str
    address: str
    ssh_port: int
    user: str
    key: str
    known_hosts: str
    init: str = "chroot"
    # systemd mode: the host's systemd (PID 1 inside) and its launcher, as the
    # machine numbers them, and the host's cgroup2 directory.
    init_pid: int = 0
    launcher_pid: int = 0
    cgroup: str = ""

    @property
    def root(self) -> Path:
        return Path(self.workdir) / "root"

    @property
    def state_file(self) -> Path:
        return Path(self.workdir) / STATE_FILE

    def set_password(self, user: str, password: str) -> None:
        """Give a host account a Unix password (SHA-512 crypt; for SMTP logins)."""
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.chroot("usermod", "-p", hashed, user)

    def chroot(
        self,
        *argv: str,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host as root (no login, no PAM session).

        On a systemd host the command enters the host's mount and PID
        namespaces first, so it sees the host's /proc, /sys and systemd.
        """
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
        }
        enter = (
            ["nsenter", "--target", str(self.init_pid), "--mount", "--pid", "--"]
            if self.init_pid
            else []
        )
        return subprocess.run(
            [*enter, "chroot", str(self.root), *argv],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            env=env,
            timeout=timeout,
        )

    def machine_pid(self, inner_pid: int) -> int:
        """The machine's number of a process the host numbers `inner_pid`."""
        if not self.init_pid:
            return inner_pid
        for pid in _pids_rooted_in(self.root):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                parts = line.split()
                if parts[:1] == ["NSpid:"] and len(parts) > 2 and int(parts[-1]) == inner_pid:
                    return pid
        raise SandboxError(f"no process {inner_pid} in {self.name}")

    def ssh_command(self, user: str | None = None, key: str | None = None) -> list[str]:
        """The ssh command line that reaches this host (add the remote command)."""
        return [
            "ssh",
            "-p",
            str(self.ssh_port),
            "-i",
            key or self.key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            f"{user or self.user}@{self.address}",
        ]


# -- the cached base tree -------------------------------------------------------------


def debian_mirror(sources: Sequence[Path] = APT_SOURCES) -> str:
    """The Debian mirror of the machine's apt configuration (deb822 or one-line)."""
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822(stanza)
                suites = fields.get("suites", "").split()
                if "deb" in fields.get("types", "").split() and SUITE in suites:
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) >= 3 and parts[0] == "deb":
                    uri_idx = 2 if parts[1].startswith("[") else 1
                    if parts[uri_idx + 1] == SUITE:
                        return parts[uri_idx]
    raise SandboxError(f"no Debian {SUITE} mirror in {', '.join(map(str, sources))}")


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def cache_key(packages: Iterable[str] = PACKAGES) -> str:
    material = "\n".join([SUITE, VARIANT, *sorted(packages)])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def base_tarball(cache_dir: Path = CACHE_DIR, log: Path | None = None) -> Path:
    """The cached tarball of the base tree; built with debootstrap when missing."""
    tarball = cache_dir / f"sandbox-{cache_key()}.tar.zst"
    if tarball.is_file():
        return tarball
    cache_dir.mkdir(parents=True, exist_ok=True)
    build = cache_dir / f"build-{cache_key()}"
    if build.exists():
        _remove_tree(build)
    out = open(log, "a", encoding="utf-8") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        subprocess.run(
            [
                "debootstrap",
                f"--variant={VARIANT}",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(build),
                debian_mirror(),
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        subprocess.run(["chroot", str(build), "apt-get", "clean"], check=True, stdout=out)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    # No mounts were made in the build tree, so it can be packed and removed.
    partial = tarball.with_suffix(".partial")
    subprocess.run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--acls",
            "-I",
            "zstd -T0",
            "-C",
            str(build),
            "-cf",
            str(partial),
            ".",
        ],
        check=True,
    )
    partial.rename(tarball)
    shutil.rmtree(build)
    return tarball


# -- mounts and processes -------------------------------------------------------------


def _mounts_under(root: Path) -> list[Path]:
    """Mount points at or below root, as the kernel lists them."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return found


def _mount(root: Path, init: str = DEFAULT_INIT) -> None:
    def mnt(fstype: str, target: str, options: str) -> None:
        path = root / target.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, "-o", options, fstype, str(path)], check=True)

    if init == "systemd":
        # The tree is a mount point of its own (systemd makes "/" shared);
        # /proc comes later, inside the host's PID namespace.
        subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    else:
        mnt("proc", "/proc", "nosuid,nodev,noexec")
    mnt("tmpfs", "/dev", "nosuid,mode=0755,size=16m")
    for name, major, minor in (
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ):
        node = root / "dev" / name
        os.mknod(node, 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(node, 0o666)  # noqa: S103 - the usual mode of these device nodes
    mnt("devpts", "/dev/pts", "newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec")
    os.symlink("pts/ptmx", root / "dev" / "ptmx")
    mnt("tmpfs", "/dev/shm", "nosuid,nodev,mode=1777")  # noqa: S108 - inside the tree
    os.symlink("/proc/self/fd", root / "dev" / "fd")
    mnt("tmpfs", "/run", "nosuid,nodev,mode=0755")
    (root / "run" / "lock").mkdir(mode=0o1777)


def _pids_rooted_in(root: Path) -> list[int]:
    target = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == target:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _stop_processes(root: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_rooted_in(root)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        for _ in range(50):
            if not _pids_rooted_in(root):
                return
            time.sleep(0.1)
    left = _pids_rooted_in(root)
    if left:
        raise SandboxError(f"{len(left)} processes still running in {root}")


def _cgroup2_root() -> Path:
    """Where the machine mounts its cgroup2 hierarchy."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return Path(fields[4])
    raise SandboxError("no cgroup2 hierarchy is mounted: a systemd host needs one")


def _host_cgroup(workdir: Path, name: str) -> Path:
    tag = hashlib.sha256(str(workdir).encode()).hexdigest()[:8]
    return _cgroup2_root() / CGROUP_PARENT / f"{name}-{tag}"


def _cgroup_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except OSError:
            continue
    return pids


def _remove_cgroup(cgroup: Path) -> None:
    """Remove the host's cgroup tree, deepest first, once its processes are gone."""
    if not cgroup.is_dir():
        return
    for _ in range(50):
        for pid in _cgroup_pids(cgroup):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        dirs = sorted(
            (d for d in cgroup.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True
        )
        for path in [*dirs, cgroup]:
            try:
                path.rmdir()
            except OSError:
                pass
        if not cgroup.exists():
            return
        time.sleep(0.1)
    raise SandboxError(f"cgroup {cgroup} could not be removed")


def _child_pids(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def _reap(pid: int, timeout: float = 5.0) -> None:
    """Collect the exit status of `pid` if this process started it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _unmount_all(root: Path) -> None:
    for _ in range(3):
        points = sorted(_mounts_under(root), key=lambda p: len(p.parts), reverse=True)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", str(point)], check=False, capture_output=True)
    points = _mounts_under(root)
    if points:
        raise SandboxError(f"still mounted under {root}: {len(points)} mount points")


def _remove_tree(path: Path) -> None:
    if _mounts_under(path):
        raise SandboxError(f"refusing to remove {path}: something is mounted below it")
    shutil.rmtree(path, ignore_errors=False)


# -- up and down ----------------------------------------------------------------------


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


# Ports a host's services take on its address besides ssh: smbd, smtp, submission.
SERVICE_PORTS = (445, 25, 587)


def free_address(start: int = 100, port: int = 22, samba_port: int = 445) -> str:
    """A 127.0.0.x address where the ssh, smb and mail ports are free."""
    ports = (port, samba_port, *[p for p in SERVICE_PORTS if p != samba_port])
    for last in range(start, 250):
        address = f"127.0.0.{last}"
        if all(_port_free(address, p) for p in ports):
            return address
    raise SandboxError("no free loopback address in 127.0.0.100-249")


def _wait_for_port(address: str, port: int, attempts: int = 100) -> None:
    for _ in range(attempts):
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SandboxError(f"nothing listens on {address}:{port}")


def up(
    name: str,
    address: str | None = None,
    ssh_port: int = 22,
    work_dir: Path = WORK_DIR,
    cache_dir: Path = CACHE_DIR,
    init: str = DEFAULT_INIT,
) -> SandboxHost:
    """Unpack, mount and start one sandbox host; returns once its sshd answers.

    init="systemd": boots systemd and waits until it says `running`.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", name):
        raise SandboxError(f"invalid sandbox name {name!r}")
    if init not in INITS:
        raise SandboxError(f"invalid init {init!r}: one of {', '.join(INITS)}")
    address = address or free_address(port=ssh_port)
    if not address.startswith("127."):
        raise SandboxError("a sandbox host listens on the loopback range only")
    tarball = base_tarball(cache_dir)
    workdir = (work_dir / name).resolve()
    if (workdir / STATE_FILE).exists():
        down(load(workdir / STATE_FILE))
    if workdir.exists():
        _remove_tree(workdir)
    root = workdir / "root"
    root.mkdir(parents=True)
    key = workdir / "id_ed25519"
    host = SandboxHost(
        name=name,
        workdir=str(workdir),
        address=address,
        ssh_port=ssh_port,
        user=DEPLOY_USER,
        key=str(key),
        known_hosts=str(workdir / "known_hosts"),
        init=init,
        cgroup=str(_host_cgroup(workdir, name)) if init == "systemd" else "",
    )
    # Record the host first so that `down` can clean up whatever happens next.
    host.state_file.write_text(json.dumps(asdict(host), indent=2) + "\n")
    try:
        subprocess.run(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "--acls",
                "-I",
                "zstd",
                "-C",
                str(root),
                "-xf",
                str(tarball),
            ],
            check=True,
        )
        _mount(root, init)
        _configure(host)
        if init == "systemd":
            host = _boot(host)
        else:
            host.chroot(SERVICE_SCRIPT, "sshd", "start")
        _wait_for_port(address, ssh_port)
    except BaseException:
        # The state file knows the pids of a boot that failed half-way.
        down(load(host.state_file) if host.state_file.is_file() else host)
        raise
    return host


def _boot(host: SandboxHost) -> SandboxHost:
    """Start systemd as PID 1 of the host's namespaces; wait until it is running."""
    cgroup = Path(host.cgroup)
    cgroup.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "container": CONTAINER_ENV,
        "LANG": "C.UTF-8",
    }
    with open(Path(host.workdir) / "boot.log", "ab") as log:
        launcher = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                "sh",
                "-c",
                _LAUNCH_SCRIPT,
                "isoloir-launch",
                str(cgroup / "cgroup.procs"),
                _BOOT_SCRIPT,
                str(host.root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    host = replace(host, launcher_pid=launcher.pid)
    host.state_file.write_text(json.dumps(asdict(host), indent=2) + "\n")
    host = replace(host, init_pid=_find_init(host, launcher))
    host.state_file.write_text(json.dumps(asdict(host), indent=2) + "\n")
    _wait_running(host)
    return host


def _find_init(host: SandboxHost, launcher: subprocess.Popen[bytes]) -> int:
    """The machine's pid of the host's systemd, once it runs inside the tree."""
    root = str(host.root.resolve())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            raise SandboxError(f"{host.name}: the boot failed; see {host.workdir}/boot.log")
        for pid in _child_pids(launcher.pid):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                inside = os.readlink(f"/proc/{pid}/root") == root
            except OSError:
                continue
            if comm == "systemd" and inside:
                return pid
        time.sleep(0.05)
    raise SandboxError(f"{host.name}: systemd did not start; see {host.workdir}/boot.log")


def _wait_running(host: SandboxHost) -> None:
    """Wait for `systemctl is-system-running`; name the failed units if not `running`."""
    # systemctl reaches systemd through this socket (no D-Bus on the host).
    socket_path = host.root / "run/systemd/private"
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        state = host.chroot(
            "systemctl", "is-system-running", "--wait", check=False, timeout=BOOT_TIMEOUT_S
        ).stdout.strip()
    except subprocess.TimeoutExpired:
        state = f"still starting after {BOOT_TIMEOUT_S:.0f} s"
    if state == "running":
        return
    listed = host.chroot("systemctl", "--failed", "--no-legend", "--plain", check=False).stdout
    failed = [line.split()[0] for line in listed.splitlines() if line.strip()]
    raise SandboxError(
        f"{host.name}: systemd is {state!r}, failed units: {', '.join(failed) or 'none'}"
        f" (journalctl inside the host, {host.workdir}/boot.log)"
    )


def _halt(host: SandboxHost) -> None:
    """Halt the host's systemd (SIGRTMIN+3), SIGKILL after HALT_TIMEOUT_S."""
    pid = host.init_pid
    try:
        ours = os.readlink(f"/proc/{pid}/root") == str(host.root.resolve())
    except OSError:
        ours = False
    if ours:
        os.kill(pid, signal.SIGRTMIN + 3)
        deadline = time.monotonic() + HALT_TIMEOUT_S
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}/root"):
            if _zombie(pid):
                break
            time.sleep(0.1)
        if os.path.exists(f"/proc/{pid}") and not _zombie(pid):
            # PID 1 of a namespace: its death kills every process inside.
            os.kill(pid, signal.SIGKILL)
    if host.launcher_pid:
        _reap(host.launcher_pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _configure(host: SandboxHost) -> None:
    root = host.root
    (root / "etc/hostname").write_text(f"{host.name}\n")
    # The host shares the machine's UTS namespace: make its name resolve (sudo asks).
    (root / "etc/hosts").write_text(
        f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n::1 localhost\n"
    )
    if host.init == "systemd":
        _configure_systemd(host)
    else:
        script = root / SERVICE_SCRIPT.lstrip("/")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(_SERVICE_SCRIPT_TEXT)
        script.chmod(0o755)
        # Never let package scripts start daemons inside the tree.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    # The deploy account: key only, password-less sudo (Ansible's `become`).
    host.chroot(
        "useradd", "--system", "--create-home", "--shell", "/bin/bash", "--user-group", DEPLOY_USER
    )
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"isoloir-deploy@{host.name}",
            "-f",
            host.key,
        ],
        check=True,
    )
    ssh_dir = root / "home" / DEPLOY_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(Path(host.key + ".pub").read_text())
    host.chroot("chown", "-R", f"{DEPLOY_USER}:{DEPLOY_USER}", f"/home/{DEPLOY_USER}/.ssh")
    sudoers = root / "etc/sudoers.d/isoloir-deploy"
    sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    # Fresh host keys for this host, and the bootstrap sshd configuration.
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    host.chroot(
        "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/etc/ssh/ssh_host_ed25519_key"
    )
    (root / "etc/ssh/sshd_config").write_text(
        _BOOTSTRAP_SSHD.format(address=host.address, port=host.ssh_port, user=DEPLOY_USER)
    )
    # Never listen beyond the host's own address, not even before the roles run.
    (root / "etc/samba/smb.conf").write_text(_BOOTSTRAP_SMB.format(address=host.address))
    # Debian's Postfix listens on every interface (port 25) until the
    # mail_guard role configures it: the host's own address only, from boot.
    # Postfix refuses an inet_interfaces address that no interface holds (a
    # 127.0.0.x other than 127.0.0.1), so the smtp service names the address
    # itself and inet_interfaces binds nothing else (loopback-only, unused).
    host.chroot("postconf", "-e", "inet_interfaces = loopback-only", "inet_protocols = ipv4")
    host.chroot("postconf", "-MX", "smtp/inet")
    host.chroot(
        "postconf", "-M", f"{host.address}:smtp/inet={host.address}:smtp inet n - y - - smtpd"
    )
    pub = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    where = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
    Path(host.known_hosts).write_text(f"{where} {pub[0]} {pub[1]}\n")


def _configure_systemd(host: SandboxHost) -> None:
    """What a systemd host needs before its first boot."""
    root = host.root
    # Its own machine id (the cached tree's would be shared by every host).
    (root / "etc/machine-id").write_text(os.urandom(16).hex() + "\n")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def load(state_file: Path) -> SandboxHost:
    data = json.loads(state_file.read_text())
    return SandboxHost(**data)


def down(host: SandboxHost, remove: bool = True) -> None:
    """Halt the host's systemd, stop what is left by pid, unmount, remove the tree."""
    root = host.root
    if host.init_pid or host.launcher_pid:
        _halt(host)
    if root.exists():
        _stop_processes(root)
        _unmount_all(root)
    if host.launcher_pid:
        _reap(host.launcher_pid)
    if host.cgroup:
        _remove_cgroup(Path(host.cgroup))
    if remove and Path(host.workdir).exists():
        _remove_tree(Path(host.workdir))


# -- inventory ------------------------------------------------------------------------


def inventory(hosts: Sequence[SandboxHost], group: str = "isoloir_hosts") -> dict[str, Any]:
    """An Ansible inventory (YAML/JSON form) for the sandbox hosts (local target)."""
    hostvars: dict[str, Any] = {}
    for host in hosts:
        hostvars[host.name] = {
            "ansible_host": host.address,
            "ansible_port": host.ssh_port,
            "ansible_user": host.user,
            "ansible_ssh_private_key_file": host.key,
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={host.known_hosts} -o StrictHostKeyChecking=yes"
                " -o IdentitiesOnly=yes"
            ),
            "isoloir_listen_addresses": [host.address],
            # Samba takes an address that is no interface's own only with a mask.
            "election_shares_interfaces": [f"{host.address}/8"],
            "hardening_ssh_port": host.ssh_port,
            # See _configure: the mail relay's services name the address itself.
            "mail_guard_inet_interfaces": "loopback-only",
        }
    return {
        "all": {
            "children": {
                group: {
                    "hosts": hostvars,
                    "vars": {
                        "isoloir_service_manager": _service_manager(hosts),
                        "hardening_deploy_user": DEPLOY_USER,
                        "hardening_deploy_sources": ["127.0.0.0/8"],
                        "hardening_unattended_upgrades_timers": False,
                    },
                }
            }
        }
    }


def _service_manager(hosts: Sequence[SandboxHost]) -> str:
    """systemd when every host boots it; the pidfile manager otherwise."""
    return "systemd" if hosts and all(h.init == "systemd" for h in hosts) else "sandbox"


# -- command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m isoloir.controller.sandbox",
        description="Sandbox Debian hosts (systemd in its own namespaces, sshd on 127.0.0.x).",
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build the cached base tarball")
    build.add_argument("--log", type=Path)
    start = sub.add_parser("up", help="start hosts and write an inventory")
    start.add_argument("names", nargs="+")
    start.add_argument("--inventory", type=Path, required=True)
    start.add_argument("--init", choices=INITS, default=DEFAULT_INIT)
    stop = sub.add_parser("down", help="stop the hosts (all recorded ones if none named)")
    stop.add_argument("names", nargs="*")
    args = parser.parse_args(argv)

    if args.action == "build":
        print(base_tarball(args.cache_dir, args.log))
        return 0
    if args.action == "up":
        hosts: list[SandboxHost] = []
        for name in args.names:
            hosts.append(up(name, work_dir=args.work_dir, cache_dir=args.cache_dir, init=args.init))
            print(f"{name}: {hosts[-1].address}:{hosts[-1].ssh_port}")
        args.inventory.parent.mkdir(parents=True, exist_ok=True)
        args.inventory.write_text(json.dumps(inventory(hosts), indent=2) + "\n")
        print(f"inventory: {args.inventory}")
        return 0
    states = (
        [args.work_dir / n / STATE_FILE for n in args.names]
        if args.names
        else sorted(
            [*args.work_dir.glob(f"*/{STATE_FILE}"), *args.work_dir.glob(f"*/*/{STATE_FILE}")]
        )
    )
    for state in states:
        if state.is_file():
            down(load(state))
            print(f"{state.parent.name}: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
