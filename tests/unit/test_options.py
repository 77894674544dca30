"""Configuration defined once (nodes.options): a server's options are the fields of one
dataclass, and the command line, HCX_* variables, TOML and docs/configuration.md follow it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from gateway.options import GatewayOptions
from hcx import config
from hcx.cli import build_parser
from nodes.options import DEFAULT_GATEWAY_ADDRESS, add_options, option, values
from nodes.provincial.main import NodeConfig
from nodes.tls import Transport


@dataclasses.dataclass(frozen=True, kw_only=True)
class Example:
    name: str = option(help="a required one")
    count: int = option(3, help="a number")
    where: Path | None = option(None, help="a path, or nothing", flag="--dir")
    tags: tuple[str, ...] = option((), help="repeatable", metavar="TAG")
    internal: float = 1.0  # not an option


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    return parser.parse_args(list(argv))


def test_fields_become_options_with_their_type_default_and_help() -> None:
    args = parse("--name", "a", "--dir", "/x", "--tags", "t1", "--tags", "t2")
    assert Example(**values(Example, args)) == Example(
        name="a", where=Path("/x"), tags=("t1", "t2")
    )
    assert Example(**values(Example, parse("--name", "b"))) == Example(name="b")
    assert parse("--name", "b", "--count", "7").count == 7
    assert not hasattr(parse("--name", "b"), "internal")


def test_a_field_without_default_is_required_and_a_bad_value_refused() -> None:
    with pytest.raises(SystemExit):
        parse()
    with pytest.raises(SystemExit):
        parse("--name", "a", "--count", "many")


def test_a_repeatable_default_is_not_shared_between_parses() -> None:
    first = parse("--name", "a", "--tags", "x")
    assert parse("--name", "b").tags == []
    assert first.tags == ["x"]


def test_an_option_of_a_type_with_no_command_line_form_is_refused() -> None:
    @dataclasses.dataclass
    class Bad:
        when: dict[str, int] = option(help="no")

    with pytest.raises(TypeError, match="no command-line form"):
        add_options(argparse.ArgumentParser(), Bad)


def test_a_bool_field_is_a_switch_off_unless_given() -> None:
    @dataclasses.dataclass(frozen=True)
    class Switches:
        loud: bool = option(False, help="say more")

    parser = argparse.ArgumentParser()
    add_options(parser, Switches)
    assert Switches(**values(Switches, parser.parse_args([]))) == Switches(loud=False)
    assert Switches(**values(Switches, parser.parse_args(["--loud"]))) == Switches(loud=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--loud", "yes"])


def test_a_switch_that_is_on_by_default_is_refused() -> None:
    @dataclasses.dataclass
    class Bad:
        loud: bool = option(True, help="cannot be turned off")

    with pytest.raises(TypeError, match="off by default"):
        add_options(argparse.ArgumentParser(), Bad)


def test_sim_is_exactly_the_sim_options_and_its_config_takes_their_defaults() -> None:
    from simulations.options import SimOptions
    from simulations.runner import SimConfig

    args = build_parser().parse_args(["sim"])
    assert SimOptions(**values(SimOptions, args)) == SimOptions()
    flags = {a.dest for a in config.options(_command(("sim",)))}
    assert {f.name for f in dataclasses.fields(SimOptions)} == flags
    o, c = SimOptions(), SimConfig(provinces=["330000", "510000"])
    same = ("travellers", "duration", "rate", "replicas", "gateways", "registry", "seed")
    assert all(getattr(c, name) == getattr(o, name) for name in same)
    assert (c.stale_bound, c.netns) == (o.stale_bound, o.netns)


def test_help_shows_each_default_from_its_one_definition() -> None:
    from simulations.options import SimOptions

    text = _command(("sim",)).format_help()
    assert f"(default: {SimOptions.travellers})" in " ".join(text.split())
    assert "(default: False)" not in text and "(default: None)" not in text


def _command(path: tuple[str, ...]) -> argparse.ArgumentParser:
    return dict(config.commands(build_parser()))[path]


def test_gateway_serve_is_exactly_the_gateway_options() -> None:
    args = build_parser().parse_args(["gateway", "serve", "--root-cert", "roots.pem"])
    assert GatewayOptions(**values(GatewayOptions, args)) == GatewayOptions(
        root_cert=Path("roots.pem")
    )
    flags = {a.dest for a in config.options(_command(("gateway", "serve")))}
    fields = {f.name for f in dataclasses.fields(GatewayOptions)}
    assert fields <= flags and flags - fields <= {"tls_dir", "insecure_dev_only"}


def test_the_gateways_policies_take_their_defaults_from_its_options() -> None:
    from gateway.admission import AdmissionPolicy
    from gateway.breaker import BreakerPolicy
    from gateway.coalescer import CoalescerPolicy
    from gateway.relay import RelayPolicy
    from gateway.verification import VerifyPolicy

    o = GatewayOptions(root_cert=Path("r.pem"))
    assert VerifyPolicy() == VerifyPolicy(o.relay_timeout, o.max_offline_age)
    assert RelayPolicy().hedge_after == o.hedge_after
    assert CoalescerPolicy().window == o.coalesce_window
    assert BreakerPolicy() == BreakerPolicy(o.breaker_failures, o.breaker_open)
    admission = AdmissionPolicy()
    assert admission.max_in_flight_codes == o.max_in_flight_codes
    assert (admission.unary_lag_s * 1000, admission.bulk_lag_s * 1000) == (50, 150)
    assert o.shed_lag_ms == "50/150"


def test_node_serve_is_exactly_the_node_config() -> None:
    argv = ["node", "serve", "--province", "330000", "--dir", "var/330000"]
    args = build_parser().parse_args(argv)
    transport = Transport.insecure_dev_only()
    parsed = NodeConfig(**values(NodeConfig, args), transport=transport)
    assert parsed == NodeConfig(
        province="330000",
        directory=Path("var/330000"),
        gateway=DEFAULT_GATEWAY_ADDRESS,
        transport=transport,
    )


def test_a_config_built_in_code_names_its_gateway() -> None:
    """The flag has a default (the local gateway); code that forgets the field is refused,
    never pointed at 127.0.0.1 silently."""
    with pytest.raises(TypeError, match="gateway"):
        NodeConfig(province="330000", directory=Path("d"), transport=Transport.insecure_dev_only())


def test_an_environment_variable_sets_an_option_of_the_dataclass() -> None:
    parser = build_parser()
    config.apply(parser, environ={"HCX_HEDGE_AFTER": "0.2", "HCX_LEASE_TTL": "30"})
    gateway = parser.parse_args(["gateway", "serve", "--root-cert", "r.pem"])
    node = parser.parse_args(["node", "serve", "--province", "330000", "--dir", "d"])
    assert GatewayOptions(**values(GatewayOptions, gateway)).hedge_after == 0.2
    assert node.lease_ttl == 30
