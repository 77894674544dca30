"""The one decoder for untrusted CBOR, and the one encoder for what hcx signs.

Every CBOR item hcx reads from outside (tokens, registry statements, log leaves and tree heads,
trust lists, persisted views) goes through :func:`decode`: exactly one item, no trailing bytes,
no duplicate map keys, no indefinite lengths, bounded nesting, and no semantic tags except the
ones the caller names (cbor2 would otherwise build datetimes, bignums, regular expressions,
UUIDs, shared references … out of hostile bytes). It raises only DecodeError: BAD_ENCODING for
bytes that are not CBOR, MALFORMED for CBOR of a shape hcx never writes (a refused tag).

:func:`encode` is deterministic (RFC 8949 §4.2.1 core deterministic encoding: shortest forms,
sorted map keys), so the same value always has the same bytes; :func:`decode_canonical`
additionally refuses any other encoding of the value (Reason.NON_CANONICAL), which is how a
signed object keeps exactly one byte form.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from typing import Any, NoReturn

import cbor2

from trust.errors import DecodeError
from trust.model import Reason

# Deep enough for any structure hcx uses, shallow enough that nesting bombs stop early.
MAX_DEPTH = 16
COSE_SIGN1_TAG = 18

# Tags cbor2 decodes natively (RFC 8949 registry entries it implements, plus its own
# extensions); each is refused unless asked for. Any other tag reaches the tag hook.
_BUILTIN_TAGS = (
    *range(0, 6),  # date/time strings and epochs, bignums, decimal fractions, bigfloats
    *range(21, 38),  # base-encoding hints, string refs, shared refs, rationals, regex, MIME, UUID
    52, 54, 100, 256, 258, 260, 261, 1004, 55799,
)  # fmt: skip


class _Refused(Exception):
    def __init__(self, tag: int) -> None:
        super().__init__(f"CBOR tag {tag} is not allowed here")
        self.tag = tag


def _refuse_tag(tag: int) -> Any:
    def refuse(*_: Any) -> NoReturn:
        raise _Refused(tag)

    return refuse


_REFUSE_BUILTINS = {tag: _refuse_tag(tag) for tag in _BUILTIN_TAGS}


def _tag_hook(allowed: Collection[int]) -> Any:
    # cbor2 6 calls hook(tag, immutable); older releases hook(decoder, tag).
    def hook(*args: Any) -> cbor2.CBORTag:
        tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
        if tag.tag not in allowed:
            raise _Refused(tag.tag)
        return tag

    return hook


_DECODERS: dict[frozenset[int], tuple[Any, dict[int, Any]]] = {}


def _decoders(tags: frozenset[int]) -> tuple[Any, dict[int, Any]]:
    """The tag hook and refusal table for ``tags``, built once (decoding is a hot path)."""
    found = _DECODERS.get(tags)
    if found is None:
        semantic = {t: f for t, f in _REFUSE_BUILTINS.items() if t not in tags}
        found = _DECODERS[tags] = (_tag_hook(tags), semantic)
    return found


def decode(data: bytes, *, what: str, tags: Collection[int] = ()) -> Any:
    """Exactly one well-formed CBOR item from ``data``; DecodeError (BAD_ENCODING) otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{what} must be bytes", reason=Reason.BAD_ENCODING)
    stream = io.BytesIO(data)
    hook, semantic = _decoders(frozenset(tags))
    decoder = cbor2.CBORDecoder(
        stream,
        tag_hook=hook,
        semantic_decoders=semantic,
        max_depth=MAX_DEPTH,
        allow_indefinite=False,
        allow_duplicate_keys=False,
    )
    try:
        item = decoder.decode()
    except Exception as e:  # cbor2 raises many types on hostile input; none may escape
        refused = next((c for c in _causes(e) if isinstance(c, _Refused)), None)
        if refused is not None:  # well-formed CBOR, but a shape hcx never writes
            raise DecodeError(f"{what}: {refused}", reason=Reason.MALFORMED) from e
        raise DecodeError(f"{what} is not valid CBOR", reason=Reason.BAD_ENCODING) from e
    if stream.tell() != len(data):
        raise DecodeError(
            f"{what} has trailing bytes after the CBOR item", reason=Reason.BAD_ENCODING
        )
    return item


def _causes(error: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while error is not None and len(chain) < MAX_DEPTH:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def encode(value: object) -> bytes:
    """Deterministic CBOR (shortest forms, map keys sorted by their encoding)."""
    return cbor2.dumps(value, canonical=True)


def decode_canonical(data: bytes, *, what: str, tags: Collection[int] = ()) -> Any:
    """:func:`decode`, and refuse any encoding of the value other than :func:`encode`'s."""
    item = decode(data, what=what, tags=tags)
    if encode(item) != bytes(data):
        raise DecodeError(f"{what} is not in deterministic CBOR form", reason=Reason.NON_CANONICAL)
    return item


def expect_map(value: object, *, what: str) -> dict[Any, Any]:
    """``value`` if it is a map; DecodeError (MALFORMED) otherwise."""
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be a map", reason=Reason.MALFORMED)
    return value


def field(doc: dict[Any, Any], name: Any, kind: type, *, what: str) -> Any:
    """``doc[name]`` of exactly type ``kind`` (a CBOR true is not the integer 1)."""
    value = doc.get(name)
    if type(value) is not kind:
        raise DecodeError(f"{what}: {name!r} must be {kind.__name__}", reason=Reason.MALFORMED)
    return value


def exact_keys(doc: dict[Any, Any], keys: Collection[Any], *, what: str) -> None:
    """Refuse a map with keys missing or unknown (an unknown key may carry a meaning)."""
    if set(doc) != set(keys) or any(type(k) is not type(next(iter(keys))) for k in doc):
        raise DecodeError(
            f"{what} must have exactly the keys {sorted(keys, key=str)}", reason=Reason.MALFORMED
        )
