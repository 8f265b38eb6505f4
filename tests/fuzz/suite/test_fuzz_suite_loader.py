"""Fuzz the suite loader: mutated copies of the project's suites, and generated TOML tables."""

from __future__ import annotations

import math
import tempfile
from datetime import date, datetime, time
from pathlib import Path

import pytest
from fuzz.fuzzing import BOUNDARY_INTEGERS, FUZZ, loads_or_refuses, mutated
from hypothesis import example, given
from hypothesis import strategies as st

from bench.errors import SuiteError
from bench.limits import SUITE_MAX_CASES
from bench.suite import FIELDS, SUITE_KEYS, Suite, load_suite, parse_suite

pytestmark = pytest.mark.fuzz

_ROOT = Path(__file__).resolve().parents[3]
SEEDS = [path.read_text() for path in sorted((_ROOT / "suites").glob("*.toml"))]
_DIR = Path(tempfile.mkdtemp(prefix="fuzz-suites-"))
_DICTIONARY = [
    "[matrix]\n", "[defaults]\n", "[[include]]\n", "[[exclude]]\n", "[suite]\n", "= nan", "= inf", "= -inf",
    "= 1e999", "= 9223372036854775807", "= '{'", "= \"}\"", "= [", "]", "= {", "}", "= 1979-05-27T07:32:00Z",
    "steps = 1000000000\n", "timeout = nan\n", "repeats = 0\n", "init_image = '/dev/zero'\n",
    "model = '{attention}-{quantization}'\n", "[" * 200, "\"\"\"", "'''", "\\u0000", "\n", "#",
]  # fmt: skip


def _check(result: object) -> None:
    if isinstance(result, Suite):
        cases = result.cases()
        assert 0 < len(cases) <= SUITE_MAX_CASES
        for case in cases:
            assert 1 <= case.steps <= 1000 and math.isfinite(case.timeout) and case.timeout > 0
    else:
        assert isinstance(result, SuiteError), result


@FUZZ
@given(text=mutated(SEEDS, _DICTIONARY))
@example(text="[matrix]\nmodel = " + "[" * 5000 + "]" * 5000 + "\n")
@example(text="[defaults]\ntimeout = nan\n[matrix]\nmodel = ['m']\n")
@example(text="[defaults]\ninit_image = '/dev/zero'\nstrength = 0.5\n[matrix]\nmodel = ['m']\n")
def test_mutated_suite_files_load_or_are_refused(text: str) -> None:
    path = _DIR / "fuzzed.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(loads_or_refuses(lambda: load_suite(str(path))))


_SCALARS = (
    st.none() | st.booleans() | st.sampled_from(BOUNDARY_INTEGERS) | st.integers(-(2**63), 2**63 - 1)
    | st.floats() | st.text(max_size=12) | st.sampled_from(["tiny-{attention}-fp16", "CPU_AND_NE", "euler", "ORIGINAL", "m"])
    | st.dates() | st.datetimes() | st.times()
)  # fmt: skip
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
_CASE_TABLE = st.dictionaries(st.sampled_from(sorted(FIELDS)) | st.text(max_size=6), _VALUES, max_size=5)
_TABLES = st.fixed_dictionaries(
    {},
    optional={
        "suite": st.dictionaries(st.sampled_from(sorted(SUITE_KEYS)) | st.text(max_size=4), _VALUES, max_size=3),
        "defaults": _CASE_TABLE,
        "matrix": st.dictionaries(st.sampled_from(sorted(f for f, spec in FIELDS.items() if spec.axis)), st.lists(_VALUES, max_size=5) | _VALUES, max_size=5),
        "exclude": st.lists(_CASE_TABLE, max_size=3) | _VALUES,
        "include": st.lists(_CASE_TABLE, max_size=3) | _VALUES,
        "bogus": _VALUES,
    },
)


@FUZZ
@given(data=_TABLES)
@example(data={"matrix": {"model": ["m"], "seed": list(range(3000)), "steps": list(range(1, 11))}})
@example(data={"matrix": {"model": ["a{b"]}})
@example(data={"defaults": {"timeout": datetime(2020, 1, 1), "guidance": date(2020, 1, 1), "seed": time(1)}, "matrix": {"model": ["m"]}})
def test_generated_suite_tables_parse_or_are_refused(data: dict) -> None:
    _check(loads_or_refuses(lambda: parse_suite(data, _DIR / "generated.toml")))
