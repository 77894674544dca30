"""GB/T 2260 county-level district codes: where residents live and where events happened.

The codes are those of the GB2260 package: every revision of the standard up to 2014 (a county
merged away since still names where someone lives). A code created after 2014 is refused.
"""

from __future__ import annotations

from functools import cache

from trust.errors import InvalidRequest


@cache
def _districts() -> frozenset[str]:
    from gb2260.data import data  # ~3,500 codes per revision: loaded once, on first use

    return frozenset(f"{code:06d}" for revision in data.values() for code in revision)


def check_district(code: str, *, what: str) -> str:
    """A county-level district code (not a province or prefecture total); InvalidRequest."""
    if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InvalidRequest(f"{what} must be a 6-digit GB/T 2260 district code")
    if code.endswith("00") or code not in _districts():
        raise InvalidRequest(f"{what} {code} is not a GB/T 2260 county-level district")
    return code
