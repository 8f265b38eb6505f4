"""Input limits: how much work a model file, a suite or an expression may cause before it is refused.

Every reader checks its input against these values before doing the work they bound (reading,
tokenizing, expanding, allocating), and refuses with a one-line `BenchError` naming the file and the
key, op or line. The README's "Limits" table lists them. The fixed values are generous for real
models and suites (a compiled model keeps its large constants in weight.bin, so its `model.mil` text
holds one short line per op) and small enough that refusing costs little time or memory.

The memory budget is the configurable one: `BENCH_MEMORY_BUDGET` (bytes, or with a K / M / G / T
suffix, powers of 1024) caps any single allocation a declared shape or size asks for; by default
it is the machine's physical memory.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Iterable

from bench.errors import BenchError

MiB = 1 << 20
GiB = 1 << 30

#: Environment variable holding the memory budget.
MEMORY_BUDGET_ENV = "BENCH_MEMORY_BUDGET"

# -- model files -----------------------------------------------------------------------------------
#: Largest `model.mil` read (bytes): checked before the text is read.
MIL_MAX_FILE_BYTES = 256 * MiB
#: Longest line of `model.mil` (characters): checked before a line is tokenized.
MIL_MAX_LINE_CHARS = 1 * MiB
#: Longest statement of `model.mil` (characters from one `;`, `{` or `}` to the next): one op and
#: its inline literals, checked before they are tokenized.
MIL_MAX_STATEMENT_CHARS = 1 * MiB
#: Most elements in one inline literal of `model.mil` (large constants live in weight.bin).
MIL_MAX_LITERAL_ELEMENTS = 100_000
#: Deepest nesting of lists, typed literals and types in `model.mil`.
MIL_MAX_NESTING = 64
#: Memory one token of `model.mil` costs while parsing (bytes, an upper estimate used against the
#: memory budget: the token's text object plus its slots in the token and line tables).
MIL_TOKEN_BYTES = 96
#: Largest `Manifest.json` / `metadata.json` read from a model folder (bytes).
MODEL_JSON_MAX_BYTES = 16 * MiB
#: Largest `.mlpackage` spec (`model.mlmodel`) read (bytes); protobuf itself cannot parse 2 GiB.
SPEC_MAX_BYTES = 2 * GiB - 1
#: Largest dimension of a declared tensor shape (an int64 must hold any product of checked dims).
MAX_DIMENSION = (1 << 62) - 1

# -- suites and selection --------------------------------------------------------------------------
#: Largest suite file (bytes).
SUITE_MAX_BYTES = 1 * MiB
#: Most cases a suite may expand to, counted before `[[exclude]]` (matrix product + includes).
SUITE_MAX_CASES = 10_000
#: Denoising steps per case (SDXL's schedulers have 1000 training timesteps).
MAX_STEPS = 1000
#: Measured repeats per case.
MAX_REPEATS = 1000
#: Warm-up repeats per case.
MAX_WARMUP = 100
#: Per-case timeout (seconds): finite, positive, at most a week.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600.0
#: Longest `-k` expression (characters).
FILTER_MAX_CHARS = 10_000

# -- init images -----------------------------------------------------------------------------------
#: Largest init image file (bytes).
INIT_IMAGE_MAX_BYTES = 64 * MiB
#: Most pixels (width x height) of an init image (8192 x 8192).
INIT_IMAGE_MAX_PIXELS = 8192 * 8192

_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_BUDGET = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)


def memory_budget() -> int:
    """Bytes any single allocation driven by input may take (`BENCH_MEMORY_BUDGET`, default: RAM)."""
    text = os.environ.get(MEMORY_BUDGET_ENV)
    if text:
        match = _BUDGET.fullmatch(text)
        if match is None or int(match.group(1)) <= 0:
            raise BenchError(
                f"{MEMORY_BUDGET_ENV}={text!r}: expected a positive number of bytes, optionally with K, M, G or T"
            )
        return int(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    return _physical_memory()


@functools.lru_cache(maxsize=1)
def _physical_memory() -> int:
    """Total RAM, read once (readers ask for the budget per constant; /proc/meminfo is not free)."""
    import psutil

    return int(psutil.virtual_memory().total)


def human_bytes(count: int) -> str:
    """`count` bytes in the largest binary unit that keeps it >= 1 (for error messages)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def shape_elements(shape: Iterable[int], where: str, error: type[BenchError] = BenchError) -> int:
    """The element count of a declared shape, exact (no int64 wrap-around); refused when a dimension
    is negative or above `MAX_DIMENSION`."""
    dims = tuple(shape)
    for dim in dims:
        if not isinstance(dim, int) or dim < 0 or dim > MAX_DIMENSION:
            raise error(f"{where}: dimension {dim} of shape {list(dims)} is not an integer in [0, 2^62)")
    return math.prod(dims)


def check_allocation(nbytes: int, where: str, error: type[BenchError] = BenchError) -> int:
    """Refuse an allocation of `nbytes` above the memory budget; return `nbytes`."""
    budget = memory_budget()
    if nbytes > budget:
        raise error(
            f"{where} needs {human_bytes(nbytes)}, over the memory budget of {human_bytes(budget)} "
            f"(set {MEMORY_BUDGET_ENV} to change it)"
        )
    return nbytes


def check_tensor(shape: Iterable[int], bits: int, where: str, error: type[BenchError] = BenchError) -> int:
    """Element count of a tensor of `bits`-bit elements, refused if its bytes exceed the budget."""
    dims = tuple(shape)
    count = shape_elements(dims, where, error)
    check_allocation((count * bits + 7) // 8, f"{where}: a tensor of shape {list(dims)}", error)
    return count


def check_file_size(size: int, limit: int, what: str, error: type[BenchError] = BenchError) -> None:
    """Refuse a file of `size` bytes above `limit` (`what` names the file)."""
    if size > limit:
        raise error(f"{what} is {human_bytes(size)}, over the limit of {human_bytes(limit)}")
