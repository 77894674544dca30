"""Runs the national tier: Gateway + Registry services over a verified view of the registry."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gateway.admission import Admission
from gateway.coalescer import CoalescerPolicy, StatusCoalescer
from gateway.feed import ViewFeed, report_view_health
from gateway.metrics import REGISTRY_REJECTED
from gateway.registry_service import RegistryServicer
from gateway.relay import RelayPolicy, StatusRelay
from gateway.service import AssistanceRpcs, NodeRegistrationRpcs, ServingLimits, VerificationRpcs
from gateway.trustlist_service import TrustListService, load_signer
from gateway.verification import VerifyPolicy
from healthcode.v1 import gateway_pb2, gateway_pb2_grpc, registry_pb2, registry_pb2_grpc
from nodes.authz import Authorizer
from nodes.identity import Role
from nodes.ratelimit import DEFAULT_LIMITS, Limit, RateLimiter
from nodes.server import (
    RunningServer,
    ServiceBinding,
    build_server,
    compose,
    listen_host,
    start_metrics,
)
from nodes.tls import Transport
from trust import pki
from trust.files import write_port_file
from trust.kv import KvStore
from trust.log import LogWriter
from trust.registry import Registry
from trust.stores import open_registry_store
from trust.view import TrustView

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    registry: str  # sqlite:///path/to/registry.db or etcd://h1:2379,h2:2379
    root_cert: Path  # the pinned national root(s): PEM, one or more certificates
    transport: Transport  # mTLS identity of this gateway (or Transport.insecure_dev_only())
    listen: str = "127.0.0.1:0"
    metrics_port: int | None = None
    port_file: Path | None = None
    policy: VerifyPolicy = field(default_factory=VerifyPolicy)
    relay: RelayPolicy = field(default_factory=RelayPolicy)  # hedging
    coalescing: CoalescerPolicy = field(default_factory=CoalescerPolicy)  # batching, breaker
    limits: ServingLimits = field(default_factory=ServingLimits)  # bounded work in progress
    max_concurrent_rpcs: int = 10_000  # past this gRPC answers RESOURCE_EXHAUSTED itself
    view_file: Path | None = None  # last good registry view, served while the store is down
    trust_list_cert: Path | None = None  # national trust-list signer (GetTrustList)
    trust_list_key: Path | None = None
    log_cert: Path | None = None  # the registry log's tree-head signer (registry writes)
    log_key: Path | None = None
    # A signed tree head a fresh gateway starts from: the store's log must extend it (an etcd
    # backup restored from before it is a rollback). Restarts use view_file instead.
    pinned_head: Path | None = None
    rate_limits: Mapping[Role, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    # Share the port with sibling worker processes (SO_REUSEPORT; gateway.workers).
    reuse_port: bool = False


@dataclass
class RunningGateway:
    server: RunningServer
    feed: ViewFeed
    relay: StatusRelay
    store: KvStore
    view: TrustView
    coalescer: StatusCoalescer | None = None
    executor: ThreadPoolExecutor | None = None
    registry: Registry | None = None
    admission: Admission | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.set_serving(False)
        await self.server.stop(grace=1.0)
        if self.admission is not None:
            await self.admission.lag.stop()
        await self.feed.stop()
        if self.coalescer is not None:
            await self.coalescer.close()
        await self.relay.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        await self.store.close()


def gateway_bindings(
    *,
    verification: VerificationRpcs,
    registration: NodeRegistrationRpcs,
    assistance: AssistanceRpcs,
    trust_list: TrustListService,
    registry: RegistryServicer,
) -> list[ServiceBinding]:
    """Everything a national gateway serves: the Gateway service, composed of its four groups
    of rpcs (each rpc served by exactly one, checked here), and the Registry service."""
    return [
        compose(
            gateway_pb2_grpc.add_GatewayServicer_to_server,
            gateway_pb2.DESCRIPTOR.services_by_name["Gateway"],
            verification,
            registration,
            assistance,
            trust_list,
        ),
        compose(
            registry_pb2_grpc.add_RegistryServicer_to_server,
            registry_pb2.DESCRIPTOR.services_by_name["Registry"],
            registry,
        ),
    ]


async def start_gateway(config: GatewayConfig) -> RunningGateway:
    """Open the registry, build the verified view, start serving; used by serve and tests."""
    roots = pki.load_certificates_pem(config.root_cert.read_bytes())
    store = open_registry_store(config.registry)
    view = TrustView(roots=roots, on_rejected=lambda key, why: REGISTRY_REJECTED.inc())
    pinned = config.pinned_head.read_bytes() if config.pinned_head is not None else None
    feed = ViewFeed(store=store, view=view, view_file=config.view_file, pinned_head=pinned)
    await feed.start()
    log_signer = load_signer(config.log_cert, config.log_key)
    registry = Registry(
        store=store,
        view=view,
        reader=feed.reader,
        writer=LogWriter(store, log_signer, clock=time.time) if log_signer else None,
        refresh=feed.refresh,
        changed=feed.changed,
    )
    relay = StatusRelay(view, config.relay, transport=config.transport)
    coalescer = StatusCoalescer(relay, config.coalescing)
    # Batch signature checks run here: cryptography releases the GIL during ECDSA verify.
    executor = ThreadPoolExecutor(config.limits.check_workers, thread_name_prefix="verify")
    admission = Admission(config.limits.admission)
    admission.lag.start()
    verification = VerificationRpcs(
        view=view,
        statuses=coalescer,
        policy=config.policy,
        executor=executor,
        limits=config.limits,
        admission=admission,
    )
    trust_list = TrustListService(
        view=view, signer=load_signer(config.trust_list_cert, config.trust_list_key)
    )
    bindings = gateway_bindings(
        verification=verification,
        registration=NodeRegistrationRpcs(registry=registry),
        assistance=AssistanceRpcs(relay=relay),
        trust_list=trust_list,
        registry=RegistryServicer(registry=registry, view=view, feed=feed),
    )
    authorizer = Authorizer(
        is_revoked=lambda caller: view.certificate_revoked(
            issuer_province=caller.issuer_province,
            serial=caller.serial,
            issuer_key_id=caller.issuer_key_id,
        ),
        limiter=RateLimiter(config.rate_limits),
    )
    server = await build_server(
        bindings,
        listen=config.listen,
        transport=config.transport,
        authorizer=authorizer,
        request_ids=True,  # JSON logs carry each call's x-request-id
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        reuse_port=config.reuse_port,
    )
    await report_view_health(server, feed)
    return RunningGateway(
        server=server,
        feed=feed,
        relay=relay,
        store=store,
        view=view,
        coalescer=coalescer,
        executor=executor,
        registry=registry,
        admission=admission,
    )


def serve_workers(config: GatewayConfig, workers: int) -> None:
    """``workers`` gateway processes on one port (gateway.workers) until SIGTERM/SIGINT."""
    from gateway.workers import WorkerPool, serve_metrics

    state = Path(tempfile.mkdtemp(prefix="hcx-gateway-workers-"))  # their port files
    pool = WorkerPool(config, workers, state)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pool.stopping.set())
    try:
        port = pool.start()
        if port is None:
            return  # stopped during start-up
        if config.metrics_port is not None:
            serve_metrics(pool, config.metrics_port, listen_host(config.listen))
        if config.port_file is not None:
            write_port_file(config.port_file, port)
        log.info("national gateway serving on port %d with %d workers", port, workers)
        pool.supervise()  # in this, the main thread, until a signal sets pool.stopping
    finally:
        pool.stop()
        shutil.rmtree(state, ignore_errors=True)


async def serve_worker(config: GatewayConfig, metrics_file: Path) -> None:
    """One worker of ``serve_workers``: the whole gateway, its metrics on a private port."""
    running = await start_gateway(config)
    metrics_port = start_metrics(0, host="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    write_port_file(metrics_file, int(metrics_port or 0))
    if config.port_file is not None:
        write_port_file(config.port_file, running.port)
    await stop.wait()
    await running.stop()


async def serve(config: GatewayConfig) -> None:
    """Serve until SIGTERM/SIGINT."""
    running = await start_gateway(config)
    start_metrics(config.metrics_port, host=listen_host(config.listen))
    if config.port_file is not None:
        write_port_file(config.port_file, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("national gateway serving on port %d", running.port)
    await stop.wait()
    await running.stop()
