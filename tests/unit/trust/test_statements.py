"""Registry statements as bytes: what a signer's station writes and what a gateway decodes.

Every body kind survives signing and opening unchanged, in the documented form
(docs/registry.md). The decoder is strict, because a statement is untrusted bytes until the
authority table judged it: one named row per field a forger could bend (wrong type, out of
range, too long, an unknown key, a serial with a leading zero), each refused as MALFORMED with
a message naming the field, and the bounds themselves accepted.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from simulations.registry_builder import RegistryBuilder
from trust import cbor, envelope, statements
from trust.envelope import Purpose
from trust.errors import DecodeError, HcxError, VerificationError
from trust.model import Reason
from trust.statements import (
    MAX_TIME,
    ROOT_ISSUER,
    AddCoordinator,
    Approval,
    Body,
    CaRevocation,
    CertRevocation,
    CrlUpload,
    DscRevocation,
    DscUpload,
    Onboard,
    Proposal,
    Rejection,
    RemoveCoordinator,
    Resume,
    Retirement,
    RootMetadata,
    Statement,
    Suspension,
    open_statement,
    statement_id,
)

NOW = 1_750_000_000  # statement times are data here: opening a statement checks no clock
ZJ = "330000"
KID = bytes(range(8))
PID = bytes(range(32))


@pytest.fixture(scope="module")
def world() -> RegistryBuilder:
    builder = RegistryBuilder()  # its certificates are valid now: it runs on the machine's clock
    builder.onboard(ZJ, "浙江省")
    return builder


def _der(certificate: Any) -> bytes:
    return bytes(certificate.public_bytes(Encoding.DER))


def _bodies(w: RegistryBuilder) -> list[Body]:
    zj = w.provinces[ZJ]
    alice = w.coordinators["alice"].certificate
    return [
        RootMetadata(2, (w.root.certificate,), 2, (alice,)),
        Proposal(Onboard(ZJ, "浙江省", zj.ca.certificate), 1, NOW + 3600),
        Proposal(Resume(ZJ, ""), 3, NOW + 60),
        Proposal(AddCoordinator(alice), 1, NOW + 60),
        Proposal(RemoveCoordinator("carol"), 2, NOW + 60),
        Approval(PID),
        Rejection(PID, "not yet"),
        Suspension(ZJ, "incident"),
        DscUpload(zj.dsc),
        Retirement(KID, NOW + 86400),
        CrlUpload(zj.crl([zj.dsc.serial_number])),
        DscRevocation(KID, NOW, "key_compromise"),
        CaRevocation(ZJ, zj.ca.certificate.serial_number, NOW, "ca_compromise"),
        CertRevocation(ROOT_ISSUER, 1, NOW, "superseded"),
        CertRevocation(ZJ, (1 << 160) - 1, NOW, "cessation_of_operation"),
    ]


BODY_NAMES = [
    "root metadata", "onboarding proposal", "resumption proposal", "coordinator addition",
    "coordinator removal", "approval", "rejection", "suspension", "DSC upload", "retirement",
    "CRL", "DSC revocation", "CA revocation", "certificate revocation by the root",
    "certificate revocation of a 159-bit serial by a province",
]  # fmt: skip


@pytest.mark.parametrize("which", range(len(BODY_NAMES)), ids=BODY_NAMES)
def test_every_body_survives_signing_and_opening(world: RegistryBuilder, which: int) -> None:
    body = _bodies(world)[which]
    statement = statements.make(body, signed_at=NOW)
    signer = world.coordinators["bob"]
    raw = statements.sign(statement, signer.private_key, signer.certificate)
    opened = open_statement(raw)
    assert opened.statement.kind == statements.KIND_OF[type(body)]
    assert (opened.statement.signed_at, opened.statement.nonce) == (NOW, statement.nonce)
    assert _same(opened.statement.body, body)
    assert opened.signer == signer.certificate
    assert opened.raw == raw
    assert opened.id == statement_id(raw) == hashlib.sha256(raw).digest()


def _same(a: Body, b: Body) -> bool:
    """Equal bodies (a CRL is compared by its bytes: cryptography's CRLs have no __eq__)."""
    if isinstance(a, CrlUpload) and isinstance(b, CrlUpload):
        return a.crl.public_bytes(Encoding.DER) == b.crl.public_bytes(Encoding.DER)
    return a == b


def test_the_payload_is_the_documented_form(world: RegistryBuilder) -> None:
    """{"v": 1, "kind", "at", "nonce", "body"}; serials as minimal big-endian bytes."""
    zj = world.provinces[ZJ]
    alice = world.coordinators["alice"].certificate
    expected = [
        {"version": 2, "roots": [_der(world.root.certificate)], "threshold": 2,
         "coordinators": [_der(alice)]},
        {"change": {"kind": "onboard", "province": ZJ, "name": "浙江省",
                    "ca": _der(zj.ca.certificate)}, "base": 1, "expires": NOW + 3600},
        {"change": {"kind": "resume", "province": ZJ, "why": ""}, "base": 3,
         "expires": NOW + 60},
        {"change": {"kind": "add-coordinator", "cert": _der(alice)}, "base": 1,
         "expires": NOW + 60},
        {"change": {"kind": "remove-coordinator", "name": "carol"}, "base": 2,
         "expires": NOW + 60},
        {"proposal": PID},
        {"proposal": PID, "why": "not yet"},
        {"province": ZJ, "why": "incident"},
        {"cert": _der(zj.dsc)},
        {"kid": KID, "retired_at": NOW + 86400},
        None,  # the CRL: its DER, below
        {"kid": KID, "revoked_at": NOW, "reason": "key_compromise"},
        {"province": ZJ, "serial": _serial(zj.ca.certificate.serial_number), "revoked_at": NOW,
         "reason": "ca_compromise"},
        {"issuer": "root", "serial": b"\x01", "revoked_at": NOW, "reason": "superseded"},
        {"issuer": ZJ, "serial": b"\xff" * 20, "revoked_at": NOW,
         "reason": "cessation_of_operation"},
    ]  # fmt: skip
    for body, want in zip(_bodies(world), expected, strict=True):
        statement = statements.make(body, signed_at=NOW)
        raw = statements.sign(statement, zj.ca.private_key, zj.ca.certificate)
        doc = cbor.decode_canonical(envelope.open_envelope(Purpose.STATEMENT, raw).payload,
                                    what="statement")  # fmt: skip
        if isinstance(body, CrlUpload):
            want = {"crl": body.crl.public_bytes(Encoding.DER)}
        assert doc == {"v": 1, "kind": statement.kind, "at": NOW, "nonce": statement.nonce,
                       "body": want}, statement.kind  # fmt: skip


def _serial(serial: int) -> bytes:
    return serial.to_bytes((serial.bit_length() + 7) // 8, "big")


def test_every_statement_has_a_fresh_nonce() -> None:
    """A byte-identical copy is a replay; two signings of the same order are not."""
    a = statements.make(Suspension(ZJ, "x"), signed_at=NOW)
    b = statements.make(Suspension(ZJ, "x"), signed_at=NOW)
    assert len(a.nonce) == len(b.nonce) == statements.NONCE_BYTES == 16
    assert a.nonce != b.nonce
    assert a.kind == "suspend"


@pytest.mark.parametrize(
    "serial",
    [pytest.param(0, id="zero"), pytest.param(-1, id="negative"),
     pytest.param(1 << 160, id="161 bits")],
)  # fmt: skip
def test_a_serial_outside_x509s_range_cannot_be_signed(world: RegistryBuilder, serial: int) -> None:
    body = CertRevocation(ROOT_ISSUER, serial, NOW, "unspecified")
    alice = world.coordinators["alice"]
    with pytest.raises(ValueError, match=f"^certificate serial out of range: {serial}$"):
        statements.sign(statements.make(body, signed_at=NOW), alice.private_key,
                        alice.certificate)  # fmt: skip


def test_something_that_is_no_body_cannot_be_signed(world: RegistryBuilder) -> None:
    alice = world.coordinators["alice"]
    statement = Statement(kind="suspend", signed_at=NOW, body="suspend 330000")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^not a statement body: 'suspend 330000'$"):
        statements.sign(statement, alice.private_key, alice.certificate)


# -- strict decoding -----------------------------------------------------------------------------
def _seal(world: RegistryBuilder, payload: bytes) -> bytes:
    alice = world.coordinators["alice"]
    return envelope.seal(Purpose.STATEMENT, payload, alice.private_key, alice.certificate)


def _doc(kind: object, body: object, **top: object) -> dict[str, object]:
    doc: dict[str, object] = {"v": 1, "kind": kind, "at": NOW, "nonce": b"n" * 16, "body": body}
    doc.update(top)
    return doc


def _open(world: RegistryBuilder, doc: object) -> statements.SignedStatement:
    return open_statement(_seal(world, cbor.encode(doc)))


def _root_body(w: RegistryBuilder, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "version": 1,
        "roots": [_der(w.root.certificate)],
        "threshold": 1,
        "coordinators": [_der(w.coordinators["alice"].certificate)],
    }
    body.update(changes)
    return body


def _proposal_body(change: object, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {"change": change, "base": 0, "expires": NOW + 60}
    body.update(changes)
    return body


def _onboard(w: RegistryBuilder, **changes: object) -> dict[str, object]:
    change: dict[str, object] = {"kind": "onboard", "province": ZJ, "name": "浙江省",
                                 "ca": _der(w.provinces[ZJ].ca.certificate)}  # fmt: skip
    change.update(changes)
    return _proposal_body(change)


def _revoke_ca(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {"province": ZJ, "serial": b"\x01", "revoked_at": NOW,
                               "reason": "unspecified"}  # fmt: skip
    body.update(changes)
    return body


def _revoke_cert(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {"issuer": "root", "serial": b"\x01", "revoked_at": NOW,
                               "reason": "unspecified"}  # fmt: skip
    body.update(changes)
    return body


def _keys(*names: str) -> str:
    return (
        r"^statement body must have exactly the keys \["
        + ", ".join(f"'{n}'" for n in sorted(names))
        + r"\]$"
    )


GARBAGE = b"\x30\x03\x02\x01\x01"  # a DER sequence, but no certificate or CRL
HIGH = 1 << 62

REFUSED = [
    # -- the statement itself
    pytest.param(lambda w: [1, 2], r"^statement must be a map$", id="payload not a map"),
    pytest.param(lambda w: {**_doc("suspend", {}), "extra": 1},
                 r"^statement must have exactly the keys \['at', 'body', 'kind', 'nonce', "
                 r"'v'\]$", id="an unknown top-level key"),
    pytest.param(lambda w: _doc("suspend", {}, v=2), r"^statement format 2 not understood$",
                 id="format version 2"),
    pytest.param(lambda w: _doc("suspend", {}, v="1"), r"^statement: 'v' must be int$",
                 id="format version as text"),
    pytest.param(lambda w: _doc("unsuspend", {}), r"^unknown statement kind 'unsuspend'$",
                 id="an unknown kind"),
    pytest.param(lambda w: _doc(b"suspend", {}), r"^statement: 'kind' must be str$",
                 id="kind as bytes"),
    pytest.param(lambda w: _doc("suspend", {}, nonce=b"n" * 15), r"^nonce must be 16 bytes$",
                 id="nonce one byte short"),
    pytest.param(lambda w: _doc("suspend", {}, nonce=b"n" * 17), r"^nonce must be 16 bytes$",
                 id="nonce one byte long"),
    pytest.param(lambda w: _doc("suspend", {}, nonce="n" * 16),
                 r"^statement: 'nonce' must be bytes$", id="nonce as text"),
    pytest.param(lambda w: _doc("suspend", [ZJ, "x"]), r"^suspend body must be a map$",
                 id="body not a map"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ, "why": "x"}, at=-1),
                 r"^at must be a unix time in seconds$", id="signed before 1970"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ, "why": "x"}, at=MAX_TIME + 1),
                 r"^at must be a unix time in seconds$", id="signed after 9999"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ, "why": "x"}, at=float(NOW)),
                 r"^statement: 'at' must be int$", id="signing time as a float"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ, "why": "x"}, at=True),
                 r"^statement: 'at' must be int$", id="signing time as a boolean"),
    # -- root metadata
    pytest.param(lambda w: _doc("root", _root_body(w, version=0)),
                 rf"^version must be between 1 and {HIGH}$", id="root version 0"),
    pytest.param(lambda w: _doc("root", _root_body(w, version="2")),
                 r"^statement: 'version' must be int$", id="root version as text"),
    pytest.param(lambda w: _doc("root", _root_body(w, version=HIGH + 1)),
                 rf"^version must be between 1 and {HIGH}$", id="root version past 2**62"),
    pytest.param(lambda w: _doc("root", _root_body(w, threshold=0)),
                 r"^threshold must be between 1 and 64$", id="threshold 0"),
    pytest.param(lambda w: _doc("root", _root_body(w, threshold=65)),
                 r"^threshold must be between 1 and 64$", id="threshold 65"),
    pytest.param(lambda w: _doc("root", _root_body(w, roots=[])),
                 r"^roots must be a list of 1 to 64 certificates$", id="no roots"),
    pytest.param(lambda w: _doc("root", _root_body(w, roots=[_der(w.root.certificate)] * 65)),
                 r"^roots must be a list of 1 to 64 certificates$", id="65 roots"),
    pytest.param(lambda w: _doc("root", _root_body(w, roots=_der(w.root.certificate))),
                 r"^roots must be a list of 1 to 64 certificates$", id="roots not a list"),
    pytest.param(lambda w: _doc("root", _root_body(w, roots=["MIIB..."])),
                 r"^roots must be a DER certificate$", id="a root as text"),
    pytest.param(lambda w: _doc("root", _root_body(w, roots=[GARBAGE])),
                 r"^roots is not a DER certificate$", id="a root that is not a certificate"),
    pytest.param(lambda w: _doc("root", _root_body(w, coordinators=[])),
                 r"^coordinators must be a list of 1 to 64 certificates$", id="no coordinators"),
    pytest.param(lambda w: _doc("root", _root_body(w, coordinators=[GARBAGE])),
                 r"^coordinators is not a DER certificate$",
                 id="a coordinator that is not a certificate"),
    pytest.param(lambda w: _doc("root", {**_root_body(w), "log": b""}),
                 _keys("version", "roots", "threshold", "coordinators"),
                 id="root metadata with an unknown key"),
    # -- proposals
    pytest.param(lambda w: _doc("propose", _proposal_body(["onboard"])),
                 r"^change must be a map$", id="change not a map"),
    pytest.param(lambda w: _doc("propose", _proposal_body({"kind": "merge"})),
                 r"^unknown change 'merge'$", id="an unknown change"),
    pytest.param(lambda w: _doc("propose", _proposal_body({"kind": 1})),
                 r"^change: 'kind' must be str$", id="change kind as a number"),
    pytest.param(lambda w: _doc("propose", {**_onboard(w), "why": ""}),
                 _keys("change", "base", "expires"), id="proposal with an unknown key"),
    pytest.param(lambda w: _doc("propose", _proposal_body(_onboard(w)["change"], base=-1)),
                 rf"^base must be between 0 and {HIGH}$", id="negative base"),
    pytest.param(lambda w: _doc("propose", _proposal_body(_onboard(w)["change"], base=HIGH + 1)),
                 rf"^base must be between 0 and {HIGH}$", id="base past 2**62"),
    pytest.param(lambda w: _doc("propose", _proposal_body(_onboard(w)["change"],
                                                          expires=MAX_TIME + 1)),
                 r"^expires must be a unix time in seconds$", id="expires after 9999"),
    pytest.param(lambda w: _doc("propose", _onboard(w, name="")),
                 r"^name must be printable text of at most 64 characters$",
                 id="onboarding an empty name"),
    pytest.param(lambda w: _doc("propose", _onboard(w, name="   ")),
                 r"^name must be printable text of at most 64 characters$",
                 id="onboarding a blank name"),
    pytest.param(lambda w: _doc("propose", _onboard(w, name="x" * 65)),
                 r"^name must be printable text of at most 64 characters$",
                 id="onboarding a 65-character name"),
    pytest.param(lambda w: _doc("propose", _onboard(w, name="浙江\n省")),
                 r"^name must be printable text of at most 64 characters$",
                 id="onboarding a name with a newline"),
    pytest.param(lambda w: _doc("propose", _onboard(w, name=b"zj")),
                 r"^statement: 'name' must be str$", id="onboarding a name as bytes"),
    pytest.param(lambda w: _doc("propose", _onboard(w, province="330001")),
                 r"^province must be a GB/T 2260 province code$",
                 id="onboarding a prefecture code"),
    pytest.param(lambda w: _doc("propose", _onboard(w, province="3300000")),
                 r"^province must be a GB/T 2260 province code$", id="onboarding 7 digits"),
    pytest.param(lambda w: _doc("propose", _onboard(w, province=330000)),
                 r"^statement: 'province' must be str$", id="onboarding a code as a number"),
    pytest.param(lambda w: _doc("propose", _onboard(w, ca="MIIB")),
                 r"^ca must be a DER certificate$", id="onboarding a CA as text"),
    pytest.param(lambda w: _doc("propose", _onboard(w, ca=GARBAGE)),
                 r"^ca is not a DER certificate$", id="onboarding a CA that is not one"),
    pytest.param(lambda w: _doc("propose", {**_onboard(w), "change": {
                     **_onboard(w)["change"], "dsc": b""}}),  # type: ignore[dict-item]
                 _keys("kind", "province", "name", "ca"), id="onboarding with an unknown key"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "resume", "province": ZJ, "why": "x" * 201})),
                 r"^why must be printable text of at most 200 characters$",
                 id="resuming with a 201-character reason"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "resume", "province": ZJ, "why": "x", "name": "x"})),
                 _keys("kind", "province", "why"), id="resuming with an unknown key"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "resume", "province": "000000", "why": "x"})),
                 r"^province must be a GB/T 2260 province code$", id="resuming code 000000"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "add-coordinator", "cert": GARBAGE})),
                 r"^cert is not a DER certificate$", id="adding a coordinator that is not one"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "add-coordinator", "cert": b"", "name": "x"})),
                 _keys("kind", "cert"), id="adding a coordinator with an unknown key"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "remove-coordinator", "name": ""})),
                 r"^name must be printable text of at most 64 characters$",
                 id="removing a coordinator without a name"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "remove-coordinator", "name": "x" * 65})),
                 r"^name must be printable text of at most 64 characters$",
                 id="removing a coordinator with a 65-character name"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "remove-coordinator", "name": "x", "cert": b""})),
                 _keys("kind", "name"), id="removing a coordinator with an unknown key"),
    # -- approvals, rejections, suspensions
    pytest.param(lambda w: _doc("approve", {"proposal": PID[:31]}),
                 r"^proposal must be a 32-byte statement id$", id="approving a 31-byte id"),
    pytest.param(lambda w: _doc("approve", {"proposal": PID + b"\x00"}),
                 r"^proposal must be a 32-byte statement id$", id="approving a 33-byte id"),
    pytest.param(lambda w: _doc("approve", {"proposal": PID.hex()}),
                 r"^statement: 'proposal' must be bytes$", id="approving an id in hex"),
    pytest.param(lambda w: _doc("approve", {"proposal": PID, "why": ""}), _keys("proposal"),
                 id="approval with an unknown key"),
    pytest.param(lambda w: _doc("reject", {"proposal": PID[:31], "why": "x"}),
                 r"^proposal must be a 32-byte statement id$", id="rejecting a 31-byte id"),
    pytest.param(lambda w: _doc("reject", {"proposal": PID, "why": "x" * 201}),
                 r"^why must be printable text of at most 200 characters$",
                 id="rejecting with a 201-character reason"),
    pytest.param(lambda w: _doc("reject", {"proposal": PID}), _keys("proposal", "why"),
                 id="rejection without a reason"),
    pytest.param(lambda w: _doc("suspend", {"province": "990000", "why": "x"}),
                 r"^province must be a GB/T 2260 province code$", id="suspending code 990000"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ, "why": b"x"}),
                 r"^statement: 'why' must be str$", id="suspending with a reason as bytes"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ, "why": "a\x00b"}),
                 r"^why must be printable text of at most 200 characters$",
                 id="suspending with a control character"),
    pytest.param(lambda w: _doc("suspend", {"province": ZJ}), _keys("province", "why"),
                 id="suspension without a reason"),
    # -- the province's own statements
    pytest.param(lambda w: _doc("upload-dsc", {"cert": "MIIB"}),
                 r"^cert must be a DER certificate$", id="uploading a DSC as text"),
    pytest.param(lambda w: _doc("upload-dsc", {"cert": GARBAGE}),
                 r"^cert is not a DER certificate$", id="uploading a DSC that is not one"),
    pytest.param(lambda w: _doc("upload-dsc", {"cert": b"", "kid": KID}), _keys("cert"),
                 id="upload with an unknown key"),
    pytest.param(lambda w: _doc("retire-dsc", {"kid": KID[:7], "retired_at": NOW}),
                 r"^kid must be 8 bytes$", id="retiring a 7-byte kid"),
    pytest.param(lambda w: _doc("retire-dsc", {"kid": KID + b"\x00", "retired_at": NOW}),
                 r"^kid must be 8 bytes$", id="retiring a 9-byte kid"),
    pytest.param(lambda w: _doc("retire-dsc", {"kid": KID.hex(), "retired_at": NOW}),
                 r"^statement: 'kid' must be bytes$", id="retiring a kid in hex"),
    pytest.param(lambda w: _doc("retire-dsc", {"kid": KID, "retired_at": -1}),
                 r"^retired_at must be a unix time in seconds$", id="retiring before 1970"),
    pytest.param(lambda w: _doc("retire-dsc", {"kid": KID}), _keys("kid", "retired_at"),
                 id="retirement without a time"),
    pytest.param(lambda w: _doc("crl", {"crl": "MIIB"}), r"^crl must be DER bytes$",
                 id="a CRL as text"),
    pytest.param(lambda w: _doc("crl", {"crl": GARBAGE}), r"^crl is not a DER CRL$",
                 id="a CRL that is not one"),
    pytest.param(lambda w: _doc("crl", {"crl": b"", "number": 1}), _keys("crl"),
                 id="CRL with an unknown key"),
    # -- revocations
    pytest.param(lambda w: _doc("revoke-dsc", {"kid": KID, "revoked_at": NOW,
                                               "reason": "lost"}),
                 r"^unknown revocation reason 'lost'$", id="revoking for an unknown reason"),
    pytest.param(lambda w: _doc("revoke-dsc", {"kid": KID, "revoked_at": NOW,
                                               "reason": b"unspecified"}),
                 r"^statement: 'reason' must be str$", id="revoking for a reason as bytes"),
    pytest.param(lambda w: _doc("revoke-dsc", {"kid": KID[:4], "revoked_at": NOW,
                                               "reason": "unspecified"}),
                 r"^kid must be 8 bytes$", id="revoking a 4-byte kid"),
    pytest.param(lambda w: _doc("revoke-dsc", {"kid": KID, "revoked_at": MAX_TIME + 1,
                                               "reason": "unspecified"}),
                 r"^revoked_at must be a unix time in seconds$", id="revoking after 9999"),
    pytest.param(lambda w: _doc("revoke-dsc", {"kid": KID, "reason": "unspecified"}),
                 _keys("kid", "revoked_at", "reason"), id="DSC revocation without a time"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(serial=b"")),
                 r"^serial must be 1 to 20 big-endian bytes without leading zeros$",
                 id="revoking an empty serial"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(serial=b"\x00\x01")),
                 r"^serial must be 1 to 20 big-endian bytes without leading zeros$",
                 id="revoking a serial with a leading zero (a second encoding of 1)"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(serial=b"\x01" * 21)),
                 r"^serial must be 1 to 20 big-endian bytes without leading zeros$",
                 id="revoking a 21-byte serial"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(serial=1)),
                 r"^statement: 'serial' must be bytes$", id="revoking a serial as a number"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(province="900000")),
                 r"^province must be a GB/T 2260 province code$", id="revoking CA of 900000"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(reason="because")),
                 r"^unknown revocation reason 'because'$", id="revoking a CA for no reason"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(revoked_at=-5)),
                 r"^revoked_at must be a unix time in seconds$", id="revoking a CA before 1970"),
    pytest.param(lambda w: _doc("revoke-ca", {**_revoke_ca(), "issuer": "root"}),
                 _keys("province", "serial", "revoked_at", "reason"),
                 id="CA revocation with an unknown key"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(issuer="national")),
                 r"^issuer must be a GB/T 2260 province code$", id="revoking for issuer national"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(issuer="330001")),
                 r"^issuer must be a GB/T 2260 province code$",
                 id="revoking for a prefecture issuer"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(issuer=0)),
                 r"^statement: 'issuer' must be str$", id="revoking for an issuer as a number"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(serial=b"\x00")),
                 r"^serial must be 1 to 20 big-endian bytes without leading zeros$",
                 id="revoking serial zero"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(reason="key-compromise")),
                 r"^unknown revocation reason 'key-compromise'$",
                 id="revoking with a misspelt reason"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(revoked_at="now")),
                 r"^statement: 'revoked_at' must be int$", id="revoking at a time as text"),
    pytest.param(lambda w: _doc("revoke-cert", {**_revoke_cert(), "province": ZJ}),
                 _keys("issuer", "serial", "revoked_at", "reason"),
                 id="certificate revocation with an unknown key"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "match"), REFUSED)
def test_a_malformed_statement_is_refused(world: RegistryBuilder, make: Any, match: str) -> None:
    with pytest.raises(DecodeError, match=match) as caught:
        _open(world, make(world))
    assert caught.value.reason is Reason.MALFORMED


def _at(w: RegistryBuilder, at: int) -> dict[str, object]:
    return _doc("suspend", {"province": ZJ, "why": "x"}, at=at)


ACCEPTED = [
    pytest.param(lambda w: _at(w, 0), lambda s: s.signed_at == 0, id="signed at 1970"),
    pytest.param(lambda w: _at(w, MAX_TIME), lambda s: s.signed_at == MAX_TIME,
                 id="signed at the end of 9999"),
    pytest.param(lambda w: _doc("root", _root_body(w, version=HIGH)),
                 lambda s: s.body.version == HIGH, id="root version 2**62"),
    pytest.param(lambda w: _doc("root", _root_body(w, threshold=64)),
                 lambda s: s.body.threshold == 64, id="threshold 64"),
    pytest.param(lambda w: _doc("root", _root_body(w, roots=[_der(w.root.certificate)] * 64)),
                 lambda s: len(s.body.roots) == 64, id="64 roots"),
    pytest.param(lambda w: _doc("propose", _proposal_body(_onboard(w)["change"], base=HIGH)),
                 lambda s: s.body.base == HIGH, id="base 2**62"),
    pytest.param(lambda w: _doc("propose", _onboard(w, name="x" * 64)),
                 lambda s: s.body.change.name == "x" * 64, id="a 64-character name"),
    pytest.param(lambda w: _doc("propose", _proposal_body(
                     {"kind": "resume", "province": ZJ, "why": "x" * 200})),
                 lambda s: s.body.change.why == "x" * 200, id="a 200-character reason"),
    pytest.param(lambda w: _doc("reject", {"proposal": PID, "why": ""}),
                 lambda s: s.body == Rejection(PID, ""), id="a rejection without words"),
    pytest.param(lambda w: _doc("revoke-ca", _revoke_ca(serial=b"\x80" + b"\x00" * 19)),
                 lambda s: s.body.serial == 1 << 159, id="a 20-byte serial"),
    pytest.param(lambda w: _doc("revoke-cert", _revoke_cert(issuer=ZJ)),
                 lambda s: s.body.issuer == ZJ, id="a certificate a province issued"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "check"), ACCEPTED)
def test_the_bounds_themselves_are_accepted(world: RegistryBuilder, make: Any, check: Any) -> None:
    assert check(_open(world, make(world)).statement)


@pytest.mark.parametrize("reason", sorted(statements.REVOCATION_REASONS))
def test_every_revocation_reason_is_understood(world: RegistryBuilder, reason: str) -> None:
    opened = _open(world, _doc("revoke-dsc", {"kid": KID, "revoked_at": NOW, "reason": reason}))
    assert opened.statement.body == DscRevocation(KID, NOW, reason)


def test_the_revocation_reasons_are_x509s() -> None:
    assert {
        "unspecified", "key_compromise", "ca_compromise", "superseded", "cessation_of_operation"
    } == statements.REVOCATION_REASONS  # fmt: skip


def test_a_non_canonical_payload_is_refused(world: RegistryBuilder) -> None:
    """One byte form per statement: a re-encoding would be a new id for the same order."""
    payload = cbor.encode(_doc("suspend", {"province": ZJ, "why": "x"}))
    longer = b"\xb9\x00\x05" + payload[1:]  # the same map, its length in two bytes
    with pytest.raises(DecodeError, match=r"^statement is not in deterministic CBOR form$") as e:
        open_statement(_seal(world, longer))
    assert e.value.reason is Reason.NON_CANONICAL


def test_a_statement_sealed_for_another_purpose_is_refused(world: RegistryBuilder) -> None:
    """A tree head's signature is not a statement's (domain separation)."""
    alice = world.coordinators["alice"]
    payload = cbor.encode(_doc("suspend", {"province": ZJ, "why": "x"}))
    raw = envelope.seal(Purpose.TREE_HEAD, payload, alice.private_key, alice.certificate)
    with pytest.raises(VerificationError):
        open_statement(raw)


def test_a_statement_edited_after_signing_is_refused(world: RegistryBuilder) -> None:
    alice = world.coordinators["alice"]
    raw = statements.sign(statements.make(Suspension(ZJ, "incident"), signed_at=NOW),
                          alice.private_key, alice.certificate)  # fmt: skip
    edited = raw.replace(b"incident", b"accident")
    with pytest.raises(HcxError):
        open_statement(edited)
    assert open_statement(raw).statement.body == Suspension(ZJ, "incident")


def test_every_kind_has_a_decoder_and_a_name() -> None:
    assert set(statements.KIND_OF.values()) == set(statements._DECODERS)
    assert {
        Onboard: "onboard", Resume: "resume", AddCoordinator: "add-coordinator",
        RemoveCoordinator: "remove-coordinator",
    } == statements.CHANGE_KINDS  # fmt: skip
