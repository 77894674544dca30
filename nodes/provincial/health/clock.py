"""The colour clock: completes due quarantines with no operator action, on every replica.

Each replica runs one. A tick asks the engine for the quarantines due now and completes them;
replicas sharing the status store race harmlessly (each transition is a compare-and-set that
only one of them wins). Every ``stats_every`` seconds the clock also refreshes the province's
gauges (codes by colour, quarantines, check-in compliance).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nodes.provincial import metrics
from nodes.provincial.health.engine import ColourEngine
from nodes.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class ColourClock:
    def __init__(
        self,
        engine: ColourEngine,
        province: str,
        *,
        tick: float = 1.0,
        stats_every: float = 15.0,
        signer_revoked: Callable[[], bool] = lambda: False,
    ) -> None:
        if tick <= 0:
            raise ValueError("the colour clock's tick must be more than 0 s")
        self._engine = engine
        self._province = province
        self._tick = tick
        self._stats_every = stats_every
        self._task: asyncio.Task[None] | None = None
        self._signer_revoked = signer_revoked

    def start(self) -> None:
        # Every series exists from the start (a dashboard reads zeros, not gaps); the gauges
        # of codes and quarantines get their first values on the first tick.
        metrics.CHECK_INS.labels(self._province)
        metrics.TRANSITIONS.labels(self._province)
        metrics.QUARANTINES.labels(self._province)
        for direction in ("sent", "received"):
            metrics.ASSISTANCE.labels(self._province, direction)
        for colour in ("GREEN", "YELLOW", "RED"):
            metrics.HEALTH_CODES.labels(self._province, colour)
        self._task = asyncio.create_task(self._run(), name=f"colour-clock-{self._province}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_stats = loop.time()
        while True:
            completed = 0
            try:
                completed = await asyncio.to_thread(self._engine.complete_due)
                await asyncio.to_thread(self._engine.apply_areas_due)  # areas now in force
                metrics.TRANSITIONS.labels(self._province).inc(completed)
                if loop.time() >= next_stats:
                    next_stats = loop.time() + self._stats_every
                    await asyncio.to_thread(self._refresh_gauges)
            except Exception:  # the store may be away for a while: the next tick tries again
                log.exception("colour clock tick failed")
            if not completed:  # more may be due at once after a full batch
                await asyncio.sleep(self._tick)

    def _refresh_gauges(self) -> None:
        # A revocation after start-up: the node keeps deciding (stopping would stop its
        # verification too) but says so, loudly, until a policy signed again is loaded.
        revoked = self._signer_revoked()
        metrics.POLICY_SIGNER_REVOKED.labels(self._province).set(1 if revoked else 0)
        if revoked:
            log.error("the colour policy %s was signed by a revoked certificate: sign it again",
                      self._engine.policy.label)  # fmt: skip
        stats = self._engine.statistics()
        for colour in ("GREEN", "YELLOW", "RED"):
            metrics.HEALTH_CODES.labels(self._province, colour).set(stats.by_colour.get(colour, 0))
        metrics.QUARANTINES.labels(self._province).set(stats.in_quarantine)
        if stats.check_ins_due:
            share = stats.check_ins_made / stats.check_ins_due
            metrics.CHECK_IN_COMPLIANCE.labels(self._province).set(share)
