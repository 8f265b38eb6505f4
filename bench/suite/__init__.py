"""Suites: TOML files that expand to the cases a run measures (README "Suites").

    suite = load_suite("smoke")            # find suites/smoke.toml, validate it
    cases = plan_cases(suite.cases(), coreml_available=..., reference_fallback=suite.reference_fallback)
    cases = filter_cases(cases, "fp16 and not original")
"""

from bench.suite.case import Case
from bench.suite.fields import FIELDS, SUITE_KEYS
from bench.suite.loader import (
    DEFAULT_SUITE,
    Suite,
    available_suites,
    expand,
    find_suite,
    load_suite,
    parse_suite,
    suite_dirs,
)
from bench.suite.plan import plan_cases
from bench.suite.select import filter_cases, parse_filter, parse_shard, shard_cases

__all__ = [
    "DEFAULT_SUITE",
    "FIELDS",
    "SUITE_KEYS",
    "Case",
    "Suite",
    "available_suites",
    "expand",
    "filter_cases",
    "find_suite",
    "load_suite",
    "parse_filter",
    "parse_shard",
    "parse_suite",
    "plan_cases",
    "shard_cases",
    "suite_dirs",
]
