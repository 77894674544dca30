"""Group commit for IssueCode: calls that arrive while a commit is running share the next one.

One durable commit per code costs about 530 µs of CPU on SQLite (synchronous=FULL), most of it
the commit itself; twenty codes in one commit cost about 150 µs each (``bench/bench_node.py``
measures both). A node under load therefore queues the holders of concurrent IssueCode calls
and writes them with one ``Issuer.issue_checked`` call in the store thread, while the event loop
goes on accepting calls. A lone call is written at once: there is no timer, so an idle node adds
no latency, and the batch grows only as fast as calls arrive during a commit.

Each holder is checked before it joins a batch, so a bad request fails alone. A store failure
fails the calls of that batch (each caller gets the store's error and may retry: issuing is
idempotent per holder). A caller that gives up while its batch is being written leaves nothing
half-done: its holder's code is committed or not, and a later call gets the same code id.
"""

from __future__ import annotations

import asyncio

from nodes.provincial.issuance import (
    COMMIT_CHUNK,
    CheckedHolder,
    Holder,
    IssuedCode,
    Issuer,
    check_holder,
)


class IssueQueue:
    """Batches concurrent issuance into shared durable commits (one writer at a time)."""

    def __init__(self, issuer: Issuer, *, max_batch: int = COMMIT_CHUNK) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one holder")
        self._issuer = issuer
        self._max_batch = max_batch
        self._waiting: list[tuple[CheckedHolder, asyncio.Future[IssuedCode]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0  # batches written (the tests and the metrics read it)

    async def issue(self, holder: Holder) -> IssuedCode:
        """The holder's code, committed durably (possibly together with other callers')."""
        checked = check_holder(holder)  # InvalidRequest for this caller alone
        future: asyncio.Future[IssuedCode] = asyncio.get_running_loop().create_future()
        self._waiting.append((checked, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        batch: list[tuple[CheckedHolder, asyncio.Future[IssuedCode]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._commit(batch)
        except asyncio.CancelledError:  # the server is stopping: nobody is left waiting
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise

    async def _commit(self, batch: list[tuple[CheckedHolder, asyncio.Future[IssuedCode]]]) -> None:
        try:
            issued = await asyncio.to_thread(
                self._issuer.issue_checked, [holder for holder, _ in batch]
            )
        except Exception as error:  # the store's error, for every caller of this batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self.commits += 1
        if len(issued) != len(batch):  # never from a correct store; nobody may hang on it
            short = RuntimeError(f"the store returned {len(issued)} codes for {len(batch)}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(short)
            return
        for (_, future), code in zip(batch, issued, strict=True):
            if not future.done():  # a caller that gave up (deadline) is skipped
                future.set_result(code)

    async def close(self) -> None:
        """Wait until the queue is empty (a node's shutdown instead lets calls finish within
        the server's grace; the store's lock keeps its close from cutting a commit)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
