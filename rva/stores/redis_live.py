"""Redis live state: a Stream of recent events per store, current occupancy and queue state, with TTLs.

Keys share the hash tag ``{<tenant>:<store>}`` (one slot per store, so a cluster works too):

- ``…:events``: Stream of live events (``event_id``, ``type``, ``camera``, ``ts``, ``event`` JSON),
  trimmed by ``MAXLEN ~`` and by ``MINID ~`` (now - window).
- ``…:occupancy``: hash ``<camera>/<zone>`` -> people inside now.
- ``…:queues``: hash ``<camera>/<queue>/<waiting|served|abandoned|last_wait_s|last_ts>``.
- ``…:seen`` (zset event id -> ts), ``…:tracks`` + ``…:tracks_idx`` (per-track presence), ``…:meta``.

One Lua script applies a store's batch atomically. An event is applied once: its id enters ``seen``
(kept for the live window) and events older than ``max_ts - window`` are not live and are skipped,
so a replay changes nothing. Per-track presence keeps the latest state by time, so an exit that
arrives before its enter does not leave a phantom person inside.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from rva.stores import faults
from rva.stores.errors import StoreRejected, StoreUnavailable
from rva.stores.records import StoredEvent

_SUFFIXES = ("events", "seen", "meta", "tracks", "tracks_idx", "occupancy", "queues")
_BODY_FIELDS = ("camera", "ts", "track_id", "zone", "line", "queue", "dwell_s", "enter_ts", "wait_s")

_APPLY = """
local window, maxlen, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local maxts = tonumber(redis.call('HGET', KEYS[3], 'max_ts') or '-1e300')
local added = 0
for i = 4, #ARGV, 8 do
  local id, ts, typ, cam = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local track, name, wait = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  if ts > maxts then maxts = ts end
  if ts >= maxts - window and redis.call('ZADD', KEYS[2], 'NX', ts, id) == 1 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',
               'event_id', id, 'type', typ, 'camera', cam, 'ts', ARGV[i + 1], 'event', ARGV[i + 7])
    added = added + 1
    local zone = (typ == 'zone_enter' or typ == 'zone_exit')
    local queue = (typ == 'queue_join' or typ == 'queue_served' or typ == 'queue_abandon')
    if zone or queue then
      local key = cam .. '/' .. name
      local field = cam .. '/' .. (zone and 'z' or 'q') .. '/' .. track .. '/' .. name
      local cur, cur_ts, cur_in = redis.call('HGET', KEYS[4], field), -1e300, false
      if cur then
        local sep = string.find(cur, '|', 1, true)
        cur_ts, cur_in = tonumber(string.sub(cur, 1, sep - 1)), string.sub(cur, sep + 1) == 'in'
      end
      local inside = (typ == 'zone_enter' or typ == 'queue_join')
      if ts >= cur_ts then
        if inside ~= cur_in then
          local delta = inside and 1 or -1
          if zone then redis.call('HINCRBY', KEYS[6], key, delta)
          else redis.call('HINCRBY', KEYS[7], key .. '/waiting', delta) end
        end
        redis.call('HSET', KEYS[4], field, ARGV[i + 1] .. '|' .. (inside and 'in' or 'out'))
        redis.call('ZADD', KEYS[5], ts, field)
      end
      if typ == 'queue_served' or typ == 'queue_abandon' then
        redis.call('HINCRBY', KEYS[7], key .. (typ == 'queue_served' and '/served' or '/abandoned'), 1)
        local last = tonumber(redis.call('HGET', KEYS[7], key .. '/last_ts') or '-1e300')
        if wait ~= '' and ts >= last then
          redis.call('HSET', KEYS[7], key .. '/last_wait_s', wait, key .. '/last_ts', ARGV[i + 1])
        end
      end
    end
  end
end
local cutoff = '(' .. tostring(maxts - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
for _, f in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', cutoff)) do
  local v = redis.call('HGET', KEYS[4], f)
  if v and string.sub(v, -4) == '|out' then redis.call('HDEL', KEYS[4], f) end
  redis.call('ZREM', KEYS[5], f)
end
local now = redis.call('TIME')
local min_ms = math.floor(tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000 - window * 1000)
if min_ms > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', tostring(min_ms)) end
redis.call('HSET', KEYS[3], 'max_ts', tostring(maxts))
for k = 1, #KEYS do if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('EXPIRE', KEYS[k], ttl) end end
return added
"""


def store_keys(tenant: str, store: str) -> list[str]:
    """The keys of one store, in the script's KEYS order."""
    return [f"rva:{{{tenant}:{store}}}:{s}" for s in _SUFFIXES]


@dataclass(frozen=True, slots=True)
class QueueLive:
    """Current state of one queue.

    Attributes:
        waiting: People queueing now.
        served: Served since the keys were created (they expire after the TTL without events).
        abandoned: Left without service, same horizon.
        last_wait_s: Wait of the person served or abandoning latest (by event time).

    """

    waiting: int
    served: int
    abandoned: int
    last_wait_s: float | None


class RedisLiveWriter:
    """Keeps Redis's live view current from batches of events.

    Args:
        url: ``redis://host:port/db``.
        window_s: Live horizon in event seconds: older events are not live (and are skipped).
        maxlen: Approximate cap on each store's event stream.
        ttl_s: Keys of a store expire after this long without events.
        timeout_s: Socket timeout of every call.

    """

    name = "redis"

    def __init__(
        self, url: str, *, window_s: float = 3600.0, maxlen: int = 10_000, ttl_s: int = 86_400, timeout_s: float = 10.0
    ) -> None:
        if window_s <= 0 or maxlen <= 0 or ttl_s <= 0:
            raise ValueError(f"redis live: window_s, maxlen, ttl_s must be > 0, got {window_s}, {maxlen}, {ttl_s}")
        self.window_s, self.maxlen, self.ttl_s = window_s, maxlen, ttl_s
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._apply = self.client.register_script(_APPLY)

    def write(self, batch: Sequence[StoredEvent]) -> int:
        """Apply a batch; return how many events were new to the live view.

        Raises:
            StoreUnavailable: Redis cannot be reached.
            StoreRejected: Redis refused the script (e.g. out of memory).

        """
        groups: dict[tuple[str, str], list[StoredEvent]] = defaultdict(list)
        for r in batch:
            groups[(r.tenant, r.store)].append(r)
        parts = [groups]
        if faults.armed(self.name, "mid"):
            first = {k: v[: len(v) // 2] for k, v in groups.items()}
            parts = [first, {k: v[len(v) // 2 :] for k, v in groups.items()}]
        added = 0
        try:
            for i, part in enumerate(parts):
                pipe = self.client.pipeline(transaction=False)
                for (tenant, store), events in part.items():
                    if events:
                        self._apply(keys=store_keys(tenant, store), args=self._args(events), client=pipe)
                added += sum(int(n) for n in pipe.execute())
                if i == 0:
                    faults.crash_point(self.name, "mid")
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise StoreUnavailable(f"redis: {err}") from None
        except redis.ResponseError as err:
            raise StoreRejected(f"redis: {err}") from None
        return added

    def _args(self, events: Sequence[StoredEvent]) -> list[Any]:
        args: list[Any] = [repr(self.window_s), self.maxlen, self.ttl_s]
        for r in events:
            e = r.event
            body = {k: getattr(e, k) for k in _BODY_FIELDS if getattr(e, k) is not None}
            body.update(type=e.type.value, tenant=r.tenant, store=r.store, event_id=r.event_id.hex)
            if e.direction is not None:
                body["direction"] = e.direction.value
            if e.attrs:
                body["attrs"] = e.attrs
            args += [
                r.event_id.hex, repr(float(e.ts)), str(e.type), e.camera,
                "" if e.track_id is None else str(e.track_id), r.name or "",
                "" if e.wait_s is None else repr(float(e.wait_s)), json.dumps(body, separators=(",", ":")),
            ]
        return args

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class RedisLive:
    """Reads the live view (what the gateway's live endpoints serve).

    Args:
        url: ``redis://host:port/db``.
        timeout_s: Socket timeout.

    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )

    def _keys(self, tenant: str, store: str) -> dict[str, str]:
        return dict(zip(_SUFFIXES, store_keys(tenant, store), strict=True))

    def occupancy(self, tenant: str, store: str) -> dict[tuple[str, str], int]:
        """People inside each zone now: ``{(camera, zone): count}``."""
        raw = self.client.hgetall(self._keys(tenant, store)["occupancy"])
        return {tuple(k.split("/", 1)): int(v) for k, v in raw.items()}  # type: ignore[misc]

    def queues(self, tenant: str, store: str) -> dict[tuple[str, str], QueueLive]:
        """Each queue's live state: ``{(camera, queue): QueueLive}``."""
        raw = self.client.hgetall(self._keys(tenant, store)["queues"])
        fields: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for k, v in raw.items():
            camera, rest = k.split("/", 1)
            name, what = rest.rsplit("/", 1)
            fields[(camera, name)][what] = v
        return {
            key: QueueLive(
                waiting=int(f.get("waiting", 0)), served=int(f.get("served", 0)),
                abandoned=int(f.get("abandoned", 0)),
                last_wait_s=float(f["last_wait_s"]) if "last_wait_s" in f else None,
            )
            for key, f in sorted(fields.items())
        }

    def recent(self, tenant: str, store: str, count: int = 100) -> list[dict[str, Any]]:
        """The latest live events, newest first, as JSON-ready dicts."""
        entries = self.client.xrevrange(self._keys(tenant, store)["events"], count=count)
        return [json.loads(fields["event"]) for _, fields in entries]

    def dump(self, tenant: str, store: str) -> dict[str, Any]:
        """Everything kept for a store except stream entry ids and TTLs (for comparisons)."""
        k = self._keys(tenant, store)
        stream = self.client.xrange(k["events"])
        return {
            "events": [fields for _, fields in stream],
            "seen": self.client.zrange(k["seen"], 0, -1, withscores=True),
            "meta": self.client.hgetall(k["meta"]),
            "tracks": self.client.hgetall(k["tracks"]),
            "tracks_idx": self.client.zrange(k["tracks_idx"], 0, -1, withscores=True),
            "occupancy": self.client.hgetall(k["occupancy"]),
            "queues": self.client.hgetall(k["queues"]),
        }

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
