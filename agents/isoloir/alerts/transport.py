"""What the transports share: the message to deliver and the error they raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Outgoing:
    """One message for one destination, exactly as the spool committed it."""

    id: int
    kind: str  # alert | reminder | resolved | summary | digest | test
    channel: str
    recipient: str  # person id, "" for a webhook
    address: str  # email address, "" for a webhook
    subject: str
    body: str
    payload: Mapping[str, Any] = field(default_factory=dict)  # webhook JSON
    headers: Mapping[str, str] = field(default_factory=dict)  # extra X-Isoloir-* headers
    language: str = "fr"

    @property
    def message_id(self) -> str:
        """Stable across retries, so a receiver can drop a duplicate."""
        return f"<isoloir.{self.id}.{self.kind}@isoloir.invalid>"


class DeliveryError(Exception):
    """A delivery failed; the spool retries it later.

    `detail` is safe to log and store: a status code and a class of error,
    never a server's free text (which may echo an address).
    """

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Transport(Protocol):
    def send(self, message: Outgoing) -> None: ...
