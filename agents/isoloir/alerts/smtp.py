"""Email through SMTP: STARTTLS or implicit TLS, always authenticated, always verified.

Credentials come from a root-only JSON secret file (see `secrets`). One message
per recipient: `To` holds a single address and there is no `Cc` or `Bcc`.

For the local target only, `ISOLOIR_SMTP_SINK=host:port` sends to a loopback
sink without TLS or authentication (see `sink`); any other host is refused.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from isoloir.alerts.secrets import SecretError, SmtpCredentials, read_smtp_credentials
from isoloir.alerts.transport import DeliveryError, Outgoing
from isoloir.policy.model import EmailChannel

SINK_ENV = "ISOLOIR_SMTP_SINK"
SECURITY_MODES = ("starttls", "tls")


def build_email(sender: str, message: Outgoing) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = message.address
    msg["Subject"] = message.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Isoloir-Kind"] = message.kind
    for name, value in sorted(message.headers.items()):
        msg[name] = value
    msg.set_content(message.body, charset="utf-8", cte="quoted-printable")  # 7-bit safe
    msg["Content-Language"] = message.language  # after set_content, which resets Content-*
    # Headers are written unfolded (up to RFC 5322's 998 characters): Python's
    # folder drops the space between an encoded word and a following non-ASCII
    # word ("toutes les élections · x" arrived as "toutes les élections· x"). The body
    # was encoded above, as quoted-printable in lines of at most 76 characters.
    msg.policy = msg.policy.clone(max_line_length=998)
    return msg


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def sink_address() -> tuple[str, int] | None:
    raw = os.environ.get(SINK_ENV, "").strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise DeliveryError(f"{SINK_ENV} must be host:port")
    if not _is_loopback(host):
        raise DeliveryError(f"{SINK_ENV} must name a loopback address")
    return host, int(port)


def tls_context(credentials: SmtpCredentials) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=credentials.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SmtpTransport:
    def __init__(self, channel: EmailChannel, *, timeout: float = 30.0) -> None:
        if channel.security not in SECURITY_MODES:
            raise ValueError(f"email security must be one of {SECURITY_MODES}")
        self.channel = channel
        self.timeout = timeout

    def send(self, message: Outgoing) -> None:
        if not message.address:
            raise DeliveryError("no address for this recipient")
        email = build_email(self.channel.sender, message)
        sink = sink_address()
        try:
            if sink is not None:
                with smtplib.SMTP(sink[0], sink[1], timeout=self.timeout) as smtp:
                    smtp.send_message(email, to_addrs=[message.address])
                return
            credentials = read_smtp_credentials(self.channel.credentials_file)
            context = tls_context(credentials)
            host, port = self.channel.host, self.channel.port
            if self.channel.security == "tls":
                with smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context) as smtp:
                    self._deliver(smtp, credentials, email, message.address)
            else:
                with smtplib.SMTP(host, port, timeout=self.timeout) as smtp:
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError("smtp: server does not offer STARTTLS")
                    smtp.starttls(context=context)
                    smtp.ehlo()
                    self._deliver(smtp, credentials, email, message.address)
        except SecretError as exc:
            raise DeliveryError(f"smtp credentials: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryError(f"smtp: recipient refused ({codes})") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"smtp: {type(exc).__name__} {exc.smtp_code}") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"smtp: {type(exc).__name__}") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"smtp: TLS error {exc.reason or type(exc).__name__}") from None
        except TimeoutError:
            raise DeliveryError("smtp: timeout") from None
        except OSError as exc:
            raise DeliveryError(f"smtp: network error {exc.errno or type(exc).__name__}") from None

    @staticmethod
    def _deliver(
        smtp: smtplib.SMTP, credentials: SmtpCredentials, email: EmailMessage, address: str
    ) -> None:
        smtp.login(credentials.username, credentials.password)
        refused = smtp.send_message(email, to_addrs=[address])
        if refused:
            raise DeliveryError("smtp: recipient refused")
