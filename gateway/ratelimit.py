"""Rate limits: one Redis token bucket per caller, refilled and spent by one atomic Lua script.

The script reads Redis's own clock (``TIME``), so gateways with skewed clocks share a bucket fairly,
and the read-refill-spend-write happens in one step, so concurrent requests never overspend it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis

from gateway.settings import RateLimit

log = logging.getLogger(__name__)

_BUCKET = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) else now = ts end
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(retry)}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check.

    Attributes:
        allowed: Whether the request may proceed.
        limit: The bucket's burst size.
        remaining: Whole tokens left after this request.
        retry_after_s: When a refused request may try again (0 when allowed).
        degraded: Redis could not be asked; the fail-open/closed policy decided.

    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit``, ``RateLimit-Remaining`` and, when refused, ``Retry-After`` (whole seconds)."""
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining)}
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return out


class RateLimiter:
    """Token buckets in Redis, keyed ``rva:rl:<caller>``.

    Args:
        url: Redis URL.
        fail_open: When Redis is unreachable, allow (True, counted in :attr:`errors`) or refuse requests.
        timeout_s: Socket timeout; a slow Redis must not slow every request.

    """

    def __init__(self, url: str, *, fail_open: bool = True, timeout_s: float = 0.5) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self.client.register_script(_BUCKET)
        self.fail_open = fail_open
        self.errors = 0
        self.refused = 0

    def check(self, key: str, limit: RateLimit, cost: float = 1.0) -> Decision:
        """Spend ``cost`` tokens of ``key``'s bucket if it has them."""
        try:
            allowed, tokens, retry = self._script(keys=[f"rva:rl:{key}"], args=[limit.rate, limit.burst, cost])
        except redis.RedisError as err:
            self.errors += 1
            log.warning("rate limiter: redis unavailable (%s); failing %s", err, "open" if self.fail_open else "closed")
            return Decision(self.fail_open, limit.burst, 0, 0.0 if self.fail_open else 1.0, degraded=True)
        if not int(allowed):
            self.refused += 1
        return Decision(bool(int(allowed)), limit.burst, int(float(tokens)), float(retry))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
