"""Typed errors of the event stores; the consumer maps each to retry, split or dead-letter."""

from __future__ import annotations

from enum import StrEnum

from rva.errors import RVAError


class DeadLetterReason(StrEnum):
    """Why a message went to ``rva.dlq.<reason>`` instead of the stores."""

    #: The payload's ``schema_version`` is one this code does not know.
    SCHEMA_VERSION = "schema_version"
    #: The payload cannot be decoded or a field is missing, out of range or of the wrong type.
    MALFORMED = "malformed"
    #: The payload disagrees with its subject (store, camera, kind) or carries a wrong ``event_id``.
    MISMATCH = "mismatch"
    #: A store refused the event itself (it decoded, but the database would not take it).
    REJECTED = "rejected"


class StoreError(RVAError):
    """Base of the errors a store writer or query raises."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or failed transiently; the batch is retried, never dropped."""


class StoreRejected(StoreError):
    """The store refused the data of a batch; the consumer splits it to find and dead-letter the culprit."""


class BadEvent(StoreError):
    """A message cannot become a stored event.

    Args:
        reason: The dead-letter reason.
        detail: What was wrong, naming the field and the expected vs actual value.

    """

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
