"""The options of ``hcx checkpoint serve`` and ``hcx node web``, each defined once
(nodes.options): type, default and help are a field of ``StationOptions`` or
``ResidentWebOptions``. Their command lines, HCX_* variables, TOML keys and
docs/configuration.md are generated from these, and the servers' configurations
(web.station.StationConfig, web.traveller.ResidentWebConfig) take their defaults from them.
Imports no web stack, so the command line may import it without starting aiohttp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nodes.options import DEFAULT_GATEWAY_ADDRESS, option
from trust.errors import InvalidRequest
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S


def addresses(text: str, what: str) -> tuple[str, ...]:
    """``"a:1, b:2"`` -> ("a:1", "b:2"), in the order given; InvalidRequest if empty."""
    found = tuple(a.strip() for a in text.split(",") if a.strip())
    if not found:
        raise InvalidRequest(f"give at least one {what} address")
    return found


@dataclass(frozen=True, kw_only=True)
class StationOptions:
    province: str = option(help="the checkpoint's province code")
    name: str = option("station", help="the station's name in the gateway's logs")
    gateway: str = option(
        DEFAULT_GATEWAY_ADDRESS,
        help="national gateway addresses, comma-separated, tried in the order given",
    )
    root: Path | None = option(None, help="pinned national root (default: --tls-dir/root.pem)")
    web_tls: Path = option(
        help="the station's HTTPS certificate directory (hcx node keys issue-cert --kind web)"
    )
    state_dir: Path = option(help="held trust list and enrolment codes")
    listen: str = option("0.0.0.0:8443", help="HTTPS address of the staff page")
    port_file: Path | None = option(None, help="write the bound port here")
    # A verdict well under a second with two gateways tried.
    timeout: float = option(0.7, help="deadline per gateway (s) before the next")
    max_offline_age: int = option(
        DEFAULT_MAX_OFFLINE_AGE_S,
        help="oldest token (s) still VALID_OFFLINE when no gateway answers, as at the gateway",
    )

    @property
    def gateways(self) -> tuple[str, ...]:
        return addresses(self.gateway, "gateway")


@dataclass(frozen=True, kw_only=True)
class ResidentWebOptions:
    province: str = option(help="GB/T 2260 code")
    node: str = option(
        help="the node replicas' addresses, comma-separated, tried in the order given"
    )
    web_tls: Path = option(
        help="the page's HTTPS certificate directory (hcx node keys issue-cert --kind web)"
    )
    listen: str = option("0.0.0.0:8444", help="HTTPS address of the page")
    port_file: Path | None = option(None, help="write the bound port here")

    @property
    def nodes(self) -> tuple[str, ...]:
        return addresses(self.node, "node")
