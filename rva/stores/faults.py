"""Crash points for the kill tests: ``RVA_STORES_FAULT=<writer>:<point>:<batch>`` SIGKILLs the process there.

Used by the stores' writers and by the sync uploader (writer ``sync``: point ``committed`` = the cloud
answered 200, the outbox not yet updated).

``point`` is ``mid`` (half the batch applied, nothing committed or acked; writers split the batch in
two when armed) or ``committed`` (the batch is in the store, the acks not yet sent). ``batch`` counts
the writer's batches from 1. Unset (the normal case), every call here is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_batches: Counter[str] = Counter()


def _spec() -> tuple[str, str, int] | None:
    raw = os.environ.get("RVA_STORES_FAULT", "")
    if not raw:
        return None
    writer, point, batch = raw.split(":")
    return writer, point, int(batch)


def next_batch(writer: str) -> None:
    """Count one more batch of ``writer`` (called by the consumer before each write)."""
    _batches[writer] += 1


def armed(writer: str, point: str) -> bool:
    """Whether ``writer`` dies at ``point`` in its current batch."""
    spec = _spec()
    return spec is not None and spec == (writer, point, _batches[writer])


def crash_point(writer: str, point: str) -> None:
    """SIGKILL this process if the fault spec names this writer, point and batch."""
    if armed(writer, point):
        os.kill(os.getpid(), signal.SIGKILL)
