"""Cross-province verification through real gRPC servers on 127.0.0.1.

The path each verification takes is drawn in docs/architecture.md ("The path of a verification").
"""

from __future__ import annotations

import secrets
import time
import uuid

import grpc
import pytest

from healthcode.v1 import common_pb2, gateway_pb2, node_pb2
from nodes.grpc_edge import reason_of
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation
from trust import pki
from trust.codeformat import ISSUE_ZLIB_LEVEL as ZLIB_LEVEL
from trust.codeformat import CodeClaims, decode_token, issue_token
from trust.model import Colour, Reason

pytestmark = pytest.mark.integration


def issued_at(token: str) -> int:
    return decode_token(token).claims.issued_at


async def verify(federation: Federation, token: str, checkpoint: str = "510000"):
    return await federation.gateway_stub.Verify(
        gateway_pb2.VerifyRequest(token=token, checkpoint_province=checkpoint), timeout=5
    )


def forge(files: ProvinceDir, **overrides: object) -> str:
    """A token signed with the province's real DSC key, with chosen claims."""
    now = int(time.time())
    fields: dict[str, object] = {
        "issuer": "330000",
        "code_id": secrets.token_bytes(16),
        "issued_at": now,
        "expires_at": now + 300,
        "colour": Colour.GREEN,
        "status_version": 1,
        "masked_name": "张*明",
        "id_tail": "123X",
    }
    fields.update(overrides)
    certificate = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    key = pki.load_private_key_pem(files.dsc_key.read_bytes())
    return issue_token(CodeClaims(**fields), signing_key=key, kid=pki.kid(certificate))  # type: ignore[arg-type]


async def test_code_from_zhejiang_is_valid_in_sichuan_with_live_colour(federation: Federation):
    issued = await federation.issue("330000")
    reply = await verify(federation, issued.token, "510000")
    assert reply.verdict == common_pb2.VALID
    assert reply.colour == common_pb2.GREEN
    assert reply.issuer == "330000"
    assert reply.masked_name == "张*明"
    assert len(reply.id_tail) == 4


async def test_colour_change_is_seen_on_the_next_verification(federation: Federation):
    issued = await federation.issue("460000")
    node = federation.nodes["460000"].stub
    for colour in (common_pb2.RED, common_pb2.YELLOW, common_pb2.GREEN):
        await node.SetStatus(
            node_pb2.SetStatusRequest(
                code_id=issued.code_id, colour=colour, reason="test", request_id=str(uuid.uuid4())
            ),
            timeout=5,
        )
        reply = await verify(federation, issued.token, "330000")  # the same, older token
        assert (reply.verdict, reply.colour) == (common_pb2.VALID, colour)


async def test_tampered_token_is_invalid_bad_signature(federation: Federation):
    import zlib

    from trust.base45 import b45decode, b45encode

    issued = await federation.issue("330000")
    raw = bytearray(zlib.decompress(b45decode(issued.token.removeprefix("HCX1:"))))
    raw[-5] ^= 0x40  # inside the signature
    # Recompressed in the code's one form, so the signature check is what refuses it.
    reply = await verify(federation, "HCX1:" + b45encode(zlib.compress(bytes(raw), ZLIB_LEVEL)))
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.BAD_SIGNATURE)


async def test_edited_colour_claim_is_invalid(federation: Federation):
    """A screenshot edited from red to green: any change to the payload breaks the signature."""
    files = ProvinceDir(federation.workdir / "330000")
    token = forge(files, colour=Colour.RED)
    decoded = decode_token(token)
    assert decoded.claims.colour is Colour.RED
    import zlib

    from trust.base45 import b45decode, b45encode

    raw = zlib.decompress(b45decode(token.removeprefix("HCX1:")))
    # Claims map {..., -70000: {1: 3, ...}}: flip the colour value 3 (RED) to 1 (GREEN).
    marker = bytes([0x01, 0x03])
    assert marker in raw
    edited = raw.replace(marker, bytes([0x01, 0x01]), 1)
    reply = await verify(federation, "HCX1:" + b45encode(zlib.compress(edited, ZLIB_LEVEL)))
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.BAD_SIGNATURE)


async def test_unknown_kid_is_invalid(federation: Federation, tmp_path):
    files = ProvinceDir(federation.workdir / "330000")
    ca = pki.Authority(
        certificate=pki.load_certificate_pem(files.ca_cert.read_bytes()),
        private_key=pki.load_private_key_pem(files.ca_key.read_bytes()),
    )
    key = pki.generate_private_key()
    never_uploaded = pki.sign_dsc(
        ca, pki.make_csr(key, common_name="x"), province="330000", name="x"
    )
    now = int(time.time())
    claims = CodeClaims(
        issuer="330000",
        code_id=secrets.token_bytes(16),
        issued_at=now,
        expires_at=now + 60,
        colour=Colour.GREEN,
        status_version=1,
        masked_name="张*",
        id_tail="0000",
    )
    token = issue_token(claims, signing_key=key, kid=pki.kid(never_uploaded))
    reply = await verify(federation, token)
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.UNKNOWN_KID)


@pytest.mark.parametrize(
    ("name", "overrides", "reason"),
    [
        ("expired five minutes ago", {"issued_at": -600, "expires_at": -300}, common_pb2.EXPIRED),
        (
            "issued an hour in the future",
            {"issued_at": 3600, "expires_at": 3900},
            common_pb2.NOT_YET_VALID,
        ),
        ("claims Sichuan, signed by Zhejiang", {"issuer": "510000"}, common_pb2.ISSUER_MISMATCH),
        ("unknown code id", {}, common_pb2.UNKNOWN_CODE),
    ],
)
async def test_signed_but_unacceptable_tokens(federation: Federation, name, overrides, reason):
    now = int(time.time())
    fields = {k: (now + v if k in ("issued_at", "expires_at") else v) for k, v in overrides.items()}
    token = forge(ProvinceDir(federation.workdir / "330000"), **fields)
    reply = await verify(federation, token)
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, reason), name


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", common_pb2.BAD_ENCODING),
        ("hello", common_pb2.BAD_ENCODING),
        ("HCX1:", common_pb2.BAD_ENCODING),
        ("HCX1:!!!!", common_pb2.BAD_ENCODING),
        ("HCX1:" + "A" * 5000, common_pb2.BAD_ENCODING),
        ("HCX1:BB8", common_pb2.BAD_ENCODING),  # base45 of b"AB": not zlib
        ("\x00\xff", common_pb2.BAD_ENCODING),
    ],
)
async def test_garbage_is_a_clear_invalid_verdict(federation: Federation, token, reason):
    reply = await verify(federation, token)
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, reason)
    assert reply.message


async def test_bad_request_is_invalid_argument_with_reason(federation: Federation):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.gateway_stub.Verify(
            gateway_pb2.VerifyRequest(token="HCX1:x", checkpoint_province="99999"), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "province code" in caught.value.details()


async def test_issuer_down_gives_valid_offline_with_colour_at_issuance(federation: Federation):
    issued = await federation.issue("510000")
    node = federation.nodes["510000"].stub
    await node.SetStatus(
        node_pb2.SetStatusRequest(
            code_id=issued.code_id, colour=common_pb2.RED, reason="test", request_id="r-down"
        ),
        timeout=5,
    )
    await federation.nodes.pop("510000").stop()
    # The checkpoint's own deadline (5 s) bounds the wait; the answer is the colour the token
    # carries (GREEN), not the issuer's live RED, which nobody could ask for.
    reply = await verify(federation, issued.token, "330000")
    assert (reply.verdict, reply.reason) == (
        common_pb2.VALID_OFFLINE,
        common_pb2.REASON_UNSPECIFIED,
    )
    assert (reply.colour, reply.status_version) == (common_pb2.GREEN, 1)
    assert 0 <= reply.colour_age_seconds <= int(time.time()) - issued_at(issued.token)


async def test_node_rejects_bad_input_with_reason(federation: Federation):
    node = federation.nodes["330000"].stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.IssueCode(node_pb2.IssueCodeRequest(id_number="123", full_name="x"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await node.SetStatus(
            node_pb2.SetStatusRequest(code_id=b"\x00" * 16, colour=common_pb2.RED, request_id="r"),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "unknown code id " + "00" * 16 in caught.value.details()
    assert reason_of(caught.value) is Reason.NOT_FOUND


async def test_set_status_is_idempotent_by_request_id(federation: Federation):
    issued = await federation.issue("330000")
    node = federation.nodes["330000"].stub
    request = node_pb2.SetStatusRequest(
        code_id=issued.code_id, colour=common_pb2.RED, reason="contact", request_id="req-1"
    )
    first = await node.SetStatus(request, timeout=5)
    second = await node.SetStatus(request, timeout=5)
    assert first.status.status_version == second.status.status_version == 2
