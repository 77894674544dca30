"""Reading the registry log from gateways and checking it the way a CT monitor does.

Used by ``hcx registry audit --verify`` and ``hcx registry monitor``: the signed tree head and
the leaves come from one or more gateways (GetLog, in pages); this side verifies the head's
signature and log-key certificate, that the leaves hash to its root, that every gateway's log
is a prefix of the newest one (no fork), and that the newest extends the largest head this
station held before (``--state``; no rollback). Then it folds the leaves with the same code as
every reader (trust.authority) to print each change in words. Nothing the gateways say is
believed unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.tls import Transport
from trust import merkle
from trust.authority import Decision, RegistryState
from trust.files import replace_file
from trust.log import Leaf, LogInconsistent, TreeHead, open_head

PAGE = 10_000


@dataclass
class FetchedLog:
    gateway: str
    head: TreeHead | None
    leaves: list[Leaf]
    intact: bool
    problem: str


def fetch(transport: Transport, gateway: str, roots: Sequence[x509.Certificate]) -> FetchedLog:
    """The whole log as ``gateway`` serves it, head verified, leaves hashing to its root."""
    with transport.sync_channel(gateway) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        first = stub.GetLog(registry_pb2.GetLogRequest(from_index=0, limit=PAGE), timeout=30)
        raw = list(first.leaves)
        head = open_head(first.tree_head, roots) if first.tree_head else None
        size = head.size if head is not None else 0
        while len(raw) < size:
            page = stub.GetLog(
                registry_pb2.GetLogRequest(from_index=len(raw), limit=PAGE), timeout=30
            )
            if not page.leaves:
                break
            raw.extend(page.leaves)
    leaves = [Leaf.decode(r) for r in raw[:size]]
    if head is not None and merkle.root([leaf.hash for leaf in leaves]) != head.root:
        raise LogInconsistent(f"{gateway}: the leaves do not hash to its signed tree head")
    return FetchedLog(gateway, head, leaves, first.intact, first.problem)


def newest(logs: Sequence[FetchedLog]) -> FetchedLog:
    """The largest log, after checking that every other one is a prefix of it (no fork)."""
    best = max(logs, key=lambda log: log.head.size if log.head else 0)
    for log in logs:
        for index, leaf in enumerate(log.leaves):
            if best.leaves[index].raw != leaf.raw:
                raise LogInconsistent(
                    f"{log.gateway} and {best.gateway} disagree at leaf {index}: a fork"
                )
    return best


class HeldLogHead:
    """The largest tree head this station verified (size and root), in a small file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def get(self) -> tuple[int, bytes]:
        if self.path is None or not self.path.exists():
            return 0, merkle.EMPTY_ROOT
        try:
            doc = json.loads(self.path.read_text())
            return int(doc["size"]), bytes.fromhex(doc["root"])
        except (ValueError, KeyError, TypeError) as e:
            raise LogInconsistent(f"state file {self.path} is unreadable: {e}") from e

    def check(self, log: FetchedLog) -> None:
        size, root = self.get()
        if len(log.leaves) < size:
            raise LogInconsistent(
                f"the log has {len(log.leaves)} entries, {size} were verified before (rollback)"
            )
        if size and merkle.root([leaf.hash for leaf in log.leaves[:size]]) != root:
            raise LogInconsistent(f"the log does not extend the tree of size {size} held (fork)")

    def raise_to(self, log: FetchedLog) -> None:
        if self.path is None or log.head is None or log.head.size <= self.get()[0]:
            return
        head = {"size": log.head.size, "root": log.head.root.hex()}
        replace_file(self.path, json.dumps(head).encode(), durable=True)


def decisions(roots: Sequence[x509.Certificate], leaves: Sequence[Leaf]) -> list[Decision]:
    """Every leaf judged by the authority table (what each change did, in words)."""
    state = RegistryState(pinned_roots=tuple(roots))
    return [state.apply(leaf) for leaf in leaves]
