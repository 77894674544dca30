"""CertLogic expressions: the format check of the specification, and evaluation.

CertLogic is the JsonLogic dialect of the EU DCC business rules (its specification and test
suites: ehn-dcc-development/dgc-business-rules, certlogic/specification). Evaluation is the
panzi-json-logic implementation; the format check is this module's port of the reference
validator (certlogic-js src/validation/format-validator.ts), which that library lacks. Both are
run against the specification's test suites (tests/unit/health/test_certlogic.py).

A colour policy may use every operator of the specification but ``dccDateOfBirth`` and
``extractFromUVCI``: they read DCC fields that health codes do not have, and the evaluator
does not implement the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from json_logic import certLogic

TIME_UNITS = ("year", "month", "day", "hour")
_PATH = re.compile(r"^([^.]+?)(\.[^.]+?)*$")
_INFIX = (
    "===",
    "and",
    ">",
    "<",
    ">=",
    "<=",
    "in",
    "+",
    "after",
    "before",
    "not-after",
    "not-before",
)
_RANGE = ("<", ">", "<=", ">=", "after", "before", "not-after", "not-before")
NOT_IN_POLICIES = ("dccDateOfBirth", "extractFromUVCI")


@dataclass(frozen=True)
class Issue:
    """One format error: the offending (sub-)expression and what is wrong with it."""

    expr: Any
    message: str


def is_literal(value: Any) -> bool:
    """A CertLogic literal: a string, a boolean or an integer (JSON's 42.0 is the integer 42)."""
    return isinstance(value, str | bool) or _is_int(value)


def validate_format(expr: Any) -> list[Issue]:
    """Every format error of ``expr`` (empty: well formed), as the reference validator says."""
    if is_literal(expr):
        return []
    if isinstance(expr, float):
        return [Issue(expr, f"{_js_number(expr)} is a non-integer number")]
    if isinstance(expr, list):
        return [issue for item in expr for issue in validate_format(item)]
    if not isinstance(expr, dict):
        return [Issue(expr, "invalid CertLogic expression")]
    if len(expr) != 1:
        return [Issue(expr, f"expression object must have exactly one key, but it has {len(expr)}")]
    operator, values = next(iter(expr.items()))
    if operator == "var":
        return _validate_var(expr, values)
    if not isinstance(values, list):
        return [Issue(expr, 'operation not of the form { "<operator>": [ <values...> ] }')]
    check = _CHECKS.get(operator)
    if check is not None:
        return check(expr, values)
    if operator in _INFIX:
        return _validate_infix(expr, operator, values)
    return [Issue(expr, f'unrecognised operator: "{operator}"')]


def operators(expr: Any) -> set[str]:
    """The operators an expression uses (to refuse the ones policies may not use)."""
    if isinstance(expr, list):
        return {op for item in expr for op in operators(item)}
    if isinstance(expr, dict):
        return {op for key, values in expr.items() for op in {key} | operators(values)}
    return set()


def evaluate(expr: Any, data: Any) -> Any:
    """The value of a well-formed expression on ``data`` (errors are the caller's to map)."""
    return certLogic(expr, data)


def _js_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _validate_var(expr: Any, values: Any) -> list[Issue]:
    if not isinstance(values, str):
        return [Issue(expr, 'not of the form { "var": "<path>" }')]
    if values == "" or _PATH.match(values):
        return []
    return [Issue(expr, f"data access path doesn't have a valid format: {values}")]


def _exactly(expr: Any, operator: str, values: list[Any], count: int) -> list[Issue]:
    """The reference validator's arity message for operators of a fixed arity."""
    if len(values) == count:
        return []
    article = "an" if operator[0] in "aeiouAEIOU" else "a"
    operands = "value/operand" if count == 1 else "values/operands"
    return [
        Issue(
            expr,
            f'{article} "{operator}"-operation must have exactly {count} {operands}, '
            f"but it has {len(values)}",
        )
    ]


def _not_integer(expr: Any, values: list[Any], index: int, operator: str, name: str) -> list[Issue]:
    if len(values) <= index or _is_int(values[index]):
        return []
    message = (
        f'"{name}" argument (#{index + 1}) of "{operator}" must be an integer, '
        f"but it is: {values[index]}"
    )
    return [Issue(expr, message)]


def _validate_if(expr: Any, values: list[Any]) -> list[Issue]:
    return _exactly(expr, "if", values, 3) + validate_format(values[:3])


def _validate_reduce(expr: Any, values: list[Any]) -> list[Issue]:
    return _exactly(expr, "reduce", values, 3) + validate_format(values[:3])


def _validate_infix(expr: Any, operator: str, values: list[Any]) -> list[Issue]:
    issues, most = [], len(values)
    if operator == "and":
        if len(values) < 2:
            issues.append(
                Issue(
                    expr,
                    f'an "and" operation must have at least 2 operands, but it has {len(values)}',
                )
            )
    elif operator in _RANGE:
        most = 3
        if not 2 <= len(values) <= 3:
            issues.append(
                Issue(
                    expr,
                    f'an operation with operator "{operator}" must have 2 or 3 operands, '
                    f"but it has {len(values)}",
                )
            )
    else:
        most = 2
        if len(values) != 2:
            issues.append(
                Issue(
                    expr,
                    f'an operation with operator "{operator}" must have 2 operands, '
                    f"but it has {len(values)}",
                )
            )
    return issues + validate_format(values[:most])


def _validate_not(expr: Any, values: list[Any]) -> list[Issue]:
    if len(values) == 1:
        return validate_format(values[0])
    return [
        Issue(
            expr,
            "a !-operation (logical not/negation) must have exactly 1 operand, "
            f"but it has {len(values)}",
        )
    ]


def _validate_plus_time(expr: Any, values: list[Any]) -> list[Issue]:
    issues = _exactly(expr, "plusTime", values, 3) + validate_format(values[:1])
    issues += _not_integer(expr, values, 1, "plusTime", "amount")
    if len(values) > 2 and values[2] not in TIME_UNITS:
        issues.append(
            Issue(
                expr,
                f'"unit" argument (#3) of "plusTime" must be a string equal to one of '
                f"{', '.join(TIME_UNITS)}, but it is: {values[2]}",
            )
        )
    return issues


def _validate_extract_from_uvci(expr: Any, values: list[Any]) -> list[Issue]:
    issues = _exactly(expr, "extractFromUVCI", values, 2) + validate_format(values[:1])
    return issues + _not_integer(expr, values, 1, "extractFromUVCI", "index")


def _validate_dcc_date_of_birth(expr: Any, values: list[Any]) -> list[Issue]:
    return _exactly(expr, "dccDateOfBirth", values, 1) + validate_format(values[:1])


def _is_int(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS = {
    "if": _validate_if,
    "!": _validate_not,
    "plusTime": _validate_plus_time,
    "reduce": _validate_reduce,
    "extractFromUVCI": _validate_extract_from_uvci,
    "dccDateOfBirth": _validate_dcc_date_of_birth,
}
