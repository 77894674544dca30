"""The federation's X.509 PKI: national root → provincial CAs → DSC / node / checkpoint certs.

Everything is standard X.509 built with ``cryptography`` (ECDSA P-256, ECDSA-SHA256) so that
every chain also verifies with ``openssl verify``. Identities are SPIFFE-style URI SANs:

* national root CA          ``spiffe://hcx/national``
* trust-list signer         ``spiffe://hcx/national/trust-list``
* provincial CA             ``spiffe://hcx/province/<code>``
* document signer (DSC)     ``spiffe://hcx/province/<code>/dsc/<name>``
* node TLS certificate      ``spiffe://hcx/province/<code>/node/<name>``
* checkpoint client cert    ``spiffe://hcx/province/<code>/checkpoint/<name>``

Issuers sign certificate signing requests (CSRs): private keys never travel. The issuer
decides every name in the certificate; the CSR only contributes its public key.

Chain verification is written out explicitly for the fixed depth of this federation (no
generic path building): each check raises :class:`PkiError` with a specific message and a
stable :class:`Reason`.

The package is split by concern, and this module re-exports each public name, so callers write
``from trust import pki`` and ``pki.sign_dsc(...)``:

* ``profile``  — object identifiers, SPIFFE identities, the certificate profiles and periods
* ``encoding`` — keys, CSRs, certificates and CRLs to and from PEM/DER
* ``issuing``  — the root, provincial CAs, DSCs, end-entity and national service certificates
* ``checking`` — chain verification for the fixed depth of this federation
* ``crls``     — making, checking and reading CRLs
"""

from __future__ import annotations

from trust.pki.checking import (
    fingerprint,
    is_pinned_root,
    verify_dsc_chain,
    verify_leaf_chain,
    verify_log_signer,
    verify_national_leaf,
    verify_provincial_ca,
    verify_root,
    verify_trust_list_signer,
)
from trust.pki.crls import (
    make_crl,
    revoked_at,
    verify_crl,
)
from trust.pki.encoding import (
    certificate_to_der,
    certificate_to_pem,
    crl_to_der,
    crl_to_pem,
    csr_to_pem,
    generate_private_key,
    kid,
    load_certificate_der,
    load_certificate_pem,
    load_certificates_pem,
    load_crl_der,
    load_crl_pem,
    load_csr_pem,
    load_private_key_pem,
    make_csr,
    parse_der,
    private_key_to_pem,
    write_private_key,
)
from trust.pki.issuing import (
    create_provincial_ca,
    create_root_ca,
    sign_dsc,
    sign_leaf,
    sign_log_signer,
    sign_national_leaf,
    sign_provincial_ca,
    sign_trust_list_signer,
)
from trust.pki.profile import (
    CLOCK_SKEW,
    DSC_VALIDITY,
    HCX_OID_ARC,
    HCX_OID_UUID,
    HEALTH_CODE_SIGNING_OID,
    IDENTITY_DNS_SUFFIX,
    KID_LENGTH,
    LEAF_KINDS,
    LEAF_VALIDITY,
    LOG_SIGNING_OID,
    LOG_SPIFFE_ID,
    NATIONAL_KINDS,
    NATIONAL_SPIFFE_ID,
    ORGANIZATION,
    PROVINCIAL_CA_VALIDITY,
    ROOT_COMMON_NAME,
    ROOT_VALIDITY,
    SPIFFE_PREFIX,
    STATEMENT_SIGNING_OID,
    TRUST_LIST_SIGNER_VALIDITY,
    TRUST_LIST_SIGNING_OID,
    TRUST_LIST_SPIFFE_ID,
    Authority,
    PrivateKey,
    RevokedEntry,
    leaf_spiffe_id,
    national_spiffe_id,
    node_dns_name,
    province_of,
    provincial_ca_spiffe_id,
    same_public_key,
    spiffe_id,
)

__all__ = [
    "CLOCK_SKEW",
    "DSC_VALIDITY",
    "HCX_OID_ARC",
    "HCX_OID_UUID",
    "HEALTH_CODE_SIGNING_OID",
    "IDENTITY_DNS_SUFFIX",
    "KID_LENGTH",
    "LEAF_KINDS",
    "LEAF_VALIDITY",
    "LOG_SIGNING_OID",
    "LOG_SPIFFE_ID",
    "NATIONAL_KINDS",
    "NATIONAL_SPIFFE_ID",
    "ORGANIZATION",
    "PROVINCIAL_CA_VALIDITY",
    "ROOT_COMMON_NAME",
    "ROOT_VALIDITY",
    "SPIFFE_PREFIX",
    "STATEMENT_SIGNING_OID",
    "TRUST_LIST_SIGNER_VALIDITY",
    "TRUST_LIST_SIGNING_OID",
    "TRUST_LIST_SPIFFE_ID",
    "Authority",
    "PrivateKey",
    "RevokedEntry",
    "certificate_to_der",
    "certificate_to_pem",
    "create_provincial_ca",
    "create_root_ca",
    "crl_to_der",
    "crl_to_pem",
    "csr_to_pem",
    "fingerprint",
    "generate_private_key",
    "is_pinned_root",
    "kid",
    "leaf_spiffe_id",
    "load_certificate_der",
    "load_certificate_pem",
    "load_certificates_pem",
    "load_crl_der",
    "load_crl_pem",
    "load_csr_pem",
    "load_private_key_pem",
    "make_crl",
    "make_csr",
    "national_spiffe_id",
    "node_dns_name",
    "parse_der",
    "private_key_to_pem",
    "province_of",
    "provincial_ca_spiffe_id",
    "revoked_at",
    "same_public_key",
    "sign_dsc",
    "sign_leaf",
    "sign_log_signer",
    "sign_national_leaf",
    "sign_provincial_ca",
    "sign_trust_list_signer",
    "spiffe_id",
    "verify_crl",
    "verify_dsc_chain",
    "verify_leaf_chain",
    "verify_log_signer",
    "verify_national_leaf",
    "verify_provincial_ca",
    "verify_root",
    "verify_trust_list_signer",
    "write_private_key",
]
