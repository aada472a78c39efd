"""The AWS emulator for tests and the local target: moto's real server process.

`Emulator.start()` runs `moto_server` (the console script installed next to the
Python interpreter) on 127.0.0.1 with an ephemeral port, served over TLS with a
throw-away certificate authority and server certificate made here with
`cryptography`. TLS matters: moto evaluates bucket policies, and Isoloir's
TLS-only statement (`aws:SecureTransport` false -> Deny) must hold against the
emulator exactly as it does on AWS, rather than being weakened for tests.

The emulator is stopped by the pid it was started with, never by name.

    with Emulator.start() as emu:
        subprocess.run(["terraform", "apply"], env={**os.environ, **emu.env()})

Set `auth=True` to make moto check IAM: every request must then be signed by
an access key moto issued, and moto's server evaluates the caller's IAM
policies (and bucket policies) before serving it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isoloir.controller.emulator_server import CLOCK_PATH

HOST = "127.0.0.1"
# Fake credentials: moto accepts any key unless auth is on.
FAKE_ACCESS_KEY_ID = "AKIAISOLOIREMULATOR0"
FAKE_SECRET_ACCESS_KEY = "isoloir-emulator-fake-secret-key-not-a-secret"  # noqa: S105
DEFAULT_REGION = "eu-west-3"
START_TIMEOUT_S = 60.0
_RUNNING_RE = re.compile(r"Running on https://[0-9.]+:(\d+)")


class EmulatorError(RuntimeError):
    """The emulator could not start or answer."""


def _moto_server_path() -> str:
    """`moto_server` next to this interpreter (the venv's), else on PATH."""
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("moto_server")
    if found is None:
        raise EmulatorError(
            "moto_server not found: run `make setup` (moto is in requirements.lock)"
        )
    return found


def write_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """Create a throw-away CA and a server certificate for 127.0.0.1/localhost.

    Returns (ca_bundle, server_cert, server_key). The CA's key is never written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(minutes=5)
    not_after = now + dt.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "isoloir emulator test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address(HOST)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@dataclass
class Emulator:
    """A running `moto_server` process (or one started elsewhere, see `from_env`)."""

    endpoint: str
    ca_bundle: Path
    pid: int | None = None
    auth: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workdir: Path | None = field(default=None, repr=False)
    _log: list[str] = field(default_factory=list, repr=False)

    # ----------------------------------------------------------------- start
    @classmethod
    def start(
        cls,
        workdir: str | os.PathLike[str] | None = None,
        *,
        auth: bool = False,
        timeout: float = START_TIMEOUT_S,
        log_path: str | os.PathLike[str] | None = None,
    ) -> Emulator:
        """Start `moto_server` over TLS on 127.0.0.1 and wait until it answers.

        `workdir` receives the certificates (a temporary directory when None,
        removed at `stop()`). With `log_path`, moto's output goes to that file
        and the server outlives this process (the local target keeps it
        between commands; `stop_pid()` ends it later).
        """
        owned = workdir is None
        wd = Path(tempfile.mkdtemp(prefix="isoloir-emulator-")) if owned else Path(str(workdir))
        ca_path, cert_path, key_path = write_tls_material(wd / "tls")
        env = dict(os.environ)
        # moto keeps everything in memory; these keep it quiet and local.
        env.pop("MOTO_CALL_RESET_API", None)
        env["MOTO_ALLOW_NONEXISTENT_REGION"] = "false"
        if auth:
            # No request is let through unauthenticated; IAM policies are evaluated.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        else:
            env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        _moto_server_path()  # fails early with a clear message when moto is missing
        cmd = [
            sys.executable,
            "-m",
            "isoloir.controller.emulator_server",
            "--host",
            HOST,
            "--port",
            "0",
            "--ssl-cert",
            str(cert_path),
            "--ssl-key",
            str(key_path),
        ]
        log_file = open(log_path, "wb") if log_path is not None else None  # noqa: SIM115
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd,
            stdout=log_file if log_file is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        emu = cls(
            endpoint="",
            ca_bundle=ca_path,
            pid=proc.pid,
            auth=auth,
            _proc=proc,
            _workdir=wd if owned else None,
        )
        if log_file is not None:
            log_file.close()
            port = emu._wait_for_port_in_file(Path(str(log_path)), timeout)
        else:
            port = emu._wait_for_port(timeout)
        emu.endpoint = f"https://{HOST}:{port}"
        emu._wait_ready(time.monotonic() + timeout)
        return emu

    def _wait_for_port(self, timeout: float) -> int:
        """Read moto's start-up lines until werkzeug names the port it bound."""
        assert self._proc is not None and self._proc.stdout is not None
        found: list[int] = []
        ready = threading.Event()
        stream = self._proc.stdout

        def reader() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                if len(self._log) < 200:
                    self._log.append(line)
                match = _RUNNING_RE.search(line)
                if match and not found:
                    found.append(int(match.group(1)))
                    ready.set()
            ready.set()

        threading.Thread(target=reader, name="moto-server-log", daemon=True).start()
        if not ready.wait(timeout) or not found:
            self.stop()
            tail = "\n".join(self._log[-20:])
            raise EmulatorError(f"moto_server did not report its port:\n{tail}")
        return found[0]

    def _wait_for_port_in_file(self, path: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _RUNNING_RE.search(path.read_text("utf-8", "replace"))
            if match:
                return int(match.group(1))
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"moto_server did not report its port (see {path})")

    def detach(self) -> None:
        """Let the server outlive this object (only with `log_path`)."""
        self._proc = None
        self._workdir = None

    @staticmethod
    def stop_pid(pid: int) -> None:
        """Stop a detached emulator by the pid recorded when it started."""
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def alive(self) -> bool:
        """Does the endpoint answer?"""
        try:
            return self._ping()
        except (urllib.error.URLError, OSError):
            return False

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def _wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise EmulatorError(f"moto_server exited with {self._proc.returncode}")
            try:
                if self._ping():
                    return
            except (urllib.error.URLError, OSError) as exc:
                last = exc
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"moto_server not ready at {self.endpoint}: {last}")

    def _ping(self) -> bool:
        """A cheap request any moto server answers (GET on the reset API: 400)."""
        try:
            with urllib.request.urlopen(  # noqa: S310
                f"{self.endpoint}/moto-api/reset", context=self.ssl_context(), timeout=10
            ) as resp:
                return bool(resp.status < 500)
        except urllib.error.HTTPError as exc:
            return exc.code < 500

    # ------------------------------------------------------------- reuse
    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Emulator | None:
        """An emulator already running, named by ISOLOIR_AWS_ENDPOINT + AWS_CA_BUNDLE."""
        source = os.environ if environ is None else environ
        endpoint = source.get("ISOLOIR_AWS_ENDPOINT")
        bundle = source.get("AWS_CA_BUNDLE")
        if not endpoint or not bundle:
            return None
        return cls(endpoint=endpoint.rstrip("/"), ca_bundle=Path(bundle))

    # ------------------------------------------------------------- use
    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def env(self, region: str = DEFAULT_REGION) -> dict[str, str]:
        """Environment for Terraform, boto3 and the agents to talk to this emulator."""
        return {
            "ISOLOIR_AWS_ENDPOINT": self.endpoint,
            "AWS_CA_BUNDLE": str(self.ca_bundle),
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # Never read the developer's real profile or IMDS by accident.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def _post(self, path: str, body: bytes = b"") -> bytes:
        # Not a form: moto reads the raw body (reset-auth's count), which a form
        # content type would leave empty.
        headers = {"Content-Type": "application/octet-stream"}
        req = urllib.request.Request(  # noqa: S310
            f"{self.endpoint}{path}", data=body, method="POST", headers=headers
        )
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:  # noqa: S310
            data: bytes = resp.read()
            return data

    def reset(self) -> None:
        """Forget every resource in every region (moto's reset API), and set
        the emulator's clock back to the machine's."""
        self._post("/moto-api/reset")
        try:
            self.set_clock(None)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # an emulator started by an earlier version: no clock
                raise

    def set_clock(self, when: dt.datetime | None) -> None:
        """The time AWS's policy conditions see (`aws:CurrentTime`) in this
        emulator: `when` (aware) from now on, advancing; None: the machine's."""
        if when is not None and when.tzinfo is None:
            raise ValueError("the emulator's clock needs an aware datetime")
        now = None if when is None else when.isoformat()
        self._post(CLOCK_PATH, json.dumps({"now": now}).encode())

    def set_auth(self, enabled: bool) -> None:
        """Switch IAM authentication on or off at run time (moto's reset-auth API).

        With `enabled`, every later request must be signed with a key moto
        issued (create it while auth is off) and is checked against IAM.
        """
        # moto reads the body as a number: requests let through before checking.
        self._post("/moto-api/reset-auth", b"0" if enabled else b"inf")
        self.auth = enabled

    def create_admin(self, name: str = "isoloir-emulator-admin") -> dict[str, str]:
        """An IAM user allowed everything, and its access key (call with auth off).

        Under enforcement the emulator's fake key is unknown to IAM: Terraform,
        the tests' own setup and checks use this user's key instead.
        """
        iam = self._client("iam", self.env())
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="everything",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            **self.env(),
            "AWS_ACCESS_KEY_ID": str(key["AccessKeyId"]),
            "AWS_SECRET_ACCESS_KEY": str(key["SecretAccessKey"]),
        }

    def assume_role(
        self, role_arn: str, caller: dict[str, str], session: str = "isoloir-agent"
    ) -> dict[str, str]:
        """Environment with an STS session of `role_arn`, obtained with `caller`'s key.

        The variables boto3 reads (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN) point the agents at the role. moto does not check
        the role's trust policy while auth is off, so assume it before.
        """
        sts = self._client("sts", caller)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        return {
            **caller,
            "AWS_ACCESS_KEY_ID": str(creds["AccessKeyId"]),
            "AWS_SECRET_ACCESS_KEY": str(creds["SecretAccessKey"]),
            "AWS_SESSION_TOKEN": str(creds["SessionToken"]),
        }

    def _client(self, service: str, env: dict[str, str]) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=env.get("AWS_REGION", DEFAULT_REGION),
        ).client(service, endpoint_url=self.endpoint, verify=str(self.ca_bundle))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the server by its pid (only if this object started it)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._proc = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def running(auth: bool = False) -> Iterator[Emulator]:
    """Generator form for fixtures: start, yield, stop."""
    emu = Emulator.start(auth=auth)
    try:
        yield emu
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m isoloir.controller.emulator`: run one in the foreground and print its settings."""
    import argparse

    parser = argparse.ArgumentParser(description="Run the AWS emulator (moto) over TLS")
    parser.add_argument("--workdir", help="where to write the certificates")
    parser.add_argument("--auth", action="store_true", help="enforce IAM authentication")
    args = parser.parse_args(argv)
    emu = Emulator.start(args.workdir, auth=args.auth)
    for key, value in sorted(emu.env().items()):
        print(f"export {key}={value}")
    sys.stdout.flush()
    try:
        while emu.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
