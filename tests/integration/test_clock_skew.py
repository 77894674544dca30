"""Peers whose clocks disagree: certificates are backdated, verifiers allow the skew.

Every certificate here is issued by a PKI whose clock is ``ahead`` seconds ahead of the
verifying peer (equivalently: the peer's clock is behind the issuer's), and used at once, over
real gRPC mutual TLS on 127.0.0.1 (gRPC's own TLS stack checks the validity windows, with its
own clock). Without backdating, even a 2 s lag refuses every fresh certificate; that is the
intermittent "certificate is not yet valid" of fresh identities used within a millisecond.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from trust import pki
from trust.codeformat import CodeClaims, issue_token
from trust.errors import VerificationError
from trust.model import Colour, Reason
from trust.verify import check_code

pytestmark = pytest.mark.integration

PROVINCE = "330000"


@dataclass(frozen=True)
class Pki:
    """A root, a provincial CA and two TLS identities, all issued at the same (skewed) moment."""

    root: pki.Authority
    ca: pki.Authority
    server: tuple[bytes, bytes]  # key PEM, chain PEM
    client: tuple[bytes, bytes]


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def _leaf(ca: pki.Authority, kind: str, name: str, issued: datetime, backdate: timedelta) -> Any:
    key = pki.generate_private_key()
    cert = pki.sign_leaf(
        ca,
        pki.make_csr(key, common_name=name),
        province=PROVINCE,
        kind=kind,
        name=name,
        not_before=issued,
        backdate=backdate,
    )
    return pki.private_key_to_pem(key), _pem(cert, ca.certificate)


def make_pki(ahead: float, backdate: timedelta = pki.CLOCK_SKEW) -> Pki:
    """Everything issued now by a clock ``ahead`` seconds ahead of this process's."""
    issued = datetime.now(UTC) + timedelta(seconds=ahead)
    root = pki.create_root_ca(now=issued, backdate=backdate)
    ca = pki.create_provincial_ca(
        root, province=PROVINCE, name="浙江省", now=issued, backdate=backdate
    )
    return Pki(
        root=root,
        ca=ca,
        server=_leaf(ca, "node", "hz-1", issued, backdate),
        client=_leaf(ca, "checkpoint", "station", issued, backdate),
    )


@dataclass
class Served:
    address: str
    server: grpc.aio.Server


async def _serve(issued: Pki) -> Served:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    credentials = grpc.ssl_server_credentials(
        [issued.server],
        root_certificates=_pem(issued.root.certificate),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return Served(f"127.0.0.1:{port}", server)


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    started: list[Served] = []

    async def start(issued: Pki) -> Served:
        served = await _serve(issued)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.server.stop(None)


async def _check_health(address: str, issued: Pki) -> health_pb2.HealthCheckResponse:
    key, chain = issued.client
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_pem(issued.root.certificate), private_key=key, certificate_chain=chain
    )
    async with grpc.aio.secure_channel(address, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)


@pytest.mark.parametrize("ahead", [2, 60], ids=["2 s", "60 s"])
async def test_mtls_with_certificates_from_a_clock_ahead(serve: Any, ahead: int) -> None:
    issued = make_pki(ahead)  # and used at once: no waiting for the clocks to agree
    served = await serve(issued)
    reply = await _check_health(served.address, issued)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_fresh_certificates_work_within_the_first_millisecond(serve: Any) -> None:
    # No skew at all, but a certificate used right after it is made (the flaky case).
    for _ in range(5):
        issued = make_pki(0)
        served = await serve(issued)
        reply = await _check_health(served.address, issued)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("ahead", [2, 60], ids=["2 s", "60 s"])
async def test_without_backdating_a_clock_ahead_is_refused(serve: Any, ahead: int) -> None:
    # What the backdating prevents: the same handshake fails with exact not-befores.
    issued = make_pki(ahead, backdate=timedelta(0))
    served = await serve(issued)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _check_health(served.address, issued)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in (caught.value.details() or "")


# --- codes: a DSC (and a code) from an issuer 60 s ahead verify under check_code ----------------


@dataclass(frozen=True)
class _Signer:
    kid: bytes
    province: str
    certificate: x509.Certificate
    public_key: Any
    not_before: float
    not_after: float
    revoked_at: float | None = None
    revocation_reason: str = ""
    retired_at: float | None = None


class _View:
    """The verified view of one province with one DSC (chain checked like the registry does)."""

    def __init__(self, issued: Pki, dsc: x509.Certificate, *, now: float) -> None:
        at = datetime.fromtimestamp(now, UTC)
        roots = [issued.root.certificate]
        assert pki.verify_dsc_chain(dsc, issued.ca.certificate, roots, at=at) == PROVINCE
        self._signer = _Signer(
            kid=pki.kid(dsc),
            province=PROVINCE,
            certificate=dsc,
            public_key=dsc.public_key(),
            not_before=dsc.not_valid_before_utc.timestamp(),
            not_after=dsc.not_valid_after_utc.timestamp(),
        )

    def signer(self, kid: bytes) -> _Signer | None:
        return self._signer if kid == self._signer.kid else None

    def province(self, code: str) -> Any:
        return _Province(code) if code == PROVINCE else None


@dataclass(frozen=True)
class _Province:
    code: str
    suspended: bool = False


def _code_from(issuer_now: int, key: pki.PrivateKey, dsc: x509.Certificate) -> str:
    claims = CodeClaims(
        issuer=PROVINCE,
        code_id=bytes(16),
        issued_at=issuer_now,
        expires_at=issuer_now + 300,
        colour=Colour.GREEN,
        status_version=1,
        masked_name="张*明",
        id_tail="123X",
    )
    return issue_token(claims, signing_key=key, kid=pki.kid(dsc))


@pytest.mark.parametrize(("ahead", "valid"), [(2, True), (60, True), (61, False)])
def test_codes_from_an_issuer_whose_clock_is_ahead(ahead: int, valid: bool) -> None:
    now = time.time()
    issued = make_pki(ahead)
    key = pki.generate_private_key()
    dsc = pki.sign_dsc(
        issued.ca,
        pki.make_csr(key, common_name="dsc"),
        province=PROVINCE,
        name="dsc-1",
        not_before=datetime.fromtimestamp(now + ahead, UTC),
    )
    view = _View(issued, dsc, now=now)  # the DSC chain is already valid: it is backdated
    token = _code_from(int(now) + ahead, key, dsc)  # iat by the issuer's clock
    if valid:
        check = check_code(token, view, now=now)  # the default clock skew: 60 s
        assert check.claims.issued_at > now
        return
    with pytest.raises(VerificationError) as caught:
        check_code(token, view, now=int(now))
    assert caught.value.reason is Reason.NOT_YET_VALID  # the code's own skew is 60 s
