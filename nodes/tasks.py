"""Background tasks of the servers: the one way they are stopped."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RECANCEL_S = 3.0  # a task still running this long after a cancel is cancelled again (longer
# than any bounded clean-up on cancel, e.g. the etcd adapter's 2 s, which it would cut short)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has stopped (None: nothing to stop).

    A cancellation can be lost below the task (Python 3.11's ``asyncio.wait_for`` returns the
    inner result when the cancel meets an inner call that just finished), and a task that
    missed it runs on for ever: so it is cancelled again until it has stopped."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()  # its own failure, if it failed rather than stopped
