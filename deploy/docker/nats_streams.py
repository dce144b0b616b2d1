#!/usr/bin/env python3
"""Create RVA's JetStream streams and bucket with N replicas, or raise existing ones to N. Idempotent.

    rva-nats-streams --config /etc/rva/rva.yaml --replicas 3      (in the image; compose/k8s nats-streams)

The services create what they miss with one replica (``rva.bus.jetstream.ensure_stream``,
``services.common.work.ensure_work_stream``, the tracking service's bucket). This runs the same
functions with the same config (``services.nats``, ``RVA_NATS_*`` overrides), so the streams are
exactly the services', then sets their replica count: ``RVA_EVENTS`` (``rva.>``: events and dead
letters), ``RVA_WORK`` (``rva_work.>``) and the key-value bucket ``RVA_TRACKING``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from typing import Any

from rva.bus.jetstream import ensure_stream
from rva.errors import ConfigError
from services.common.config import load_service_config
from services.common.work import connect, ensure_work_stream
from services.tracking.service import GENERATION_BUCKET


async def replicate(js: Any, info: Any, replicas: int) -> int:
    """Set a stream's replica count (JetStream moves the data); return the count now in force."""
    if info.config.num_replicas != replicas:
        info = await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
    return int(info.config.num_replicas)


async def provision(config_path: str, replicas: int, deadline_s: float) -> dict[str, int]:
    """Create or raise every stream; return ``{stream: replicas}``."""
    from nats.js.errors import BucketNotFoundError

    cfg = load_service_config(config_path).services.nats
    # wait_for: with nothing listening, connect() retries past its own deadline (nats.py reconnects forever)
    nc, js = await asyncio.wait_for(connect(cfg, "rva-nats-streams", deadline_s=deadline_s), deadline_s + 1.0)
    try:
        done = {}
        events = await ensure_stream(js, max_age_s=cfg.events_max_age_s, duplicate_window_s=cfg.duplicate_window_s)
        done[events.config.name] = await replicate(js, events, replicas)
        work = await ensure_work_stream(js, cfg)
        done[work.config.name] = await replicate(js, work, replicas)
        try:
            await js.key_value(GENERATION_BUCKET)
        except BucketNotFoundError:
            await js.create_key_value(bucket=GENERATION_BUCKET, history=1, replicas=replicas,
                                      description="tracking generations")
        bucket = await js.stream_info(f"KV_{GENERATION_BUCKET}")
        done[bucket.config.name] = await replicate(js, bucket, replicas)
        return done
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when every stream has the replicas, 1 when NATS fails, 2 for a bad config."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the RVA config (services.nats)")
    parser.add_argument("--replicas", type=int, default=3, choices=range(1, 6), help="replicas per stream")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds to wait for NATS")
    args = parser.parse_args(argv)
    try:
        done = asyncio.run(provision(args.config, args.replicas, args.deadline))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # NATS down, no JetStream quorum, a stream that is not RVA's
        print(f"error: {err!r}", file=sys.stderr)
        return 1
    for name, count in done.items():
        print(f"{name}: {count} replicas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
