"""Domain vocabulary shared by every part of hcx: colours, verdicts and reason codes.

The integer values are part of the public contract: they equal the protobuf enum numbers in
``proto/healthcode/v1/common.proto`` and the colour values carried inside signed codes.
"""

from __future__ import annotations

import enum
import re

PROVINCE_CODE_RE = re.compile(r"[1-8][0-9]0000")


class Colour(enum.IntEnum):
    """Health-code colour decided by the issuing province."""

    GREEN = 1
    YELLOW = 2
    RED = 3


class Verdict(enum.IntEnum):
    """Outcome of one verification."""

    VALID = 1  # signature good and live colour from the issuer
    VALID_OFFLINE = 2  # signature good, issuer unreachable: colour at issuance plus its age
    INVALID = 3  # see the Reason


class Reason(enum.IntEnum):
    """Stable reason codes; never renumber, only append (docs/verdicts.md explains each)."""

    NONE = 0
    BAD_ENCODING = 1  # not HCX1:, bad base45, bad zlib, not CBOR, too large
    MALFORMED = 2  # well-formed CBOR but not a COSE_Sign1/CWT of the documented shape
    UNSUPPORTED_ALGORITHM = 3
    UNKNOWN_KID = 4
    BAD_SIGNATURE = 5
    CHAIN_INVALID = 6  # signing certificate does not chain to the national root
    ISSUER_MISMATCH = 7  # iss claim differs from the signing certificate's province
    EXPIRED = 8
    NOT_YET_VALID = 9
    KEY_REVOKED = 10
    PROVINCE_SUSPENDED = 11
    KEY_NOT_VALID_AT_ISSUANCE = 12  # signing certificate was not valid when the code was issued
    KEY_RETIRED = 13  # code signed after its key was retired
    UNKNOWN_CODE = 14  # the issuer does not know this code id
    TOKEN_TOO_OLD = 15  # issuer unreachable and the token is older than the offline limit
    ISSUER_UNAVAILABLE = 16  # issuer unreachable and no offline verdict allowed
    UNKNOWN_PROVINCE = 17
    WRONG_PURPOSE = 18  # certificate not marked for signing health codes
    NON_CANONICAL = 19  # not the code's one text form (high-S, untagged, other zlib, CBOR form)
    LIFETIME_TOO_LONG = 20  # exp - iat exceeds the maximum token lifetime
    INVALID_REQUEST = 21  # a field of the request itself is wrong (per item in batches)
    INTERNAL_ERROR = 22  # the server failed; logged and counted, never answered as offline
    # Refusals of callers and registry statements (docs/verdicts.md, docs/security.md).
    UNAUTHENTICATED = 23  # no verified client certificate with an hcx identity
    WRONG_ROLE = 24  # the caller's or signer's role may not do this
    WRONG_PROVINCE = 25  # the caller or signer belongs to another province
    CALLER_REVOKED = 26  # the caller's certificate is revoked
    RATE_LIMITED = 27  # the caller's rate limit is spent; retry after RetryInfo
    OVERLOADED = 28  # the server's bounded queues are full; retry after RetryInfo
    LEASE_NOT_YOURS = 29  # the node registration belongs to another identity
    UNKNOWN_LEASE = 30  # no such node registration (expired, replaced or never made)
    REPLAYED = 31  # this exact signed statement was already accepted
    BAD_TIME = 32  # a statement's signing time is outside the allowed clock skew
    UNKNOWN_SIGNER = 33  # the statement's signer is not an authority the registry knows
    SIGNER_REVOKED = 34  # the statement's signer certificate is revoked or expired
    STALE_PROPOSAL = 35  # the proposal's base version is no longer current
    PROPOSAL_CLOSED = 36  # the proposal expired, was applied or was rejected
    ALREADY_EXISTS = 37  # e.g. a kid collision or a province onboarded twice
    NOT_FOUND = 38  # the subject of a request does not exist
    LOG_INCONSISTENT = 39  # the registry log failed verification; the view stays where it was
    STORE_UNAVAILABLE = 40  # the registry or status store cannot be reached
    NOT_CONFIGURED = 41  # this server was started without what the call needs (a key, a gateway)


def is_province_code(value: str) -> bool:
    """True for a GB/T 2260 provincial-level division code such as ``330000``."""
    return bool(PROVINCE_CODE_RE.fullmatch(value))
