"""Safe arithmetic: a small parser over Python's expression grammar, never ``eval``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300
MAX_ROUND_DIGITS = 100

BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
CONSTANTS = {"pi": math.pi, "e": math.e}


class CalculatorError(ValueError):
    pass


def calculate(expression: str) -> float | int:
    """The value of an arithmetic expression, or a :class:`CalculatorError` saying why not."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"Cannot parse {expression!r} as arithmetic.") from None
    value = _evaluate(tree.body)
    if isinstance(value, float) and (math.isnan(value) or abs(value) > MAX_MAGNITUDE):
        raise CalculatorError("The result is not a finite number.")
    return value


def _evaluate(node: ast.AST) -> float | int:
    match node:
        case ast.Constant(value=bool()):
            raise CalculatorError("Booleans are not numbers here.")
        case ast.Constant(value=int() | float() as number):
            return number
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in UNARY:
            return UNARY[type(op)](_evaluate(operand))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in BINARY:
            return _binary(op, _evaluate(left), _evaluate(right))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            values = [_evaluate(a) for a in args]
            if name == "round" and len(values) > 1 and abs(values[1]) > MAX_ROUND_DIGITS:
                raise CalculatorError(f"round() keeps at most {MAX_ROUND_DIGITS} digits.")
            try:
                return _real(FUNCTIONS[name](*values))
            except (ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
                raise CalculatorError(f"{name}(): {exc}") from None
    raise CalculatorError(
        "Only numbers, + - * / // % ** (or ^), parentheses, pi, e and "
        f"{', '.join(FUNCTIONS)}() are allowed."
    )


def _binary(op: ast.operator, left: float | int, right: float | int) -> float | int:
    if isinstance(op, ast.Pow) and abs(right) > MAX_EXPONENT:
        raise CalculatorError(f"Exponents are limited to ±{MAX_EXPONENT}.")
    if isinstance(op, (ast.Mult, ast.Pow)) and max(abs(left), abs(right)) > MAX_MAGNITUDE:
        raise CalculatorError("The numbers are too large.")
    try:
        result = BINARY[type(op)](left, right)
    except ZeroDivisionError:
        raise CalculatorError("Division by zero.") from None
    except OverflowError:
        raise CalculatorError("The result is too large.") from None
    if isinstance(result, int) and result.bit_length() > 1000:
        raise CalculatorError("The result is too large.")
    return _real(result)


def _real(value: object) -> float | int:
    """Only real numbers: (-8) ** 0.5 is complex in Python, and has no place here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError("The result is not a real number.")
    return value
