"""Runs a provincial node: loads the province's keys, serves ProvincialNode, stays registered."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from healthcode.v1 import gateway_pb2_grpc, node_pb2, node_pb2_grpc
from nodes.authz import Authorizer
from nodes.identity import certificate_identity
from nodes.options import DEFAULT_GATEWAY_ADDRESS, option
from nodes.provincial import metrics
from nodes.provincial.checkpoint import LocalVerifier
from nodes.provincial.health.clock import ColourClock
from nodes.provincial.health.engine import DAY_SECONDS, ColourEngine
from nodes.provincial.health.policy import (
    Policy,
    PolicyError,
    default_policy,
    open_signed_policy,
)
from nodes.provincial.issuance import DEFAULT_TOKEN_LIFETIME_S, Issuer
from nodes.provincial.keys import ProvinceDir
from nodes.provincial.metrics import MeteredStore
from nodes.provincial.registration import NodeRegistration
from nodes.provincial.service import ProvincialNodeServicer
from nodes.provincial.signing import SigningKeySource, registry_refuses
from nodes.provincial.stores import StatusStore, open_status_store
from nodes.provincial.trustlist import TrustListFollower
from nodes.server import (
    RunningServer,
    build_server,
    compose,
    listen_host,
    start_metrics,
)
from nodes.tasks import cancel_and_wait
from nodes.tls import Transport, split_target
from trust import pki
from trust.errors import StoreUnavailable
from trust.files import write_port_file
from trust.model import Colour

log = logging.getLogger(__name__)

TRUST_LIST_FILE = "trust-list.cbor"  # in the province directory: the last verified list
STORE_PING_TIMEOUT_S = 4.0  # beyond the store's own TCP limit (3 s): a cut is seen in ~4 s


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """Everything a node replica needs. Each option field is a flag of ``hcx node serve``
    (nodes.options: its type, default and help are written here and nowhere else)."""

    province: str = option(help="GB/T 2260 code")
    directory: Path = option(help="the province's key directory", flag="--dir")
    gateway: str = option(
        cli_default=DEFAULT_GATEWAY_ADDRESS,  # code that builds a config names its gateway
        help="national gateway address, or a gRPC target naming several for fail-over, "
        "e.g. ipv4:10.0.0.1:50051,10.0.0.2:50051",
    )
    # mTLS identity, or Transport.insecure_dev_only() (--insecure-dev-only) for development.
    transport: Transport
    listen: str = option("127.0.0.1:0", help="host:port to serve on")
    node_id: str = option("node-1", help="replica name within the province")
    metrics_port: int | None = option(None, help="Prometheus port (0: any)")
    port_file: Path | None = option(None, help="write the bound port here")
    token_lifetime: int = option(DEFAULT_TOKEN_LIFETIME_S, help="seconds a token is valid")
    # None: the SQLite file in the province directory. Replicas of one province on one host
    # share that file; on several hosts they share a PostgreSQL URL.
    store: str | None = option(
        None,
        help="status store: sqlite:///PATH or postgresql://USER@HOST/DB shared by the "
        "province's replicas (default: DIR/status.db)",
    )
    lease_ttl: int = option(10, help="registration lease TTL (s)")
    # Gateways drop a deregistered node within ms (registry watch).
    drain_seconds: float = option(0.25, help="on SIGTERM: deregister, then wait")
    advertise_host: str = option("127.0.0.1", help="host the gateway should call back on")
    register_wait: float = 10.0  # start-up waits this long for the first registration
    policy: Path | None = option(
        None,
        help="the colour policy signed by an operator of the province (hcx node policy sign); "
        "default: the built-in policy (docs/colour-policy.md)",
    )
    day_seconds: float = option(
        DAY_SECONDS, help="length of a quarantine day in seconds (shorter only in simulations)"
    )
    colour_tick: float = option(
        1.0, help="seconds between the colour clock's looks for completed quarantines"
    )

    def store_url(self) -> str:
        return self.store or str(ProvinceDir(self.directory).status_db)


def _roots(config: NodeConfig) -> list[x509.Certificate]:
    """The pinned national root, as the province received it at onboarding."""
    return pki.load_certificates_pem((config.directory / "root.pem").read_bytes())


def signing_key_source(config: NodeConfig, trust: TrustListFollower) -> SigningKeySource:
    """The province's current DSC, reloaded when it changes, once the registry the node
    follows has listed the new key for the settle time (nodes.provincial.signing)."""

    def known(kid: bytes) -> bool:
        view = trust.view()
        return view is not None and view.signer(kid) is not None

    def refused(kid: bytes) -> bool:
        return registry_refuses(trust.view(), kid, now=time.time())

    return SigningKeySource(ProvinceDir(config.directory), known=known, refused=refused)


def build_issuer(config: NodeConfig, store: StatusStore, keys: SigningKeySource) -> Issuer:
    """The issuer with the province's current DSC and its holder-hash key."""
    files = ProvinceDir(config.directory)
    return Issuer(
        province=config.province,
        key_source=keys,
        holder_key=files.holder_key.read_bytes(),
        store=store,
        token_lifetime=config.token_lifetime,
    )


def load_policy(config: NodeConfig) -> Policy:
    """The operator-signed policy file, checked, or the built-in default."""
    if config.policy is None:
        return default_policy()
    files = ProvinceDir(config.directory)
    return open_signed_policy(
        config.policy.read_bytes(),
        province=config.province,
        provincial_ca=pki.load_certificate_pem(files.ca_cert.read_bytes()),
        roots=_roots(config),
    )


def build_engine(config: NodeConfig, store: StatusStore, issuer: Issuer) -> ColourEngine:
    """The colour engine on the checked policy (``admit_policy`` then refuses one older than
    this province's nodes already ran: a replayed old signed file, or the built-in default after
    a signed policy; to go back, sign the old rules as a new version)."""

    def changed(cause: str, colour: Colour) -> None:
        metrics.COLOUR_CHANGES.labels(config.province, colour.name, cause).inc()

    return ColourEngine(
        store=store,
        issuer=issuer,
        policy=load_policy(config),
        day_seconds=config.day_seconds,
        on_change=changed,
    )


def admit_policy(config: NodeConfig, store: StatusStore, engine: ColourEngine) -> None:
    """Record the policy's version, refusing an older one (after its signer was checked: a
    refused file must not raise the province's version)."""
    policy = engine.policy
    refused = store.health.admit_policy(policy.version, policy.digest, time.time())
    if refused is not None:
        raise PolicyError(f"{config.policy or 'the built-in policy'}: {refused}")


def signer_revoked(engine: ColourEngine, trust: TrustListFollower) -> bool:
    """Whether the trust list now says the policy's signer is revoked."""
    signer = engine.policy.signer
    return signer is not None and trust.is_revoked(certificate_identity(signer))


def check_policy_signer(engine: ColourEngine, trust: TrustListFollower) -> None:
    """Once the trust list is in: the policy's signer must not be revoked."""
    signer = engine.policy.signer
    if signer is not None and signer_revoked(engine, trust):
        raise PolicyError(
            f"the policy {engine.policy.label} was signed by a revoked certificate "
            f"({pki.spiffe_id(signer)}): sign it again with a current operator key"
        )


def build_servicer(
    config: NodeConfig,
    store: StatusStore,
    gateway: gateway_pb2_grpc.GatewayStub,
    trust: TrustListFollower,
    keys: SigningKeySource,
) -> tuple[ProvincialNodeServicer, ColourEngine]:
    verifier = LocalVerifier(province=config.province, trust=trust, store=store)
    issuer = build_issuer(config, store, keys)
    engine = build_engine(config, store, issuer)
    servicer = ProvincialNodeServicer(
        issuer=issuer, store=store, verifier=verifier, gateway=gateway, engine=engine
    )
    return servicer, engine


async def start_node(
    config: NodeConfig, *, stopping: asyncio.Event | None = None
) -> tuple[RunningServer, NodeRegistration, StatusStore]:
    """Start serving and registering; used by ``serve`` and by the tests. Start-up stops
    waiting for the first registration once ``stopping`` is set."""
    store = MeteredStore(open_status_store(config.store_url()), config.province)
    channel = config.transport.aio_channel(config.gateway)
    gateway = gateway_pb2_grpc.GatewayStub(channel)
    trust = TrustListFollower(
        gateway=gateway,
        roots=_roots(config),
        state_file=config.directory / TRUST_LIST_FILE,
        province=config.province,
    )
    keys = signing_key_source(config, trust)
    servicer, engine = build_servicer(config, store, gateway, trust, keys)
    binding = compose(
        node_pb2_grpc.add_ProvincialNodeServicer_to_server,
        node_pb2.DESCRIPTOR.services_by_name["ProvincialNode"],
        servicer,
    )
    running = await build_server(
        [binding],
        listen=config.listen,
        transport=config.transport,
        authorizer=Authorizer(local_province=config.province, is_revoked=trust.is_revoked),
    )
    await trust.start()  # the national view: caller revocations and local verification
    running.on_stop(trust.stop)
    key_watch = asyncio.create_task(keys.watch())  # a rotation's wait runs with no traffic
    running.on_stop(lambda: cancel_and_wait(key_watch))
    try:
        check_policy_signer(engine, trust)
        admit_policy(config, store, engine)
    except PolicyError:
        await running.stop(grace=0)
        raise
    colour_clock = ColourClock(
        engine,
        config.province,
        tick=config.colour_tick,
        signer_revoked=lambda: signer_revoked(engine, trust),
    )
    colour_clock.start()  # quarantines complete with no operator action, on every replica
    running.on_stop(colour_clock.stop)
    await running.set_serving(False)  # NOT_SERVING until the gateway knows us
    targets = split_target(config.gateway)
    own = [config.transport.aio_channel(t) for t in targets] if len(targets) > 1 else []
    registration = NodeRegistration(
        gateways=[gateway_pb2_grpc.GatewayStub(c) for c in own] or [gateway],
        province=config.province,
        node_id=config.node_id,
        endpoint=f"{config.advertise_host}:{running.port}",
        ttl_seconds=config.lease_ttl,
        on_change=running.set_serving,
        channels=[*own, channel],
        ready=lambda: store_answers(store),
    )
    await registration.start(wait=config.register_wait, stopping=stopping)
    return running, registration, store


async def store_answers(store: StatusStore, timeout: float = STORE_PING_TIMEOUT_S) -> bool:
    """Does the status store answer now (bounded: a store cut off mid-call)?"""
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        async with asyncio.timeout(timeout):
            await asyncio.to_thread(store.ping)
    except (StoreUnavailable, TimeoutError):
        return False
    return True


async def shutdown(
    running: RunningServer,
    registration: NodeRegistration,
    store: StatusStore,
    *,
    drain_seconds: float = NodeConfig.drain_seconds,
) -> None:
    """Leave gracefully: NOT_SERVING, deregister, let gateways notice and calls finish, stop."""
    await running.set_serving(False)
    await registration.stop(close_channel=False)  # forwarded Verify calls still use it
    await asyncio.sleep(drain_seconds)
    await running.stop(grace=max(drain_seconds, 0.5))
    await registration.close()
    store.close()


async def serve(config: NodeConfig) -> None:
    """Serve until SIGTERM/SIGINT, then deregister, drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before start-up: a stop then is orderly too
        loop.add_signal_handler(sig, stop.set)
    # /metrics first: a node that cannot register yet is exactly the one to look at.
    start_metrics(config.metrics_port, host=listen_host(config.listen))
    running, registration, store = await start_node(config, stopping=stop)
    if config.port_file is not None:
        write_port_file(config.port_file, running.port)
    log.info("provincial node %s serving on port %d", config.province, running.port)
    await stop.wait()
    log.info("draining provincial node %s", config.province)
    await shutdown(running, registration, store, drain_seconds=config.drain_seconds)
