"""Every verifier the conformance table runs through, each as one function of the same shape.

A verifier is ``async (world, tokens) -> answers``: it verifies each token against the world
(materialising the world however it needs: a fake view here; a real registry, gateway and
nodes for a verifier over gRPC) and answers (verdict, reason) per token, in order. To add one
(the gateway over gRPC unary / batch / stream, a node's local Verify, the CLI), write that
function and append a ``Verifier`` to VERIFIERS; the table and the runner stay as they are.

``online``: the verifier asks the issuer for the live colour, so a good code is VALID (an
offline verifier answers VALID_OFFLINE and applies the offline age limit). ``exact_clock``:
it verifies at exactly World.now (cases tagged EXACT_TIME need that). ``any_view``: it takes
whatever view the world holds, including keys a verified registry would refuse to serve
(cases tagged REGISTRY_REFUSES).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.verification import VerifyPolicy, verify_token, verify_tokens
from tests.conformance.cases import EXACT_TIME, REGISTRY_REFUSES, Case
from tests.conformance.world import World
from trust.errors import HcxError
from trust.model import Colour, Reason, Verdict
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S, LiveStatus, check_code, check_offline_age

Answer = tuple[Verdict, Reason]
Verify = Callable[[World, Sequence[str]], Coroutine[Any, Any, list[Answer]]]


@dataclass(frozen=True)
class Verifier:
    name: str
    verify: Verify
    online: bool
    exact_clock: bool = True
    any_view: bool = True

    def applies_to(self, case: Case) -> bool:
        return (self.exact_clock or EXACT_TIME not in case.tags) and (
            self.any_view or REGISTRY_REFUSES not in case.tags
        )

    def expected(self, case: Case) -> Answer:
        reason = case.expected_reason(online=self.online)
        if reason is not Reason.NONE:
            return Verdict.INVALID, reason
        return (Verdict.VALID if self.online else Verdict.VALID_OFFLINE), Reason.NONE


# --- the offline library path (what `hcx checkpoint verify --offline` runs) ---------------------


async def library_offline(world: World, tokens: Sequence[str]) -> list[Answer]:
    return [_offline_answer(world, token) for token in tokens]


def _offline_answer(world: World, token: str) -> Answer:
    try:
        check = check_code(token, world, now=world.now)
        check_offline_age(check, max_offline_age=DEFAULT_MAX_OFFLINE_AGE_S)
    except HcxError as e:
        return Verdict.INVALID, e.reason
    return Verdict.VALID_OFFLINE, Reason.NONE


# --- the gateway's verification module, with an issuer that always answers GREEN ---------------


class LiveGreen:
    """A StatusSource whose every province knows every code, GREEN."""

    def __init__(self, world: World) -> None:
        self._status = LiveStatus(
            found=True, colour=Colour.GREEN, status_version=7, updated_at=world.now
        )

    async def lookup(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus:
        return self._status

    def submit(self, province: str, code_id: bytes, *, deadline: float) -> asyncio.Future[Any]:
        future: asyncio.Future[LiveStatus] = asyncio.get_running_loop().create_future()
        future.set_result(self._status)
        return future


async def gateway_unary(world: World, tokens: Sequence[str]) -> list[Answer]:
    answers = []
    for token in tokens:
        outcome = await verify_token(
            token,
            view=world,  # type: ignore[arg-type]
            statuses=LiveGreen(world),
            policy=VerifyPolicy(),
            clock=lambda: world.now,
        )
        answers.append((outcome.verdict, outcome.reason))
    return answers


def gateway_batch(*, workers: int) -> Verify:
    """verify_tokens over all tokens at once: one bad item must not change another's verdict."""

    async def verify(world: World, tokens: Sequence[str]) -> list[Answer]:
        with ThreadPoolExecutor(workers) as executor:
            outcomes = await verify_tokens(
                tokens,
                view=world,  # type: ignore[arg-type]
                statuses=LiveGreen(world),
                policy=VerifyPolicy(),
                executor=executor,
                workers=workers,
                clock=lambda: world.now,
            )
        return [(o.verdict, o.reason) for o in outcomes]

    return verify


VERIFIERS: list[Verifier] = [
    Verifier("library check_code (offline)", library_offline, online=False),
    Verifier("gateway verify_token", gateway_unary, online=True),
    Verifier("gateway verify_tokens (inline)", gateway_batch(workers=1), online=True),
    Verifier("gateway verify_tokens (2 threads)", gateway_batch(workers=2), online=True),
]
