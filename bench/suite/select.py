"""Choosing cases: pytest-like `-k` expressions and `--shard i/n`.

`-k` matches case-insensitive substrings of a case's label, combined with `and`, `or`, `not` and
parentheses. It is parsed without recursion (operator precedence into postfix order, then a stack
evaluates it), so no nesting depth or expression length can overflow Python's stack; expressions
longer than `FILTER_MAX_CHARS` are refused. It is never `eval`ed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from bench.errors import SuiteError
from bench.limits import FILTER_MAX_CHARS
from bench.suite.case import Case

# Anything that is not whitespace or a parenthesis is part of a word ("CPU_AND_NE", "fp16", "x4").
_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_KEYWORDS = ("and", "or", "not")
#: Binding strength: `not` binds tightest, then `and`, then `or` (as in Python and pytest).
_PRECEDENCE = {"or": 1, "and": 2, "not": 3}

Matcher = Callable[[str], bool]


def _tokens(expression: str) -> list[tuple[str, int]]:
    """(token, 1-based column) of every word and parenthesis."""
    tokens: list[tuple[str, int]] = []
    position = 0
    stripped = expression.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space text
            raise SuiteError(f"bad -k expression {expression!r} at column {position + 1}")
        token = match.group(match.lastindex or 0)
        tokens.append((token, match.start(match.lastindex or 0) + 1))
        position = match.end()
    return tokens


def _postfix(expression: str, tokens: list[tuple[str, int]]) -> list[str]:
    """The expression in postfix order (shunting-yard); words are kept lower-cased with a "w:" tag."""

    def fail(what: str, column: int) -> SuiteError:
        return SuiteError(f"bad -k expression {expression!r}: {what} at column {column}")

    output: list[str] = []
    pending: list[tuple[str, int]] = []  # operators and '(' not yet emitted
    want_operand = True
    for token, column in tokens:
        if want_operand:
            if token in ("(", "not"):
                pending.append((token, column))
            elif token == ")" or token in _KEYWORDS:
                raise fail(f"expected a word or '(' but found {token!r}", column)
            else:
                output.append("w:" + token.lower())
                want_operand = False
        elif token in ("and", "or"):
            while pending and pending[-1][0] != "(" and _PRECEDENCE[pending[-1][0]] >= _PRECEDENCE[token]:
                output.append(pending.pop()[0])
            pending.append((token, column))
            want_operand = True
        elif token == ")":
            while pending and pending[-1][0] != "(":
                output.append(pending.pop()[0])
            if not pending:
                raise fail("unexpected ')'", column)
            pending.pop()
        else:
            raise fail(f"unexpected {token!r}", column)
    end = len(expression) + 1
    if want_operand:
        raise fail("expected a word or '(' but the expression ended", end)
    while pending:
        token, _ = pending.pop()
        if token == "(":
            raise fail("expected ')'", end)
        output.append(token)
    return output


def parse_filter(expression: str) -> Matcher:
    """Compile a `-k` expression to a predicate over (lower-cased) labels."""
    if len(expression) > FILTER_MAX_CHARS:
        raise SuiteError(
            f"bad -k expression {expression[:40]!r}...: {len(expression)} characters, over the limit of {FILTER_MAX_CHARS}"
        )
    tokens = _tokens(expression)
    if not tokens:
        raise SuiteError(f"bad -k expression {expression!r}: it is empty")
    program = _postfix(expression, tokens)

    def matches(text: str) -> bool:
        stack: list[bool] = []
        for item in program:
            if item == "not":
                stack[-1] = not stack[-1]
            elif item == "and":
                right = stack.pop()
                stack[-1] = stack[-1] and right
            elif item == "or":
                right = stack.pop()
                stack[-1] = stack[-1] or right
            else:
                stack.append(item[2:] in text)
        return stack[0]

    return matches


def filter_cases(cases: Sequence[Case], expression: str | None) -> list[Case]:
    """Cases whose label matches `expression` (all cases when it is None or blank)."""
    if expression is None:
        return list(cases)
    matcher = parse_filter(expression)
    return [case for case in cases if matcher(f"{case.label} {case.case_id}".lower())]


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` (1-based) -> (i, n); SuiteError naming the value otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise SuiteError(f"bad --shard {text!r}: expected i/n, e.g. 1/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise SuiteError(f"bad --shard {text!r}: need 1 <= i <= n")
    return index, count


def shard_cases(
    cases: Sequence[Case], index: int, count: int, costs: Mapping[str, float] | None = None
) -> list[Case]:
    """The `index`-th (1-based) of `count` disjoint shards that together cover `cases`.

    Without `costs`, every count-th case. With `costs` (case id -> expected seconds, from earlier
    results), longest-first greedy assignment to the least-loaded shard, which keeps the slowest
    shard within 4/3 of the best possible; cases with no cost count as the median known cost. Every
    machine given the same cases and costs computes the same assignment. A shard keeps the suite's
    order.
    """
    if not costs:
        return list(cases[index - 1 :: count])
    known = sorted(costs.values())
    default = known[len(known) // 2] if known else 1.0
    expected = [costs.get(case.case_id, default) for case in cases]
    loads = [0.0] * count
    owner: dict[int, int] = {}
    for position in sorted(range(len(cases)), key=lambda i: (-expected[i], i)):
        shard = min(range(count), key=lambda s: (loads[s], s))
        loads[shard] += expected[position]
        owner[position] = shard
    return [case for position, case in enumerate(cases) if owner[position] == index - 1]
