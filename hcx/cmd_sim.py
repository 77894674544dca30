"""``hcx sim``: the national simulation on 127.0.0.1 (``make run``) or on a test bed of network
namespaces (``--netns``), or the short demo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nodes.options import add_options
from simulations.options import SimOptions
from simulations.provinces import all_provinces


def register(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SimOptions)
    parser.set_defaults(handler=run)


def parse_provinces(text: str) -> list[str]:
    """A count or a comma list of known province codes (ValueError with a clear message)."""
    from simulations.runner import pick_provinces

    text = text.strip()
    if text.isdigit() and len(text) <= 2:
        count = int(text)
        if not 2 <= count <= len(all_provinces()):
            raise ValueError(f"--provinces: between 2 and {len(all_provinces())}, not {count}")
        return pick_provinces(count)
    codes = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in codes if p not in all_provinces()]
    if unknown or len(set(codes)) < 2:
        raise ValueError(f"--provinces: two or more known codes needed (unknown: {unknown})")
    return list(dict.fromkeys(codes))


def run(args: argparse.Namespace) -> int:
    try:
        provinces = parse_provinces(args.provinces)
    except ValueError as e:
        print(f"hcx sim: {e}", file=sys.stderr)
        return 2
    if args.travellers < 1 or args.duration <= 0 or args.rate <= 0 or args.replicas < 1:
        print("hcx sim: --travellers, --duration, --rate and --replicas must be positive")
        return 2
    if args.netns:
        from simulations import netbed

        why = netbed.available()
        if why is not None:
            print(f"hcx sim: --netns cannot run here: {why}", file=sys.stderr)
            return 2
        if args.registry is not None:
            print("hcx sim: --netns starts its own etcd cluster; no --registry", file=sys.stderr)
            return 2
    workdir = args.workdir / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=False)
    if args.demo:
        return run_demo(workdir, provinces, args.seed)
    return run_national(args, provinces, workdir)


def run_national(args: argparse.Namespace, provinces: list[str], workdir: Path) -> int:
    from simulations.report import write_report
    from simulations.runner import SimConfig, run_simulation

    config = SimConfig(
        provinces=provinces,
        travellers=args.travellers,
        duration=args.duration,
        rate=args.rate,
        replicas=args.replicas,
        gateways=args.gateways,
        registry=args.registry,
        seed=args.seed,
        stale_bound=args.stale_bound,
        workdir=workdir,
        progress=not args.quiet,
        netns=args.netns,
    )
    result = run_simulation(config)
    html, text, _ = write_report(result, workdir)
    latest = args.workdir / "latest-report.html"
    latest.unlink(missing_ok=True)
    latest.symlink_to(html.resolve())
    print(text)
    return 0 if result.invariants.holds else 1


def run_demo(workdir: Path, provinces: list[str], seed: int) -> int:
    from simulations.demo import print_table
    from simulations.demo import run_demo as demo

    print(f"starting a gateway and {len(provinces)} provincial nodes (logs in {workdir})")
    rows = demo(workdir, provinces, seed=seed)
    print_table(rows)
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} verifications as expected; all processes stopped")
    return 1 if bad else 0
