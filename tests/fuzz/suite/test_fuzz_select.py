"""Fuzz the `-k` parser: random text, and generated expressions checked against Python's own logic."""

from __future__ import annotations

import pytest
from fuzz.fuzzing import FUZZ, loads_or_refuses
from hypothesis import example, given
from hypothesis import strategies as st

from bench.errors import SuiteError
from bench.suite import parse_filter

pytestmark = pytest.mark.fuzz

LABELS = [
    "tiny-original-fp16 reference euler-2steps",
    "tiny-split-einsum-pal4 cpu_and_ne dpmpp-20steps refiner",
    "sdxl-base-ios17 all euler-20steps img2img-0.6 reduce-memory",
]
WORDS = ["fp16", "pal4", "refiner", "euler", "cpu_and_ne", "ios17", "zz", "-", "2steps"]


@FUZZ
@given(text=st.lists(st.sampled_from(["(", ")", " ", "\t", "\n", "and", "or", "not", "fp16", "x", "é", "\x00"]), max_size=80).map("".join) | st.text(max_size=200))
@example(text="(" * 5000 + "fp16" + ")" * 5000)
@example(text="not " * 3000 + "x")
@example(text="a" * 20000)
def test_any_text_parses_or_is_refused(text: str) -> None:
    result = loads_or_refuses(lambda: parse_filter(text))
    if not isinstance(result, SuiteError):
        assert all(isinstance(result(label), bool) for label in LABELS)


def _expressions() -> st.SearchStrategy[str]:
    """Well-formed expressions of words, `and`, `or`, `not` and parentheses, nested at random."""

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(" ".join)
        return binary | inner.map("not {}".format) | inner.map("({})".format)

    return st.recursive(st.sampled_from(WORDS), extend, max_leaves=30)


def _python_value(text: str, label: str) -> bool:
    """The value Python's own parser gives `text` (the same precedence: not > and > or) with each
    word replaced by `word in label`."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    source = " ".join(t if t in ("and", "or", "not", "(", ")") else repr(t in label) for t in tokens)
    return bool(eval(source, {"__builtins__": {}}, {}))  # only True / False / and / or / not / ( )


@FUZZ
@given(text=_expressions())
@example(text="not fp16 or pal4 and not (refiner or zz)")
def test_generated_expressions_match_like_python(text: str) -> None:
    matcher = parse_filter(text)
    for label in LABELS:
        assert matcher(label) == _python_value(text, label), (text, label)
