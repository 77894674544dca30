"""The world the conformance cases live in: provinces, signing keys in every registry state,
an attacker, a reference time, and a forge that writes any token an attacker could write.

A ``World`` is declarative (what each province and signing certificate is, and when it was
revoked or retired), so a verifier adapter can materialise it however it needs: as the fake
view below (library verifiers), or later as a real registry behind real servers. It is also
the view itself (``signer(kid)``, ``province(code)``), the one trust.verify.check_code reads.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from trust import cbor, pki
from trust.base45 import b45encode
from trust.codeformat import HEALTH_CODE_AAD, PREFIX
from trust.cose import ALG_ES256, P256_HALF_ORDER, P256_ORDER, sig_structure

ZJ, SC, GS, XJ = "330000", "510000", "620000", "650000"
LIFETIME = 300
DAY = 86400


@dataclass(frozen=True)
class Province:
    """An onboarded province as the registry holds it."""

    code: str
    suspended: bool = False


@dataclass(frozen=True)
class Signer:
    """A signing certificate in the verified view (the fields trust.verify reads), with its key."""

    name: str
    province: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    revoked_at: float | None = None
    revocation_reason: str = ""
    retired_at: float | None = None

    @property
    def kid(self) -> bytes:
        return pki.kid(self.certificate)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()

    @property
    def not_before(self) -> float:
        return self.certificate.not_valid_before_utc.timestamp()

    @property
    def not_after(self) -> float:
        return self.certificate.not_valid_after_utc.timestamp()


@dataclass
class World:
    """Provinces and signers at reference time ``now`` (Unix seconds)."""

    now: int
    root: pki.Authority
    cas: dict[str, pki.Authority]
    provinces: dict[str, Province]
    signers: dict[str, Signer]
    attacker: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    # --- the view trust.verify.check_code reads
    def signer(self, kid: bytes) -> Signer | None:
        return next((s for s in self.signers.values() if s.kid == kid), None)

    def province(self, code: str) -> Province | None:
        return self.provinces.get(code)

    # --- tokens
    def kid(self, name: str) -> bytes:
        return self.signers[name].kid

    def claims(self, **changes: Any) -> dict[Any, Any]:
        """The CWT claims map of a fresh GREEN code of Zhejiang, with entries replaced: names
        iss/exp/iat/cti/hcx for claims, hcx_1 … hcx_5 inside the hcx claim; DROP removes."""
        iat = changes.get("iat", self.now)
        iat = self.now if iat is DROP else iat
        hcx: dict[Any, Any] = {1: 1, 2: 7, 3: "张*明", 4: "123X", 5: "health-code"}
        claims: dict[Any, Any] = {
            1: ZJ,
            4: iat + LIFETIME,
            6: iat,
            7: bytes(range(16)),
            -70000: hcx,
        }
        for name, value in changes.items():
            target, key = (hcx, int(name[4:])) if name.startswith("hcx_") else (claims, _KEYS[name])
            if value is DROP:
                del target[key]
            else:
                target[key] = value
        return claims

    def token(self, signer: str = "zj", **knobs: Any) -> str:
        """A code signed by ``signer`` (see Forge for what else can be changed)."""
        return Forge(self, signer=signer, **knobs).token()


DROP = object()
_KEYS = {"iss": 1, "exp": 4, "iat": 6, "cti": 7, "hcx": -70000}


@dataclass
class Forge:
    """Every layer of a token, each replaceable; by default exactly what issuance makes.

    claims: a CWT map (World.claims) or raw payload bytes. protected: a header map or raw
    bytes. key: who signs (default: the signer's key); aad: the signed purpose. signature:
    raw bytes instead of signing, or a function of the real low-S signature. cose: a function
    of (protected bytes, payload, signature) -> COSE bytes. zlib: a function of the COSE bytes.
    """

    world: World
    signer: str = "zj"
    claims: Mapping[Any, Any] | bytes | None = None
    protected: Mapping[Any, Any] | bytes | None = None
    kid: bytes | None = None
    alg: Any = ALG_ES256
    key: ec.EllipticCurvePrivateKey | None = None
    aad: bytes = HEALTH_CODE_AAD
    signature: bytes | Any = None
    cose: Any = None
    zlib: Any = None

    def payload(self) -> bytes:
        claims = self.world.claims() if self.claims is None else self.claims
        return claims if isinstance(claims, bytes) else cbor.encode(dict(claims))

    def protected_bytes(self) -> bytes:
        if isinstance(self.protected, bytes):
            return self.protected
        kid = self.world.kid(self.signer) if self.kid is None else self.kid
        header = {1: self.alg, 4: kid} if self.protected is None else dict(self.protected)
        return cbor.encode(header)

    def sign(self, protected: bytes, payload: bytes) -> bytes:
        if isinstance(self.signature, bytes):
            return self.signature
        key = self.key or self.world.signers[self.signer].key
        signature = es256(key, sig_structure(protected, self.aad, payload))
        return self.signature(signature) if callable(self.signature) else signature

    def token(self) -> str:
        protected, payload = self.protected_bytes(), self.payload()
        signature = self.sign(protected, payload)
        assemble = self.cose or cose_bytes
        cose = assemble(protected, payload, signature)
        compressed = self.zlib(cose) if self.zlib else zlib.compress(cose, 0)
        return PREFIX + b45encode(compressed)


def es256(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """A low-S ES256 signature ``r || s`` (what hcx issuers make)."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_ORDER - s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def high_s(signature: bytes) -> bytes:
    """The malleated twin of a low-S signature: the same r, s replaced by n - s."""
    s = int.from_bytes(signature[32:], "big")
    assert s <= P256_HALF_ORDER
    return signature[:32] + (P256_ORDER - s).to_bytes(32, "big")


def head(major: int, value: int, size: int | None = None) -> bytes:
    """A CBOR item head; ``size`` forces the argument into 1, 2, 4 or 8 bytes (non-shortest)."""
    if size is None:
        size = 0 if value < 24 else 1 if value < 256 else 2 if value < 65536 else 4
    if size == 0:
        return bytes([major << 5 | value])
    return bytes([major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[size]]) + value.to_bytes(size, "big")


def bstr(data: bytes, size: int | None = None) -> bytes:
    return head(2, len(data), size) + data


def cose_bytes(
    protected: bytes,
    payload: bytes,
    signature: bytes,
    *,
    tag: bytes = b"\xd2",
    array: bytes = b"\x84",
    unprotected: bytes = b"\xa0",
    sizes: tuple[int | None, int | None, int | None] = (None, None, None),
    extra: bytes = b"",
) -> bytes:
    """COSE_Sign1 written by hand so that any part can take a form no encoder makes."""
    p, q, r = sizes
    return (
        tag
        + array
        + bstr(protected, p)
        + unprotected
        + bstr(payload, q)
        + bstr(signature, r)
        + extra
    )


def cbor_dumps(value: object) -> bytes:
    """cbor2's encoding in the order given (not sorted): for non-deterministic maps."""
    return cbor2.dumps(value)


def make_world(
    now: int | None = None,
    *,
    root: pki.Authority | None = None,
    cas: Mapping[str, pki.Authority] | None = None,
) -> World:
    """Provinces Zhejiang, Sichuan (onboarded), Gansu (suspended); Xinjiang's key has no
    onboarded province; Zhejiang's signing keys in every state a verifier must tell apart.

    ``root`` and ``cas``: a real federation's national root and provincial CAs (the gRPC
    conformance run materialises the world in its registry); made here otherwise."""
    now = int(time.time()) if now is None else now
    at = datetime.fromtimestamp(now, UTC)
    root = root or pki.create_root_ca(now=at - timedelta(days=30))
    made = dict(cas or {})
    cas = {
        code: made.get(code)
        or pki.create_provincial_ca(root, province=code, name=code, now=at - timedelta(days=20))
        for code in (ZJ, SC, GS, XJ)
    }

    def dsc(
        name: str,
        province: str = ZJ,
        *,
        issued: datetime = at - timedelta(days=10),
        validity: timedelta = pki.DSC_VALIDITY,
        backdate: timedelta = pki.CLOCK_SKEW,
        **state: Any,
    ) -> Signer:
        key = pki.generate_private_key()
        certificate = pki.sign_dsc(
            cas[province],
            pki.make_csr(key, common_name=name),
            province=province,
            name=name,
            not_before=issued,
            validity=validity,
            backdate=backdate,
        )
        return Signer(name, province, certificate, key, **state)

    exact = timedelta(0)
    signers = [
        dsc("zj"),
        dsc("sc", SC),
        dsc("gs", GS),
        dsc("xj", XJ),
        dsc("zj-revoked", revoked_at=now - 3600, revocation_reason="key_compromise"),
        dsc("zj-revoked-recently", revoked_at=now - 50, revocation_reason="key_compromise"),
        dsc("zj-revoked-later", revoked_at=now + 3600, revocation_reason="superseded"),
        dsc("zj-retired", retired_at=now - 100),
        dsc("zj-young", issued=at + timedelta(seconds=120), backdate=exact),
        dsc("zj-young-within-skew", issued=at + timedelta(seconds=30), backdate=exact),
        dsc("zj-old", issued=at - timedelta(days=40), validity=timedelta(days=40, seconds=-10)),
        dsc("zj-from-a-clock-60-s-ahead", issued=at + timedelta(seconds=60)),
    ]
    return World(
        now=now,
        root=root,
        cas=cas,
        provinces={ZJ: Province(ZJ), SC: Province(SC), GS: Province(GS, suspended=True)},
        signers={s.name: s for s in signers},
    )
