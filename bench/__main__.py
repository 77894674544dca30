"""Runs every benchmark module (or those named): ``python -m bench [NAME ...]``.

Each ``bench/bench_NAME.py`` exposes ``main(argv: list[str]) -> dict``; the result is written
to ``var/bench/NAME.json``. Figures are medians of repeated runs on this machine, compared with
a baseline measured in the same run; they are never asserted by the tests.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

OUT = Path("var/bench")


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or available()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"\n== bench {name} ==")
        result = module.main([a for a in argv if a.startswith("-")])
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(result, indent=2, sort_keys=True))
        print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
