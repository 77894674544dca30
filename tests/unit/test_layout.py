"""The layout shows the architecture, and this test keeps it so.

Each package may import only from the layers below it (docs/architecture.md, "Packages"):

    trust                      pure core: no gRPC, no generated contract, no server
    nodes                      what every server shares; nothing of one server in particular
    nodes.provincial, gateway  the two servers: they share nodes/ and never import each other
    web                        the web fronts (the station reuses the gateway's verification)
    hcx, simulations, bench    commands, the local federation, benchmarks: on top

Every import is read from the source (including those inside functions), so a lazy import
cannot slip past. The README's "Where things are" table must name every package, and name
nothing that is not there.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SERVERS_AND_UP = ["web", "hcx", "simulations", "bench", "tests"]
# package -> what no module of it may import (a name and everything under it)
FORBIDDEN: dict[str, list[str]] = {
    "trust": [
        "grpc",
        "grpc_health",
        "healthcode",
        "prometheus_client",
        "aiohttp",
        "nodes",
        "gateway",
        *_SERVERS_AND_UP,
    ],
    "nodes": ["nodes.provincial", "gateway", *_SERVERS_AND_UP],
    "nodes.provincial": ["gateway", *_SERVERS_AND_UP],
    "gateway": ["nodes.provincial", *_SERVERS_AND_UP],
    "web": ["nodes.provincial", "hcx", "simulations", "bench", "tests"],
    "hcx": ["bench", "tests"],
    "simulations": ["bench", "tests"],
    "bench": ["tests"],  # benchmarks run what ships: the simulations' harnesses, not the tests'
}
# package -> {module of a forbidden package: the names it may import from it}: a client of a
# contract converts with that contract's converter functions (the residents' page is
# node.proto's client), and takes nothing else of that package, not even what the converter
# module itself imports.
CONVERTERS: dict[str, dict[str, tuple[str, ...]]] = {
    "web": {
        "nodes.provincial.wire": ("code_state_to_json", "declaration_to_proto", "history_to_json")
    }
}
PACKAGES = ["trust", "nodes", "gateway", "web", "hcx", "simulations", "bench"]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every name imported anywhere in ``tree``, relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _rule_for(module: str) -> str | None:
    matching = [p for p in FORBIDDEN if module == p or module.startswith(p + ".")]
    return max(matching, key=len, default=None)


def _under(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _a_converter(name: str, allowed: dict[str, tuple[str, ...]]) -> bool:
    return any(
        name == module or name in {f"{module}.{n}" for n in names}
        for module, names in allowed.items()
    )


def violations(root: Path) -> list[str]:
    found: dict[tuple[str, int, str], str] = {}  # one report per import statement and rule
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(root, path)
            rule = _rule_for(module)
            if rule is None:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in _imported(tree, module, path.name == "__init__.py"):
                if _a_converter(name, CONVERTERS.get(rule, {})):
                    continue
                for banned in FORBIDDEN[rule]:
                    if _under(name, banned):
                        where = path.relative_to(root).as_posix()
                        report = f"{where}:{line}: {rule} imports {banned} ({name})"
                        found.setdefault((where, line, banned), report)
    return sorted(found.values())


def test_no_package_imports_from_a_layer_above_or_beside_it() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("trust/view.py", "import grpc\n", "trust imports grpc"),
        ("trust/stores/etcd.py", "def f():\n    from nodes import tls\n", "trust imports nodes"),
        ("trust/pki.py", "from healthcode.v1 import common_pb2\n", "trust imports healthcode"),
        ("nodes/tls.py", "from nodes.provincial.keys import x\n", "nodes imports nodes.provincial"),
        ("nodes/tls.py", "from .provincial import keys\n", "nodes imports nodes.provincial"),
        ("nodes/provincial/main.py", "import gateway.main\n", "nodes.provincial imports gateway"),
        (
            "gateway/relay.py",
            "from nodes.provincial import y\n",
            "gateway imports nodes.provincial",
        ),
        ("web/station.py", "import hcx.cli\n", "web imports hcx"),
        (
            "web/traveller.py",
            "from nodes.provincial.stores import x\n",
            "web imports nodes.provincial",
        ),
        ("hcx/cmd_sim.py", "from bench import soak\n", "hcx imports bench"),
        ("bench/bench_registry.py", "from tests.support import x\n", "bench imports tests"),
    ],
)
def test_the_rule_finds_what_it_forbids(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    """The check can fail: each forbidden import, written into an otherwise empty copy of the
    layout, is found (relative imports and imports inside functions too)."""
    path = tmp_path / module
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in [path.parent, *path.parent.parents]:
        if parent == tmp_path:
            break
        (parent / "__init__.py").touch()
    path.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{module}:"), found
    assert f": {expected} (" in found[0], found


def test_what_is_allowed_is_not_reported(tmp_path: Path) -> None:
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "__init__.py").touch()
    (tmp_path / "gateway" / "main.py").write_text(
        "import grpc\nfrom nodes.server import build_server\nfrom trust import pki\n"
        "from gateway.relay import Relay\nfrom .feed import ViewFeed\n"
    )
    assert violations(tmp_path) == []


def test_a_client_may_import_the_contracts_converter_and_nothing_beside_it(tmp_path: Path) -> None:
    for folder in ("web", "nodes", "nodes/provincial"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").touch()
    (tmp_path / "web" / "traveller.py").write_text(
        "from nodes.provincial.wire import code_state_to_json, history_to_json\n"
        "from nodes.provincial.wirex import y\n"
        "from nodes.provincial.wire import CodeRecord\n"  # what wire itself imports
        "from nodes.provincial.wire import *\n"
        "from nodes.provincial import stores\n"
    )
    found = violations(tmp_path)
    assert [f.split(" (")[1] for f in found] == [
        "nodes.provincial.wirex)",
        "nodes.provincial.wire.CodeRecord)",
        "nodes.provincial.wire.*)",
        "nodes.provincial)",
    ], found


_README_ROW = re.compile(r"^\| (?P<paths>[^|]*`[^|]*) \| (?P<what>[^|]*) \|$", re.MULTILINE)


def _readme_rows() -> list[tuple[list[str], list[str]]]:
    """(paths, files named in the description) of each row of "Where things are"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    return [
        (re.findall(r"`([^`]+)`", row["paths"]), re.findall(r"`([\w/]+\.py)`", row["what"]))
        for row in _README_ROW.finditer(table)
    ]


def test_the_readme_table_names_every_package_and_nothing_that_is_not_there() -> None:
    rows = _readme_rows()
    listed = {path for paths, _ in rows for path in paths}
    missing = sorted(p for p in listed if not (ROOT / p).exists())
    assert missing == [], f"README names {missing}, which the tree does not hold"
    named_files = [
        f"{paths[0]}{name}" for paths, names in rows if len(paths) == 1 for name in names
    ]
    assert [f for f in named_files if not (ROOT / f).is_file()] == []
    packages = {
        f"{path.parent.relative_to(ROOT).as_posix()}/"
        for package in PACKAGES
        for path in (ROOT / package).rglob("__init__.py")
    }
    unlisted = sorted(packages - listed)
    assert unlisted == [], f"packages missing from the README's 'Where things are': {unlisted}"
    assert len(named_files) > 10, "the table was read"


def _wait_for_calls(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "wait_for"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "asyncio"
                ):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_server_bounds_a_call_with_asyncio_wait_for() -> None:
    """On Python 3.11 ``asyncio.wait_for`` returns the inner result when a cancellation meets
    an inner call that has just finished: the cancellation is lost, and a loop stopped that way
    runs on (a node's shutdown hung in CI). ``async with asyncio.timeout(...)`` does not."""
    assert _wait_for_calls(ROOT) == []


def test_the_wait_for_rule_finds_one(tmp_path: Path) -> None:
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "x.py").write_text(
        "import asyncio\nasync def f(c):\n    return await asyncio.wait_for(c, 1)\n"
    )
    assert _wait_for_calls(tmp_path) == ["gateway/x.py:3"]
