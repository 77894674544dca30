"""nodes.server.compose: a servicer made of parts, each rpc served by exactly one, checked when
the server is assembled (not when a checkpoint first calls the rpc nobody serves)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.main import gateway_bindings
from healthcode.v1 import gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from nodes.server import compose

GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
ADD = gateway_pb2_grpc.add_GatewayServicer_to_server


class Verification:
    async def Verify(self, request: Any, context: Any) -> str:
        return "verified"

    async def VerifyBatch(self, request: Any, context: Any) -> None: ...

    async def VerifyStream(self, requests: Any, context: Any) -> Any:
        yield "one"

    def helper(self) -> None:  # not named like an rpc: not served
        ...


class Registration:
    async def RegisterNode(self, request: Any, context: Any) -> None: ...
    async def KeepAliveNode(self, request: Any, context: Any) -> None: ...
    async def DeregisterNode(self, request: Any, context: Any) -> None: ...


class Rest:
    async def RequestAssistance(self, request: Any, context: Any) -> None: ...
    async def GetTrustList(self, request: Any, context: Any) -> None: ...
    async def WatchTrustList(self, request: Any, context: Any) -> None: ...


class Typo:
    async def Verfy(self, request: Any, context: Any) -> None: ...


async def test_each_rpc_is_the_method_of_its_part() -> None:
    verification = Verification()
    binding = compose(ADD, GATEWAY, verification, Registration(), Rest())
    assert binding.service_name == "healthcode.v1.Gateway"
    assert binding.add_to_server is ADD
    assert await binding.servicer.Verify(None, None) == "verified"
    assert [item async for item in binding.servicer.VerifyStream(None, None)] == ["one"]
    with pytest.raises(AttributeError, match="has no rpc helper"):
        _ = binding.servicer.helper


def test_an_rpc_without_a_part_is_refused_at_start_up() -> None:
    with pytest.raises(TypeError, match="no part serves GetTrustList, RequestAssistance, Watch"):
        compose(ADD, GATEWAY, Verification(), Registration())


def test_an_rpc_served_twice_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Gateway\.Verify is served twice"):
        compose(ADD, GATEWAY, Verification(), Registration(), Rest(), Verification())


def test_a_method_named_like_an_rpc_the_service_lacks_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Typo\.Verfy is no rpc of healthcode\.v1\.Gateway"):
        compose(ADD, GATEWAY, Verification(), Registration(), Rest(), Typo())


def test_a_generated_base_counts_as_serving_every_rpc_it_defaults() -> None:
    """A part that inherits the generated servicer brings its UNIMPLEMENTED defaults: composed
    with another part, the overlap is refused rather than silently shadowed."""

    class Whole(gateway_pb2_grpc.GatewayServicer):
        pass

    compose(ADD, GATEWAY, Whole())  # alone it serves every rpc (as UNIMPLEMENTED)
    with pytest.raises(TypeError, match="served twice"):
        compose(ADD, GATEWAY, Whole(), Rest())


def test_the_gateway_serves_all_of_its_contract_each_rpc_once() -> None:
    """The real parts (uninitialised: only their methods are looked at) cover the Gateway and
    Registry services exactly; compose would refuse a gap or an overlap."""
    from gateway.registry_service import RegistryServicer
    from gateway.service import AssistanceRpcs, NodeRegistrationRpcs, VerificationRpcs
    from gateway.trustlist_service import TrustListService

    def bare(cls: type) -> Any:
        return object.__new__(cls)

    bindings = gateway_bindings(
        verification=bare(VerificationRpcs),
        registration=bare(NodeRegistrationRpcs),
        assistance=bare(AssistanceRpcs),
        trust_list=bare(TrustListService),
        registry=bare(RegistryServicer),
    )
    assert [b.service_name for b in bindings] == ["healthcode.v1.Gateway", "healthcode.v1.Registry"]
    served = {m.name: type(getattr(bindings[0].servicer, m.name).__self__).__name__
              for m in GATEWAY.methods}  # fmt: skip
    assert served == {
        "Verify": "VerificationRpcs", "VerifyBatch": "VerificationRpcs",
        "VerifyStream": "VerificationRpcs", "RegisterNode": "NodeRegistrationRpcs",
        "KeepAliveNode": "NodeRegistrationRpcs", "DeregisterNode": "NodeRegistrationRpcs",
        "RequestAssistance": "AssistanceRpcs", "GetTrustList": "TrustListService",
        "WatchTrustList": "TrustListService",
    }  # fmt: skip


def test_the_provincial_node_serves_all_of_its_contract() -> None:
    from nodes.provincial.service import ProvincialNodeServicer

    service = node_pb2.DESCRIPTOR.services_by_name["ProvincialNode"]
    own = {name for name in vars(ProvincialNodeServicer) if name[:1].isupper()}
    assert own == {m.name for m in service.methods}, "every rpc implemented, nothing extra"
    add = node_pb2_grpc.add_ProvincialNodeServicer_to_server
    assert compose(add, service, object.__new__(ProvincialNodeServicer)).service_name == (
        "healthcode.v1.ProvincialNode"
    )
