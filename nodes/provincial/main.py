"""Runs a provincial node: loads the province's keys, serves ProvincialNode, stays registered."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc

from healthcode.v1 import gateway_pb2_grpc, node_pb2, node_pb2_grpc
from nodes.provincial.issuance import DEFAULT_TOKEN_LIFETIME_S, Issuer
from nodes.provincial.keys import ProvinceDir
from nodes.provincial.service import ProvincialNodeServicer
from nodes.provincial.status_store import SqliteStatusStore
from nodes.registration import NodeRegistration
from nodes.server import RunningServer, ServiceBinding, build_server, start_metrics
from trust import pki

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeConfig:
    province: str
    directory: Path
    gateway: str
    listen: str = "127.0.0.1:0"
    node_id: str = "node-1"
    advertise_host: str = "127.0.0.1"
    metrics_port: int | None = None
    port_file: Path | None = None
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME_S
    lease_ttl: int = 10


def build_issuer(config: NodeConfig, store: SqliteStatusStore) -> Issuer:
    files = ProvinceDir(config.directory)
    certificate = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    return Issuer(
        province=config.province,
        signing_key=pki.load_private_key_pem(files.dsc_key.read_bytes()),
        kid=pki.kid(certificate),
        holder_key=files.holder_key.read_bytes(),
        store=store,
        token_lifetime=config.token_lifetime,
    )


async def start_node(
    config: NodeConfig,
) -> tuple[RunningServer, NodeRegistration, SqliteStatusStore]:
    """Start serving and registering; used by ``serve`` and by the tests."""
    store = SqliteStatusStore(ProvinceDir(config.directory).status_db)
    servicer = ProvincialNodeServicer(issuer=build_issuer(config, store), store=store)
    binding = ServiceBinding(
        node_pb2_grpc.add_ProvincialNodeServicer_to_server,
        servicer,
        node_pb2.DESCRIPTOR.services_by_name["ProvincialNode"].full_name,
    )
    running = await build_server([binding], listen=config.listen)
    await running.set_serving(False)  # NOT_SERVING until the gateway knows us
    channel = grpc.aio.insecure_channel(config.gateway)
    registration = NodeRegistration(
        gateway=gateway_pb2_grpc.GatewayStub(channel),
        province=config.province,
        node_id=config.node_id,
        endpoint=f"{config.advertise_host}:{running.port}",
        ttl_seconds=config.lease_ttl,
        on_change=running.set_serving,
    )
    await registration.start()
    return running, registration, store


async def serve(config: NodeConfig) -> None:
    """Serve until SIGTERM/SIGINT, then deregister, drain and stop."""
    running, registration, store = await start_node(config)
    start_metrics(config.metrics_port)
    if config.port_file is not None:
        write_port_file(config.port_file, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("provincial node %s serving on port %d", config.province, running.port)
    await stop.wait()
    await running.set_serving(False)
    await registration.stop()
    await running.server.stop(grace=2.0)
    store.close()


def write_port_file(path: Path, port: int) -> None:
    """Tell a supervisor which port was bound (atomic: it never reads half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(port))
    tmp.replace(path)
