"""Colours by rules at provincial scale: a close-contact import of 100,000 entries, daily
check-ins, and the colour clock completing quarantines (docs/colour-policy.md).

``make bench BENCH=colours`` (``BENCH="colours --codes=50000"`` for a quicker run). On a SQLite
status store filled through the bulk path, each figure is compared with a baseline measured in
the same run on the same store:

* import: ``import_close_contacts`` of N holder hashes, every one a code of the province (each
  code read, decided by the policy, written by compare-and-set with its history entry) against
  one plain ``UPDATE codes SET colour`` of the same codes in one transaction (the floor: what
  the store must do anyway);
* check-ins: ``ColourEngine.check_in``, one durable transaction per check-in, against
  ``set_colour`` (SetStatus's store call, also one durable transaction per call);
* completions: ``complete_due`` ending N quarantines.

Medians of ROUNDS runs; CPU time per item beside wall time (the machine is shared).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from nodes.provincial.health.engine import ColourEngine
from nodes.provincial.health.facts import check_check_in
from nodes.provincial.health.policy import default_policy
from nodes.provincial.issuance import Issuer
from nodes.provincial.stores import BulkRow, SqliteStatusStore, StatusStore
from trust import pki
from trust.model import Colour

PROVINCE = "330000"
ROUNDS = 3
DAY = 100.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench colours")
    parser.add_argument("--codes", type=int, default=100_000, help="codes in an import")
    parser.add_argument("--check-ins", type=int, default=3_000, help="check-ins per round")
    parser.add_argument("--dir", type=Path, default=Path("var/bench/colours"), help="work dir")
    parser.add_argument(
        "--stores",
        default="sqlite,postgresql",
        help="backends, comma-separated (postgresql: a throw-away server on 127.0.0.1)",
    )
    return parser.parse_args(argv)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Stores:
    """Fresh stores of one backend: a SQLite file each, or a database each on one server."""

    def __init__(self, kind: str, directory: Path, postgres: Any = None) -> None:
        self.kind, self.directory, self.postgres = kind, directory, postgres

    def new(self, name: str) -> StatusStore:
        if self.kind == "sqlite":
            shutil.rmtree(self.directory / name, ignore_errors=True)
            (self.directory / name).mkdir(parents=True)
            return SqliteStatusStore(self.directory / name / "status.db")
        import psycopg

        from nodes.provincial.stores.postgres import PostgresStatusStore

        database = f"bench_{name}_{secrets.token_hex(4)}"
        with psycopg.connect(self.postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        return PostgresStatusStore(self.postgres.dsn(database))


def fresh_store(
    stores: Stores, name: str, codes: int
) -> tuple[StatusStore, list[bytes], list[bytes]]:
    """A store of ``codes`` green codes; their ids and holder hashes."""
    store = stores.new(name)
    ids = [secrets.token_bytes(16) for _ in range(codes)]
    refs = [secrets.token_bytes(32) for _ in range(codes)]
    rows: list[BulkRow] = [
        (i, r, int(Colour.GREEN), 1, 1_800_000_000.0, "issued", "张*明", "123X")
        for i, r in zip(ids, refs, strict=True)
    ]
    store.bulk_load(rows)
    return store, ids, refs


def engine_on(store: StatusStore, clock: Clock) -> ColourEngine:
    key = pki.generate_private_key()
    issuer = Issuer(
        province=PROVINCE,
        signing_key=key,
        kid=b"\x01" * 8,
        holder_key=b"\x07" * 32,
        store=store,
        clock=clock,
    )
    # Misses add nothing here: the quarantines of a round end by time alone (no million
    # check-ins to make first); the arithmetic of misses is the tests' (test_quarantine.py).
    policy = replace(default_policy(), missed_check_in_adds_days=0)
    return ColourEngine(store=store, issuer=issuer, policy=policy, clock=clock, day_seconds=DAY)


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def plain_update(store: StatusStore, ids: list[bytes]) -> None:
    mark = "?" if isinstance(store, SqliteStatusStore) else "%s"

    def update(conn: Any) -> None:
        cursor = conn.cursor()
        cursor.executemany(
            f"UPDATE codes SET colour=3, status_version=status_version+1 WHERE code_id={mark}",
            [(i,) for i in ids],
        )
        cursor.close()

    store.health._run(update, True)  # the same transaction path as the engine's


def one_round(
    args: argparse.Namespace, stores: Stores, round_: int
) -> dict[str, tuple[float, float]]:
    """One round of every measure, each on a fresh store; (wall, CPU) seconds by measure."""
    out: dict[str, tuple[float, float]] = {}
    clock = Clock()
    store, ids, refs = fresh_store(stores, f"r{round_}", args.codes)
    engine = engine_on(store, clock)
    wall, cpu, result = timed(
        lambda: engine.import_close_contacts(refs, listed_at=clock.now, import_id="bench")
    )
    assert result.changed == args.codes, result
    out["import"] = (wall, cpu)
    base_store, base_ids, _ = fresh_store(stores, f"b{round_}", args.codes)
    out["import_baseline"] = timed(lambda: plain_update(base_store, base_ids))[:2]
    base_store.close()

    clock.now += DAY / 2
    sample, others = ids[: args.check_ins], ids[args.check_ins : 2 * args.check_ins]

    def check_ins() -> None:
        for n, code in enumerate(sample):
            check = check_check_in(temperature_c=36.5, symptoms=[], now=clock.now)
            engine.check_in(code, check, f"c{round_}-{n}")

    def set_colours() -> None:
        for n, code in enumerate(others):
            store.set_colour(
                code_id=code,
                colour=Colour.RED,
                reason="bench",
                request_id=f"s{round_}-{n}",
                now=clock.now,
            )

    out["check_in"] = timed(check_ins)[:2]
    out["check_in_baseline"] = timed(set_colours)[:2]
    clock.now += 15 * DAY  # every quarantine over

    def completions() -> int:
        done = 0
        while changed := engine.complete_due(limit=2000):
            done += changed
        return done

    wall, cpu, done = timed(completions)
    assert done == args.codes - args.check_ins, done  # SetStatus ended the others' quarantines
    out["complete"] = (wall, cpu)
    store.close()
    for name in (f"r{round_}", f"b{round_}"):
        shutil.rmtree(stores.directory / name, ignore_errors=True)
    return out


def figures(args: argparse.Namespace, stores: Stores) -> dict[str, float]:
    rounds = [one_round(args, stores, r) for r in range(ROUNDS)]
    rows = {key: [r[key] for r in rounds] for key in rounds[0]}

    def median(key: str, index: int) -> float:
        return statistics.median(r[index] for r in rows[key])

    n, c = args.codes, args.check_ins
    return {
        "import_s": median("import", 0),
        "import_cpu_us_per_code": median("import", 1) / n * 1e6,
        "import_baseline_s": median("import_baseline", 0),
        "import_ratio": median("import", 0) / median("import_baseline", 0),
        "check_in_per_s": c / median("check_in", 0),
        "check_in_cpu_us": median("check_in", 1) / c * 1e6,
        "set_colour_per_s": c / median("check_in_baseline", 0),
        "check_in_ratio": median("check_in", 0) / median("check_in_baseline", 0),
        "complete_s": median("complete", 0),
        "complete_cpu_us_per_code": median("complete", 1) / n * 1e6,
    }


ROWS = (
    ("close-contact import of N (s)", "import_s", ".2f"),
    ("  CPU per code (us)", "import_cpu_us_per_code", ".1f"),
    ("  baseline: one UPDATE of the same codes (s)", "import_baseline_s", ".2f"),
    ("  ratio import / baseline", "import_ratio", ".1f"),
    ("check-ins per s (durable each)", "check_in_per_s", ".0f"),
    ("  CPU per check-in (us)", "check_in_cpu_us", ".0f"),
    ("  baseline: set_colour per s", "set_colour_per_s", ".0f"),
    ("  ratio check-in / set_colour time", "check_in_ratio", ".2f"),
    ("quarantines completed: N (s)", "complete_s", ".2f"),
    ("  CPU per completion (us)", "complete_cpu_us_per_code", ".1f"),
)


def main(argv: list[str]) -> dict[str, Any]:
    args = parse(argv)
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    by_store: dict[str, dict[str, float]] = {}
    for kind in kinds:
        if kind == "sqlite":
            by_store[kind] = figures(args, Stores(kind, args.dir))
            continue
        from simulations.loopback import find_bin_dir, run_postgres

        bin_dir = find_bin_dir()
        if bin_dir is None:
            print("postgresql: no initdb on this machine (apt-get install postgresql): skipped")
            continue
        with run_postgres(bin_dir) as server:
            by_store[kind] = figures(args, Stores(kind, args.dir, server))
    print(f"N = {args.codes} codes, {args.check_ins} check-ins, medians of {ROUNDS} rounds")
    print(f"{'measure':<46}" + "".join(f"{k:>14}" for k in by_store))
    for label, key, form in ROWS:
        print(f"{label:<46}" + "".join(f"{f[key]:>14{form}}" for f in by_store.values()))
    return {"codes": args.codes, "check_ins": args.check_ins, "rounds": ROUNDS, **by_store}
