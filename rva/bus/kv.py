"""JetStream key-value buckets as RVA uses them: made on first use, read as "the value in force".

Config documents (``RVA_CONFIG``), model manifests (``RVA_MODEL``), decode-session origins
(``RVA_STREAMS``) and tracking generations (``RVA_TRACKING``) all go through these three calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any


async def key_value(js: Any, bucket: str, *, description: str, history: int = 1, ttl_s: float | None = None) -> Any:
    """The bucket, created when missing (another process creating it at the same moment is fine).

    Raises:
        nats.js.errors.BucketNotFoundError: It is still missing after trying to create it.

    """
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError, NotFoundError

    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        pass
    with contextlib.suppress(Exception):  # lost a race with another creator: read it below
        await js.create_key_value(KeyValueConfig(bucket=bucket, history=history, ttl=ttl_s, description=description))
    return await js.key_value(bucket)


async def get_entry(kv: Any, key: str) -> Any | None:
    """The key's current entry, or None when it was never put or was deleted."""
    from nats.js.errors import KeyNotFoundError

    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry if entry.value else None


async def watch_entries(kv: Any, key: str) -> AsyncIterator[Any]:
    """The key's entry in force now (if any), then each one put later; deletes and markers skipped."""
    watcher = await kv.watch(key)
    try:
        async for entry in watcher:
            if entry is not None and entry.value:  # None: the "caught up" marker; empty: a delete
                yield entry
    finally:
        await watcher.stop()
