"""Token buckets per caller identity, so one noisy checkpoint cannot starve the others."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from nodes.identity import Identity, Role
from trust.errors import InvalidRequest, ResourceExhausted
from trust.model import Reason


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # bucket size


# Per-role defaults (docs/security.md); a verification batch costs one token per code.
DEFAULT_LIMITS: Mapping[Role, Limit] = {
    Role.CHECKPOINT: Limit(rate=2000.0, burst=4000.0),
    Role.NODE: Limit(rate=20000.0, burst=40000.0),
    Role.GATEWAY: Limit(rate=100000.0, burst=200000.0),
    Role.OPERATOR: Limit(rate=5000.0, burst=10000.0),
    Role.COORDINATOR: Limit(rate=100.0, burst=200.0),
    Role.AUTHORITY: Limit(rate=200.0, burst=400.0),  # imports come in parts of 20,000
    Role.CHECKIN: Limit(rate=2000.0, burst=4000.0),  # a morning's check-ins of a large employer
}


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class RateLimiter:
    """Per-identity token buckets; at most ``max_callers`` remembered (least recent dropped)."""

    def __init__(
        self,
        limits: Mapping[Role, Limit] = DEFAULT_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 100_000,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._max = max_callers
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: Identity, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens of the caller's bucket or raise ResourceExhausted."""
        limit = self._limits.get(caller.role)
        if limit is None:
            return
        now = self._clock()
        bucket = self._buckets.get(caller.spiffe_id)
        if bucket is None:
            bucket = _Bucket(limit.burst, now)
            self._buckets[caller.spiffe_id] = bucket
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller.spiffe_id)
            bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.updated) * limit.rate)
            bucket.updated = now
        if bucket.tokens < cost:
            wait = (cost - bucket.tokens) / limit.rate
            raise ResourceExhausted(
                f"rate limit of {caller.spiffe_id} exceeded ({limit.rate:g}/s)",
                retry_after=wait,
                reason=Reason.RATE_LIMITED,
            )
        bucket.tokens -= cost


def parse_limits(specs: Sequence[str]) -> dict[Role, Limit]:
    """The default limits with overrides like ``checkpoint=5000`` or ``checkpoint=5000/10000``
    (rate per second / burst; the burst defaults to twice the rate)."""
    limits = dict(DEFAULT_LIMITS)
    for spec in specs:
        role, _, value = spec.partition("=")
        rate, _, burst = value.partition("/")
        try:
            parsed = Limit(rate=float(rate), burst=float(burst) if burst else 2 * float(rate))
            limits[Role(role.strip())] = parsed
        except ValueError as e:
            raise InvalidRequest(
                f"bad rate limit {spec!r}: expected ROLE=RATE[/BURST], ROLE one of "
                f"{', '.join(r.value for r in Role)}"
            ) from e
    return limits
