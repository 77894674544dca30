"""The signed envelope: a COSE_Sign1 bound to a purpose, in one byte form, naming its signer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from trust import pki
from trust.cose import P256_ORDER, decode_sign1, encode_sign1, sign1
from trust.envelope import (
    HEADER_X5CHAIN,
    MAX_ENVELOPE_BYTES,
    Envelope,
    Purpose,
    open_envelope,
    open_verified,
    seal,
)
from trust.errors import DecodeError, VerificationError
from trust.model import Reason

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PAYLOAD = cbor2.dumps({"revision": 7})


@dataclasses.dataclass(frozen=True)
class Signer:
    certificate: x509.Certificate
    private_key: pki.PrivateKey | ed25519.Ed25519PrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)


def _self_signed(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the hcx profile")])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, algorithm)
    )


@pytest.fixture(scope="module")
def signer() -> Signer:
    root = pki.create_root_ca(now=NOW - timedelta(days=10))
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name="trust list")
    return Signer(pki.sign_trust_list_signer(root, csr, not_before=NOW - timedelta(days=1)), key)


@pytest.fixture(scope="module")
def ed_signer() -> Signer:
    key = ed25519.Ed25519PrivateKey.generate()
    return Signer(_self_signed(key), key)


@pytest.mark.parametrize("purpose", list(Purpose), ids=lambda p: p.name)
def test_sealed_envelope_opens_for_its_purpose(signer: Signer, purpose: Purpose) -> None:
    data = seal(purpose, PAYLOAD, signer.private_key, signer.certificate)
    envelope = open_verified(purpose, data)
    assert envelope.payload == PAYLOAD
    assert envelope.signer == signer.certificate
    assert envelope.purpose is purpose
    assert envelope.raw == data and type(envelope.raw) is bytes
    assert dict(envelope.message.protected) == {1: -7, HEADER_X5CHAIN: signer.der}


def test_an_ed25519_signer_is_accepted(ed_signer: Signer) -> None:
    data = seal(Purpose.STATEMENT, PAYLOAD, ed_signer.private_key, ed_signer.certificate)
    envelope = open_verified(Purpose.STATEMENT, data)
    assert envelope.payload == PAYLOAD
    assert envelope.message.alg == -8


def test_the_purposes_are_the_documented_domain_separation_strings() -> None:
    assert {p.name: p.value for p in Purpose} == {
        "HEALTH_CODE": b"hcx/v1/health-code",
        "STATEMENT": b"hcx/v1/registry-statement",
        "TREE_HEAD": b"hcx/v1/tree-head",
        "TRUST_LIST": b"hcx/v1/trust-list",
        "COLOUR_POLICY": b"hcx/v1/colour-policy",
    }


PAIRS = [
    pytest.param(signed, opened, id=f"{signed.name} opened as {opened.name}")
    for signed in Purpose
    for opened in Purpose
    if signed is not opened
]


@pytest.mark.parametrize(("signed", "opened"), PAIRS)
def test_a_signature_for_one_purpose_never_verifies_for_another(
    signer: Signer, signed: Purpose, opened: Purpose
) -> None:
    data = seal(signed, PAYLOAD, signer.private_key, signer.certificate)
    envelope = open_envelope(opened, data)  # the shape is the same for every purpose
    with pytest.raises(VerificationError) as caught:
        envelope.verify()
    assert caught.value.reason is Reason.BAD_SIGNATURE
    with pytest.raises(VerificationError):
        open_verified(opened, data)


def test_a_plain_cose_signature_is_no_envelope_signature(signer: Signer) -> None:
    # The same headers without a purpose (an empty external AAD), as any COSE library signs.
    data = sign1(
        payload=PAYLOAD, private_key=signer.private_key, headers={HEADER_X5CHAIN: signer.der}
    )
    with pytest.raises(VerificationError) as caught:
        open_verified(Purpose.TRUST_LIST, data)
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_another_signer_certificate_is_a_bad_signature(signer: Signer) -> None:
    impostor = pki.generate_private_key()
    data = seal(Purpose.TREE_HEAD, PAYLOAD, impostor, signer.certificate)
    envelope = open_envelope(Purpose.TREE_HEAD, data)  # names the real signer ...
    with pytest.raises(VerificationError) as caught:
        envelope.verify()  # ... whose key did not sign it
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_a_signer_key_that_is_neither_ecdsa_nor_ed25519_is_refused(signer: Signer) -> None:
    rsa_certificate = _self_signed(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    data = seal(Purpose.STATEMENT, PAYLOAD, signer.private_key, rsa_certificate)
    envelope = open_envelope(Purpose.STATEMENT, data)
    with pytest.raises(VerificationError) as caught:
        envelope.verify()
    assert caught.value.message == "envelope signer key is not ECDSA or Ed25519"
    assert caught.value.reason is Reason.UNSUPPORTED_ALGORITHM


def test_verify_refuses_a_high_s_twin_that_got_past_decoding(signer: Signer) -> None:
    envelope = open_envelope(
        Purpose.STATEMENT, seal(Purpose.STATEMENT, PAYLOAD, signer.private_key, signer.certificate)
    )
    signature = envelope.message.signature
    s = int.from_bytes(signature[32:], "big")
    twin = dataclasses.replace(
        envelope.message, signature=signature[:32] + (P256_ORDER - s).to_bytes(32, "big")
    )
    with pytest.raises(VerificationError) as caught:
        dataclasses.replace(envelope, message=twin).verify()
    assert caught.value.reason is Reason.NON_CANONICAL


# --- strict decoding: one byte form, exactly {alg, x5chain} ------------------------------------


def _reassembled(data: bytes, **changes: object) -> bytes:
    """The sealed bytes with parts of the COSE_Sign1 replaced, re-encoded deterministically."""
    msg = decode_sign1(data)
    parts: dict[str, object] = {
        "protected_bytes": msg.protected_bytes,
        "unprotected": dict(msg.unprotected),
        "payload": msg.payload,
        "signature": msg.signature,
    }
    parts.update(changes)
    return encode_sign1(**parts)  # type: ignore[arg-type]


def _with_protected(sealed: bytes, header: dict[int, object]) -> bytes:
    return _reassembled(sealed, protected_bytes=cbor2.dumps(header, canonical=True))


EXACTLY = "protected header must hold exactly alg and x5chain, nothing unprotected"
Reshape = Callable[[bytes, bytes], bytes]  # (sealed envelope, signer DER) -> other bytes


@pytest.mark.parametrize(
    ("reshape", "message"),
    [
        pytest.param(
            lambda sealed, der: _reassembled(sealed, unprotected={4: b"k"}),
            EXACTLY,
            id="an unprotected header",
        ),
        pytest.param(
            lambda sealed, der: _with_protected(sealed, {1: -7, 4: b"k", 33: der}),
            EXACTLY,
            id="a kid besides x5chain",
        ),
        pytest.param(
            lambda sealed, der: _with_protected(sealed, {1: -7}), EXACTLY, id="no x5chain"
        ),
        pytest.param(lambda sealed, der: _with_protected(sealed, {33: der}), EXACTLY, id="no alg"),
        pytest.param(
            lambda sealed, der: _with_protected(sealed, {1: -7, 33: [der, der]}),
            "x5chain must be one certificate",
            id="an x5chain array (a chain)",
        ),
        pytest.param(
            lambda sealed, der: _with_protected(sealed, {1: -7, 33: "MII"}),
            "x5chain must be one certificate",
            id="an x5chain text",
        ),
        pytest.param(
            lambda sealed, der: _with_protected(sealed, {1: -7, 33: b"\x30\x03\x02\x01\x01"}),
            "signer certificate is not DER",
            id="an x5chain that is not a certificate",
        ),
    ],
)
def test_envelopes_of_another_shape_are_malformed(
    signer: Signer, reshape: Reshape, message: str
) -> None:
    sealed = seal(Purpose.TRUST_LIST, PAYLOAD, signer.private_key, signer.certificate)
    with pytest.raises(DecodeError) as caught:
        open_envelope(Purpose.TRUST_LIST, reshape(sealed, signer.der), what="trust list")
    assert caught.value.message == f"trust list: {message}"
    assert caught.value.reason is Reason.MALFORMED


def test_the_shape_cases_change_one_thing_only(signer: Signer) -> None:
    # Guards the table above: the untouched reassembly is the sealed envelope itself.
    sealed = seal(Purpose.TRUST_LIST, PAYLOAD, signer.private_key, signer.certificate)
    assert _reassembled(sealed) == sealed
    assert open_envelope(Purpose.TRUST_LIST, _reassembled(sealed)).signer == signer.certificate


@pytest.mark.parametrize(
    "form",
    [
        pytest.param("untagged", id="untagged"),
        pytest.param("tag in a two-byte head", id="tag in a two-byte head"),
        pytest.param("high s", id="high-S signature"),
    ],
)
def test_envelopes_in_another_form_are_not_canonical(signer: Signer, form: str) -> None:
    sealed = seal(Purpose.STATEMENT, PAYLOAD, signer.private_key, signer.certificate)
    if form == "untagged":
        data = sealed[1:]
    elif form == "tag in a two-byte head":
        data = b"\xd8\x12" + sealed[1:]
    else:
        signature = decode_sign1(sealed).signature
        s = int.from_bytes(signature[32:], "big")
        data = _reassembled(sealed, signature=signature[:32] + (P256_ORDER - s).to_bytes(32, "big"))
    decode_sign1(data)  # well-formed COSE: only the envelope's one-form rule refuses it
    with pytest.raises(DecodeError) as caught:
        open_envelope(Purpose.STATEMENT, data)
    assert caught.value.reason is Reason.NON_CANONICAL


def _padded(signer: Signer, size: int) -> bytes:
    """A sealed envelope of exactly ``size`` bytes."""
    overhead = len(seal(Purpose.STATEMENT, bytes(1 << 17), signer.private_key, signer.certificate))
    payload = bytes(size - (overhead - (1 << 17)))
    data = seal(Purpose.STATEMENT, payload, signer.private_key, signer.certificate)
    assert len(data) == size
    return data


def test_an_envelope_of_the_maximum_size_opens(signer: Signer) -> None:
    data = _padded(signer, MAX_ENVELOPE_BYTES)
    assert open_verified(Purpose.STATEMENT, data).raw == data


@pytest.mark.parametrize(
    ("make", "what", "message"),
    [
        pytest.param(
            lambda s: _padded(s, MAX_ENVELOPE_BYTES + 1),
            "statement",
            f"statement is not bytes of at most {MAX_ENVELOPE_BYTES}",
            id="one byte too many",
        ),
        pytest.param(
            lambda s: bytearray(seal(Purpose.STATEMENT, PAYLOAD, s.private_key, s.certificate)),
            None,
            f"envelope is not bytes of at most {MAX_ENVELOPE_BYTES}",
            id="bytearray, default name",
        ),
        pytest.param(
            lambda s: seal(Purpose.STATEMENT, PAYLOAD, s.private_key, s.certificate).hex(),
            "statement",
            f"statement is not bytes of at most {MAX_ENVELOPE_BYTES}",
            id="text",
        ),
    ],
)
def test_input_that_is_not_bytes_or_too_large_is_refused(
    signer: Signer, make: object, what: str | None, message: str
) -> None:
    data = make(signer)  # type: ignore[operator]
    kwargs = {} if what is None else {"what": what}
    for opener in (open_envelope, open_verified):
        with pytest.raises(DecodeError) as caught:
            opener(Purpose.STATEMENT, data, **kwargs)
        assert caught.value.message == message
        assert caught.value.reason is Reason.BAD_ENCODING


def test_open_verified_names_what_it_opens(signer: Signer) -> None:
    data = seal(Purpose.TREE_HEAD, PAYLOAD, signer.private_key, signer.certificate)
    with pytest.raises(DecodeError) as caught:
        open_verified(Purpose.TREE_HEAD, _reassembled(data, unprotected={4: b"k"}), what="head")
    assert caught.value.message.startswith("head: protected header must hold exactly")


def test_envelope_is_a_frozen_value(signer: Signer) -> None:
    data = seal(Purpose.TREE_HEAD, PAYLOAD, signer.private_key, signer.certificate)
    envelope = open_envelope(Purpose.TREE_HEAD, data)
    assert isinstance(envelope, Envelope)
    with pytest.raises(dataclasses.FrozenInstanceError):
        envelope.purpose = Purpose.STATEMENT  # type: ignore[misc]
