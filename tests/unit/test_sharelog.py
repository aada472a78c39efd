"""Samba vfs_full_audit log: parser, counting, the inventory's evidence and the alert."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from isoloir.alerts import messages
from isoloir.exposure import inventory_shares, registry, sharelog
from isoloir.exposure.model import (
    Entry,
    Inventory,
    SambaConfig,
    SambaShare,
    SharesInventory,
    ShareTree,
)
from isoloir.policy import load_policies

ROOT = Path(__file__).resolve().parents[2]
EL = "exempleville-2027"
SHARE = f"/srv/elections/{EL}"
FILE = f"{SHARE}/prospects/fuite.csv"
LAYOUT = sharelog.Layout.of(sharelog.ROLE_PREFIX)
T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)  # the exposure start


def line(
    at: datetime,
    user: str,
    path: str = FILE,
    mask: str = "0x120089",
    kind: str = "file",
    result: str = "ok",
    op: str = "create_file",
) -> str:
    """A record as smbd writes it (debug syslog format, hires timestamp)."""
    stamp = at.isoformat(timespec="microseconds")
    args = f"{mask}|{kind}|open|{path}" if op == "create_file" else path
    return f"{stamp} isoloir-a smbd[4242]:   {user}|127.0.0.9|{EL}|{op}|{result}|{args}"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# ------------------------------------------------------------------ parser


def test_parses_a_record_in_samba_syslog_format() -> None:
    parsed = sharelog.parse([line(at(1), "vlecteur")], LAYOUT)
    assert parsed.malformed == 0
    (r,) = parsed.records
    assert (r.user, r.address, r.share, r.op, r.ok) == ("vlecteur", "127.0.0.9", EL,
                                                        "create_file", True)  # fmt: skip
    assert r.args == ("0x120089", "file", "open") and r.path == FILE
    assert r.time == at(1) and r.is_read


def test_parses_a_line_as_smbd_4_17_wrote_it_on_the_sandbox_host() -> None:
    # copied from the sandbox host's audit log (tests/integration/test_share_audit.py):
    # the header, then the two spaces Samba indents a debug message with
    real = (
        "2026-11-30T21:01:27.690480+00:00 isoloir-b smbd[5313]:   dmodele|127.0.0.1|"
        "exempleville-2027|create_file|ok|0x80|dir|open|/srv/elections/exempleville-2027"
    )
    parsed = sharelog.parse([real], LAYOUT)
    (r,) = parsed.records
    assert parsed.malformed == 0
    assert r.time == datetime(2026, 11, 30, 21, 1, 27, 690480, tzinfo=UTC)
    assert (r.user, r.address, r.share, r.op, r.args) == (
        "dmodele", "127.0.0.1", EL, "create_file", ("0x80", "dir", "open")
    )  # fmt: skip
    assert r.path == SHARE and not r.is_read  # the share's root listed: not a read


@pytest.mark.parametrize(
    ("mask", "kind", "result", "read"),
    [
        ("0x120089", "file", "ok", True),  # FILE_GENERIC_READ (smbclient get)
        ("0x1", "file", "ok", True),  # FILE_READ_DATA
        ("0x80000000", "file", "ok", True),  # GENERIC_READ
        ("0x2000000", "file", "ok", True),  # MAXIMUM_ALLOWED
        ("0x20", "file", "ok", True),  # FILE_EXECUTE lets Samba read too
        ("0x80", "file", "ok", False),  # FILE_READ_ATTRIBUTES: a listing, not a read
        ("0x100080", "file", "ok", False),
        ("0x120116", "file", "ok", False),  # write only
        ("0x100081", "dir", "ok", False),  # a directory listed
        ("0x120089", "file", "fail (Permission denied)", False),
        ("zz", "file", "ok", False),
    ],
)
def test_a_read_is_a_successful_open_of_a_file_for_its_content(
    mask: str, kind: str, result: str, read: bool
) -> None:
    (r,) = sharelog.parse([line(at(1), "u", mask=mask, kind=kind, result=result)], LAYOUT).records
    assert r.is_read is read


def test_openat_records_are_not_counted_as_reads() -> None:
    (r,) = sharelog.parse([line(at(1), "u", op="openat", path=f"r|{FILE}")], LAYOUT).records
    assert r.op == "openat" and r.args == ("r",) and r.path == FILE and not r.is_read


def test_a_name_holding_a_pipe_keeps_its_whole_path() -> None:
    path = f"{SHARE}/prospects/a|b|c.csv"
    (r,) = sharelog.parse([line(at(1), "u", path=path)], LAYOUT).records
    assert r.path == path


def test_odd_lines_are_counted_never_raised() -> None:
    lines = [
        "",
        "garbage",
        "2027-03-01T12:00:00.000000+00:00 isoloir-a smbd[1]: only|two",
        "2027-13-01T12:00:00.000000+00:00 isoloir-a smbd[1]: u|a|s|create_file|ok|0x1|file|open|/x",
        "2027-03-01T12:00:00.000000+00:00 isoloir-a smbd[1]: u|a|s|Create File|ok|0x1|file|open|/x",
        "2027-03-01T12:00:00.000000+00:00 isoloir-a smbd[1]: u|a|s|create_file|maybe|0x1|file|x",
        "2027-03-01T12:00:00.000000+00:00 isoloir-a smbd[1]: u|a|s|create_file|ok|0x1|file|open",
        "\x00\xff" * 40,
        line(at(2), "vlecteur"),
    ]
    parsed = sharelog.parse(lines, LAYOUT)
    assert [r.user for r in parsed.records] == ["vlecteur"]
    assert parsed.malformed == 7


def test_classic_two_line_debug_format_in_local_time() -> None:
    lines = [
        "[2027/03/01 13:05:00.123456,  1] ../../source3/modules/vfs_full_audit.c:1(do_log)",
        f"  vlecteur|127.0.0.9|{EL}|create_file|ok|0x120089|file|open|{FILE}",
        "[2027/03/01 13:06:00.000000,  1] ../../source3/smbd/server.c:2(main)",
        "  a message of another class",
    ]
    parsed = sharelog.parse(lines, LAYOUT)
    (r,) = parsed.records
    local = datetime(2027, 3, 1, 13, 5, 0, 123456).astimezone()
    assert r.time == local and r.user == "vlecteur"
    assert parsed.malformed == 1


def test_the_default_prefix_has_no_share() -> None:
    layout = sharelog.Layout.of()  # "%u|%I", vfs_full_audit's default
    msg = (
        "2027-03-01T12:00:00+00:00 h smbd[1]: "
        f"vlecteur|127.0.0.9|create_file|ok|0x1|file|open|{FILE}"
    )
    (r,) = sharelog.parse([msg], layout).records
    assert (r.user, r.address, r.share, r.path) == ("vlecteur", "127.0.0.9", None, FILE)


def test_a_relative_path_is_resolved_under_its_share() -> None:
    (r,) = sharelog.parse([line(at(1), "u", path="prospects/fuite.csv")], LAYOUT).records
    assert sharelog.resolve(r, {EL: SHARE}) == FILE


# ------------------------------------------------------------------ counting


def records() -> list[sharelog.AuditRecord]:
    return sharelog.parse(
        [
            line(at(-5), "vlecteur"),  # before the exposure
            line(at(1), "dmodele"),  # the owner's own read
            line(at(2), "vlecteur"),
            line(at(3), "vlecteur", mask="0x80"),  # attributes only
            line(at(4), "ptiers"),
            line(at(5), "vlecteur"),
            line(at(6), "vlecteur", path=f"{SHARE}/prospects/autre.csv"),
            line(at(7), "vlecteur", result="fail (Permission denied)"),
        ],
        LAYOUT,
    ).records


def test_counts_reads_by_other_accounts_since_the_exposure() -> None:
    ev = sharelog.other_reads(records(), FILE, "dmodele", T0)
    assert (ev.outside_reads, ev.outside_requesters) == (3, 2)
    assert (ev.first_read, ev.last_read) == (at(2), at(5))


def test_no_read_after_the_exposure() -> None:
    ev = sharelog.other_reads(records(), FILE, "dmodele", at(10))
    assert (ev.outside_reads, ev.outside_requesters, ev.first_read) == (0, 0, None)


def test_an_owner_without_a_name_counts_every_account() -> None:
    assert sharelog.other_reads(records(), FILE, None, T0).outside_reads == 4


# ------------------------------------------------------------------ the log files


def write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_evidence_from_the_log_and_its_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "full_audit.log"
    write(log.with_name("full_audit.log.old"), [line(at(-1), "x"), line(at(2), "vlecteur")])
    write(log, [line(at(2), "vlecteur"), "garbage", line(at(5), "ptiers")])  # renamed mid-read
    batch = sharelog.read_log(log, LAYOUT)
    assert batch.rotated and batch.malformed == 1 and batch.oldest == at(-1)
    read_at = at(9)
    ev = sharelog.evidence_for(batch, FILE, "dmodele", T0, read_at, {EL: SHARE})
    assert ev == {
        "outside_reads": 2,
        "outside_requesters": 2,
        "first_read": at(2).isoformat(),
        "last_read": at(5).isoformat(),
        "logs_read_until": read_at.isoformat(),
        "log_lines_malformed": 1,
        "reads_by": "other_accounts",
    }


def test_a_rotation_past_the_exposure_start_says_the_logs_are_partial(tmp_path: Path) -> None:
    log = tmp_path / "full_audit.log"
    write(log.with_name("full_audit.log.old"), [line(at(3), "x")])  # older records dropped
    write(log, [line(at(4), "vlecteur")])
    ev = sharelog.evidence_for(sharelog.read_log(log, LAYOUT), FILE, "dmodele", T0, at(9))
    assert ev["outside_reads"] == 2 and ev["logs_truncated"] is True
    # Without a rotation, a log starting after the exposure start lost nothing.
    (log.with_name("full_audit.log.old")).unlink()
    ev = sharelog.evidence_for(sharelog.read_log(log, LAYOUT), FILE, "dmodele", T0, at(9))
    assert "logs_truncated" not in ev


def archive(log: Path, name: str, lines: list[str]) -> Path:
    """An archive as the election_shares role leaves it (compliance review E10)."""
    folder = log.parent / sharelog.ARCHIVE_DIR
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_the_archives_of_rotated_logs_are_read(tmp_path: Path) -> None:
    """Samba's FILE.old is moved into archive/ at once: its reads still count, and
    the evidence is complete when the archives reach back to the exposure start."""
    log = tmp_path / "full_audit.log"
    archive(log, "full_audit-20270301T115900Z.log.gz", [line(at(-1), "x")])
    archive(log, "full_audit-20270301T120200Z.log.gz", [line(at(2), "vlecteur")])
    archive(log, "other-20270301T120200Z.log.gz", [line(at(3), "ignored")])
    # a FILE.old being compressed (the role's script stages it first)
    write(log.parent / "archive" / ".rotated-20270301T120300Z.Ab12Cd", [line(at(3), "vlecteur")])
    write(log, [line(at(5), "ptiers")])
    batch = sharelog.read_log(log, LAYOUT)
    assert batch.rotated and not batch.truncated and batch.oldest == at(-1)
    ev = sharelog.evidence_for(batch, FILE, "dmodele", T0, at(9), {EL: SHARE})
    assert ev["outside_reads"] == 3 and ev["outside_requesters"] == 2
    assert "logs_truncated" not in ev
    # The archives reaching back to T0 expired: the logs were partly read.
    (log.parent / "archive" / "full_audit-20270301T115900Z.log.gz").unlink()
    ev = sharelog.evidence_for(sharelog.read_log(log, LAYOUT), FILE, "dmodele", T0, at(9))
    assert ev["outside_reads"] == 3 and ev["logs_truncated"] is True


def test_the_byte_bound_reads_the_newest_archives_first(tmp_path: Path) -> None:
    log = tmp_path / "full_audit.log"
    archive(
        log, "full_audit-20270301T115900Z.log.gz", [line(at(-1 - m / 100), "x") for m in range(50)]
    )
    archive(log, "full_audit-20270301T120200Z.log.gz", [line(at(2), "vlecteur")])
    write(log, [line(at(5), "ptiers")])
    batch = sharelog.read_log(log, LAYOUT, max_bytes=2 * len(line(at(5), "ptiers")) + 200)
    users = [r.user for r in batch.reads]
    assert batch.truncated and {"vlecteur", "ptiers"} <= set(users)
    assert users.count("x") < 50  # only the tail of the oldest archive


def test_a_damaged_or_unlistable_archive_says_the_logs_are_partial(tmp_path: Path) -> None:
    log = tmp_path / "full_audit.log"
    write(log, [line(at(5), "ptiers")])
    archive(log, "full_audit-20270301T115900Z.log.gz", [line(at(-1), "x")])
    damaged = archive(log, "full_audit-20270301T120200Z.log.gz", [line(at(2), "vlecteur")])
    damaged.write_bytes(damaged.read_bytes()[:-12])  # cut short
    batch = sharelog.read_log(log, LAYOUT)
    assert batch.truncated and {r.user for r in batch.reads} == {"x", "ptiers"}
    for path in (log.parent / "archive").iterdir():
        path.unlink()
    (log.parent / "archive").rmdir()
    (log.parent / "archive").write_text("not a folder\n")
    batch = sharelog.read_log(log, LAYOUT)
    assert batch.truncated and [r.user for r in batch.reads] == ["ptiers"]


def test_the_byte_bound_keeps_the_newest_lines(tmp_path: Path) -> None:
    log = tmp_path / "full_audit.log"
    write(log, [line(at(m), "vlecteur") for m in range(1, 201)])
    batch = sharelog.read_log(log, LAYOUT, max_bytes=2000)
    assert batch.truncated and 0 < len(batch.reads) < 200
    assert batch.newest == at(200) and batch.malformed == 0
    ev = sharelog.evidence_for(batch, FILE, "dmodele", T0, at(300))
    assert ev["logs_truncated"] is True


def test_an_unreadable_log_rules_nothing_out() -> None:
    assert sharelog.evidence_for(None, FILE, "o", T0, at(1)) == {
        "logs_read_until": "none",
        "logs_unreadable": True,
    }


# ------------------------------------------------------------------ inventory and check


def shares(log: Path | None, vfs: str = "full_audit", syslog: str = "false") -> SharesInventory:
    """A share of election A with a world-readable file, a private one and a directory;
    `log`: the audit log smb.conf's `log level` names (None: no audit file)."""
    params = {"path": SHARE, "vfs objects": vfs, "full_audit:prefix": "%u|%I|%S",
              "full_audit:syslog": syslog}  # fmt: skip
    conf = SambaConfig("/etc/samba/smb.conf", {"log level": "1"}, (SambaShare(EL, params),))
    uid = os.getuid()
    entries = [
        Entry(FILE.encode(), "file", 0o100664, uid, 5001, 100),
        Entry(f"{SHARE}/prospects/prive.csv".encode(), "file", 0o100660, uid, 5001, 100),
        Entry(f"{SHARE}/prospects".encode(), "dir", 0o40775, 0, 5001, 0),
    ]
    tree = ShareTree(EL, SHARE.encode(), f"el-{EL}", 5001, entries=entries)
    return SharesInventory(trees=[tree], samba=conf, audit_log=str(log) if log else None)


def test_inventory_gives_each_world_readable_file_its_reads(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "full_audit.log"
    log.parent.mkdir()
    me = inventory_shares._owner(os.getuid())
    write(log, [line(at(-1), "vlecteur"), line(at(1), me or "?"), line(at(2), "vlecteur")])
    inv = shares(log)
    inventory_shares.read_evidence(inv, {FILE: T0}, at(9))
    assert set(inv.read_evidence) == {FILE.encode()}  # the 0660 file and the dir: none
    ev = inv.read_evidence[FILE.encode()]
    assert (ev["outside_reads"], ev["outside_requesters"]) == (1, 1)
    assert ev["reads_since"] == T0.isoformat() and not inv.errors
    # The check carries the evidence: the alert and the draft read it from there.
    policies = load_policies(ROOT / "policies")
    full = Inventory(policies=policies, now=at(9), shares=inv)
    (hit,) = [
        h for h in registry.discover()["share_world_accessible"].evaluate(full)
        if h.resource == FILE
    ]  # fmt: skip
    assert hit.evidence["outside_reads"] == 1 and hit.evidence["mode"] == "0o664"


def test_a_share_without_the_audit_module_says_reads_are_unknown(tmp_path: Path) -> None:
    for inv in (
        shares(tmp_path / "x.log", vfs=""),
        shares(None),
        shares(tmp_path / "x", syslog="yes"),
    ):
        inventory_shares.read_evidence(inv, None, at(9))
        assert inv.read_evidence[FILE.encode()] == {
            "logs_read_until": "none",
            "access_logging": False,
        }


def test_a_log_that_cannot_be_read_is_a_warning(tmp_path: Path) -> None:
    inv = shares(tmp_path / "missing" / "full_audit.log")
    inventory_shares.read_evidence(inv, None, at(9))
    assert inv.read_evidence[FILE.encode()]["logs_unreadable"] is True
    assert inv.errors == {f"audit log {tmp_path}/missing/full_audit.log": "ENOENT"}


def test_the_alert_sentence_gives_counts_and_no_account(tmp_path: Path) -> None:
    log = tmp_path / "full_audit.log"
    write(log, [line(at(2), "vlecteur"), line(at(3), "vlecteur"), line(at(4), "ptiers")])
    inv = shares(log)
    inventory_shares.read_evidence(inv, {FILE: T0}, at(9))
    ev = inv.read_evidence[FILE.encode()]
    assert messages.reads_sentence(ev, "en", T0) == (
        "read 3 times by 2 other accounts since 2027-03-01 12:00 UTC "
        "(logs read until 2027-03-01 12:09 UTC)"
    )
    fr = messages.reads_sentence(ev, "fr", T0) or ""
    assert fr.startswith("lu 3 fois par 2 autre(s) compte(s) depuis le ")
    for language in ("fr", "en"):
        text = messages.reads_sentence(ev, language, T0) or ""
        assert "vlecteur" not in text and "127.0.0.9" not in text
    # The S3 wording is kept for evidence without `reads_by`.
    s3 = {k: v for k, v in ev.items() if k != "reads_by"}
    assert "outside requesters" in (messages.reads_sentence(s3, "en", T0) or "")
    none = sharelog.evidence_for(sharelog.LogBatch(), FILE, "o", T0, at(9))
    assert "no read found in the logs" in (messages.reads_sentence(none, "en", T0) or "")


def test_the_rendered_alert_says_other_accounts_and_no_machine_field(tmp_path: Path) -> None:
    from isoloir.findings import Finding, Severity

    log = tmp_path / "full_audit.log"
    write(log, [line(at(2), "vlecteur"), line(at(4), "ptiers")])
    inv = shares(log)
    inventory_shares.read_evidence(inv, {FILE: T0}, at(9))
    finding = Finding(
        rule_id="share_world_accessible",
        severity=Severity.HIGH,
        resource=FILE,
        message=f"File {FILE} is open to others (o+r).",
        election=EL,
        evidence={"mode": "0o664", **inv.read_evidence[FILE.encode()]},
    )
    body = messages.render_finding(finding, "en", first_seen=T0).body
    assert "read 2 times by 2 other accounts since 2027-03-01 12:00 UTC" in body
    assert "other_accounts" not in body and "vlecteur" not in body


def test_the_audit_file_is_read_from_smb_conf_as_written(tmp_path: Path) -> None:
    # testparm prints `log level = 1` only: the per-class file comes from smb.conf itself
    conf = tmp_path / "smb.conf"
    conf.write_text(
        "# log level = 9 full_audit:1@/commented\n[global]\n\tlog level = 1 \\\n"
        "\t  auth_audit:2 full_audit:1@/var/log/samba-audit/full_audit.log\n"
        f"[{EL}]\n\tlog level = 3 full_audit:1@/not/global\n"
    )
    level = inventory_shares.written_log_level(str(conf))
    assert inventory_shares.audit_log_of(level) == "/var/log/samba-audit/full_audit.log"
    assert inventory_shares.audit_log_of("1 auth_audit:2") is None
    assert inventory_shares.audit_log_of("1 full_audit:1") is None


def test_reads_are_counted_from_when_the_file_became_readable(tmp_path: Path) -> None:
    exposed = tmp_path / "fuite.csv"
    exposed.write_text("x\n")
    st = exposed.stat()
    entry = Entry(os.fsencode(exposed), "file", 0o100664, 0, 0, 2, dev=st.st_dev, ino=st.st_ino)
    ctime = datetime.fromtimestamp(st.st_ctime, UTC)
    assert inventory_shares.changed_at(entry) == ctime
    other = Entry(os.fsencode(exposed), "file", 0o100664, 0, 0, 2, dev=st.st_dev, ino=st.st_ino + 1)
    assert inventory_shares.changed_at(other) is None  # another inode: not the file scanned
    start = inventory_shares.reads_window_start
    now, seen = ctime + timedelta(hours=2), ctime + timedelta(hours=1)
    # first sight (no open finding): since the chmod, not since now
    assert start({}, str(exposed), now, ctime) == ctime
    # an open finding seen before the last status change: since it was first seen
    assert start({str(exposed): ctime - timedelta(hours=1)}, str(exposed), now, ctime) == (
        ctime - timedelta(hours=1)
    )
    assert start({str(exposed): seen}, str(exposed), now, ctime) == ctime
    assert start(None, str(exposed), now, None) == now - inventory_shares.READS_LOOKBACK
    assert start(None, str(exposed), now, ctime) == ctime
    assert start(seen, str(exposed), now, ctime) == seen  # an explicit time is kept


def test_a_first_read_by_another_account_sends_the_share_alert_again(tmp_path: Path) -> None:
    from tests.unit.test_alerts_breach_evidence import Clock, Recorder, _policies

    from isoloir.alerts.service import AlertService
    from isoloir.findings import Finding, Severity

    log = tmp_path / "full_audit.log"
    clock, email = Clock(), Recorder()
    svc = AlertService(_policies(), tmp_path / "state", transports={"email": email},
                       time_source=clock)  # fmt: skip

    def cycle(lines: list[str]) -> None:
        write(log, lines)
        inv = shares(log)
        inventory_shares.read_evidence(inv, {FILE: T0}, at(30))
        finding = Finding(
            rule_id="share_world_accessible", severity=Severity.CRITICAL, resource=FILE,
            message=f"File {FILE} is open to others (o+r).", election=EL,
            evidence={"mode": "0o664", **inv.read_evidence[FILE.encode()]},
        )  # fmt: skip
        svc.process("scan", [finding])
        svc.flush()

    try:
        cycle([line(at(-1), "vlecteur")])  # read before the exposure: none since
        assert len(email.sent) == 1 and "aucune lecture trouvée" in email.sent[0].body
        clock.t += 600
        cycle([line(at(-1), "vlecteur"), line(at(5), "vlecteur")])
        assert len(email.sent) == 2 and email.sent[1].kind == "alert"
        assert "lu 1 fois par 1 autre(s) compte(s)" in email.sent[1].body
        clock.t += 600
        cycle([line(at(5), "vlecteur"), line(at(6), "ptiers")])  # grows: nothing new
        assert len(email.sent) == 2
        for message in email.sent:
            assert "vlecteur" not in message.body and "127.0.0.9" not in message.body
    finally:
        svc.close()
