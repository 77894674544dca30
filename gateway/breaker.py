"""A per-province circuit breaker: stop waiting on a province that keeps failing.

CLOSED: calls go through; ``failure_threshold`` consecutive failures open it.
OPEN: calls are refused at once (the gateway answers VALID_OFFLINE without waiting) until
``open_seconds`` have passed; then HALF_OPEN.
HALF_OPEN: one probe call at a time goes through; its success closes the breaker, its failure
opens it again for another ``open_seconds``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.options import GatewayOptions


class BreakerState(enum.IntEnum):
    """Exported as the value of the ``hcx_gateway_breaker_state`` gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = GatewayOptions.breaker_failures
    open_seconds: float = GatewayOptions.breaker_open


class CircuitBreaker:
    """State machine only (no I/O): ``allow()`` before a call, ``record(ok)`` after it."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._policy.open_seconds

    def allow(self) -> bool:
        """True if a call may go out now; in HALF_OPEN only one probe at a time."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record(self, ok: bool) -> None:
        """The outcome of a call that ``allow()`` let through."""
        probe = self._probing
        self._probing = False
        if ok:
            self._failures = 0
            if self._state is not BreakerState.CLOSED:
                self._set(BreakerState.CLOSED)
            return
        self._failures += 1
        if probe or self._failures >= self._policy.failure_threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
