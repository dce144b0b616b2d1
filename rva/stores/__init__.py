"""Event stores: JetStream consumers writing Redis (live), PostgreSQL (history) and ClickHouse (paths).

Writers: :class:`~rva.stores.postgres.PostgresWriter`, :class:`~rva.stores.clickhouse.ClickHouseWriter`,
:class:`~rva.stores.redis_live.RedisLiveWriter`, each driven by an
:class:`~rva.stores.consumer.EventConsumer`. Reads: :class:`~rva.stores.query.EventQueries`.
Run them with ``python -m rva.stores run``.
"""

from rva.stores.errors import BadEvent, DeadLetterReason, StoreError, StoreRejected, StoreUnavailable
from rva.stores.records import StoredEvent, decode, encode
from rva.stores.results import Scope

__all__ = [
    "BadEvent",
    "DeadLetterReason",
    "Scope",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "StoredEvent",
    "decode",
    "encode",
]
