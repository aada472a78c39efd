"""Webhooks: a JSON POST signed with HMAC-SHA256, in the shape a chat tool expects.

Headers: `X-Isoloir-Timestamp` (Unix seconds) and `X-Isoloir-Signature:
sha256=<hex>` where the MAC covers `<timestamp>.<body bytes>` with the key from
the webhook's root-only secret file. A receiver recomputes it, compares in
constant time and refuses timestamps older than a few minutes (replay).

HTTPS is required, except to a loopback address (local target and tests).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from isoloir.alerts.secrets import SecretError, read_secret_bytes
from isoloir.alerts.transport import DeliveryError, Outgoing
from isoloir.policy.model import Webhook

TEMPLATES = ("generic", "slack", "mattermost", "teams")
SIGNATURE_HEADER = "X-Isoloir-Signature"
TIMESTAMP_HEADER = "X-Isoloir-Timestamp"
_RETRYABLE_4XX = {408, 425, 429}
_COLOURS = {"critical": "#8B0000", "high": "#D9534F", "medium": "#F0AD4E"}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# CommonMark lets a backslash make any ASCII punctuation character literal.
_MARKDOWN_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_SLACK_TEXT_MAX = 3000  # a section's text object (Block Kit limit)


def slack_escape(text: str) -> str:
    """`text` for a Slack `mrkdwn` field: `&`, `<` and `>` as the HTML entities
    Slack asks for, so a name cannot become a link or an @channel mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_escape(text: str) -> str:
    """`text` for a CommonMark line (Mattermost): every ASCII punctuation character
    backslash-escaped, so a name shows as typed instead of as a link or emphasis."""
    return "".join("\\" + c if c in _MARKDOWN_PUNCTUATION else c for c in text)


def markdown_fence(body: str) -> str:
    """`body` in a CommonMark code block whose fence is longer than any run of
    backticks inside it: a name holding three backticks cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    ending = "" if body.endswith("\n") else "\n"
    return f"{fence}\n{body}{ending}{fence}"


def payload(
    template: str, *, kind: str, subject: str, body: str, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON document for one template; `meta` holds the finding's safe fields.

    Subject and body carry names campaign members chose (file names, folders), so
    every template shows them as plain text: Slack's `plain_text` objects and its
    escaped fallback `text`, Mattermost's escaped heading and a fence the body
    cannot close, Teams' `TextRun`s (which do not interpret Markdown).
    """
    severity = str(meta.get("severity") or "")
    if template == "slack":
        return {
            "text": slack_escape(subject),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
                {
                    "type": "section",
                    "text": {
                        "type": "plain_text",
                        "text": body[:_SLACK_TEXT_MAX],
                        "emoji": False,
                    },
                },
            ],
        }
    if template == "mattermost":
        return {
            "username": "Isoloir",
            "text": f"#### {markdown_escape(subject)}\n{markdown_fence(body)}",
            "props": {"isoloir": dict(meta, kind=kind)},
        }
    if template == "teams":
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "type": "AdaptiveCard",
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "version": "1.4",
                        "body": [
                            {
                                "type": "RichTextBlock",
                                "inlines": [
                                    {
                                        "type": "TextRun",
                                        "text": subject,
                                        "weight": "Bolder",
                                        "color": "Attention" if severity in _COLOURS else "Default",
                                    }
                                ],
                            },
                            {
                                "type": "RichTextBlock",
                                "inlines": [
                                    {"type": "TextRun", "text": body, "fontType": "Monospace"}
                                ],
                            },
                        ],
                    },
                }
            ],
        }
    return {"source": "isoloir", "kind": kind, "subject": subject, "text": body, **meta}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise DeliveryError("webhook: the URL must use https (http only to a loopback address)")


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC).timestamp()
    return max(0.0, when.timestamp() - current)


SINK_ENV = "ISOLOIR_WEBHOOK_SINK"


def target_url(url: str) -> str:
    """The URL to POST to: the local target's loopback sink when one is set.

    `ISOLOIR_WEBHOOK_SINK=http://127.0.0.1:PORT` (local target only) replaces
    every webhook's URL, so the local agents never reach beyond loopback.
    """
    sink = os.environ.get(SINK_ENV, "").strip()
    if not sink:
        return url
    parts = urllib.parse.urlsplit(sink)
    if parts.scheme != "http" or not _is_loopback(parts.hostname or ""):
        raise DeliveryError(f"{SINK_ENV} must be an http:// URL on a loopback address")
    return sink


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib would turn the POST into a GET without its body
    (to a Location that may be plain http or another host) and a 200 there would
    count as delivered. A 3xx is a failed delivery instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class WebhookTransport:
    def __init__(self, hook: Webhook, *, timeout: float = 15.0) -> None:
        if hook.template not in TEMPLATES:
            raise ValueError(f"webhook template must be one of {TEMPLATES}")
        self.hook = hook
        self.timeout = timeout

    def send(self, message: Outgoing) -> None:
        url = target_url(self.hook.url)
        check_url(url)
        try:
            secret = read_secret_bytes(self.hook.secret_file)
        except SecretError as exc:
            raise DeliveryError(f"webhook secret: {exc}") from None
        body = json.dumps(message.payload, ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - scheme checked by check_url
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "isoloir-alerts",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                "X-Isoloir-Delivery": str(message.id),
            },
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                response.read(1024)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise DeliveryError(f"webhook: HTTP {exc.code} redirect refused") from None
            retry_after = retry_after_seconds(exc.headers.get("Retry-After"))
            kind = "retryable" if exc.code >= 500 or exc.code in _RETRYABLE_4XX else "refused"
            raise DeliveryError(
                f"webhook: HTTP {exc.code} ({kind})", retry_after=retry_after
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            label = type(reason).__name__ if isinstance(reason, Exception) else "URLError"
            raise DeliveryError(f"webhook: network error {label}") from None
        except (TimeoutError, OSError) as exc:
            raise DeliveryError(f"webhook: network error {type(exc).__name__}") from None
        if not 200 <= status < 300:  # only a 2xx delivers
            raise DeliveryError(f"webhook: HTTP {status} (not delivered)")
