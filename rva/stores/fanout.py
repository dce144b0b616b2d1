"""One consumer, several stores: decode each message once and write the batch to every store in parallel.

The alternative to one durable consumer per store (the default). It costs a third of the NATS and
decoding work for three stores, at a price: the batch is acked only when every store committed it,
so one store that is down holds all of them back (the others re-absorb the retried batch, idempotently).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from rva.stores.consumer import EventWriter
from rva.stores.errors import StoreRejected, StoreUnavailable
from rva.stores.records import StoredEvent


class FanoutWriter:
    """Writes each batch to several writers at once (one thread each: drivers release the GIL in I/O).

    Args:
        writers: The stores' writers.

    """

    name = "all"

    def __init__(self, writers: Sequence[EventWriter]) -> None:
        if not writers:
            raise ValueError("FanoutWriter: expected at least one writer")
        self.writers = list(writers)
        self._pool = ThreadPoolExecutor(len(self.writers), thread_name_prefix="rva-store")

    def write(self, batch: Sequence[StoredEvent]) -> int:
        """Write to every store; return how many events the first store found new.

        Raises:
            StoreUnavailable: Some store is unavailable (retry: the others absorb the repeat).
            StoreRejected: Some store refused the data (the consumer splits the batch).

        """
        futures = [self._pool.submit(w.write, batch) for w in self.writers]
        errors = [f.exception() for f in futures]
        unavailable = [e for e in errors if isinstance(e, StoreUnavailable)]
        if unavailable:
            raise StoreUnavailable("; ".join(str(e) for e in unavailable))
        for err in errors:
            if isinstance(err, StoreRejected):
                raise err
            if err is not None:
                raise StoreUnavailable(f"{type(err).__name__}: {err}")
        return int(futures[0].result())

    def close(self) -> None:
        """Close every writer and the threads."""
        for w in self.writers:
            w.close()
        self._pool.shutdown()
