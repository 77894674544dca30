"""docker-compose.yml against the hcx parser: every command, option and variable is real."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.unit.deploy import deployment as d

PROVINCES = ("330000", "510000", "460000")
ETCD_MEMBERS = ("etcd-1", "etcd-2", "etcd-3")
REGISTRY_URL = "etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379"
SERVE = {("gateway", "serve"), ("node", "serve")}


def test_compose_file_parses_into_the_expected_services() -> None:
    names = set(d.services())
    expected = {
        *ETCD_MEMBERS,
        "init",
        "gateway-1",
        "gateway-2",
        "prometheus",
        "grafana",
        *(f"postgres-{p}" for p in PROVINCES),
        *(f"node-{p}-{i}" for p in PROVINCES for i in (1, 2)),
    }
    assert names == expected


def test_etcd_is_an_official_pinned_image_in_one_three_member_cluster() -> None:
    for name in ETCD_MEMBERS:
        service = d.services()[name]
        assert re.fullmatch(
            r"(gcr\.io/etcd-development|quay\.io/coreos)/etcd:v3\.5\.\d+", service["image"]
        ), service["image"]
        argv = d.command(service)
        assert f"--name={name}" in argv
        cluster = next(a for a in argv if a.startswith("--initial-cluster="))
        assert cluster == "--initial-cluster=" + ",".join(
            f"{m}=http://{m}:2380" for m in ETCD_MEMBERS
        )


@pytest.mark.parametrize("name", sorted(d.hcx_services()))
def test_every_hcx_service_command_parses_with_its_environment(name: str) -> None:
    service = d.hcx_services()[name]
    argv = d.command(service)
    assert d.role_path(argv) in SERVE, f"{name} runs an unexpected role: {argv[:2]}"
    args = d.parse(argv, d.environment(service))
    assert args.handler is not None


@pytest.mark.parametrize(
    "path", sorted({d.role_path(d.command(s)) for s in d.hcx_services().values()})
)
def test_every_role_used_by_compose_has_a_working_help(path: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        d.parse([*path, "--help"])
    assert exit_.value.code == 0
    assert f"hcx {' '.join(path)}" in capsys.readouterr().out


def test_help_works_in_a_real_process_as_the_image_runs_it() -> None:
    """The image's ENTRYPOINT is the ``hcx`` console script; run it the same way."""
    hcx = [sys.executable, "-m", "hcx"]
    for path in sorted({d.role_path(d.command(s)) for s in d.hcx_services().values()}):
        done = subprocess.run([*hcx, *path, "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "--tls-dir" in done.stdout


@pytest.mark.parametrize("name", sorted(d.hcx_services()))
def test_every_variable_is_an_option_of_the_service_command(name: str) -> None:
    service = d.hcx_services()[name]
    known = d.option_variables(d.role_path(d.command(service)))
    for variable in d.environment(service):
        assert variable in known or variable in d.NON_OPTION_VARIABLES, (
            f"{name} sets {variable}, which no option of its command reads "
            "(see docs/configuration.md)"
        )


@pytest.mark.parametrize("name", sorted(d.hcx_services()))
def test_servers_listen_on_all_interfaces_with_mtls(name: str) -> None:
    """/metrics binds the --listen host: 127.0.0.1 in a container could not be scraped."""
    service = d.hcx_services()[name]
    args = d.parse(d.command(service), d.environment(service))
    assert args.listen.startswith("0.0.0.0:")
    assert args.tls_dir is not None and not args.insecure_dev_only
    assert args.metrics_port


def test_gateways_share_the_etcd_registry_and_never_hold_the_root_key() -> None:
    for name in ("gateway-1", "gateway-2"):
        service = d.services()[name]
        args = d.parse(d.command(service), d.environment(service))
        assert args.registry == REGISTRY_URL
        assert not any("root-key" in str(word) for word in d.command(service))
        assert args.log_key is not None and args.trust_list_key is not None
        assert "gateway" in service["networks"]["default"]["aliases"]


@pytest.mark.parametrize("province", PROVINCES)
def test_two_replicas_per_province_share_its_postgresql(province: str) -> None:
    stores = set()
    for replica in (1, 2):
        name = f"node-{province}-{replica}"
        service = d.services()[name]
        args = d.parse(d.command(service), d.environment(service))
        assert args.province == province
        assert args.advertise_host == name
        assert args.node_id == f"node-{replica}"
        assert service["depends_on"][f"postgres-{province}"]["condition"] == "service_healthy"
        stores.add(args.store)
    assert stores == {f"postgresql://hcx@postgres-{province}:5432/status"}
    postgres = d.services()[f"postgres-{province}"]
    assert re.fullmatch(r"postgres:\d+\.\d+.*", postgres["image"])


def test_every_hcx_service_waits_for_the_successful_init() -> None:
    for name, service in d.hcx_services().items():
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully", name
    init = d.services()["init"]
    assert init["restart"] == "no"
    assert init["entrypoint"] == ["/usr/local/bin/hcx-init"]
    for member in ETCD_MEMBERS:
        assert init["depends_on"][member]["condition"] == "service_healthy"
