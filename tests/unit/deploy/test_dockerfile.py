"""The Dockerfile builds one image holding every hcx package, with `hcx` as entrypoint."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib

from tests.unit.deploy import deployment as d

DOCKERFILE = (d.ROOT / "Dockerfile").read_text(encoding="utf-8")
IGNORED = [
    line.strip()
    for line in (d.ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]


def copied_sources() -> list[str]:
    sources = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            sources += words[:-1]
    return sources


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    sources = copied_sources()
    assert "pyproject.toml" in sources and "deploy/init.sh" in sources, sources
    for source in sources:
        assert (d.ROOT / source).exists(), f"COPY {source}: no such path"
        for pattern in IGNORED:
            assert not fnmatch.fnmatch(source, pattern), f"{source} is excluded by {pattern}"


def test_every_python_package_of_the_project_is_copied() -> None:
    pyproject = tomllib.loads((d.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= set(copied_sources())


def test_one_image_with_hcx_as_entrypoint_run_unprivileged() -> None:
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.M)
    assert entrypoint and json.loads(entrypoint.group(1)) == ["hcx"]
    assert re.search(r"^USER hcx$", DOCKERFILE, re.M)
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert len(bases) == 1, "one ARG PYTHON_IMAGE names the base of both stages"
    assert re.fullmatch(r"python:3\.11[\w.-]*", bases[0])
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    images = {s.get("image") for s in d.hcx_services().values()}
    assert images == {d.HCX_IMAGE}
