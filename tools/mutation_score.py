"""Mutation testing of the security core: prepare mutmut's copy of the tree, then score its run.

    python tools/mutation_score.py prepare [--modules "trust/base45.py gateway/relay.py"]
    (cd var/mutation/work && mutmut run)
    python tools/mutation_score.py score [--fail-under 0.9]

``make mutation`` runs the three (MUTATION_MODULES is ``--modules``). mutmut works in a
``mutants/`` folder beside the pyproject.toml it reads; running it in a copy of the tree under
var/ keeps that folder out of the work tree, and keeps the code under test steady while people
go on editing. The modules are ``[tool.mutmut] only_mutate`` in pyproject.toml, the one place
they are named; ``--modules`` replaces that list in the copy only.

var/mutation/score.json holds ``killed`` (mutmut's killed and timeout: a test noticed),
``survived`` (survived, no tests, suspicious, segfault: no test failed), ``score`` =
killed / (killed + survived), ``modules``, and per file its counts and surviving mutants.
A run that did not check every mutant is refused rather than scored.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "mutation"
WORK = OUT / "work"
KILLED = frozenset({"killed", "timeout", "caught by type check"})
NOT_RUN = frozenset({"skipped"})  # mutmut's own exclusions (pragmas), in neither count
UNFINISHED = frozenset({"not checked", "check was interrupted by user"})
_ONLY_MUTATE = re.compile(r"^only_mutate\s*=\s*\[[^\]]*\]", re.M)


def configured_modules(pyproject: Path) -> list[str]:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mutmut"]
    return list(config["only_mutate"])


def tree_files() -> list[str]:
    """Files of the work tree as git sees them (tracked or new, not ignored), and the
    generated protobuf code the tests import (ignored by git, made by `make proto`)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = [f for f in listed.split("\0") if f and (ROOT / f).is_file()]
    generated = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("healthcode/v1/*_pb2*.py*"))
    if not generated:
        sys.exit("no generated protobuf code: run `make proto` first")
    return files + generated


def prepare(work: Path, modules: list[str]) -> list[str]:
    """A fresh copy of the tree in ``work`` whose pyproject names ``modules`` (if given)."""
    if work.exists():
        shutil.rmtree(work)
    for name in tree_files():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    pyproject = work / "pyproject.toml"
    if modules:
        text = pyproject.read_text(encoding="utf-8")
        listed = "only_mutate = [" + ", ".join(json.dumps(m) for m in modules) + "]"
        text, replaced = _ONLY_MUTATE.subn(listed, text, count=1)
        if replaced != 1:
            sys.exit("pyproject.toml has no [tool.mutmut] only_mutate list to replace")
        pyproject.write_text(text, encoding="utf-8")
    chosen = configured_modules(pyproject)
    for pattern in chosen:
        if not any(work.glob(pattern)):
            sys.exit(f"module {pattern!r} matches no file")
    return chosen


def mutant_statuses(work: Path) -> dict[str, dict[str, str]]:
    """mutmut's verdict of every mutant, by source file, from its mutants/*.meta files."""
    os.chdir(work)  # mutmut's modules read the pyproject.toml of the current directory
    from mutmut.stats import status_by_exit_code

    by_file: dict[str, dict[str, str]] = {}
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        source = str(meta.relative_to("mutants")).removesuffix(".meta")
        if exit_codes:
            by_file[source] = {k: status_by_exit_code[v] for k, v in exit_codes.items()}
    return by_file


def summary(statuses: dict[str, str]) -> dict[str, object]:
    counts = Counter(statuses.values())
    killed = sum(n for s, n in counts.items() if s in KILLED)
    survived = sum(n for s, n in counts.items() if s not in KILLED | NOT_RUN | UNFINISHED)
    return {
        "killed": killed,
        "survived": survived,
        "score": round(killed / (killed + survived), 4) if killed + survived else None,
        "statuses": dict(sorted(counts.items())),
    }


def score(work: Path, out: Path) -> dict[str, Any]:
    by_file = mutant_statuses(work)
    if not by_file:
        sys.exit(f"no mutmut results in {work / 'mutants'}: run `make mutation`")
    every = {k: s for statuses in by_file.values() for k, s in statuses.items()}
    unfinished = sorted(k for k, s in every.items() if s in UNFINISHED)
    if unfinished:
        sys.exit(
            f"{len(unfinished)} mutants were not checked (the run stopped early, e.g. "
            f"{unfinished[0]}): resume with `cd {work} && mutmut run`, then score again"
        )
    report: dict[str, Any] = {
        **summary(every),
        "modules": configured_modules(work / "pyproject.toml"),
        "files": {
            path: {
                **summary(statuses),
                "survivors": sorted(k for k, s in statuses.items() if s not in KILLED | NOT_RUN),
            }
            for path, statuses in by_file.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="copy the tree for mutmut; choose the modules")
    prep.add_argument("--work", type=Path, default=WORK)
    prep.add_argument(
        "--modules", default="", help="space-separated paths or globs (default: pyproject's)"
    )
    rate = commands.add_parser("score", help="read mutmut's results into score.json")
    rate.add_argument("--work", type=Path, default=WORK)
    rate.add_argument("--out", type=Path, default=OUT / "score.json")
    rate.add_argument("--fail-under", type=float, default=None, help="exit 1 below this score")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        modules = prepare(args.work.resolve(), args.modules.split())
        print(f"mutation testing {', '.join(modules)} in {args.work}")
        return 0
    report = score(args.work.resolve(), args.out.resolve())
    print(
        f"mutation score {report['score']}: {report['killed']} killed, "
        f"{report['survived']} survived ({', '.join(map(str, report['modules']))}) -> {args.out}"
    )
    below = args.fail_under is not None and (report["score"] or 0.0) < args.fail_under
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
