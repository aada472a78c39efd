"""S3 server access log parser and the outside-read count (documented format)."""

from __future__ import annotations

from datetime import UTC, datetime

from isoloir.exposure import accesslog

ACCOUNT = "123456789012"
OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
BUCKET = "mouvement-exemple-exempleville-2027"
KEY = "porte-a-porte/liste électeurs.csv"
KEY_LOGGED = "porte-a-porte/liste+%C3%A9lecteurs.csv".replace("+", "%20")
SINCE = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


def line(
    *,
    time: str = "01/Mar/2027:11:00:00 +0000",
    requester: str = "-",
    op: str = "REST.GET.OBJECT",
    key: str = KEY_LOGGED,
    status: str = "200",
    ip: str = "192.0.2.3",
    agent: str = "curl/8.0",
    extra: str = "",
) -> str:
    return (
        f"{OWNER} {BUCKET} [{time}] {ip} {requester} 3E57427F3EXAMPLE {op} {key} "
        f'"GET /{BUCKET}/{key} HTTP/1.1" {status} - 1024 1024 7 6 "-" "{agent}" - '
        "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3= SigV4 "
        f"ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {BUCKET}.s3.eu-west-3.amazonaws.com "
        f"TLSv1.2 - -{extra}"
    )


def test_documented_example_record_parses() -> None:
    rec = accesslog.parse_line(
        f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 {OWNER} "
        '3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" '
        '200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2B= SigV4 '
        "ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com "
        "TLSV1.2 arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes us-east-1"
    )
    assert rec.operation == "REST.GET.VERSIONING"
    assert rec.key is None  # the documented "-"
    assert rec.http_status == 200
    assert rec.time == datetime(2019, 2, 6, 0, 0, 38, tzinfo=UTC)
    assert rec.get("user_agent") == "S3Console/0.4"
    assert rec.get("referer") is None
    assert rec.get("acl_required") == "Yes"
    assert rec.fields[-1] == "us-east-1"  # a newer trailing field is tolerated


def test_quoted_fields_with_spaces_and_escapes() -> None:
    rec = accesslog.parse_line(line(agent='Mozilla/5.0 (X11; Linux) say \\"hi\\"'))
    assert rec.get("user_agent") == 'Mozilla/5.0 (X11; Linux) say "hi"'
    assert rec.get(
        "request_uri",
    ) is not None and " HTTP/1.1" in str(rec.get("request_uri"))
    assert rec.get("version_id") is None


def test_malformed_lines_are_counted_never_raised() -> None:
    lines = [
        line(),
        "garbage",
        line(time="not a time"),
        line(status="OK"),
        line().replace('"curl/8.0"', '"curl/8.0'),  # unterminated quote
        "",
        line(),
    ]
    result = accesslog.parse(lines)
    assert len(result.records) == 2
    assert result.malformed == 4


def test_outside_reads_counts_only_outside_successful_reads_after_exposure() -> None:
    inside_user = f"arn:aws:iam::{ACCOUNT}:user/tresorier"
    inside_role = f"arn:aws:sts::{ACCOUNT}:assumed-role/isoloir-agent/session"
    other = "arn:aws:iam::999988887777:user/visiteur"
    records = accesslog.parse(
        [
            line(time="01/Mar/2027:09:00:00 +0000"),  # before the exposure
            line(time="01/Mar/2027:10:30:00 +0000"),  # anonymous, after: counts
            line(time="01/Mar/2027:10:45:00 +0000", requester=inside_user),
            line(time="01/Mar/2027:10:46:00 +0000", requester=inside_role),
            line(time="01/Mar/2027:10:47:00 +0000", requester=OWNER),
            line(time="01/Mar/2027:11:00:00 +0000", requester=other),  # counts
            line(time="01/Mar/2027:11:05:00 +0000", requester=other, status="206"),  # counts
            line(time="01/Mar/2027:11:10:00 +0000", status="403"),
            line(time="01/Mar/2027:11:20:00 +0000", op="REST.HEAD.OBJECT"),
            line(time="01/Mar/2027:11:30:00 +0000", key="autre.csv"),
            line(time="01/Mar/2027:12:00:00 +0000", op="REST.GET.BUCKET", key="-"),
        ]
    ).records
    ev = accesslog.outside_reads(records, BUCKET, KEY, SINCE, ACCOUNT)
    assert ev.outside_reads == 3
    assert ev.outside_requesters == 2  # anonymous, and one foreign account
    assert ev.first_read == datetime(2027, 3, 1, 10, 30, tzinfo=UTC)
    assert ev.last_read == datetime(2027, 3, 1, 11, 5, tzinfo=UTC)
    assert ev.logs_read_until == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    evidence = ev.to_evidence()
    assert "192.0.2.3" not in repr(evidence)
    assert other not in repr(evidence)


def test_no_read_found_names_the_log_time() -> None:
    records = accesslog.parse([line(requester=f"arn:aws:iam::{ACCOUNT}:user/t")]).records
    ev = accesslog.outside_reads(records, BUCKET, KEY, SINCE, ACCOUNT)
    assert (ev.outside_reads, ev.outside_requesters, ev.first_read) == (0, 0, None)
    assert ev.to_evidence()["logs_read_until"] == "2027-03-01T11:00:00+00:00"
    empty = accesslog.outside_reads([], BUCKET, KEY, SINCE, ACCOUNT).to_evidence()
    assert empty["logs_read_until"] == "none"
