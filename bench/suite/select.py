"""Choosing cases: pytest-like `-k` expressions and `--shard i/n`.

`-k` matches case-insensitive substrings of a case's label, combined with `and`, `or`, `not` and
parentheses. It is parsed by a small recursive-descent parser, never `eval`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.errors import SuiteError
from bench.suite.case import Case

# Anything that is not whitespace or a parenthesis is part of a word ("CPU_AND_NE", "fp16", "x4").
_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_KEYWORDS = ("and", "or", "not")

Matcher = Callable[[str], bool]


@dataclass
class _Parser:
    expression: str
    tokens: list[tuple[str, int]]  # (token, column)
    position: int = 0

    def peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def column(self) -> int:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else len(self.expression) + 1

    def take(self) -> str:
        token = self.tokens[self.position][0]
        self.position += 1
        return token

    def fail(self, what: str) -> SuiteError:
        return SuiteError(f"bad -k expression {self.expression!r}: {what} at column {self.column()}")

    # expr := or_expr ; or_expr := and_expr ('or' and_expr)* ; and_expr := not_expr ('and' not_expr)*
    def parse_or(self) -> Matcher:
        left = self.parse_and()
        while self.peek() == "or":
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda text: a(text) or b(text))(left, right)
        return left

    def parse_and(self) -> Matcher:
        left = self.parse_not()
        while self.peek() == "and":
            self.take()
            right = self.parse_not()
            left = (lambda a, b: lambda text: a(text) and b(text))(left, right)
        return left

    def parse_not(self) -> Matcher:
        if self.peek() == "not":
            self.take()
            inner = self.parse_not()
            return lambda text: not inner(text)
        return self.parse_atom()

    def parse_atom(self) -> Matcher:
        token = self.peek()
        if token is None:
            raise self.fail("expected a word or '(' but the expression ended")
        if token == "(":
            self.take()
            inner = self.parse_or()
            if self.peek() != ")":
                raise self.fail("expected ')'")
            self.take()
            return inner
        if token == ")" or token in _KEYWORDS:
            raise self.fail(f"expected a word or '(' but found {token!r}")
        word = self.take().lower()
        return lambda text: word in text


def parse_filter(expression: str) -> Matcher:
    """Compile a `-k` expression to a predicate over (lower-cased) labels."""
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
    if not tokens:
        raise SuiteError(f"bad -k expression {expression!r}: it is empty")
    parser = _Parser(expression, tokens)
    matcher = parser.parse_or()
    if parser.peek() is not None:
        raise parser.fail(f"unexpected {parser.peek()!r}")
    return matcher


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
