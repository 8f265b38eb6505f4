"""Shared pieces of the fuzz tests: bounded hypothesis settings, input mutation, the outcome check.

Every fuzz test feeds generated or mutated inputs (seeded from the project's own valid files) to a
reader and requires that it either returns or raises the project's own `BenchError`, within a time
bound (hypothesis' per-example deadline) and a memory bound (the traced heap peak; numpy reports its
buffers to tracemalloc). The run is derandomized so the default test run is reproducible; set
`BENCH_FUZZ_EXAMPLES` (examples per test) and `BENCH_FUZZ_SEED` to explore further.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bench.errors import BenchError

T = TypeVar("T", str, bytes)

#: Examples per fuzz test in the default test run (about a minute in all across the targets).
EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "250"))
#: Heap growth one input may cause (bytes).
PEAK_BYTES = 256 << 20
#: Memory budget the readers run under while fuzzing (their own checks refuse anything above it).
FUZZ_MEMORY_BUDGET = "64M"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # per input, on a shared 2-core machine
    derandomize="BENCH_FUZZ_SEED" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def loads_or_refuses(read: Callable[[], Any]) -> Any:
    """Run `read`; return its result or the `BenchError` it raised. Anything else fails the test
    (it propagates), and so does a heap peak above `PEAK_BYTES`."""
    tracemalloc.start()
    try:
        try:
            result: Any = read()
        except BenchError as error:
            assert str(error), "an error with no message"
            result = error
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"one input took {peak >> 20} MiB of heap"
    return result


def _cut(data: T, start: int, length: int) -> T:
    return data[:start] + data[start + length :]


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[T], dictionary: Sequence[T] = ()) -> T:
    """A seed with one to four mutations: a span deleted, duplicated or replaced by random content,
    a dictionary token (a keyword, a boundary number) inserted, or the tail cut off."""
    data = draw(st.sampled_from(list(seeds)))
    text = isinstance(data, str)
    fill = st.text(max_size=16) if text else st.binary(max_size=16)
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        start = draw(st.integers(0, size))
        length = draw(st.integers(0, min(64, size - start)))
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "truncate"] if dictionary else ["delete", "duplicate", "replace", "truncate"]))
        if kind == "delete":
            data = _cut(data, start, length)
        elif kind == "duplicate":
            data = data[:start] + data[start : start + length] * draw(st.integers(2, 50)) + data[start:]
        elif kind == "replace":
            data = data[:start] + draw(fill) + data[start + length :]
        elif kind == "insert":
            data = data[:start] + draw(st.sampled_from(list(dictionary))) + data[start:]
        else:
            data = data[:start]
    return data


#: Numbers at the edges of the integer types readers meet.
BOUNDARY_INTEGERS: tuple[int, ...] = (0, 1, 2, 63, 64, 65, 255, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**64 - 1)
