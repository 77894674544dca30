"""docs/security.md shows the authority table exactly as trust/authority.py defines it."""

from __future__ import annotations

from pathlib import Path

from trust.authority import authority_table_markdown

SECURITY = Path(__file__).resolve().parents[3] / "docs" / "security.md"
START = "<!-- authority-table: generated from trust/authority.py -->"
END = "<!-- end authority-table -->"


def test_the_documented_authority_table_is_the_one_the_checks_read() -> None:
    text = SECURITY.read_text(encoding="utf-8")
    documented = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert documented == authority_table_markdown(), (
        "docs/security.md's authority table differs from trust/authority.py: regenerate it "
        "with `python -c 'from trust.authority import authority_table_markdown as t; print(t())'`"
    )
