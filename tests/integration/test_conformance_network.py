"""The conformance table (tests/conformance) through every verifier a checkpoint reaches over
the network, with the world materialised as a real registry.

The verifiers: the gateway's Verify, VerifyBatch and VerifyStream; Zhejiang's node's own
Verify (its local check, for its own codes, against the trust list it pulls); Sichuan's node's
Verify (Zhejiang's codes go on to the gateway); and ``hcx checkpoint verify --offline`` on a
trust list fetched from the gateway with ``hcx checkpoint fetch``. Each must give every case
the verdict and reason the table gives it, exactly as the library verifiers do
(tests/conformance/test_conformance.py).

The world is the conformance world on the federation's own root and provincial CAs: Zhejiang,
Sichuan and Gansu are onboarded 2 of 3; every signing certificate not yet expired is uploaded
by its province (one valid only from two minutes ahead included); the revoked ones are revoked
by a coordinator with the world's revocation times, the retired one retired by Zhejiang with
its time, Gansu suspended. Two things a real registry refuses to hold are left out, and the
cases that need them (tagged REGISTRY_REFUSES) do not apply: an expired certificate and
Xinjiang's key (Xinjiang is not onboarded). A revocation dated an hour ahead is refused too (a
revocation takes effect when it is signed, at the latest), so "zj-revoked-later" is an
ordinary key here, which is that case's verdict anyway.
The issuing nodes hold the world's code id, GREEN, so a good code is VALID online.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from hcx.cli import main as hcx
from healthcode.v1 import common_pb2, gateway_pb2, registry_pb2_grpc
from nodes.grpc_edge import reason_of
from nodes.provincial.keys import ProvinceDir, load_ca, retirement_statement, upload_statement
from nodes.provincial.stores.base import NewCode
from simulations.inprocess import Federation, start_federation
from tests.conformance.cases import CASES, EXACT_TIME, REGISTRY_REFUSES
from tests.conformance.world import GS, SC, ZJ, World, make_world
from tests.support import wait_for
from trust import statements
from trust.model import Colour, Reason, Verdict

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

Answer = tuple[Verdict, Reason]
ONBOARDED = (ZJ, SC, GS)
CHECKPOINT = SC  # the gateway's and the CLI's checkpoints are Sichuan's


@dataclass
class Network:
    federation: Federation
    world: World
    workdir: Path

    async def fetch_trust_list(self) -> Path:
        """``hcx checkpoint fetch`` from the gateway, as a checkpoint going offline does."""
        out = self.workdir / "trust-list.cbor"
        tls = self.federation.tls_dir("checkpoint", CHECKPOINT, "station")
        argv = ["checkpoint", "fetch", "--gateway", self.federation.gateway_address,
                "--tls-dir", str(tls), "--out", str(out)]  # fmt: skip
        code, printed = await asyncio.to_thread(_run_cli, argv)
        assert code == 0, printed
        return out


def _run_cli(argv: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = hcx(argv)
    return code, printed.getvalue()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    workdir = tmp_path_factory.mktemp("conformance")
    federation = await start_federation(workdir)
    try:
        for code in ONBOARDED:
            await federation.onboard(code)
        cas = {code: load_ca(ProvinceDir(workdir / code)) for code in ONBOARDED}
        world = make_world(root=federation.root, cas=cas)
        await materialise(federation, world)
        for code in (ZJ, SC):
            node = await federation.start_node(code)
            record = NewCode(bytes(range(16)), b"conformance", Colour.GREEN, time.time(),
                             "张*明", "123X")  # fmt: skip
            node.parts[2].create_or_get_many([record])
        yield Network(federation, world, workdir)
    finally:
        await federation.close()


def _operator(federation: Federation, province: str) -> registry_pb2_grpc.RegistryStub:
    """The Registry API as the province's operator calls it (province statements)."""
    return registry_pb2_grpc.RegistryStub(federation.channel(federation.operator(province)))


async def materialise(federation: Federation, world: World) -> None:
    """The world's registry states as statements, each signed by whoever holds that authority."""
    last = 0
    for signer in world.signers.values():
        if signer.province not in ONBOARDED or time.time() >= signer.not_after:
            continue  # an expired certificate is refused (test_the_registry_refuses_…)
        files = ProvinceDir(federation.workdir / signer.province)
        operator = _operator(federation, signer.province)
        statement = upload_statement(files, signer.certificate)
        last = (await federation.submit(statement, stub=operator)).tree_size
        if signer.revoked_at is not None and signer.revoked_at <= world.now:
            order = statements.DscRevocation(
                signer.kid, int(signer.revoked_at), signer.revocation_reason
            )
            last = (await federation.submit(federation.signed(order, "carol"))).tree_size
        if signer.retired_at is not None:
            statement = retirement_statement(files, signer.kid, signer.retired_at)
            last = (await federation.submit(statement, stub=operator)).tree_size
    for province in world.provinces.values():
        if province.suspended:
            body = statements.Suspension(province.code, "conformance: suspended province")
            last = (await federation.submit(federation.signed(body, "bob"))).tree_size
    view = federation.gateway.view
    await wait_for(lambda: view.revision >= last, timeout=10, what=f"the gateway at size {last}")


# --- the verifiers --------------------------------------------------------------------------


def _answer(reply: gateway_pb2.VerifyResponse) -> Answer:
    return Verdict(reply.verdict), Reason(reply.reason)


def _request(token: str, province: str = CHECKPOINT) -> gateway_pb2.VerifyRequest:
    return gateway_pb2.VerifyRequest(
        token=token, checkpoint_province=province, checkpoint_id="conformance"
    )


async def gateway_unary(net: Network, tokens: Sequence[str]) -> list[Answer]:
    stub = net.federation.checkpoint_stub(CHECKPOINT)
    replies = await asyncio.gather(*(stub.Verify(_request(t), timeout=10) for t in tokens))
    return [_answer(r) for r in replies]


async def gateway_batch(net: Network, tokens: Sequence[str]) -> list[Answer]:
    stub = net.federation.checkpoint_stub(CHECKPOINT)
    request = gateway_pb2.VerifyBatchRequest(
        tokens=list(tokens), checkpoint_province=CHECKPOINT, checkpoint_id="conformance"
    )
    reply = await stub.VerifyBatch(request, timeout=20)
    return [_answer(r) for r in reply.results]


async def gateway_stream(net: Network, tokens: Sequence[str]) -> list[Answer]:
    stub = net.federation.checkpoint_stub(CHECKPOINT)
    items = [gateway_pb2.VerifyStreamRequest(sequence=i, request=_request(t))
             for i, t in enumerate(tokens)]  # fmt: skip
    answers: dict[int, Answer] = {}
    async for reply in stub.VerifyStream(iter(items), timeout=20):
        answers[reply.sequence] = _answer(reply.result)
    assert sorted(answers) == list(range(len(tokens))), "the stream answered every item once"
    return [answers[i] for i in range(len(tokens))]


def node_verify(province: str) -> Callable[[Network, Sequence[str]], Awaitable[list[Answer]]]:
    async def verify(net: Network, tokens: Sequence[str]) -> list[Answer]:
        federation = net.federation
        stub = federation.node_stub(province, federation.checkpoint(province))
        requests = [_request(t, province) for t in tokens]
        replies = await asyncio.gather(*(stub.Verify(r, timeout=10) for r in requests))
        return [_answer(r) for r in replies]

    return verify


async def cli_offline(net: Network, tokens: Sequence[str]) -> list[Answer]:
    trust_list = await net.fetch_trust_list()
    root = net.workdir / "national" / "root.pem"
    answers = []
    for token in tokens:
        argv = ["checkpoint", "verify", "--offline", "--trust-list", str(trust_list),
                "--root", str(root), "--", token]  # fmt: skip
        code, printed = _run_cli(argv)
        verdict_line = next(line for line in printed.splitlines() if not line.startswith("warn"))
        word = verdict_line.split()
        if word[0] == "INVALID":
            assert code == 1, printed
            answers.append((Verdict.INVALID, Reason[word[1].rstrip(":")]))
        else:
            assert (code, word[0]) == (0, "VALID_OFFLINE"), printed
            answers.append((Verdict.VALID_OFFLINE, Reason.NONE))
    return answers


@dataclass(frozen=True)
class NetworkVerifier:
    name: str
    verify: Callable[[Network, Sequence[str]], Awaitable[list[Answer]]]
    online: bool

    def expected(self, case: str) -> Answer:
        reason = CASES[case].expected_reason(online=self.online)
        if reason is not Reason.NONE:
            return Verdict.INVALID, reason
        return (Verdict.VALID if self.online else Verdict.VALID_OFFLINE), Reason.NONE


VERIFIERS = [
    NetworkVerifier("gateway Verify", gateway_unary, online=True),
    NetworkVerifier("gateway VerifyBatch", gateway_batch, online=True),
    NetworkVerifier("gateway VerifyStream", gateway_stream, online=True),
    NetworkVerifier("node 330000 Verify (local)", node_verify(ZJ), online=True),
    NetworkVerifier("node 510000 Verify (via the gateway)", node_verify(SC), online=True),
    NetworkVerifier("hcx checkpoint verify --offline", cli_offline, online=False),
]
BY_NAME = {v.name: v for v in VERIFIERS}
APPLICABLE = [
    name for name, case in CASES.items() if not case.tags & {EXACT_TIME, REGISTRY_REFUSES}
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def answers(network: Network) -> dict[str, dict[str, Answer]]:
    """Each verifier's answers to the table, tokens made afresh just before it runs (a
    verifier over the network reads the machine's clock)."""
    table: dict[str, dict[str, Answer]] = {}
    for verifier in VERIFIERS:
        network.world.now = int(time.time())
        tokens = [CASES[name].make(network.world) for name in APPLICABLE]
        got = await verifier.verify(network, tokens)
        assert len(got) == len(tokens), f"{verifier.name} answered {len(got)} of {len(tokens)}"
        table[verifier.name] = dict(zip(APPLICABLE, got, strict=True))
    return table


@pytest.mark.parametrize("case", APPLICABLE)
@pytest.mark.parametrize("verifier", list(BY_NAME))
async def test_case(answers: dict[str, dict[str, Answer]], verifier: str, case: str) -> None:
    assert answers[verifier][case] == BY_NAME[verifier].expected(case)


async def test_the_node_answers_its_own_codes_itself(network: Network) -> None:
    """Zhejiang's node decides Zhejiang's codes on its own trust list and store (the answer
    says where the colour came from), and refuses a revoked key on that list."""
    federation = network.federation
    network.world.now = int(time.time())
    good, revoked = network.world.token(), network.world.token("zj-revoked")
    stub = federation.node_stub(ZJ, federation.checkpoint(ZJ))
    own = await stub.Verify(_request(good, ZJ), timeout=5)
    assert (own.verdict, own.message) == (
        common_pb2.VALID,
        "live colour from the province's own store",
    )
    refused = await stub.Verify(_request(revoked, ZJ), timeout=5)
    assert (refused.verdict, refused.reason) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)


async def test_the_registry_refuses_what_the_world_has_and_it_cannot_hold(
    network: Network,
) -> None:
    """The states left out of the registry are refused by the registry itself: a revocation
    dated ahead, and a signing certificate that has expired. (A certificate valid only from a
    time ahead is held, with its validity, and refused for codes issued before it.)"""
    federation = network.federation
    world = network.world
    later = world.signers["zj-revoked-later"]
    order = statements.DscRevocation(later.kid, int(later.revoked_at or 0), "superseded")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.submit(federation.signed(order, "carol"))
    assert reason_of(caught.value) is Reason.BAD_TIME
    old = world.signers["zj-old"]
    files = ProvinceDir(federation.workdir / ZJ)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.submit(upload_statement(files, old.certificate),
                                stub=_operator(federation, ZJ))  # fmt: skip
    assert reason_of(caught.value) is Reason.EXPIRED
    assert federation.gateway.view.signer(old.kid) is None
    young = world.signers["zj-young"]
    assert federation.gateway.view.signer(young.kid) is not None
