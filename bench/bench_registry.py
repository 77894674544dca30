"""The registry log's costs: revocation propagation, gateway start-up, and the hot path.

1. Propagation, on a real single-member etcd on 127.0.0.1 with two gateways (full assemblies
   from gateway.main, mTLS): a coordinator signs and submits a DSC revocation through gateway
   A's Registry API; the clock runs until BOTH gateways' verified views enforce it (the leaf
   and the signed head are verified, the state folded, the view rebuilt). N revocations.
2. Start-up: a gateway started on a log of 10,000 and of 100,000 entries (built by
   simulations/registry_builder.py: uploads, CRLs, retirements and revocations of 31 provinces, each
   a signed statement), written into the embedded store: the time until it serves, i.e. the
   full read, the signed head, the RFC 9162 root over every leaf, every statement's signature
   and the fold.
3. The hot path: unary Verify throughput of a gateway whose log has 100,000 entries over one
   whose log has only what the code needs (the same province and key), alternated, same load
   generator. No node is registered, so each call is the full check answered VALID_OFFLINE at
   once: what a log could slow down is the check, not the relay. Nothing on the hot path reads
   the log, so the ratio should be ~1.

    python -m bench registry [--revocations=100] [--seconds=4]

Writes var/bench/registry.json with revocation_p50_ms, revocation_p99_ms, log_entries,
gateway_start_s_10k, gateway_start_s_100k and verify_unary_rps_ratio (and the raw figures).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _opt(argv: list[str], name: str, default: float) -> float:
    for a in argv:
        if a.startswith(f"--{name}="):
            return float(a.split("=", 1)[1])
    return default


# -- 1. propagation -------------------------------------------------------------------------------
async def _propagation(count: int, workdir: Path) -> dict[str, Any]:
    from simulations.inprocess import start_federation
    from simulations.loopback import make_cluster
    from trust import pki, statements

    cluster = make_cluster(workdir / "etcd", 1)
    try:
        federation = await start_federation(workdir / "world", cluster.url())
        try:
            await federation.onboard("330000")
            from nodes.provincial.keys import ProvinceDir, new_signing_certificate

            files = ProvinceDir(federation.workdir / "330000")
            kids = []
            for i in range(count):
                dsc = new_signing_certificate(files, province="330000", name=f"dsc-{i + 2}")
                await federation.upload("330000", dsc)
                kids.append(pki.kid(dsc))
            second = await federation.add_gateway()
            gateways = [federation.gateway, second]
            latencies: list[float] = []
            for kid in kids:
                order = statements.DscRevocation(kid, int(time.time()), "key_compromise")
                signed = federation.signed(order, "carol")
                started = time.perf_counter()
                await federation.submit(signed)
                while not all(_revoked(g.view, kid) for g in gateways):
                    await asyncio.sleep(0.0005)
                latencies.append(time.perf_counter() - started)
            size = federation.gateway.view.revision
        finally:
            await federation.close()
    finally:
        cluster.stop()
    ms = [x * 1000 for x in latencies]
    return {
        "revocations": count,
        "gateways": 2,
        "store": "etcd (1 member, 127.0.0.1)",
        "revocation_p50_ms": round(statistics.median(ms), 2),
        "revocation_p90_ms": round(_percentile(ms, 0.90), 2),
        "revocation_p99_ms": round(_percentile(ms, 0.99), 2),
        "revocation_max_ms": round(max(ms), 2),
        "within_1s": sum(1 for x in latencies if x < 1.0),
        "within_100ms": sum(1 for x in latencies if x < 0.1),
        "log_entries": size,
    }


def _revoked(view: Any, kid: bytes) -> bool:
    signer = view.signer(kid)
    return signer is not None and signer.revoked_at is not None


# -- 2. start-up on large logs ---------------------------------------------------------------------
def build_log(entries: int) -> Any:
    """A registry log of about ``entries`` signed statements, as 31 provinces would make it."""
    from simulations.registry_builder import RegistryBuilder
    from trust import pki, statements

    builder = RegistryBuilder()
    prefixes = (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37,
                41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65)  # fmt: skip
    codes = [f"{p}0000" for p in prefixes]
    for code in codes:
        builder.onboard(code)
    turn = 0
    while len(builder.leaves) < entries:
        province = builder.provinces[codes[turn % len(codes)]]
        kind = turn % 4
        if kind == 0:
            builder.new_dsc(province.ca, province.code, f"dsc-{turn}")
        elif kind == 1:
            crl = province.crl([])
            builder.accept(builder.sign(statements.CrlUpload(crl), province.ca))
        else:
            key = pki.generate_private_key()
            dsc = pki.sign_dsc(province.ca, pki.make_csr(key, common_name="x"),
                               province=province.code, name=f"k{turn}")  # fmt: skip
            builder.accept(builder.sign(statements.DscUpload(dsc), province.ca))
            body = (
                statements.Retirement(pki.kid(dsc), builder.now + 60)
                if kind == 2
                else statements.DscRevocation(pki.kid(dsc), builder.now, "superseded")
            )
            builder.accept(builder.sign(body, province.ca if kind == 2 else "alice"))
        turn += 1
    return builder


async def _write_log(builder: Any, url: str) -> None:
    """Every leaf and the head in one transaction (fast set-up; gateways append one by one)."""
    from trust.kv import Write
    from trust.log import HEAD_KEY, leaf_key
    from trust.stores import open_registry_store

    store = open_registry_store(url)
    writes = [Write(leaf_key(i), leaf.raw) for i, leaf in enumerate(builder.leaves)]
    writes.append(Write(HEAD_KEY, builder.head()))
    await store.transact(writes)
    await store.close()


async def _gateway_on(builder: Any, directory: Path) -> tuple[Any, float]:
    """A gateway started on ``builder``'s log: (the running gateway, seconds to serve)."""
    from gateway.main import GatewayConfig, start_gateway
    from nodes.credentials import issue_national_identity
    from nodes.tls import Transport
    from trust import pki
    from trust.files import replace_file

    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory}/registry.db"
    await _write_log(builder, url)
    replace_file(directory / "root.pem", pki.certificate_to_pem(builder.root.certificate))
    issue_national_identity(builder.root, kind="gateway", name="gw", out=directory / "gw")
    config = GatewayConfig(
        registry=url, root_cert=directory / "root.pem", transport=Transport.mtls(directory / "gw")
    )
    started = time.perf_counter()
    gateway = await start_gateway(config)
    return gateway, time.perf_counter() - started


async def _startup(sizes: list[int], workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for size in sizes:
        built = time.perf_counter()
        builder = build_log(size)
        build_s = time.perf_counter() - built
        gateway, seconds = await _gateway_on(builder, workdir / f"start-{size}")
        assert gateway.view.revision == len(builder.leaves)
        await gateway.stop()
        label = f"{size // 1000}k"
        result[f"gateway_start_s_{label}"] = round(seconds, 2)
        result[f"log_build_s_{label}"] = round(build_s, 1)
        result[f"log_entries_{label}"] = len(builder.leaves)
    return result


# -- 3. the hot path with and without a large log --------------------------------------------------
async def _unary_rate(
    gateway: Any, token: str, tls: Any, seconds: float, concurrency: int
) -> float:
    from healthcode.v1 import gateway_pb2, gateway_pb2_grpc

    async with tls.aio_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        request = gateway_pb2.VerifyRequest(token=token, checkpoint_province="330000")
        reply = await stub.Verify(request, timeout=5)
        assert reply.verdict == 2, reply  # VALID_OFFLINE: the full check, no relay
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await stub.Verify(request, timeout=5)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def _hot_path(big: Any, workdir: Path, seconds: float) -> dict[str, Any]:
    from nodes.credentials import issue_provincial_identity
    from nodes.tls import Transport
    from simulations.registry_builder import RegistryBuilder
    from trust import statements

    large_gw, _ = await _gateway_on(big, workdir / "hot-large")
    # The small log: the same root, province CA and DSC, nothing else (2 of 3 onboarding).
    small = RegistryBuilder(like=big)
    province = big.provinces["110000"]
    onboarding = statements.Onboard("110000", "北京市", province.ca.certificate)
    proposal = small.sign(statements.Proposal(onboarding, 0, small.now + 600), "alice")
    small.accept(proposal)
    small.accept(small.sign(statements.Approval(statements.statement_id(proposal)), "bob"))
    small.accept(small.sign(statements.DscUpload(province.dsc), province.ca))
    small_gw, _ = await _gateway_on(small, workdir / "hot-small")
    checkpoint = issue_provincial_identity(
        province.ca, big.root.certificate, province="110000", kind="checkpoint", name="bench",
        out=workdir / "checkpoint",
    )  # fmt: skip
    tls = Transport(checkpoint)
    token = province.token(lifetime=300)
    rates: dict[str, list[float]] = {"large": [], "small": []}
    try:
        for _ in range(3):  # alternated: the machine's noise hits both alike
            rates["small"].append(await _unary_rate(small_gw, token, tls, seconds, 16))
            rates["large"].append(await _unary_rate(large_gw, token, tls, seconds, 16))
    finally:
        await large_gw.stop()
        await small_gw.stop()
    large, small_rate = statistics.median(rates["large"]), statistics.median(rates["small"])
    return {
        "verify_unary_rps_large_log": round(large, 1),
        "verify_unary_rps_small_log": round(small_rate, 1),
        "verify_unary_rps_ratio": round(large / small_rate, 3),
        "verify_unary_runs": rates,
    }


def main(argv: list[str]) -> dict[str, Any]:
    count = int(_opt(argv, "revocations", 100))
    seconds = _opt(argv, "seconds", 4.0)
    sizes = [10_000, 100_000]
    with tempfile.TemporaryDirectory(prefix="hcx-bench-registry-") as tmp:
        workdir = Path(tmp)
        result: dict[str, Any] = asyncio.run(_propagation(count, workdir))
        result.update(asyncio.run(_startup(sizes[:1], workdir)))
        big = build_log(sizes[1])
        gateway_start: dict[str, Any] = asyncio.run(_startup_built(big, workdir))
        result.update(gateway_start)
        result.update(asyncio.run(_hot_path(big, workdir, seconds)))
    shown = {k: v for k, v in result.items() if not isinstance(v, dict)}
    print(f"{'metric':<30}{'value':>16}")
    for key, value in shown.items():
        print(f"{key:<30}{value!s:>16}")
    return result


async def _startup_built(builder: Any, workdir: Path) -> dict[str, Any]:
    gateway, seconds = await _gateway_on(builder, workdir / "start-100k")
    assert gateway.view.revision == len(builder.leaves)
    await gateway.stop()
    return {"gateway_start_s_100k": round(seconds, 2), "log_entries_100k": len(builder.leaves)}
