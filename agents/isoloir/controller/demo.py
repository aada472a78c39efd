"""`isoloir demo` (make demo): the exposed-contacts-file incident, replayed.

1. deploy the example policies on the local target (emulator, sandbox host,
   SMTP sink, all on loopback);
2. seed the campaign's files (fake contacts) in the bucket and the share;
3. the incident: a volunteer copies the contacts file into the share with a
   world-readable mode, and an object in the bucket is made public;
4. one scan cycle of the agents finds both, fixes what the policies allow and
   alerts the administrators; the alerts are printed from the maildir;
5. the clock moves past the election's retention date (an override for the
   demo and the tests only): the retention agent purges, keeps the consenting
   contacts, records the opt-outs, shreds the key and signs a certificate,
   which is verified; root's share lock then stops members writing into the
   purged campaign folders;
6. the mail guard: a volunteer's mass mail with every address visible is
   refused with the Bcc message, then sent correctly; a voter who wrote to the
   unsubscribe address just before is dropped from it.

Each step returns what it observed, so the end-to-end test asserts on exactly
what the demo shows.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import shutil
import smtplib
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from isoloir import aws
from isoloir.controller import fakedata
from isoloir.controller.deploy import AGENT_USER_ARGV, AGENT_VENV, Deployment
from isoloir.controller.localtarget import LocalTarget
from isoloir.controller.sink import received
from isoloir.mailguard import transparency
from isoloir.policy.model import Election
from isoloir.retention.planning import campaign_datasets

REPO = Path(__file__).resolve().parents[3]
VOLUNTEER = "dmodele"
MAIL_CERT = "etc/postfix/isoloir-tls/cert.pem"  # the relay's certificate, in the host
MAIL_VOTERS = "electeurs-demo.example"
CONTACTS = 60
LEAKED_NAME = "export-contacts.csv"
PUBLIC_KEY = "prospects/contacts-2027.csv"
# A door-to-door opt-out with no e-mail or phone (fakedata's columns), and next year's
# extract of the electoral list, which writes the same person its own way.
DOOR_OPT_OUT = (
    "Octave;Esquisse;;;40 chemin du Porte-à-Porte, 99000 Exempleville;Exempleville;non;oui\n"
)
ROLL_DIR = "/var/lib/isoloir"
NEXT_ROLL = (
    "nom;prenoms;adresse;code postal;commune\n"
    "ESQUISSE;Octave;40 ch. du Porte-a-Porte;99000;EXEMPLEVILLE\n"
    "VOISIN;Nouveau;42 chemin du Porte-à-Porte;99000;Exempleville\n"
)


def _public_access_block(read: Any) -> dict[str, bool]:
    """The four flags, or {} when no block is configured."""
    from botocore.exceptions import ClientError

    try:
        flags: dict[str, bool] = read()["PublicAccessBlockConfiguration"]
        return flags
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchPublicAccessBlockConfiguration":
            return {}
        raise


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _flags(block: dict[str, bool]) -> str:
    return "on" if block and all(block.values()) else "OFF"


@dataclass
class Demo:
    run_dir: Path
    out: Any = print
    emulator: Any = None  # a running Emulator to use (tests); else the local target starts one
    deployment: Deployment | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------ helpers
    @property
    def local(self) -> LocalTarget:
        return LocalTarget(self.run_dir / "local")

    @property
    def election(self) -> Election:
        assert self.deployment is not None and self.deployment.policies is not None
        return self.deployment.policies.elections[0]

    def _env(self) -> None:
        assert self.deployment is not None
        os.environ.update({k: v for k, v in self.deployment.env.items()})

    def s3(self) -> Any:
        self._env()
        return aws.client("s3", region=self.election.region)

    def host_path(self, path: str) -> Path:
        return self.local.host().root / path.lstrip("/")

    def agents(self, *args: str, now: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the agents' CLI inside the sandbox host, as their own user."""
        assert self.deployment is not None
        env_args = self.deployment._agent_env_args()
        if now:
            env_args.append(f"ISOLOIR_NOW={now}")
        return self.local.host().chroot(
            *AGENT_USER_ARGV, "env", *env_args, f"{AGENT_VENV}/bin/isoloir", *args, check=False
        )

    def show(self, proc: subprocess.CompletedProcess[str], limit: int = 40) -> None:
        lines = (proc.stdout + proc.stderr).splitlines()
        for line in lines[:limit]:
            self.out(f"    {line}")
        if len(lines) > limit:
            self.out(f"    ... ({len(lines) - limit} more lines)")

    # -------------------------------------------------------------- steps
    def deploy(self) -> int:
        self.deployment = Deployment(
            target="local",
            policies_dir=REPO / "policies",
            run_dir=self.run_dir,
            out=self.out,
            emulator=self.emulator,
        )
        code = self.deployment.run()
        self.facts["deploy_exit"] = code
        return code

    def seed(self) -> None:
        """The campaign's files, as the team would have stored them."""
        e = self.election
        people = fakedata.contacts(CONTACTS)
        text = fakedata.csv_text(people)
        s3 = self.s3()
        # two versions of the contacts file, a door-to-door sheet, the volunteers list
        s3.put_object(Bucket=e.bucket_name, Key=PUBLIC_KEY, Body=text[: len(text) // 2].encode())
        s3.put_object(Bucket=e.bucket_name, Key=PUBLIC_KEY, Body=text.encode())
        # the round also met someone who gave no e-mail or phone and said "ne plus me
        # solliciter": recorded by name and address, it must survive the purge
        sheet = fakedata.csv_text(people[:10]) + DOOR_OPT_OUT
        s3.put_object(Bucket=e.bucket_name, Key="porte-a-porte/tournee-1.csv", Body=sheet.encode())
        share = self.host_path(e.share_path)
        for rel, body in (
            ("prospects/contacts-2027.csv", text),
            ("porte-a-porte/tournee-1.csv", sheet),
        ):
            self._write_as_member(share / rel, body, mode="0660")
        self.facts["consenting"] = sum(1 for p in people if p.consentement == "oui")
        self.facts["opt_outs"] = sum(1 for p in people if p.desinscrit == "oui")
        self.out(
            f"    {CONTACTS} fake contacts in s3://{e.bucket_name}/{PUBLIC_KEY} "
            f"(2 versions) and in {e.share_path}/prospects/"
        )

    def _write_as_member(self, target: Path, body: str, mode: str) -> None:
        host = self.local.host()
        inside = "/" + str(target.relative_to(host.root))
        host.chroot(
            "runuser",
            "-u",
            VOLUNTEER,
            "--",
            "sh",
            "-c",
            f'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod {mode} "$1"',
            "sh",
            inside,
            input=body,
        )

    def incident(self) -> None:
        e = self.election
        leaked = self.host_path(e.share_path) / "prospects" / LEAKED_NAME
        self._write_as_member(leaked, fakedata.csv_text(fakedata.contacts(CONTACTS)), "0644")
        self.facts["leaked_mode_before"] = oct(leaked.stat().st_mode & 0o777)
        self.out(
            f"    a volunteer copied {e.share_path}/prospects/{LEAKED_NAME} "
            f"with mode {self.facts['leaked_mode_before']} (readable by anyone on the host)"
        )
        s3 = self.s3()
        # With the account-level block on, a bucket cannot be made public at all:
        # the incident needs someone who removes both levels.
        control = aws.client("s3control", region=e.region)
        account = aws.client("sts", region=e.region).get_caller_identity()["Account"]
        control.delete_public_access_block(AccountId=account)
        s3.delete_public_access_block(Bucket=e.bucket_name)
        policy = json.loads(s3.get_bucket_policy(Bucket=e.bucket_name)["Policy"])
        policy["Statement"].append(
            {
                "Sid": "ShareWithPrintShop",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{e.bucket_name}/{PUBLIC_KEY}",
            }
        )
        s3.put_bucket_policy(Bucket=e.bucket_name, Policy=json.dumps(policy))
        self.out(
            f"    someone removed the public access block of {e.bucket_name} and "
            f"made {PUBLIC_KEY} readable by anyone"
        )

    def scan_cycle(self) -> None:
        proc = self.agents("run", "--once", "--job", "scan")
        self.show(proc, limit=25)
        e = self.election
        leaked = self.host_path(e.share_path) / "prospects" / LEAKED_NAME
        self.facts["leaked_mode_after"] = oct(leaked.stat().st_mode & 0o777)
        s3 = self.s3()
        block = _public_access_block(lambda: s3.get_public_access_block(Bucket=e.bucket_name))
        account = aws.client("sts", region=e.region).get_caller_identity()["Account"]
        control = aws.client("s3control", region=e.region)
        account_block = _public_access_block(
            lambda: control.get_public_access_block(AccountId=account)
        )
        self.facts["account_public_access_block"] = account_block
        policy = json.loads(s3.get_bucket_policy(Bucket=e.bucket_name)["Policy"])
        self.facts["public_access_block"] = block
        self.facts["public_statements"] = [
            s for s in policy["Statement"] if s.get("Principal") == "*" and s["Effect"] == "Allow"
        ]
        self.out(
            f"    after one scan cycle: {LEAKED_NAME} mode {self.facts['leaked_mode_after']}, "
            f"public access block: bucket {_flags(block)}, account {_flags(account_block)}, "
            f"{len(self.facts['public_statements'])} public statement(s) left"
        )

    def alerts(self) -> None:
        from isoloir.alerts.cli import read_maildir

        state = self.local.state()["smtp"]
        messages: list[dict[str, Any]] = read_maildir(Path(state["maildir"]))
        self.facts["alerts"] = messages
        webhooks = sorted(Path(state["webhooks"]).glob("*.json"))
        self.facts["webhooks"] = [json.loads(p.read_text()) for p in webhooks]
        self.out(
            f"    {len(messages)} email(s) in the maildir, {len(webhooks)} webhook(s) received"
        )
        for m in messages:
            self.out(f"    to {m['headers'].get('To')}: {m['headers'].get('Subject')}")
        critical = [m for m in messages if m["headers"].get("X-Isoloir-Severity") == "critical"]
        for m in critical[:2]:
            self.out(f"\n    ----- {m['headers'].get('Subject')} (to {m['headers'].get('To')})")
            for line in m["body"].rstrip("\n").splitlines():
                self.out(f"    {line}")

    def retention(self) -> None:
        e = self.election
        now = (e.retention_due + timedelta(days=1)).isoformat() + "T05:00:00+00:00"
        self.out(
            f"    clock override for the demo: ISOLOIR_NOW={now} "
            f"(retention was due {e.retention_due})"
        )
        proc = self.agents("run", "--once", "--job", "retention", now=now)
        self.show(proc, limit=25)
        s3 = self.s3()
        rule = s3.get_bucket_encryption(Bucket=e.bucket_name)["ServerSideEncryptionConfiguration"]
        key_id = rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]
        key = aws.client("kms", region=e.region).describe_key(KeyId=key_id)["KeyMetadata"]
        self.facts["key_state"] = key["KeyState"]
        self.facts["key_deletion_date"] = str(key.get("DeletionDate", ""))
        left = s3.list_object_versions(Bucket=e.bucket_name)
        keys = [v["Key"] for v in left.get("Versions", []) + left.get("DeleteMarkers", [])]
        campaign = [d.bucket_prefix for d in e.datasets if d.campaign_specific]
        self.facts["campaign_versions_left"] = sum(
            1 for k in keys if any(k.startswith(p) for p in campaign)
        )
        self.facts["permanent_objects_left"] = sum(
            1 for k in keys if not any(k.startswith(p) for p in campaign)
        )
        share = self.host_path(e.share_path)
        self.facts["campaign_files_left"] = sum(
            1
            for d in e.datasets
            if d.campaign_specific
            for p in (share / d.share_path).rglob("*")
            if p.is_file()
        )
        assert self.deployment is not None and self.deployment.policies is not None
        contacts_dir = self.host_path(self.deployment.policies.baseline.retention.contacts_path)
        kept = 0
        for path in contacts_dir.rglob("*.csv"):
            kept += sum(1 for _ in csv.DictReader(io.StringIO(path.read_text())))
        self.facts["contacts_kept"] = kept
        certs = sorted(self.host_path("/var/lib/isoloir/retention/certificates").glob("*.json"))
        self.facts["certificates"] = [str(c) for c in certs]
        self.out(
            f"    campaign object versions left: {self.facts['campaign_versions_left']}, "
            f"campaign files left: {self.facts['campaign_files_left']}, "
            f"contacts kept: {kept}, election key: {self.facts['key_state']}"
        )
        if certs:
            inside = "/" + str(certs[-1].relative_to(self.local.host().root))
            # verified against the host's own signing key, not the copy beside the certificate
            verify = self.agents("certificate", "verify", "--host-key", inside)
            self.facts["certificate_verify_exit"] = verify.returncode
            self.show(verify)
            self.show(
                self.agents("certificate", "show", "--lang", "fr", "--host-key", inside), limit=40
            )
            self.out(
                "    (the demo's clock was moved past the retention date; the emulator "
                "keeps the real one, so the key's deletion date is counted from today)"
            )
        self.door_opt_out()
        self.share_lock(e)

    def door_opt_out(self) -> None:
        """The door-to-door opt-out outlived its sheet: next year's electoral list loses them."""
        folder = f"{ROLL_DIR}/demo-liste-2028"  # the agents' own: they write the result
        self.local.host().chroot(
            "install", "-d", "-o", "isoloir", "-g", "isoloir", "-m", "0700", folder
        )
        self.host_path(f"{folder}/liste.csv").write_text(NEXT_ROLL, encoding="utf-8")
        self.host_path(f"{folder}/liste.csv").chmod(0o644)
        proc = self.agents(
            "suppression", "filter", f"{folder}/liste.csv", "-o", f"{folder}/filtree.csv"
        )
        self.out("    next year's electoral list, filtered by the suppression list:")
        self.show(proc)
        result = self.host_path(f"{folder}/filtree.csv")
        kept = result.read_text(encoding="utf-8") if result.is_file() else ""
        self.facts["door_opt_out_filtered"] = (proc.returncode, proc.stdout, "ESQUISSE" in kept)
        shutil.rmtree(self.host_path(folder))

    def share_lock(self, e: Election) -> None:
        """Root's isoloir-share-lock.service locks the purged campaign folders."""
        record = self.host_path(f"/var/lib/isoloir-share-lock/{e.id}.json")
        deadline = time.monotonic() + 60
        while not record.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
        self.facts["share_locked"] = record.is_file()
        if not record.is_file():
            self.out("    share lock: nothing recorded within 60 s (isoloir-share-lock.service)")
            return
        data = json.loads(record.read_text())
        self.out(
            f"    share locked by isoloir-share-lock.service: {data['folders']} folder(s), "
            f"{data['files']} file(s)"
        )
        folder = e.share_dir(campaign_datasets(e)[0])
        probe = self.local.host().chroot(
            "runuser",
            "-u",
            e.members[0],
            "--",
            "touch",
            f"{folder}/apres-la-purge.csv",
            check=False,
        )
        self.facts["member_write_after_purge"] = probe.returncode
        self.out(
            f"    a member of the election creating a file in {folder}: "
            + ("refused" if probe.returncode else "ACCEPTED (the lock did not hold)")
        )

    def mail(self) -> None:
        """A volunteer's mass mail through the relay: refused with every address
        visible, then sent in Bcc with the notice; a voter who wrote to the
        unsubscribe address beforehand is dropped from it."""
        assert self.deployment is not None and self.deployment.policies is not None
        host = self.local.host()
        org = self.deployment.policies.baseline.organisation
        e = self.election
        sender = self.deployment.policies.baseline.person(VOLUNTEER).email
        password = "Demo-" + secrets.token_urlsafe(12) + "7a"
        host.set_password(VOLUNTEER, password)
        context = ssl.create_default_context(cafile=str(host.root / MAIL_CERT))
        context.check_hostname = False  # the relay's own certificate, pinned as the only CA
        voters = [f"electeur{n}@{MAIL_VOTERS}" for n in range(1, 8)]
        tag = secrets.token_hex(4)
        # 1. a voter writes to the unsubscribe address (port 25, no account needed)
        note = EmailMessage()
        note["From"], note["To"], note["Subject"] = voters[0], org.unsubscribe, "STOP"
        note.set_content("Merci de ne plus m'écrire.\n")
        with smtplib.SMTP(host.address, 25, timeout=60) as client:
            client.send_message(note, voters[0], [org.unsubscribe])
        self.out("    a voter wrote to the unsubscribe address: recorded as a mail opt-out")

        def submit(msg: EmailMessage, rcpts: list[str]) -> tuple[int, str]:
            with smtplib.SMTP(host.address, 587, timeout=60) as client:
                client.starttls(context=context)
                client.login(VOLUNTEER, password)
                try:
                    client.send_message(msg, sender, rcpts)
                except smtplib.SMTPDataError as exc:
                    return exc.smtp_code, _text(exc.smtp_error)
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = next(iter(exc.recipients.values()))
                    return code, _text(text)
            return 250, "queued"

        # 2. every address visible in To: refused, with the reason and the fix
        visible = EmailMessage()
        visible["From"], visible["To"] = sender, ", ".join(voters)
        visible["Subject"] = f"Réunion publique {tag}"
        visible.set_content("Bonjour,\nRéunion publique jeudi à 19 h.\n")
        code, text = submit(visible, voters)
        self.facts["mail_refused"] = (code, text)
        self.out(f"    mass mail with {len(voters)} visible addresses: {code} {text}")
        # 3. the same in Bcc, with the notice: sent; the unsubscribed voter dropped
        bcc = EmailMessage()
        bcc["From"], bcc["To"] = sender, sender
        bcc["Subject"] = f"Réunion publique {tag} (Cci)"
        bcc["List-Unsubscribe"] = f"<mailto:{org.unsubscribe}>"
        # the complete notice (review E3): controller, purpose, legal basis, origin,
        # retention, DPO, rights with erasure and the complaint to the CNIL
        bcc.set_content(
            "Bonjour,\nRéunion publique jeudi à 19 h.\n\n"
            + transparency.notice(
                self.deployment.policies,
                e,
                transparency.origins(e, "prospects"),
                "fr",
                [e.dataset("prospects").legal_basis],
            )
            + "\n"
        )
        self.facts["mail_sent"] = submit(bcc, voters)
        maildir = Path(self.local.state()["smtp"]["maildir"])
        delivered = self._delivered(maildir, f"Réunion publique {tag} (Cci)", len(voters) - 1)
        self.facts["mail_delivered"] = len(delivered)
        self.facts["mail_unsubscribed_reached"] = voters[0] in delivered
        self.out(
            f"    the same in Bcc with the notice: {self.facts['mail_sent'][0]}, delivered to "
            f"{len(delivered)} of {len(voters)} voters (the one who unsubscribed: "
            f"{'REACHED' if voters[0] in delivered else 'dropped'})"
        )

    @staticmethod
    def _delivered(maildir: Path, subject: str, expected: int) -> set[str]:
        """Who the sink received the message for (waits a little for the relay)."""
        deadline = time.monotonic() + 60
        found: set[str] = set()
        while time.monotonic() < deadline:
            found = set(received(maildir, subject))
            if len(found) >= expected:
                break
            time.sleep(0.5)
        time.sleep(1)  # anything the guard should have dropped would have arrived by now
        return found

    def run(self, keep: bool = False) -> int:
        steps = (
            ("deploy the example policies on the local target", self.deploy),
            ("seed the campaign's files", self.seed),
            ("the incident", self.incident),
            ("one scan cycle of the agents", self.scan_cycle),
            ("the administrators' alerts (from the maildir)", self.alerts),
            ("after the election: retention", self.retention),
            ("the campaign mail guard", self.mail),
        )
        try:
            for i, (title, func) in enumerate(steps, start=1):
                self.out(f"\n######## demo {i}/{len(steps)}: {title}")
                result = func()
                if isinstance(result, int) and result != 0:
                    return result
            ok = self.facts.get("certificate_verify_exit") == 0
            self.out("\ndemo finished: " + ("certificate verified" if ok else "CHECK THE OUTPUT"))
            return 0 if ok else 1
        finally:
            if not keep:
                self.out("\nstopping the local target (make demo KEEP=1 keeps it running)")
                self.local.down(log=lambda msg: self.out(f"    {msg}"))


def cmd_demo(args: argparse.Namespace) -> int:
    return Demo(Path(args.run_dir).resolve(), out=lambda s: print(s, flush=True)).run(args.keep)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="replay the exposed-contacts-file incident locally")
    p.add_argument("--run-dir", default=".run/demo")
    p.add_argument("--keep", action="store_true", help="leave the local target running")
    p.set_defaults(func=cmd_demo)
