"""The CertLogic specification's own test suites, run against what colour policies use."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from nodes.provincial.health import certlogic

SUITES = Path(__file__).parent / "certlogic"
# What the evaluator does not implement, and colour policies therefore may not use:
# dccDateOfBirth (refused in policies, certlogic.NOT_IN_POLICIES) and plusTime on the partial
# dates of DCC dates of birth ("2004-01", "2004"), which health-code facts never hold.
NOT_IMPLEMENTED = {"recognising-minors-with-DCC-DOB.json"}
PARTIAL_DATES = ("should work for partial dates",)


def _assertions() -> list[Any]:
    cases = []
    for path in sorted((SUITES / "testSuite").glob("*.json")):
        if path.name.startswith("JsonLogic") or path.name in NOT_IMPLEMENTED:
            continue
        suite = json.loads(path.read_text())
        for case in suite["cases"]:
            if path.name.startswith("recognising-minors") and case["name"].startswith(
                PARTIAL_DATES
            ):
                continue
            for index, assertion in enumerate(case["assertions"]):
                expr = assertion.get("certLogicExpression", case.get("certLogicExpression"))
                name = f"{path.stem}: {case['name']} #{index}"
                cases.append(pytest.param(expr, assertion["data"], assertion["expected"], id=name))
    return cases


def _validations() -> list[Any]:
    cases = []
    for path in sorted((SUITES / "validation-testSuite").glob("*.json")):
        suite = json.loads(path.read_text())
        for index, case in enumerate(suite["cases"]):
            messages = [issue["message"] for issue in case["issues"]]
            expr = case["certLogicExpression"]
            cases.append(pytest.param(expr, messages, id=f"{path.stem} #{index}"))
    return cases


ASSERTIONS = _assertions()


def test_the_suite_is_mostly_run() -> None:
    assert len(ASSERTIONS) >= 120  # 126 of the 151 assertions; the rest are listed above


@pytest.mark.parametrize(("expr", "data", "expected"), ASSERTIONS)
def test_evaluation_matches_the_specification(expr: Any, data: Any, expected: Any) -> None:
    got = certlogic.evaluate(expr, data)
    if isinstance(got, datetime.datetime):
        got = got.isoformat()
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(("expr", "messages"), _validations())
def test_format_validation_matches_the_reference_validator(expr: Any, messages: list[str]) -> None:
    assert [issue.message for issue in certlogic.validate_format(expr)] == messages


def test_operators_of_an_expression_are_all_found() -> None:
    expr = {"if": [{"===": [{"var": "a"}, 1]}, {"!": [{"in": ["x", {"var": "b"}]}]}, False]}
    assert certlogic.operators(expr) == {"if", "===", "var", "!", "in"}
