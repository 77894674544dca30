"""docs/configuration.md is the generated reference; docs/operations.md only cites real commands."""

from __future__ import annotations

import re

import pytest

from hcx import config
from hcx.cli import build_parser
from tests.unit.deploy import deployment as d

CONFIGURATION = d.ROOT / "docs" / "configuration.md"
OPERATIONS = d.ROOT / "docs" / "operations.md"


def test_configuration_reference_is_current() -> None:
    expected = config.reference(build_parser()) + "\n"  # `print` adds the final newline
    assert CONFIGURATION.read_text(encoding="utf-8") == expected, (
        "docs/configuration.md is stale: run `hcx config-reference > docs/configuration.md` "
        "(with no HCX_* variable set: they would show up as defaults)"
    )


def test_every_option_has_a_help_text() -> None:
    missing = [
        f"hcx {' '.join(path)} {action.option_strings[-1]}"
        for path, parser in config.commands(build_parser())
        for action in config.options(parser)
        if not (action.help or "").strip()
    ]
    assert not missing, f"options without help (undocumented in docs/configuration.md): {missing}"


def test_every_variable_of_the_compose_file_is_documented() -> None:
    documented = set(re.findall(r"`(HCX_\w+)`", CONFIGURATION.read_text(encoding="utf-8")))
    operations = OPERATIONS.read_text(encoding="utf-8")
    for name, service in d.hcx_services().items():
        for variable in d.environment(service):
            if variable in d.NON_OPTION_VARIABLES:
                assert f"`{variable}`" in operations, f"{variable} missing from operations.md"
            else:
                assert variable in documented, f"{name}: {variable} not in configuration.md"


def operations_commands() -> list[list[str]]:
    # every block, run or not: a command an operator copies must at least parse
    blocks = re.findall(r"```(?:sh)?\n(.*?)```", OPERATIONS.read_text(encoding="utf-8"), re.S)
    return [argv for block in blocks for argv in d.shell_commands(block)]


def test_operations_guide_cites_only_commands_that_parse() -> None:
    commands = operations_commands()
    assert len(commands) >= 20
    for argv in commands:
        d.parse(argv)


@pytest.mark.parametrize(
    "section",
    [
        "Onboarding a new province",
        "Rotating a DSC",
        "Responding to a compromised key",
        "Adding a gateway",
        "Backing up and restoring etcd",
        "A colour change seen at a checkpoint",
        "Reading the dashboard",
    ],
)
def test_operations_guide_has_the_procedures(section: str) -> None:
    assert re.search(rf"^## .*{section}", OPERATIONS.read_text(encoding="utf-8"), re.M)


def test_onboarding_walk_through_ends_with_a_verified_cross_province_code() -> None:
    """From `node keys init` to a checkpoint of another province getting VALID."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## 1. Onboarding a new province", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    steps = [" ".join(argv[:3]) for b in blocks for argv in d.shell_commands(b)]
    order = [
        "node keys init",
        "registry onboard-province",
        "node keys issue-cert",
        "node keys new-dsc",
        "node keys upload",
        "node serve",
        "node issue",
        "checkpoint verify",
    ]
    positions = [next(i for i, s in enumerate(steps) if s.startswith(o)) for o in order]
    assert positions == sorted(positions), steps
    verify = next(
        d.parse(argv)
        for b in blocks
        for argv in d.shell_commands(b)
        if argv[:2] == ["checkpoint", "verify"]
    )
    issue = next(
        d.parse(argv)
        for b in blocks
        for argv in d.shell_commands(b)
        if argv[:2] == ["node", "issue"]
    )
    assert verify.province and issue.node
    assert "VALID" in section
