"""What can go wrong delivering an alert."""

from __future__ import annotations

from rva.errors import RVAError


class DeliveryError(RVAError):
    """One delivery attempt to a sink failed.

    Args:
        message: What happened (HTTP status and body excerpt, SMTP reply, connection error).
        retryable: Whether another attempt may succeed (5xx, 429, timeouts, refused connections; SMTP 4xx).
        status: The HTTP status or SMTP reply code, when there was one.
        retry_after_s: How long the receiver asked us to wait (``Retry-After``), when it said.

    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
