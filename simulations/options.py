"""The options of ``hcx sim``, each defined once (nodes.options): type, default and help are a
field of ``SimOptions``; the command line, its HCX_* variables, TOML keys and
docs/configuration.md are generated from it, and the simulation's own configuration
(simulations.runner.SimConfig) takes its defaults from it. Imports nothing of the simulation,
so the command line may import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nodes.options import option


@dataclass(frozen=True, kw_only=True)
class SimOptions:
    provinces: str = option(
        "5",
        help="a count (1..31: spread first, then by population) or comma-separated GB/T 2260 codes",
    )
    travellers: int = option(2000, help="population")
    duration: float = option(60.0, help="seconds of traffic")
    rate: float = option(120.0, help="checkpoint scans per second, all checkpoints together")
    replicas: int = option(2, help="node replicas per province")
    gateways: int = option(2, help="national gateways")
    registry: str | None = option(
        None,
        help="registry store URL for the gateways (default: embedded SQLite in the run folder)",
    )
    stale_bound: float = option(
        1.0,
        help="seconds after an acknowledged colour change when an older colour is a violation",
    )
    netns: bool = option(
        False,
        help="every process on a host of its own (Linux network namespaces, as root) and the "
        "registry on a 3-member etcd cluster there: the 'etcd member lost' step runs",
    )
    seed: int = option(2020, help="random seed")
    workdir: Path = option(Path("var/sim"), help="runs go here, a folder each")
    quiet: bool = option(False, help="no progress output")
    demo: bool = option(False, help="the short walking-skeleton demo instead")
