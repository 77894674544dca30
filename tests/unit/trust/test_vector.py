"""The test vector published in docs/code-format.md decodes and verifies as documented."""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trust.base45 import b45decode
from trust.codeformat import PREFIX, CodeClaims, decode_token, verify_token_signature
from trust.cose import is_high_s, verify_sign1
from trust.errors import VerificationError
from trust.model import Colour, Reason

DOC = Path(__file__).resolve().parents[3] / "docs" / "code-format.md"
_BLOCK = re.compile(r"<!-- test-vector:([a-z-]+) -->\s*```[a-z]*\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    found = {name: body.strip() for name, body in _BLOCK.findall(DOC.read_text("utf-8"))}
    assert {"token", "certificate", "decoded", "cose"} <= set(found), "test vector blocks missing"
    return found


@pytest.fixture(scope="module")
def certificate(blocks: dict[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(blocks["certificate"].encode())


@pytest.fixture(scope="module")
def expected(blocks: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads(blocks["decoded"]))


def _documented_claims(claims: dict[str, Any]) -> CodeClaims:
    return CodeClaims(
        issuer=claims["issuer"],
        code_id=bytes.fromhex(claims["code_id"]),
        issued_at=claims["issued_at"],
        expires_at=claims["expires_at"],
        colour=Colour[claims["colour"]],
        status_version=claims["status_version"],
        masked_name=claims["masked_name"],
        id_tail=claims["id_tail"],
    )


def test_token_decodes_to_the_documented_claims(
    blocks: dict[str, str], expected: dict[str, Any]
) -> None:
    decoded = decode_token(blocks["token"])
    assert decoded.claims == _documented_claims(expected["claims"])
    assert decoded.alg == expected["alg"]
    assert decoded.kid.hex() == expected["kid"]


def test_documented_cose_bytes_are_the_token_layers(blocks: dict[str, str]) -> None:
    cose = zlib.decompress(b45decode(blocks["token"][len(PREFIX) :]))
    assert cose.hex() == blocks["cose"]


def test_signature_verifies_with_the_certificate(
    blocks: dict[str, str], certificate: x509.Certificate
) -> None:
    decoded = decode_token(blocks["token"])
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    verify_token_signature(decoded, public_key)


def test_kid_is_the_certificate_fingerprint(
    blocks: dict[str, str], certificate: x509.Certificate
) -> None:
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert decode_token(blocks["token"]).kid == hashlib.sha256(der).digest()[:8]


def test_reference_time_is_inside_the_validity_windows(
    expected: dict[str, Any], certificate: x509.Certificate
) -> None:
    now, claims = expected["reference_time"], expected["claims"]
    assert claims["issued_at"] <= now < claims["expires_at"]
    valid_from = certificate.not_valid_before_utc.timestamp()
    valid_to = certificate.not_valid_after_utc.timestamp()
    assert valid_from <= claims["issued_at"] <= valid_to


def test_another_key_does_not_verify_the_vector(blocks: dict[str, str]) -> None:
    decoded = decode_token(blocks["token"])
    with pytest.raises(VerificationError) as caught:
        verify_token_signature(decoded, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_vector_signature_covers_the_health_code_purpose(
    blocks: dict[str, str], certificate: x509.Certificate
) -> None:
    decoded = decode_token(blocks["token"])
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    verify_sign1(decoded.sign1, public_key, external_aad=b"hcx/v1/health-code", low_s_only=True)
    with pytest.raises(VerificationError) as caught:
        verify_sign1(decoded.sign1, public_key)  # without the purpose: not the signed bytes
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_vector_is_in_the_one_form(blocks: dict[str, str]) -> None:
    compressed = b45decode(blocks["token"][len(PREFIX) :])
    cose = zlib.decompress(compressed)
    assert compressed == zlib.compress(cose, 0)
    assert not is_high_s(decode_token(blocks["token"]).sign1.signature)
