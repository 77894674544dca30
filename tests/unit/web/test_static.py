"""The pages' files: the vendored decoder is the npm release it claims to be, no page runs
inline script (the content security policy would refuse it), and every file a page names
exists."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from web import edge

STATIC = edge.STATIC
WEB = STATIC.parent
PAGES = sorted(STATIC.glob("*.html"))


def test_the_vendored_files_match_their_recorded_digests_and_versions() -> None:
    readme = (STATIC / "vendor" / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"\| `([^`]+)`[^|]*\| \[(\w+)\][^|]*\| ([\d.]+) \|[^|]*\| `([0-9a-f]{64})` \|", readme
    )
    assert rows, "no vendored file recorded"
    lock = json.loads((WEB / "package-lock.json").read_text(encoding="utf-8"))
    manifest = json.loads((WEB / "package.json").read_text(encoding="utf-8"))
    for name, package, version, digest in rows:
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest
        assert manifest["dependencies"][package] == version  # pinned, not a range
        assert lock["packages"][f"node_modules/{package}"]["version"] == version
        assert (STATIC / "vendor" / f"{Path(name).stem}.LICENSE").exists()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_a_page_has_no_inline_script_or_style_and_names_only_files_that_exist(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no onclick= and the like
    assert "<style" not in html and " style=" not in html
    for path in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert (STATIC / path).is_file(), path
    assert '<meta name="viewport"' in html  # phone-sized screens


def test_every_word_key_a_page_uses_exists_in_both_languages() -> None:
    words = (STATIC / "i18n.js").read_text(encoding="utf-8")
    zh, en = words.split("  en: {", 1)
    keys = set()
    for page in PAGES:
        keys |= set(re.findall(r'data-t="(\w+)"', page.read_text(encoding="utf-8")))
    for script in STATIC.glob("*.js"):
        keys |= set(re.findall(r'HCX\.t\("(\w+)"', script.read_text(encoding="utf-8")))
    for key in keys:
        assert re.search(rf"\b{key}:", zh), f"{key} missing in Chinese"
        assert re.search(rf"\b{key}:", en), f"{key} missing in English"


def test_the_csp_allows_no_inline_or_eval_script() -> None:
    directives = dict(d.strip().split(" ", 1) for d in edge.CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
