"""The one decoder for untrusted CBOR: RFC 8949 Appendix A, strictness, tags and one byte form."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest

from trust import cbor
from trust.errors import DecodeError
from trust.model import Reason


@pytest.fixture(autouse=True)
def cold_decoders() -> Iterator[None]:
    """Each test builds the tag hooks afresh: what is checked is the decoder as first built,
    not one that an earlier test left in the cache."""
    cbor._DECODERS.clear()
    yield
    cbor._DECODERS.clear()


# RFC 8949 Appendix A, the examples without tags and of definite length: each is the one
# (preferred, deterministic) encoding of its value.
APPENDIX_A = [
    pytest.param(0, "00", id="0"),
    pytest.param(1, "01", id="1"),
    pytest.param(10, "0a", id="10"),
    pytest.param(23, "17", id="23"),
    pytest.param(24, "1818", id="24"),
    pytest.param(25, "1819", id="25"),
    pytest.param(100, "1864", id="100"),
    pytest.param(1000, "1903e8", id="1000"),
    pytest.param(1000000, "1a000f4240", id="1000000"),
    pytest.param(1000000000000, "1b000000e8d4a51000", id="1000000000000"),
    pytest.param(18446744073709551615, "1bffffffffffffffff", id="2**64-1"),
    pytest.param(-18446744073709551616, "3bffffffffffffffff", id="-2**64"),
    pytest.param(-1, "20", id="-1"),
    pytest.param(-10, "29", id="-10"),
    pytest.param(-100, "3863", id="-100"),
    pytest.param(-1000, "3903e7", id="-1000"),
    pytest.param(0.0, "f90000", id="0.0"),
    pytest.param(-0.0, "f98000", id="-0.0"),
    pytest.param(1.0, "f93c00", id="1.0"),
    pytest.param(1.1, "fb3ff199999999999a", id="1.1"),
    pytest.param(1.5, "f93e00", id="1.5"),
    pytest.param(65504.0, "f97bff", id="65504.0"),
    pytest.param(100000.0, "fa47c35000", id="100000.0"),
    pytest.param(3.4028234663852886e38, "fa7f7fffff", id="3.4028234663852886e+38"),
    pytest.param(1.0e300, "fb7e37e43c8800759c", id="1.0e+300"),
    pytest.param(5.960464477539063e-8, "f90001", id="5.960464477539063e-8"),
    pytest.param(0.00006103515625, "f90400", id="0.00006103515625"),
    pytest.param(-4.0, "f9c400", id="-4.0"),
    pytest.param(-4.1, "fbc010666666666666", id="-4.1"),
    pytest.param(math.inf, "f97c00", id="Infinity"),
    pytest.param(-math.inf, "f9fc00", id="-Infinity"),
    pytest.param(False, "f4", id="false"),
    pytest.param(True, "f5", id="true"),
    pytest.param(None, "f6", id="null"),
    pytest.param(cbor2.CBORSimpleValue(16), "f0", id="simple(16)"),
    pytest.param(cbor2.CBORSimpleValue(255), "f8ff", id="simple(255)"),
    pytest.param(b"", "40", id="h''"),
    pytest.param(b"\x01\x02\x03\x04", "4401020304", id="h'01020304'"),
    pytest.param("", "60", id='""'),
    pytest.param("a", "6161", id='"a"'),
    pytest.param("IETF", "6449455446", id='"IETF"'),
    pytest.param('"\\', "62225c", id='"\\"\\\\"'),
    pytest.param("\u00fc", "62c3bc", id='"\\u00fc"'),
    pytest.param("\u6c34", "63e6b0b4", id='"\\u6c34"'),
    pytest.param("\U00010151", "64f0908591", id='"\\ud800\\udd51"'),
    pytest.param([], "80", id="[]"),
    pytest.param([1, 2, 3], "83010203", id="[1, 2, 3]"),
    pytest.param([1, [2, 3], [4, 5]], "8301820203820405", id="[1, [2, 3], [4, 5]]"),
    pytest.param(
        list(range(1, 26)),
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        id="[1, ..., 25]",
    ),
    pytest.param({}, "a0", id="{}"),
    pytest.param({1: 2, 3: 4}, "a201020304", id="{1: 2, 3: 4}"),
    pytest.param({"a": 1, "b": [2, 3]}, "a26161016162820203", id='{"a": 1, "b": [2, 3]}'),
    pytest.param(["a", {"b": "c"}], "826161a161626163", id='["a", {"b": "c"}]'),
    pytest.param(
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        "a56161614161626142616361436164614461656145",
        id='{"a": "A", ..., "e": "E"}',
    ),
]


@pytest.mark.parametrize(("value", "encoded"), APPENDIX_A)
def test_rfc_8949_appendix_a_decodes(value: object, encoded: str) -> None:
    decoded = cbor.decode(bytes.fromhex(encoded), what="example")
    assert decoded == value and type(decoded) is type(value)
    assert cbor.decode_canonical(bytes.fromhex(encoded), what="example") == value


@pytest.mark.parametrize(("value", "encoded"), APPENDIX_A)
def test_rfc_8949_appendix_a_encodes(value: object, encoded: str) -> None:
    assert cbor.encode(value).hex() == encoded


def test_rfc_8949_appendix_a_nan() -> None:
    assert math.isnan(cbor.decode_canonical(bytes.fromhex("f97e00"), what="example"))
    assert cbor.encode(math.nan).hex() == "f97e00"


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(bytes, id="bytes"),
        pytest.param(bytearray, id="bytearray"),
        pytest.param(memoryview, id="memoryview"),
    ],
)
def test_any_bytes_like_input_decodes(kind: Any) -> None:
    assert cbor.decode(kind(bytes.fromhex("8301820203820405")), what="x") == [1, [2, 3], [4, 5]]


# RFC 8949 Appendix A, the tagged examples: hcx writes none of these tags, so each is refused
# as a shape hcx never writes (cbor2 would build datetimes, bignums, URIs ... from them).
APPENDIX_A_TAGGED = [
    pytest.param("c249010000000000000000", 2, id="2(h'010000000000000000') bignum 2**64"),
    pytest.param("c349010000000000000000", 3, id="3(h'010000000000000000') bignum -2**64-1"),
    pytest.param("c074323031332d30332d32315432303a30343a30305a", 0, id='0("2013-03-21T20:04:00Z")'),
    pytest.param("c11a514b67b0", 1, id="1(1363896240)"),
    pytest.param("c1fb41d452d9ec200000", 1, id="1(1363896240.5)"),
    pytest.param("d74401020304", 23, id="23(h'01020304')"),
    pytest.param("d818456449455446", 24, id="24(h'6449455446')"),
    pytest.param(
        "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        32,
        id='32("http://www.example.com")',
    ),
]


@pytest.mark.parametrize(("encoded", "tag"), APPENDIX_A_TAGGED)
def test_rfc_8949_appendix_a_tags_are_refused(encoded: str, tag: int) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.decode(bytes.fromhex(encoded), what="statement")
    assert caught.value.message == f"statement: CBOR tag {tag} is not allowed here"
    assert caught.value.reason is Reason.MALFORMED


# Tags cbor2 would decode natively, each with a value that cbor2 would accept for it.
NATIVE_TAGS = [
    pytest.param(cbor2.CBORTag(0, "2013-03-21T20:04:00Z"), id="0 date/time string"),
    pytest.param(cbor2.CBORTag(1, 1363896240), id="1 epoch"),
    pytest.param(cbor2.CBORTag(2, b"\x01" + bytes(8)), id="2 positive bignum"),
    pytest.param(cbor2.CBORTag(3, b"\x01" + bytes(8)), id="3 negative bignum"),
    pytest.param(cbor2.CBORTag(4, [-2, 27315]), id="4 decimal fraction"),
    pytest.param(cbor2.CBORTag(5, [-1, 3]), id="5 bigfloat"),
    pytest.param(cbor2.CBORTag(21, b"x"), id="21 base64url hint"),
    pytest.param(cbor2.CBORTag(28, "x"), id="28 shareable"),
    pytest.param(cbor2.CBORTag(30, [1, 3]), id="30 rational"),
    pytest.param(cbor2.CBORTag(35, "a+"), id="35 regular expression"),
    pytest.param(cbor2.CBORTag(36, "Content-Type: text/plain\n\nx"), id="36 MIME"),
    pytest.param(cbor2.CBORTag(37, bytes(16)), id="37 UUID"),
    pytest.param(cbor2.CBORTag(52, b"\x7f\x00\x00\x01"), id="52 IPv4"),
    pytest.param(cbor2.CBORTag(54, bytes(16)), id="54 IPv6"),
    pytest.param(cbor2.CBORTag(100, 19000), id="100 epoch date"),
    pytest.param(cbor2.CBORTag(256, "x"), id="256 string ref namespace"),
    pytest.param(cbor2.CBORTag(258, [1, 2]), id="258 set"),
    pytest.param(cbor2.CBORTag(1004, "2022-01-01"), id="1004 date string"),
    pytest.param(cbor2.CBORTag(55799, 1), id="55799 self-described CBOR"),
]


@pytest.mark.parametrize("item", NATIVE_TAGS)
def test_tags_cbor2_decodes_natively_are_refused(item: cbor2.CBORTag) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.decode(cbor2.dumps(item), what="trust list", tags=(18,))
    assert caught.value.message == f"trust list: CBOR tag {item.tag} is not allowed here"
    assert caught.value.reason is Reason.MALFORMED


def test_a_native_tag_named_by_the_caller_is_decoded_by_cbor2() -> None:
    bignum = cbor2.dumps(cbor2.CBORTag(2, b"\x01" + bytes(8)))
    assert cbor.decode(bignum, what="x", tags=(2,)) == 2**64


@pytest.mark.parametrize(
    ("tags", "data", "expected"),
    [
        pytest.param(
            (18,), cbor2.dumps(cbor2.CBORTag(18, [1])), cbor2.CBORTag(18, (1,)), id="COSE_Sign1 18"
        ),
        pytest.param(
            (18, 98),
            cbor2.dumps([cbor2.CBORTag(98, 1), cbor2.CBORTag(18, 2)]),
            [cbor2.CBORTag(98, 1), cbor2.CBORTag(18, 2)],
            id="two tags allowed",
        ),
        pytest.param(
            (18,),
            b"\xd2" * 16 + b"\x00",
            cbor2.loads(b"\xd2" * 16 + b"\x00"),
            id="nested 16 deep",
        ),
    ],
)
def test_tags_named_by_the_caller_are_kept(
    tags: tuple[int, ...], data: bytes, expected: object
) -> None:
    assert cbor.decode(data, what="x", tags=tags) == expected


@pytest.mark.parametrize(
    ("tags", "data", "tag"),
    [
        pytest.param((), cbor2.dumps(cbor2.CBORTag(18, [1])), 18, id="18 when no tag is allowed"),
        pytest.param((18,), cbor2.dumps(cbor2.CBORTag(98, [1])), 98, id="98 when 18 is allowed"),
        pytest.param((18,), cbor2.dumps(cbor2.CBORTag(19, [1])), 19, id="19 when 18 is allowed"),
        pytest.param(
            (18,), cbor2.dumps(cbor2.CBORTag(18, cbor2.CBORTag(98, 0))), 98, id="98 inside 18"
        ),
        pytest.param((18,), b"\x81" * 15 + cbor2.dumps(cbor2.CBORTag(98, 0)), 98, id="98 deep"),
        pytest.param(
            (18,), cbor2.dumps({1: cbor2.CBORTag(1, 0)}), 1, id="epoch date as a map value"
        ),
    ],
)
def test_tags_not_named_are_refused(tags: tuple[int, ...], data: bytes, tag: int) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.decode(data, what="tree head", tags=tags)
    assert caught.value.message == f"tree head: CBOR tag {tag} is not allowed here"
    assert caught.value.reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff", id="a lone break"),
        pytest.param(b"\x1c", id="reserved additional information 28"),
        pytest.param(b"\x83\x01\x02", id="array truncated"),
        pytest.param(b"\x5b" + b"\xff" * 8, id="absurd byte string length"),
        pytest.param(b"\x62\xc3\x28", id="text that is not UTF-8"),
        pytest.param(b"\x81" * 17 + b"\x00", id="arrays nested 17 deep"),
        pytest.param(b"\xa1\x00" * 17 + b"\x00", id="maps nested 17 deep"),
        pytest.param(b"\xd2" * 17 + b"\x00", id="tags nested 17 deep"),
        pytest.param(b"\xa2\x01\x01\x01\x02", id="duplicate map key"),
        # RFC 8949 Appendix A, the indefinite-length examples.
        pytest.param(bytes.fromhex("5f42010243030405ff"), id="(_ h'0102', h'030405')"),
        pytest.param(bytes.fromhex("7f657374726561646d696e67ff"), id='(_ "strea", "ming")'),
        pytest.param(bytes.fromhex("9fff"), id="[_ ]"),
        pytest.param(bytes.fromhex("9f018202039f0405ffff"), id="[_ 1, [2, 3], [_ 4, 5]]"),
        pytest.param(bytes.fromhex("bf61610161629f0203ffff"), id='{_ "a": 1, "b": [_ 2, 3]}'),
    ],
)
def test_bytes_that_are_not_one_strict_cbor_item_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.decode(data, what="log leaf", tags=(18,))
    assert caught.value.message == "log leaf is not valid CBOR"
    assert caught.value.reason is Reason.BAD_ENCODING


@pytest.mark.parametrize(
    ("data", "depth"),
    [
        pytest.param(b"\x81" * 16 + b"\x00", 16, id="arrays"),
        pytest.param(b"\xa1\x00" * 16 + b"\x00", 16, id="maps"),
    ],
)
def test_nesting_up_to_the_limit_decodes(data: bytes, depth: int) -> None:
    assert depth == cbor.MAX_DEPTH
    item = cbor.decode(data, what="x")
    for _ in range(depth):
        item = item[0]
    assert item == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\x00\x00", "x has trailing bytes after the CBOR item", id="two items"),
        pytest.param(b"\x80\xff", "x has trailing bytes after the CBOR item", id="array, break"),
        pytest.param(b"\x41a\x00", "x has trailing bytes after the CBOR item", id="bstr, zero"),
    ],
)
def test_trailing_bytes_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.decode(data, what="x")
    assert caught.value.message == message
    assert caught.value.reason is Reason.BAD_ENCODING


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("a0", id="text"),
        pytest.param(None, id="None"),
        pytest.param([0xA0], id="a list of ints"),
    ],
)
def test_input_that_is_not_bytes_is_refused(data: object) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.decode(data, what="registry value")  # type: ignore[arg-type]
    assert caught.value.message == "registry value must be bytes"
    assert caught.value.reason is Reason.BAD_ENCODING


# --- one byte form ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        pytest.param({3: 4, 1: 2}, "a201020304", id="map keys sorted"),
        pytest.param({"b": 1, "a": 2, 10: 3}, "a30a03616102616201", id="int key before text"),
        pytest.param({-1: 0, 0: 0}, "a200002000", id="0 before -1"),
        pytest.param(1.5, "f93e00", id="float in half precision"),
        pytest.param(100000.0, "fa47c35000", id="float in single precision"),
        pytest.param(cbor2.CBORTag(18, [b"", {}, b"", b""]), "d28440a04040", id="tag 18"),
    ],
)
def test_encoding_is_deterministic(value: object, encoded: str) -> None:
    assert cbor.encode(value).hex() == encoded


@pytest.mark.parametrize(
    ("data", "value"),
    [
        pytest.param("1801", 1, id="1 in a one-byte head"),
        pytest.param("1900ff", 255, id="255 in a two-byte head"),
        pytest.param("1b0000000000000000", 0, id="0 in an eight-byte head"),
        pytest.param("3800", -1, id="-1 in a one-byte head"),
        pytest.param("5801ff", b"\xff", id="byte string length in a one-byte head"),
        pytest.param("780161", "a", id="text length in a one-byte head"),
        pytest.param("980101", [1], id="array length in a one-byte head"),
        pytest.param("b800", {}, id="empty map in a one-byte head"),
        pytest.param("a203040102", {1: 2, 3: 4}, id="map keys in reverse order"),
        pytest.param("a2616201616102", {"a": 2, "b": 1}, id="text keys in reverse order"),
        pytest.param("fb3ff8000000000000", 1.5, id="1.5 in double precision"),
        pytest.param("fa3fc00000", 1.5, id="1.5 in single precision"),
    ],
)
def test_other_encodings_of_a_value_are_not_canonical(data: str, value: object) -> None:
    raw = bytes.fromhex(data)
    assert cbor.decode(raw, what="statement") == value  # well-formed: decode takes it
    with pytest.raises(DecodeError) as caught:
        cbor.decode_canonical(raw, what="statement")
    assert caught.value.message == "statement is not in deterministic CBOR form"
    assert caught.value.reason is Reason.NON_CANONICAL


def test_canonical_decoding_takes_the_tags_and_the_name_given() -> None:
    data = cbor2.dumps(cbor2.CBORTag(18, [1, 2]))
    assert cbor.decode_canonical(data, what="x", tags=(18,)) == cbor2.CBORTag(18, (1, 2))
    with pytest.raises(DecodeError) as caught:
        cbor.decode_canonical(data, what="trust list")
    assert caught.value.message == "trust list: CBOR tag 18 is not allowed here"
    with pytest.raises(DecodeError) as refused:
        cbor.decode_canonical(b"\x00\x00", what="trust list")
    assert refused.value.message == "trust list has trailing bytes after the CBOR item"


def test_canonical_decoding_accepts_bytes_like_input() -> None:
    data = bytearray(b"\xa2\x01\x02\x03\x04")  # bytes-like, not bytes, on purpose
    assert cbor.decode_canonical(data, what="x") == {1: 2, 3: 4}  # type: ignore[arg-type]


# --- shape helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([1, 2], id="array"),
        pytest.param(b"", id="bytes"),
        pytest.param(None, id="null"),
        pytest.param(cbor2.CBORTag(18, {}), id="tagged map"),
    ],
)
def test_expect_map_refuses_anything_but_a_map(value: object) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.expect_map(value, what="statement")
    assert caught.value.message == "statement must be a map"
    assert caught.value.reason is Reason.MALFORMED


def test_expect_map_returns_the_map() -> None:
    doc = {1: 2}
    assert cbor.expect_map(doc, what="statement") is doc


DOC = {"serial": 7, "flag": True, "name": "zj", "der": b"\x30", "ratio": 1.0}


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        pytest.param("serial", int, 7, id="int"),
        pytest.param("flag", bool, True, id="bool"),
        pytest.param("name", str, "zj", id="text"),
        pytest.param("der", bytes, b"\x30", id="bytes"),
    ],
)
def test_field_returns_a_value_of_exactly_its_kind(name: str, kind: type, expected: object) -> None:
    assert cbor.field(DOC, name, kind, what="statement") == expected


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        pytest.param("flag", int, "statement: 'flag' must be int", id="true is not the int 1"),
        pytest.param("ratio", int, "statement: 'ratio' must be int", id="1.0 is not the int 1"),
        pytest.param("serial", bool, "statement: 'serial' must be bool", id="7 is not a bool"),
        pytest.param("der", str, "statement: 'der' must be str", id="bytes are not text"),
        pytest.param("missing", int, "statement: 'missing' must be int", id="missing"),
        pytest.param(3, bytes, "statement: 3 must be bytes", id="missing int key"),
    ],
)
def test_field_refuses_another_type_or_a_missing_field(
    name: object, kind: type, message: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.field(DOC, name, kind, what="statement")
    assert caught.value.message == message
    assert caught.value.reason is Reason.MALFORMED


@pytest.mark.parametrize(
    ("doc", "keys"),
    [
        pytest.param({1: "a", 2: "b"}, (1, 2), id="int keys"),
        pytest.param({"b": 1, "a": 2}, ("a", "b"), id="text keys in any order"),
        pytest.param({}, (), id="no keys"),
    ],
)
def test_exact_keys_accepts_exactly_the_keys(doc: dict[Any, Any], keys: tuple[Any, ...]) -> None:
    cbor.exact_keys(doc, keys, what="statement")


@pytest.mark.parametrize(
    ("doc", "keys", "message"),
    [
        pytest.param({1: "a"}, (1, 2), "statement must have exactly the keys [1, 2]", id="missing"),
        pytest.param(
            {1: "a", 2: "b", 3: "c"},
            (2, 1),
            "statement must have exactly the keys [1, 2]",
            id="unknown key",
        ),
        pytest.param(
            {True: "a", 2: "b"}, (1, 2), "statement must have exactly the keys [1, 2]", id="true"
        ),
        pytest.param(
            {1: "a", 2.0: "b"}, (1, 2), "statement must have exactly the keys [1, 2]", id="2.0"
        ),
        pytest.param(
            {"b": 1, "kind": 2},
            ("kind", "a"),
            "statement must have exactly the keys ['a', 'kind']",
            id="text keys",
        ),
        pytest.param({1: "a"}, (), "statement must have exactly the keys []", id="no key expected"),
        pytest.param(
            {1: "a", "b": 2},
            (1, "b"),
            "statement must have exactly the keys [1, 'b']",
            id="keys of two types are never exact",
        ),
    ],
)
def test_exact_keys_refuses_missing_unknown_or_mistyped_keys(
    doc: dict[Any, Any], keys: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        cbor.exact_keys(doc, keys, what="statement")
    assert caught.value.message == message
    assert caught.value.reason is Reason.MALFORMED
