"""The RFC 9162 Merkle tree agrees with the published CT vectors and refuses every bad proof."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LogTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from trust.model import Reason


def _hex(*values: str) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


# --- Published vectors --------------------------------------------------------------------------
# From transparency-dev/merkle, testonly/constants.go
# (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1): LeafInputs(), NodeHashes() and
# RootHashes(), the vectors every CT implementation shares.
LEAF_INPUTS = _hex(
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)
# NODE[level][i]: root of the perfect subtree over leaves [i * 2**level, (i + 1) * 2**level).
NODE = [
    _hex(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ),
    _hex(
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ),
    _hex(
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ),
    _hex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# ROOTS[size]: the root of the tree over LEAF_INPUTS[:size].
ROOTS = _hex(
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)
LEAVES = [leaf_hash(data) for data in LEAF_INPUTS]

# From transparency-dev/merkle, proof/verify_test.go
# (commit 02194e9afb6c1d95b5381350007963aa70fff472): inclusionProofs and consistencyProofs.
# The Go table numbers leaves from 1; the index here is its "leaf" minus one, as the Go test
# itself does.
INCLUSION_VECTORS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (
        0,
        8,
        _hex(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hex(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hex("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hex(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]
CONSISTENCY_VECTORS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        _hex(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hex(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hex(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hex(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

# From transparency-dev/merkle, proof/proof_test.go
# (commit 02a3e2029520f515596d5238c54fb0ac9e19bff4): the shapes of TestInclusion and
# TestConsistency for trees of up to 8 leaves, as node ids (level, index) into NODE. "l" is
# that file's ephemeral node of the size-7 tree, hash(i, j): the Go table marks it as a rehash
# of j = (0, 6) and i = (1, 2).
Shape = list[tuple[int, int] | str]
INCLUSION_SHAPES: list[tuple[int, int, Shape]] = [
    (0, 1, []),
    (0, 2, [(0, 1)]),
    (1, 2, [(0, 0)]),
    (1, 3, [(0, 0), (0, 2)]),
    (0, 7, [(0, 1), (1, 1), "l"]),
    (1, 7, [(0, 0), (1, 1), "l"]),
    (2, 7, [(0, 3), (1, 0), "l"]),
    (3, 7, [(0, 2), (1, 0), "l"]),
    (4, 7, [(0, 5), (0, 6), (2, 0)]),
    (5, 7, [(0, 4), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (2, 0)]),
    (2, 4, [(0, 3), (1, 0)]),
    (3, 5, [(0, 2), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (1, 0), (1, 2)]),
    (4, 6, [(0, 5), (2, 0)]),
]
CONSISTENCY_SHAPES: list[tuple[int, int, Shape]] = [
    (1, 2, [(0, 1)]),
    (1, 4, [(0, 1), (1, 1)]),
    (1, 6, [(0, 1), (1, 1), (1, 2)]),
    (2, 3, [(0, 2)]),
    (2, 8, [(1, 1), (2, 1)]),
    (3, 7, [(0, 2), (0, 3), (1, 0), "l"]),
    (4, 7, ["l"]),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)]),
    (1, 1, []),
    (2, 2, []),
    (3, 3, []),
    (4, 4, []),
    (5, 5, []),
    (7, 7, []),
    (8, 8, []),
    (2, 4, [(1, 1)]),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)]),
    (4, 6, [(1, 2)]),
    (1, 7, [(0, 1), (1, 1), "l"]),
]

# From google/certificate-transparency, python/ct/crypto/merkle_test.py
# (commit 4bfca4952a090a76a0755fb0ddc6d288088b83ed): TreeHasherTest's leaf and node vectors and
# MerkleVerifierTest's audit path of a real log entry (leaf 848049 of a tree of 3630887).
HASHER_LEAF_VECTORS = [
    ("", "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    (
        "101112131415161718191a1b1c1d1e1f",
        "3bfb960453ebaebf33727da7a1f4db38acc051d381b6da20d6d4e88f0eabfd7a",
    ),
]
HASHER_NODE_VECTOR = (
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
    "1a378704c17da31e2d05b6d121c2bb2c7d76f6ee6fa8f983e596c2d034963c57",
)
REAL_LOG_LEAF = bytes.fromhex("7a395c866d5ecdb0cccb623e011dbc392cd348d1d1d72776174e127a24b09c78")
REAL_LOG_INDEX = 848049
REAL_LOG_SIZE = 3630887
REAL_LOG_ROOT = bytes.fromhex("78316a05c9bcf14a3a4548f5b854a9adfcd46a4c034401b3ce7eb7ac2f1d0ecb")
REAL_LOG_PATH = _hex(
    "1a208aeebcd1b39fe2de247ee8db9454e1e93a312d206b87f6ca9cc6ec6f1ddd",
    "0a1b78b383f580856f433c01a5741e160d451c185910027f6cc9f828687a40c4",
    "3d1745789bc63f2da15850de1c12a5bf46ed81e1cc90f086148b1662e79aab3d",
    "9095b61e14d8990acf390905621e62b1714fb8e399fbb71de5510e0aef45affe",
    "0a332b91b8fab564e6afd1dd452449e04619b18accc0ff9aa8393cd4928451f2",
    "2336f0181d264aed6d8f3a6507ca14a8d3b3c3a23791ac263e845d208c1ee330",
    "b4ce56e300590500360c146c6452edbede25d4ed83919278749ee5dbe178e048",
    "933f6ddc848ea562e4f9c5cfb5f176941301dad0c6fdb9d1fbbe34fac1be6966",
    "b95a6222958a86f74c030be27c44f57dbe313e5e7c7f4ffb98bcbd3a03bb52f2",
    "daeeb3ce5923defd0faeb8e0c210b753b85b809445d7d3d3cd537a9aabaa9c45",
    "7fadd0a13e9138a2aa6c3fdec4e2275af233b94812784f66bcca9aa8e989f2bc",
    "1864e6ba3e32878610546539734fb5eeae2529991f130c575c73a7e25a2a7c56",
    "12842d1202b1dc6828a17ab253c02e7ce9409b5192430feba44189f39cc02d66",
    "29af64b16fa3053c13d02ac63aa75b23aa468506e44c3a2315edc85d2dc22b11",
    "b527b99934a0bd9edd154e449b0502e2c499bba783f3bc3dfe23364b6b532009",
    "4584db8ae8e351ace08e01f306378a92bfd43611714814f3d834a2842d69faa8",
    "86a9a41573b0d6e4292f01e93243d6cc65b30f06606fc6fa57390e7e90ed580f",
    "a88b98fbe84d4c6aae8db9d1605dfac059d9f03fe0fcb0d5dff1295dacba09e6",
    "06326dc617a6d1f7021dc536026dbfd5fffc6f7c5531d48ef6ccd1ed1569f2a1",
    "f41fe8fdc3a2e4e8345e30216e7ebecffee26ff266eeced208a6c2a3cf08f960",
    "40cf5bde8abb76983f3e98ba97aa36240402975674e120f234b3448911090f8d",
    "b3222dc8658538079883d980d7fdc2bef9285344ea34338968f736b04aeb387a",
)


def _from_shape(shape: Shape) -> list[bytes]:
    ephemeral_l = node_hash(NODE[1][2], NODE[0][6])
    return [ephemeral_l if isinstance(node, str) else NODE[node[0]][node[1]] for node in shape]


def _vector_tree() -> LogTree:
    return LogTree.from_leaf_hashes(LEAVES)


# --- Hashing and roots --------------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_the_empty_string() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT == ROOTS[0]
    assert root([]) == EMPTY_ROOT
    assert LogTree().root() == EMPTY_ROOT
    assert LogTree().size == 0


def test_leaf_and_node_hashes_match_the_ct_hasher_vectors() -> None:
    for data, expected in HASHER_LEAF_VECTORS:
        assert leaf_hash(bytes.fromhex(data)).hex() == expected
    left, right, expected = HASHER_NODE_VECTOR
    assert node_hash(bytes.fromhex(left), bytes.fromhex(right)).hex() == expected
    assert len(EMPTY_ROOT) == HASH_SIZE


def test_leaf_hashes_of_the_vector_inputs_are_the_published_level_zero() -> None:
    computed = [leaf_hash(data) for data in LEAF_INPUTS]
    assert computed == NODE[0]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_of_every_published_size(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size]
    assert LogTree.from_leaf_hashes(LEAVES[:size]).root() == ROOTS[size]
    assert _vector_tree().root_at(size) == ROOTS[size]


def test_perfect_subtree_roots_are_the_published_node_hashes() -> None:
    for level, nodes in enumerate(NODE):
        width = 1 << level
        for i, expected in enumerate(nodes):
            assert root(LEAVES[i * width : (i + 1) * width]) == expected


def test_log_tree_frontier_grows_leaf_by_leaf_through_the_published_roots() -> None:
    tree = LogTree()
    for size, leaf in enumerate(LEAVES, start=1):
        assert tree.append(leaf) == size - 1
        assert tree.size == size
        assert tree.root() == ROOTS[size]
    assert list(tree.leaf_hashes) == LEAVES


# --- Published proofs ---------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_published_inclusion_proof(index: int, size: int, expected: list[bytes]) -> None:
    assert inclusion_proof(LEAVES, index, size) == expected
    assert _vector_tree().inclusion_proof(index, size) == expected
    verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size])


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CONSISTENCY_VECTORS)
def test_published_consistency_proof(old_size: int, new_size: int, expected: list[bytes]) -> None:
    assert consistency_proof(LEAVES, old_size, new_size) == expected
    assert _vector_tree().consistency_proof(old_size, new_size) == expected
    verify_consistency(old_size, new_size, ROOTS[old_size], ROOTS[new_size], expected)


@pytest.mark.parametrize(("index", "size", "shape"), INCLUSION_SHAPES)
def test_inclusion_proof_has_the_published_shape(index: int, size: int, shape: Shape) -> None:
    expected = _from_shape(shape)
    assert inclusion_proof(LEAVES, index, size) == expected
    assert _vector_tree().inclusion_proof(index, size) == expected
    verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size])


@pytest.mark.parametrize(("old_size", "new_size", "shape"), CONSISTENCY_SHAPES)
def test_consistency_proof_has_the_published_shape(
    old_size: int, new_size: int, shape: Shape
) -> None:
    expected = _from_shape(shape)
    assert consistency_proof(LEAVES, old_size, new_size) == expected
    assert _vector_tree().consistency_proof(old_size, new_size) == expected
    verify_consistency(old_size, new_size, ROOTS[old_size], ROOTS[new_size], expected)


def test_audit_path_from_a_real_ct_log_verifies() -> None:
    verify_inclusion(REAL_LOG_LEAF, REAL_LOG_INDEX, REAL_LOG_SIZE, REAL_LOG_PATH, REAL_LOG_ROOT)


# --- Refusals, one row per case -----------------------------------------------------------------

_INCL_INDEX, _INCL_SIZE = 5, 8
_INCL_PROOF = INCLUSION_VECTORS[2][2]
_CONS_OLD, _CONS_NEW = 6, 8
_CONS_PROOF = CONSISTENCY_VECTORS[2][2]
_OTHER = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _flip(proof: list[bytes], position: int) -> list[bytes]:
    changed = list(proof)
    changed[position] = bytes([changed[position][0] ^ 0x08]) + changed[position][1:]
    return changed


def _incl(
    *,
    leaf: bytes = LEAVES[_INCL_INDEX],
    index: int = _INCL_INDEX,
    size: int = _INCL_SIZE,
    proof: list[bytes] = _INCL_PROOF,
    root_hash: bytes = ROOTS[_INCL_SIZE],
) -> Callable[[], None]:
    return lambda: verify_inclusion(leaf, index, size, proof, root_hash)


def _cons(
    *,
    old: int = _CONS_OLD,
    new: int = _CONS_NEW,
    old_root: bytes = ROOTS[_CONS_OLD],
    new_root: bytes = ROOTS[_CONS_NEW],
    proof: list[bytes] = _CONS_PROOF,
) -> Callable[[], None]:
    return lambda: verify_consistency(old, new, old_root, new_root, proof)


REFUSALS = [
    # Inclusion: the published proof of leaf 5 in the tree of 8, with one thing wrong.
    pytest.param(
        _incl(proof=_flip(_INCL_PROOF, 0)),
        "inclusion proof of leaf 5 does not lead to the root",
        id="inclusion: first proof hash flipped",
    ),
    pytest.param(
        _incl(proof=_flip(_INCL_PROOF, 2)),
        "inclusion proof of leaf 5 does not lead to the root",
        id="inclusion: last proof hash flipped",
    ),
    pytest.param(
        _incl(proof=_INCL_PROOF[:-1]),
        "inclusion proof is shorter than the path of leaf 5",
        id="inclusion: truncated proof",
    ),
    pytest.param(
        _incl(proof=[*_INCL_PROOF, _OTHER]),
        "inclusion proof is longer than the path of leaf 5",
        id="inclusion: extra hash appended",
    ),
    pytest.param(
        _incl(proof=[_OTHER, *_INCL_PROOF]),
        "inclusion proof is longer than the path of leaf 5",
        id="inclusion: extra hash prepended",
    ),
    pytest.param(
        _incl(proof=[]),
        "inclusion proof is shorter than the path of leaf 5",
        id="inclusion: empty proof",
    ),
    pytest.param(
        _incl(index=4),
        "inclusion proof of leaf 4 does not lead to the root",
        id="inclusion: wrong index (sibling)",
    ),
    pytest.param(
        _incl(index=7),
        "inclusion proof of leaf 7 does not lead to the root",
        id="inclusion: wrong index (other half)",
    ),
    pytest.param(
        _incl(index=8),
        "leaf index 8 is outside a tree of size 8",
        id="inclusion: index equal to size",
    ),
    pytest.param(
        _incl(index=-1), "leaf index -1 is outside a tree of size 8", id="inclusion: negative index"
    ),
    # Sizes 7 and 8 give leaf 5 the same path shape, so only the checkpoint that signs the
    # size with the root can tell them apart; these sizes change the shape.
    pytest.param(
        _incl(size=6),
        "inclusion proof is longer than the path of leaf 5",
        id="inclusion: wrong size (6 instead of 8)",
    ),
    pytest.param(
        _incl(size=16),
        "inclusion proof is shorter than the path of leaf 5",
        id="inclusion: wrong size (doubled)",
    ),
    pytest.param(
        _incl(size=4),
        "leaf index 5 is outside a tree of size 4",
        id="inclusion: wrong size (halved)",
    ),
    pytest.param(
        _incl(size=0, index=0, proof=[]),
        "leaf index 0 is outside a tree of size 0",
        id="inclusion: empty tree",
    ),
    pytest.param(
        _incl(leaf=LEAVES[4]),
        "inclusion proof of leaf 5 does not lead to the root",
        id="inclusion: wrong leaf",
    ),
    pytest.param(
        _incl(root_hash=ROOTS[7]),
        "inclusion proof of leaf 5 does not lead to the root",
        id="inclusion: root of another size",
    ),
    pytest.param(
        _incl(root_hash=EMPTY_ROOT),
        "inclusion proof of leaf 5 does not lead to the root",
        id="inclusion: empty root",
    ),
    pytest.param(
        _incl(root_hash=ROOTS[8][:31]), "root is 31 bytes, not 32", id="inclusion: root of 31 bytes"
    ),
    pytest.param(
        _incl(leaf=LEAVES[5] + b"\0"),
        "leaf hash is 33 bytes, not 32",
        id="inclusion: leaf hash of 33 bytes",
    ),
    pytest.param(
        _incl(leaf=b""), "leaf hash is 0 bytes, not 32", id="inclusion: leaf hash of 0 bytes"
    ),
    pytest.param(
        _incl(proof=[_INCL_PROOF[0][:31], *_INCL_PROOF[1:]]),
        "proof hash 0 is 31 bytes, not 32",
        id="inclusion: proof hash 31 bytes",
    ),
    pytest.param(
        _incl(proof=[*_INCL_PROOF[:2], b""]),
        "proof hash 2 is 0 bytes, not 32",
        id="inclusion: proof hash 0 bytes",
    ),
    # Consistency: the published proof of 6 in 8, with one thing wrong.
    pytest.param(
        _cons(proof=_flip(_CONS_PROOF, 0)),
        "consistency proof does not lead to the old root of size 6",
        id="consistency: first proof hash flipped",
    ),
    pytest.param(
        _cons(proof=_flip(_CONS_PROOF, 2)),
        "consistency proof does not lead to the old root of size 6",
        id="consistency: last proof hash flipped",
    ),
    pytest.param(
        _cons(proof=_CONS_PROOF[:-1]),
        "consistency proof of 6 with 8 is too short",
        id="consistency: truncated proof",
    ),
    pytest.param(
        _cons(proof=[*_CONS_PROOF, _OTHER]),
        "consistency proof of 6 with 8 is too long",
        id="consistency: extra hash appended",
    ),
    pytest.param(
        _cons(proof=[_CONS_PROOF[0], *_CONS_PROOF]),
        "consistency proof of 6 with 8 is too long",
        id="consistency: first hash repeated",
    ),
    pytest.param(
        _cons(proof=[]),
        "consistency proof of 6 with 8 is empty",
        id="consistency: empty proof for 6 -> 8",
    ),
    pytest.param(
        _cons(old_root=ROOTS[8], new_root=ROOTS[6]),
        "consistency proof does not lead to the old root of size 6",
        id="consistency: swapped roots",
    ),
    pytest.param(
        _cons(old_root=ROOTS[5]),
        "consistency proof does not lead to the old root of size 6",
        id="consistency: wrong old root",
    ),
    pytest.param(
        _cons(new_root=ROOTS[7]),
        "consistency proof does not lead to the new root of size 8",
        id="consistency: wrong new root",
    ),
    pytest.param(
        _cons(old=5), "consistency proof of 5 with 8 is too short", id="consistency: wrong old size"
    ),
    pytest.param(
        _cons(new=9),
        "consistency proof of 6 with 9 is too short",
        id="consistency: wrong new size (9 instead of 8)",
    ),
    pytest.param(
        _cons(new=16),
        "consistency proof of 6 with 16 is too short",
        id="consistency: new size doubled",
    ),
    pytest.param(
        _cons(old=8, new=6, old_root=ROOTS[8], new_root=ROOTS[6]),
        "old tree size 8 exceeds new size 6: logs only grow",
        id="consistency: old size > new size",
    ),
    pytest.param(
        _cons(old=8, new=6, old_root=ROOTS[8], new_root=ROOTS[6], proof=[]),
        "old tree size 8 exceeds new size 6: logs only grow",
        id="consistency: old size > new size, empty proof",
    ),
    pytest.param(
        _cons(old=-1, old_root=EMPTY_ROOT),
        "old tree size -1 is negative",
        id="consistency: negative old size",
    ),
    pytest.param(
        _cons(old=8, old_root=ROOTS[8], proof=[ROOTS[8]]),
        "consistency of size 8 with 8 needs no proof",
        id="consistency: equal sizes with a non-empty proof",
    ),
    pytest.param(
        _cons(old=8, old_root=ROOTS[7], proof=[]),
        "two different roots for tree size 8: the log forked",
        id="consistency: equal sizes, different roots",
    ),
    pytest.param(
        _cons(old=0, old_root=EMPTY_ROOT, proof=[ROOTS[8]]),
        "consistency of size 0 with 8 needs no proof",
        id="consistency: empty old tree with a non-empty proof",
    ),
    pytest.param(
        _cons(old=0, old_root=ROOTS[1], proof=[]),
        "old root of the empty tree is not SHA-256 of the empty string",
        id="consistency: empty old tree under a non-empty root",
    ),
    pytest.param(
        _cons(old_root=ROOTS[6][:31]),
        "old root is 31 bytes, not 32",
        id="consistency: old root of 31 bytes",
    ),
    pytest.param(
        _cons(new_root=ROOTS[8] + b"\0"),
        "new root is 33 bytes, not 32",
        id="consistency: new root of 33 bytes",
    ),
    pytest.param(
        _cons(proof=[*_CONS_PROOF[:2], _CONS_PROOF[2][:16]]),
        "proof hash 2 is 16 bytes, not 32",
        id="consistency: proof hash of 16 bytes",
    ),
    # Making proofs: arguments that describe no proof are refused, never an IndexError.
    pytest.param(
        lambda: inclusion_proof(LEAVES, 8, 8),
        "leaf index 8 is outside a tree of size 8",
        id="make inclusion: index equal to size",
    ),
    pytest.param(
        lambda: inclusion_proof(LEAVES, -1, 8),
        "leaf index -1 is outside a tree of size 8",
        id="make inclusion: negative index",
    ),
    pytest.param(
        lambda: inclusion_proof(LEAVES, 0, 9),
        "tree size 9 is outside 0..8",
        id="make inclusion: size beyond leaves",
    ),
    pytest.param(
        lambda: inclusion_proof(LEAVES, 0, 0),
        "leaf index 0 is outside a tree of size 0",
        id="make inclusion: empty tree",
    ),
    pytest.param(
        lambda: consistency_proof(LEAVES, 6, 5),
        "old tree size 6 is outside 0..5",
        id="make consistency: old size > new size",
    ),
    pytest.param(
        lambda: consistency_proof(LEAVES, 2, 9),
        "tree size 9 is outside 0..8",
        id="make consistency: new size beyond leaves",
    ),
    pytest.param(
        lambda: consistency_proof(LEAVES, -1, 4),
        "old tree size -1 is outside 0..4",
        id="make consistency: negative old",
    ),
    pytest.param(
        lambda: root([*LEAVES[:3], b"short"]),
        "leaf hash 3 is 5 bytes, not 32",
        id="root: leaf hash of 5 bytes",
    ),
    pytest.param(
        lambda: LogTree().append(b"short"),
        "leaf hash is 5 bytes, not 32",
        id="tree: append a 5-byte leaf hash",
    ),
    pytest.param(
        lambda: _vector_tree().root_at(9),
        "tree size 9 is outside 0..8",
        id="tree: root_at beyond size",
    ),
    pytest.param(
        lambda: _vector_tree().root_at(-1),
        "tree size -1 is outside 0..8",
        id="tree: root_at negative size",
    ),
    pytest.param(
        lambda: _vector_tree().inclusion_proof(8),
        "leaf index 8 is outside a tree of size 8",
        id="tree: inclusion of index == size",
    ),
    pytest.param(
        lambda: _vector_tree().inclusion_proof(0, 9),
        "tree size 9 is outside 0..8",
        id="tree: inclusion beyond size",
    ),
    pytest.param(
        lambda: _vector_tree().consistency_proof(9),
        "old tree size 9 is outside 0..8",
        id="tree: consistency old > size",
    ),
    pytest.param(
        lambda: _vector_tree().consistency_proof(2, 9),
        "tree size 9 is outside 0..8",
        id="tree: consistency new beyond size",
    ),
]


@pytest.mark.parametrize(("attempt", "message"), REFUSALS)
def test_refused(attempt: Callable[[], object], message: str) -> None:
    with pytest.raises(ProofError, match=f"^{re.escape(message)}$") as refused:
        attempt()
    assert refused.value.reason is Reason.LOG_INCONSISTENT


ACCEPTED_EDGES = [
    pytest.param(_cons(old=0, old_root=EMPTY_ROOT, proof=[]), id="empty old tree, empty proof"),
    pytest.param(
        _cons(old=0, new=0, old_root=EMPTY_ROOT, new_root=EMPTY_ROOT, proof=[]),
        id="empty tree with itself",
    ),
    pytest.param(_cons(old=8, old_root=ROOTS[8], proof=[]), id="equal sizes and roots"),
    pytest.param(
        _incl(index=0, size=1, proof=[], leaf=LEAVES[0], root_hash=ROOTS[1]),
        id="single leaf is its own root",
    ),
]


@pytest.mark.parametrize("attempt", ACCEPTED_EDGES)
def test_accepted_edge(attempt: Callable[[], None]) -> None:
    attempt()


def test_real_log_audit_path_refuses_a_neighbouring_index() -> None:
    with pytest.raises(ProofError):
        verify_inclusion(
            REAL_LOG_LEAF, REAL_LOG_INDEX + 1, REAL_LOG_SIZE, REAL_LOG_PATH, REAL_LOG_ROOT
        )


# --- LogTree behaviour ----------------------------------------------------------------------------


def test_copy_is_independent_of_the_original() -> None:
    original = LogTree.from_leaf_hashes(LEAVES[:5])
    twin = original.copy()
    twin.append(LEAVES[5])
    assert (original.size, original.root()) == (5, ROOTS[5])
    assert (twin.size, twin.root()) == (6, ROOTS[6])


def test_leaf_view_is_read_only_and_live() -> None:
    tree = LogTree.from_leaf_hashes(LEAVES[:2])
    view = tree.leaf_hashes
    assert not hasattr(view, "append")
    with pytest.raises(TypeError):
        view[0] = LEAVES[7]  # type: ignore[index]
    tree.append(LEAVES[2])
    assert list(view) == LEAVES[:3]
    assert view[1:] == tuple(LEAVES[1:3])


def test_default_sizes_are_the_whole_tree() -> None:
    tree = _vector_tree()
    assert tree.inclusion_proof(5) == tree.inclusion_proof(5, 8)
    assert tree.consistency_proof(6) == tree.consistency_proof(6, 8)


# --- Properties -----------------------------------------------------------------------------------


def _leaves(size: int, salt: bytes) -> list[bytes]:
    """Distinct pseudo-random leaf hashes: the salt varies the tree, the index the leaf."""
    return [leaf_hash(salt + index.to_bytes(4, "big")) for index in range(size)]


_sizes = st.integers(min_value=0, max_value=300)
_salts = st.binary(min_size=0, max_size=8)


# Checking every append against the RFC recursion is quadratic in the size: up to 70 leaves
# (seven levels) every append is checked, beyond that the final root and a past one, so that the
# test stays within pytest's time limit under the mutation run's tracing (docs/testing.md).
_EVERY_APPEND_UP_TO = 70


@settings(deadline=None, max_examples=60)
@given(size=_sizes, salt=_salts)
def test_log_tree_root_is_the_rfc_root_after_every_append(size: int, salt: bytes) -> None:
    leaves = _leaves(size, salt)
    tree = LogTree()
    for count, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        if count <= _EVERY_APPEND_UP_TO:
            assert tree.root() == root(leaves[:count])
    assert tree.root() == root(leaves)
    assert tree.root_at(size // 2) == root(leaves[: size // 2])


@settings(deadline=None, max_examples=60)
@given(size=_sizes, salt=_salts, data=st.data())
def test_every_generated_proof_verifies(size: int, salt: bytes, data: st.DataObject) -> None:
    leaves = _leaves(size, salt)
    tree = LogTree.from_leaf_hashes(leaves)
    new_root = tree.root()
    for index in range(size):
        verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index), new_root)
    for old_size in range(size + 1):
        proof = tree.consistency_proof(old_size)
        verify_consistency(old_size, size, tree.root_at(old_size), new_root, proof)
    # The cached tree and the plain recursion of the RFC produce the very same proofs.
    past = data.draw(st.integers(min_value=0, max_value=size), label="past size")
    assert tree.consistency_proof(past) == consistency_proof(leaves, past, size)
    if past > 0:
        index = data.draw(st.integers(min_value=0, max_value=past - 1), label="index")
        assert tree.inclusion_proof(index, past) == inclusion_proof(leaves, index, past)
        verify_inclusion(
            leaves[index], index, past, tree.inclusion_proof(index, past), tree.root_at(past)
        )


def _mutate(values: list[bytes], data: st.DataObject) -> list[bytes]:
    """The same values with one byte of one of them changed."""
    which = data.draw(st.integers(min_value=0, max_value=len(values) - 1), label="which hash")
    position = data.draw(st.integers(min_value=0, max_value=HASH_SIZE - 1), label="byte")
    delta = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    changed = bytearray(values[which])
    changed[position] ^= delta
    return [bytes(changed) if i == which else value for i, value in enumerate(values)]


@settings(deadline=None, max_examples=200)
@given(size=st.integers(min_value=1, max_value=300), salt=_salts, data=st.data())
def test_one_changed_byte_in_an_inclusion_proof_or_root_is_refused(
    size: int, salt: bytes, data: st.DataObject
) -> None:
    leaves = _leaves(size, salt)
    tree = LogTree.from_leaf_hashes(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    *proof, root_hash = _mutate([*tree.inclusion_proof(index), tree.root()], data)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, root_hash)


@settings(deadline=None, max_examples=200)
@given(size=st.integers(min_value=2, max_value=300), salt=_salts, data=st.data())
def test_one_changed_byte_in_a_consistency_proof_or_root_is_refused(
    size: int, salt: bytes, data: st.DataObject
) -> None:
    tree = LogTree.from_leaf_hashes(_leaves(size, salt))
    old_size = data.draw(st.integers(min_value=1, max_value=size - 1), label="old size")
    proof = tree.consistency_proof(old_size)
    *proof, old_root, new_root = _mutate([*proof, tree.root_at(old_size), tree.root()], data)
    with pytest.raises(ProofError):
        verify_consistency(old_size, size, old_root, new_root, proof)
