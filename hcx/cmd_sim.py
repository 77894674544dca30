"""``hcx sim``: a local federation on 127.0.0.1."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulations.demo import DEFAULT_PROVINCES, print_table, run_demo
from simulations.provinces import all_provinces


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provinces",
        default=",".join(DEFAULT_PROVINCES),
        help="comma-separated GB/T 2260 codes (default: 330000,510000,460000)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("var/sim"),
        help="where keys, stores and logs of this run go (default var/sim)",
    )
    parser.add_argument("--seed", type=int, default=2020, help="random seed")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    provinces = [p.strip() for p in args.provinces.split(",") if p.strip()]
    unknown = [p for p in provinces if p not in all_provinces()]
    if unknown or len(provinces) < 2:
        print(f"hcx sim: need two or more known province codes (unknown: {unknown})")
        return 2
    workdir = args.workdir / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=False)
    print(f"starting a gateway and {len(provinces)} provincial nodes (logs in {workdir})")
    rows = run_demo(workdir, provinces, seed=args.seed)
    print_table(rows)
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} verifications as expected; all processes stopped")
    return 1 if bad else 0
