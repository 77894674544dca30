"""Who is calling: the SPIFFE-style identity in the verified client certificate (mTLS).

Identities (docs/security.md, "Identities"):
  spiffe://hcx/national/coordinator/<name>          national coordinator
  spiffe://hcx/national/gateway/<name>              a national gateway (calls provincial nodes)
  spiffe://hcx/province/<code>/node/<name>          a provincial node replica
  spiffe://hcx/province/<code>/operator/<name>      a provincial operator
  spiffe://hcx/province/<code>/checkpoint/<name>    a checkpoint
  spiffe://hcx/province/<code>/authority/<name>     the province's health authority
  spiffe://hcx/province/<code>/checkin/<name>       a check-in station (employers, communities)
"""

from __future__ import annotations

import contextvars
import enum
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509

from trust import pki
from trust.errors import PermissionDenied, Unauthenticated
from trust.model import Reason


class Role(enum.Enum):
    COORDINATOR = "coordinator"
    GATEWAY = "gateway"
    NODE = "node"
    OPERATOR = "operator"
    CHECKPOINT = "checkpoint"
    AUTHORITY = "authority"  # the province's health authority: risk data, assistance
    CHECKIN = "checkin"  # a check-in station: daily check-ins only


_NATIONAL = re.compile(
    r"spiffe://hcx/national/(?P<kind>coordinator|gateway)/(?P<name>[\w.-]{1,63})"
)
_PROVINCIAL = re.compile(
    r"spiffe://hcx/province/(?P<province>[1-8][0-9]0000)/"
    r"(?P<kind>node|operator|checkpoint|authority|checkin)/(?P<name>[\w.-]{1,63})"
)


@dataclass(frozen=True)
class Identity:
    """A verified caller."""

    spiffe_id: str
    role: Role
    name: str
    province: str | None  # None for national identities
    serial: int  # certificate serial, for revocation checks
    issuer_province: str | None  # province whose CA issued the certificate; None: the root
    issuer_key_id: bytes | None = None  # authority key id: which CA of the province issued it

    def __str__(self) -> str:
        return self.spiffe_id


def parse_identity(
    spiffe_id: str, *, serial: int = 0, issuer_key_id: bytes | None = None
) -> Identity:
    """The identity named by a SPIFFE id; raises Unauthenticated for anything else."""
    national = _NATIONAL.fullmatch(spiffe_id)
    if national:
        kind, name = Role(national["kind"]), national["name"]
        return Identity(spiffe_id, kind, name, None, serial, None, issuer_key_id)
    provincial = _PROVINCIAL.fullmatch(spiffe_id)
    if provincial:
        province, kind, name = provincial["province"], Role(provincial["kind"]), provincial["name"]
        return Identity(spiffe_id, kind, name, province, serial, province, issuer_key_id)
    raise Unauthenticated(f"certificate identity {spiffe_id!r} is not an hcx identity")


@lru_cache(maxsize=4096)
def identity_from_pem(pem: bytes) -> Identity:
    """Identity of a peer certificate (cached: the same peer calls many times)."""
    return certificate_identity(pki.load_certificate_pem(pem))


def certificate_identity(certificate: x509.Certificate) -> Identity:
    spiffe_id = pki.spiffe_id(certificate)
    if spiffe_id is None:
        raise Unauthenticated("certificate has no SPIFFE URI SAN")
    return parse_identity(
        spiffe_id, serial=certificate.serial_number, issuer_key_id=_authority_key_id(certificate)
    )


def _authority_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return aki.value.key_identifier


# The identity of the call being served; set by nodes.authz for the handler's task.
CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("hcx_caller", default=None)


def caller() -> Identity | None:
    """The verified identity of the current call (None on a development plain-text server)."""
    return CALLER.get()


def require_province(province: str, *, action: str) -> None:
    """Handlers call this where the request names a province: the caller must belong to it.

    Coordinators act for every province; a plain-text development server has no caller.
    """
    who = caller()
    if who is None or who.role is Role.COORDINATOR:
        return
    if who.province != province:
        raise PermissionDenied(
            f"{who.spiffe_id} may not {action} for province {province}",
            reason=Reason.WRONG_PROVINCE,
        )
