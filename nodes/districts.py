"""GB/T 2260 county-level district codes: where residents live and where events happened.

The codes are those of the GB2260 package: every revision of the standard up to 2014 (a county
merged away since still names where someone lives). A code created after 2014 is refused.
"""

from __future__ import annotations

from functools import cache

from trust.errors import InvalidRequest

# Codes that stand for a grouping, not a county-level district: "districts under the city"
# (市辖区, e.g. 330101), "counties" (县), the province's directly administered counties.
PLACEHOLDERS = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"})


@cache
def _districts() -> frozenset[str]:
    from gb2260.data import data  # ~3,500 codes per revision: loaded once, on first use

    return frozenset(
        f"{code:06d}"
        for revision in data.values()
        for code, name in revision.items()
        if name not in PLACEHOLDERS
    )


def check_district(code: str, *, what: str) -> str:
    """A county-level district code (not a province or prefecture total); InvalidRequest."""
    if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InvalidRequest(f"{what} must be a 6-digit GB/T 2260 district code")
    if code.endswith("00") or code not in _districts():
        raise InvalidRequest(f"{what} {code} is not a GB/T 2260 county-level district")
    return code


def districts_of(province: str) -> list[str]:
    """The county-level districts of a province (its code's first two digits), sorted."""
    return sorted(code for code in _districts() if code[:2] == province[:2] and code[4:] != "00")
