"""Provincial node at provincial scale: a status store of 10 million codes on one machine.

``make bench BENCH=node`` (or ``BENCH="node --codes=1000000"`` for a smaller run). Fills a SQLite
status store with N codes through the bulk path (no signing), then measures on that store:
issuance through the Issuer (signing and durable commit included; in batches, i.e. group
commit, and one durable commit per code), single look-ups in process, GetStatusBatch over
gRPC against a real node server on 127.0.0.1, the store's size on disk and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import secrets
import shutil
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from healthcode.v1 import node_pb2, node_pb2_grpc
from nodes.provincial.issuance import Holder, Issuer, with_check_character
from nodes.provincial.service import ProvincialNodeServicer
from nodes.provincial.stores import BulkRow, SqliteStatusStore
from nodes.server import ServiceBinding, build_server
from nodes.tls import Transport
from trust import pki
from trust.codeformat import decode_token

DEFAULT_CODES = 10_000_000
PREFIX_BUCKETS = 65_536  # ids are generated bucket by bucket so inserts append to the B-tree
SAMPLE_IDS = 200_000
BATCH = 1000
ISSUE_BATCH = 5000  # holders per Issuer.issue_batch call (commits of COMMIT_CHUNK)
ROUNDS = 3
PROVINCE = "330000"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench node")
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES, help="codes in the store")
    parser.add_argument("--dir", type=Path, default=Path("var/bench/node"), help="work dir")
    parser.add_argument("--issue", type=int, default=20_000, help="codes to issue (batched)")
    parser.add_argument("--lookups", type=int, default=200_000, help="single look-ups")
    parser.add_argument("--batch-calls", type=int, default=400, help="GetStatusBatch calls")
    parser.add_argument(
        "--reuse", action="store_true", help="keep a store already filled with >= --codes codes"
    )
    return parser.parse_args(argv)


def fill_rows(count: int, sample: list[bytes]) -> Iterator[BulkRow]:
    """Uniformly random 16-byte code ids, emitted in ascending order bucket by bucket.

    A set of uniform random ids sorted is still uniform; emitting it in order turns 10 M
    random B-tree inserts into appends. Holder refs get the same treatment for their index.
    """
    every = max(count // SAMPLE_IDS, 1)
    produced = 0
    for bucket in range(PREFIX_BUCKETS):
        n = count * (bucket + 1) // PREFIX_BUCKETS - count * bucket // PREFIX_BUCKETS
        prefix = bucket.to_bytes(2, "big")
        ids = sorted(prefix + os.urandom(14) for _ in range(n))
        holders = sorted(prefix + os.urandom(30) for _ in range(n))
        for code_id, holder in zip(ids, holders, strict=True):
            if produced % every == 0:
                sample.append(code_id)
            produced += 1
            yield (code_id, holder, 1, 1, 1_700_000_000.0, "issued", "张*明", "123X")


def prepare_store(args: argparse.Namespace) -> tuple[SqliteStatusStore, list[bytes], int, float]:
    """(store, sample of its code ids, rows filled now, seconds the fill took)."""
    path = args.dir / "status.db"
    if args.reuse and path.exists():
        store = SqliteStatusStore(path)
        if store.count() >= args.codes:
            return store, sample_ids(path), 0, 0.0
        store.close()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    store = SqliteStatusStore(path)
    sample: list[bytes] = []
    began = time.perf_counter()
    filled = store.bulk_load(fill_rows(args.codes, sample))
    return store, sample, filled, time.perf_counter() - began


def sample_ids(path: Path) -> list[bytes]:
    """Code ids at random places of a filled store (the id following a random 16 bytes)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = (
            db.execute("SELECT code_id FROM codes WHERE code_id >= ? LIMIT 1", (os.urandom(16),))
            for _ in range(SAMPLE_IDS)
        )
        return [bytes(row[0]) for cursor in rows if (row := cursor.fetchone()) is not None]


def make_issuer(store: SqliteStatusStore) -> Issuer:
    return Issuer(
        province=PROVINCE,
        signing_key=pki.generate_private_key(),
        kid=secrets.token_bytes(8),
        holder_key=secrets.token_bytes(32),
        store=store,
    )


def holders(count: int, start: int) -> list[Holder]:
    return [
        Holder(with_check_character(f"33010219{(start + i) % 10**9:09d}"), "张三明")
        for i in range(count)
    ]


@dataclass
class Issuance:
    """Batched issuance: median codes/s and CPU µs per code (all threads), longest token."""

    per_s: float = 0.0
    cpu_us: float = 0.0
    token_chars: int = 0


def measure_issuance(issuer: Issuer, count: int) -> Issuance:
    """Median over ROUNDS rounds, in batches of ISSUE_BATCH (each token checked to decode)."""
    people = holders(count, start=random.randrange(10**8))
    per_round = count // ROUNDS
    rates, cpus, longest = [], [], 0
    for r in range(ROUNDS):
        began, cpu_began = time.perf_counter(), time.process_time()
        for i in range(r * per_round, (r + 1) * per_round, ISSUE_BATCH):
            issued = issuer.issue_batch(people[i : min(i + ISSUE_BATCH, (r + 1) * per_round)])
            longest = max(longest, *(len(code.token) for code in issued))
        rates.append(per_round / (time.perf_counter() - began))
        cpus.append((time.process_time() - cpu_began) / per_round * 1e6)
        decode_token(issued[-1].token)  # outside the timing: the tokens are real codes
    return Issuance(statistics.median(rates), statistics.median(cpus), longest)


def measure_single_issuance(issuer: Issuer, count: int) -> float:
    """Codes/s when every code is its own durable commit (IssueCode)."""
    singles = holders(min(2_000, count), start=500_000_000 + random.randrange(10**8))
    began = time.perf_counter()
    for holder in singles:
        issuer.issue(id_number=holder.id_number, full_name=holder.full_name)
    return len(singles) / (time.perf_counter() - began)


def measure_lookups(store: SqliteStatusStore, sample: list[bytes], count: int) -> float:
    """Median over ROUNDS rounds of single look-ups by random known ids (this machine is shared).

    Each id is looked up at most once (drawn without replacement), so no answer can come
    from a page the same id brought into the cache earlier.
    """
    draws = random.sample(sample, min(count, len(sample)))
    rates = []
    for r in range(ROUNDS):
        picks = draws[r * len(draws) // ROUNDS : (r + 1) * len(draws) // ROUNDS]
        began = time.perf_counter()
        for code_id in picks:
            if store.get(code_id) is None:
                raise RuntimeError("a filled code was not found")
        rates.append(len(picks) / (time.perf_counter() - began))
    return statistics.median(rates)


async def measure_status_batch(
    store: SqliteStatusStore, issuer: Issuer, sample: list[bytes], calls: int
) -> float:
    """Items/s of GetStatusBatch (1000 ids per call, 4 in flight) against a real server."""
    servicer = ProvincialNodeServicer(issuer=issuer, store=store)
    binding = ServiceBinding(
        node_pb2_grpc.add_ProvincialNodeServicer_to_server,
        servicer,
        node_pb2.DESCRIPTOR.services_by_name["ProvincialNode"].full_name,
    )
    running = await build_server(
        [binding], listen="127.0.0.1:0", transport=Transport.insecure_dev_only()
    )
    requests = [
        node_pb2.GetStatusBatchRequest(code_ids=random.sample(sample, BATCH)) for _ in range(8)
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = node_pb2_grpc.ProvincialNodeStub(channel)
        await stub.GetStatusBatch(requests[0], timeout=10)  # connect and warm up

        async def worker(n: int) -> None:
            for i in range(n):
                reply = await stub.GetStatusBatch(requests[i % len(requests)], timeout=10)
                if not all(s.found for s in reply.statuses):
                    raise RuntimeError("a filled code was not found over gRPC")

        began = time.perf_counter()
        await asyncio.gather(*(worker(calls // 4) for _ in range(4)))
        elapsed = time.perf_counter() - began
    await running.stop(grace=1)
    return (calls // 4) * 4 * BATCH / elapsed


def main(argv: list[str]) -> dict[str, object]:
    args = parse(argv)
    store, sample, filled, fill_s = prepare_store(args)
    issuer = make_issuer(store)
    load_before = os.getloadavg()[0]
    issuance = measure_issuance(issuer, args.issue)
    issue_single_per_s = measure_single_issuance(issuer, args.issue)
    lookup_per_s = measure_lookups(store, sample, args.lookups)
    batch_per_s = asyncio.run(measure_status_batch(store, issuer, sample, args.batch_calls))
    result: dict[str, object] = {
        "codes": store.count(),
        "filled": filled,
        "fill_seconds": round(fill_s, 1),
        "issue_per_s": round(issuance.per_s),
        "issue_cpu_us_per_code": round(issuance.cpu_us),
        "issue_batch_size": ISSUE_BATCH,
        "issue_single_commit_per_s": round(issue_single_per_s),
        "token_chars_max": issuance.token_chars,
        "lookup_per_s": round(lookup_per_s),
        "status_batch_items_per_s": round(batch_per_s),
        "db_bytes": store.size_bytes(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
        # The machine is shared: the 1-minute load average before and after the run says
        # how much of its 2 cores the benchmark could have had.
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
    }
    store.close()
    print_table(result)
    return result


def print_table(result: dict[str, object]) -> None:
    targets = {"issue_per_s": ">= 5000", "lookup_per_s": ">= 50000", "peak_rss_mb": "< 500"}
    print(f"{'figure':<28}{'value':>16}  target")
    for key, value in result.items():
        print(f"{key:<28}{value!s:>16}  {targets.get(key, '')}")
