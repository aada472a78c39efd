"""The local target: the AWS emulator, one sandbox host and an SMTP sink.

Everything listens on the loopback range and is recorded, with its pid, in
`<run dir>/state.json`; `down()` stops each by that pid and unmounts the
sandbox host. `make up` / `make down` and `isoloir deploy --target local` use
this module; nothing here is used against a real cloud.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isoloir.controller import sandbox
from isoloir.controller.emulator import Emulator

DEFAULT_RUN_DIR = Path(".run/local")
SANDBOX_NAME = "isoloir-local"
START_TIMEOUT_S = 90.0

MODULE = "isoloir.controller.localtarget"  # how the emulator's child runs


class LocalTargetError(RuntimeError):
    pass


@dataclass
class Service:
    pid: int
    info: dict[str, Any]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_pid(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> None:
    if not _alive(pid):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class LocalTarget:
    def __init__(self, run_dir: Path = DEFAULT_RUN_DIR) -> None:
        self.run_dir = run_dir.resolve()
        self.state_path = self.run_dir / "state.json"

    # ------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        if not self.state_path.is_file():
            return {}
        data: dict[str, Any] = json.loads(self.state_path.read_text())
        return data

    def _save(self, state: dict[str, Any]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.state_path)

    # ---------------------------------------------------------- emulator
    def _start_emulator(self) -> dict[str, Any]:
        workdir = self.run_dir / "emulator"
        workdir.mkdir(parents=True, exist_ok=True)
        info_path = workdir / "info.json"
        info_path.unlink(missing_ok=True)
        log = open(workdir / "server.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", MODULE, "serve-emulator", str(workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalTargetError(f"the emulator exited; see {workdir / 'server.log'}")
            if info_path.is_file():
                info: dict[str, Any] = json.loads(info_path.read_text())
                info["pid"] = proc.pid
                return info
            time.sleep(0.2)
        _stop_pid(proc.pid)
        raise LocalTargetError(f"the emulator did not start; see {workdir / 'server.log'}")

    # -------------------------------------------------------------- sink
    def _start_sink(self) -> dict[str, Any]:
        workdir = self.run_dir / "smtp"
        maildir = workdir / "maildir"
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        webhook_port = free_port()
        pidfile = workdir / "sink.pid"
        log = open(workdir / "sink.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "isoloir.controller.sink",
                "--maildir",
                str(maildir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--pidfile",
                str(pidfile),
                "--webhook-port",
                str(webhook_port),
                "--webhook-dir",
                str(workdir / "webhooks"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalTargetError(f"the SMTP sink exited; see {workdir / 'sink.log'}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return {
                        "pid": proc.pid,
                        "host": "127.0.0.1",
                        "port": port,
                        "maildir": str(maildir),
                        "webhook_port": webhook_port,
                        "webhooks": str(workdir / "webhooks"),
                    }
            except OSError:
                time.sleep(0.2)
        _stop_pid(proc.pid)
        raise LocalTargetError("the SMTP sink did not start")

    # ------------------------------------------------------------ public
    def up(self, log: Any = print, emulator: Emulator | None = None) -> dict[str, Any]:
        """Start what is not running yet; return the state.

        `emulator`: use this running emulator (the tests' session emulator)
        instead of starting one; it is then not stopped by `down()`.
        """
        state = self.state()
        emu = state.get("emulator")
        if emulator is not None:
            state["emulator"] = {
                "endpoint": emulator.endpoint,
                "ca_bundle": str(emulator.ca_bundle),
                "external": True,
            }
            self._save(state)
        elif not emu or emu.get("external") or not _alive(int(emu["pid"])):
            log("starting the AWS emulator (moto, TLS, 127.0.0.1)")
            state["emulator"] = self._start_emulator()
            self._save(state)
        sink = state.get("smtp")
        if not sink or not _alive(int(sink["pid"])):
            log("starting the SMTP sink (127.0.0.1)")
            state["smtp"] = self._start_sink()
            self._save(state)
        host_state = state.get("sandbox")
        if not host_state or not Path(host_state).is_file() or not self._sandbox_alive():
            log(
                "starting the sandbox host (it boots systemd; the first run builds"
                " the Debian tree: a few minutes)"
            )
            host = sandbox.up(SANDBOX_NAME, work_dir=self.run_dir / "hosts")
            state["sandbox"] = str(host.state_file)
            self._save(state)
        return state

    def _sandbox_alive(self) -> bool:
        path = self.state().get("sandbox")
        if not path or not Path(path).is_file():
            return False
        host = sandbox.load(Path(path))
        try:
            with socket.create_connection((host.address, host.ssh_port), timeout=2):
                return True
        except OSError:
            return False

    def host(self) -> sandbox.SandboxHost:
        path = self.state().get("sandbox")
        if not path:
            raise LocalTargetError("the local target is not up (make up)")
        return sandbox.load(Path(path))

    def env(self) -> dict[str, str]:
        emu = self.state().get("emulator")
        if not emu:
            raise LocalTargetError("the local target is not up (make up)")
        return Emulator(endpoint=emu["endpoint"], ca_bundle=Path(emu["ca_bundle"])).env()

    def down(self, log: Any = print) -> None:
        state = self.state()
        if state.get("sandbox") and Path(state["sandbox"]).is_file():
            log("stopping the sandbox host")
            sandbox.down(sandbox.load(Path(state["sandbox"])))
        for name in ("smtp", "emulator"):
            svc = state.get(name)
            if svc and not svc.get("external"):
                log(f"stopping {name} (pid {svc['pid']})")
                _stop_pid(int(svc["pid"]))
        self.state_path.unlink(missing_ok=True)


def serve_emulator(workdir: Path) -> int:
    """Foreground emulator for the local target; stops moto on SIGTERM."""
    emu = Emulator.start(workdir)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        info = {"endpoint": emu.endpoint, "ca_bundle": str(emu.ca_bundle), "moto_pid": emu.pid}
        tmp = workdir / "info.json.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, workdir / "info.json")
        while emu.running:
            time.sleep(1)
        return 1
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoloir.controller.localtarget")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="start the emulator, the SMTP sink and the sandbox host")
    sub.add_parser("down", help="stop them by pid and unmount the sandbox host")
    sub.add_parser("env", help="print the emulator's environment as shell exports")
    serve = sub.add_parser("serve-emulator")
    serve.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    target = LocalTarget(args.run_dir)
    try:
        if args.action == "up":
            state = target.up()
            host = target.host()
            print(f"emulator: {state['emulator']['endpoint']}")
            print(f"smtp sink: 127.0.0.1:{state['smtp']['port']} -> {state['smtp']['maildir']}")
            print(f"sandbox host: {host.address}:{host.ssh_port}")
        elif args.action == "down":
            target.down()
        elif args.action == "env":
            for key, value in sorted(target.env().items()):
                print(f"export {key}={value}")
        else:
            return serve_emulator(args.workdir)
    except (LocalTargetError, sandbox.SandboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
