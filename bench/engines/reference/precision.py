"""Compute precision of the reference engine and the report of inf / nan outputs.

`fp32` holds every floating value as float32 (fp16 weights and inputs are widened). `fp16` rounds
every op's floating output through float16 the way a device computing in half precision would,
and finds the first op whose output holds inf or nan: how a user finds the fp16 overflow that the
madebyollin SDXL VAE fix exists for.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError

PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
#: What to do when an op's output holds inf or nan.
ON_NONFINITE: tuple[str, ...] = ("warn", "raise", "ignore")

FLOAT_DTYPES = frozenset({"fp16", "fp32", "fp64", "bf16"})


class NumericsWarning(RuntimeWarning):
    """An op produced inf or nan (issued once per predict, for the first such op)."""


def check_precision(precision: str) -> str:
    """Validate a precision name."""
    if precision not in PRECISIONS:
        raise BenchError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision


def default_on_nonfinite(precision: str) -> str:
    """fp16 runs exist to find overflows, so they warn by default; fp32 runs do not check."""
    return "warn" if precision == "fp16" else "ignore"


def check_on_nonfinite(value: str) -> str:
    if value not in ON_NONFINITE:
        raise BenchError(f"unknown on_nonfinite {value!r}; expected one of {', '.join(ON_NONFINITE)}")
    return value


def all_finite(array: np.ndarray) -> bool:
    """Whether an array holds no inf or nan (the numerics report's test, also inside fused steps)."""
    if array.size == 0:
        return True
    # One sum is cheaper than a boolean mask; only a non-finite sum needs the exact check
    # (a sum of finite float32 values can overflow).
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(array.sum(dtype=np.float32))):
            return True
    return bool(np.isfinite(array).all())


def round_fp16(array: np.ndarray) -> np.ndarray:
    """float32 holding the float16 rounding of `array` (overflow gives inf, as on a device)."""
    with np.errstate(over="ignore"):
        return array.astype(np.float16).astype(np.float32)


#: Op types whose float outputs hold only values of their inputs or constants (data movement,
#: selection, nearest-neighbour resampling). In fp16 mode every float value is already
#: fp16-representable, so these outputs need no rounding, and they can only hold inf / nan that an
#: input or constant held. `range_1d`, the scatters (they may add) and the bilinear resizes compute.
VALUE_PRESERVING_OPS = frozenset({
    "identity", "reshape", "reshape_like", "flatten2d", "transpose", "expand_dims", "squeeze",
    "slice_by_index", "slice_by_size", "slice_update", "crop", "split", "concat", "stack", "tile", "pad",
    "fill", "fill_like", "band_part", "reverse", "reverse_sequence", "depth_to_space", "space_to_depth",
    "pixel_shuffle", "pixel_unshuffle", "sliding_windows", "gather", "gather_along_axis", "gather_nd",
    "upsample_nearest_neighbor", "resize_nearest_neighbor", "one_hot",
})  # fmt: skip

#: Op types whose float output never has its sign bit set (bar a nan from a nan input): +0.0,
#: positive values, +inf. Their rounding skips the passes that keep signs for -0.0. (`sqrt` is not
#: here: sqrt(-0.0) is -0.0.)
NONNEGATIVE_OPS = frozenset({
    "square", "exp", "exp2", "sigmoid", "softmax", "softplus", "reduce_sum_square", "reduce_l2_norm",
})  # fmt: skip

#: Elements per block of the in-place rounding: 1 MiB of float32 plus two same-size scratch blocks
#: (exponents; signs, used only where a value rounds to zero). Measured on the 2-core box (64 MiB
#: array, issue 13): 1.0 ns per value on two threads at this size, 1.5 at 64 Ki elements (more numpy
#: calls, each taking the GIL) and 2.0 at 4 Mi (out of L2).
_ROUND_BLOCK = 1 << 18
_EXPONENT, _SIGN = np.uint32(0x7F800000), np.uint32(0x80000000)
#: float16's smallest normal, 2^-14, and a power of two past its range, 2^16, as float32.
_MIN_NORMAL, _PAST_RANGE = np.float32(2.0**-14), np.float32(2.0**16)
#: Added to a power of two's bits: multiplies it by 1.5 * 2^13 (exponent + 13, top mantissa bit set).
_SHIFT_13_HALF = np.uint32((13 << 23) | (1 << 22))
#: The bits of 2^15 with the mantissa cleared: a value below it rounds to at most 2^15, finite.
_EXPONENT_OF_2_15 = np.float32(2.0**15).view(np.uint32)
#: The bits of 2^-24, float16's smallest subnormal: a value at or above it does not round to zero.
_EXPONENT_OF_2_M24 = np.float32(2.0**-24).view(np.uint32)
FP16_MAX = 65504.0
_scratch = threading.local()  # each kernel thread's two scratch blocks, kept between calls
#: Up to this many values the plain float16 cast is the faster rounding (measured: 64 values 3 us
#: against 12 us blocked, 1024 values 7 against 13 us, 8192 values 36 against 18 us).
_CAST_MAX = 2048


def _round_block(x: np.ndarray, magic: np.ndarray, sign: np.ndarray, nonnegative: bool = False) -> bool:
    """Round float32 block `x` to float16's grid in place; True where every value is finite.

    numpy's float32 -> float16 cast is scalar code (4-18 ns per value here, slower still near
    subnormals), so the rounding is done in float32 arithmetic instead: adding M = 1.5 * 2^(e + 13),
    e the exponent of x clamped to [-14, 16] (float16's smallest normal exponent, and past its
    range), leaves the sum in M's binade whatever x's sign, with a unit in the last place of exactly
    float16's spacing at that exponent, so the hardware's round-to-nearest-even rounds x to float16's
    grid (ties to even included: M is an even number of those units; subnormals included);
    subtracting M is exact. A value that rounds to zero comes out +0.0 whatever its sign, so where
    the block holds one (|x| <= 2^-25) the sign bits are kept and put back, and a negative value
    gives -0.0 as the cast does. Past float16's range the grid is coarser than float16's, but every
    such value is over 65504 after rounding and becomes inf, as the cast gives; 65520 and up round
    to 65536 (ties to even), so they become inf too. The clamp to 2^16 also keeps M finite for the
    largest float32 values (an unclamped 2^(e + 13) overflowed to inf for x in [2^115, 2^116) and
    turned them into nan).

    Seven passes, two of them integer reads: the smallest and largest exponents tell that no value
    rounds to zero and none reaches 2^15 (the usual block), so neither the sign passes nor an
    overflow test after rounding are needed. `nonnegative` (no value has its sign bit set) skips the
    sign passes too."""
    bits = x.view(np.uint32)
    np.bitwise_and(bits, _EXPONENT, out=magic)  # 2^e as float32 (0 for subnormals, inf for inf / nan)
    small = magic.max() < _EXPONENT_OF_2_15  # every |x| < 2^15 (inf and nan have the largest exponent)
    signed_zeros = not nonnegative and magic.min() < _EXPONENT_OF_2_M24  # some value may round to a zero
    if signed_zeros:
        np.bitwise_and(bits, _SIGN, out=sign)
    m = magic.view(np.float32)
    np.clip(m, _MIN_NORMAL, _PAST_RANGE, out=m)
    magic += _SHIFT_13_HALF
    x += m
    x -= m
    if signed_zeros:
        bits |= sign
    if small or (x.max() <= FP16_MAX and x.min() >= -FP16_MAX):  # nan fails both tests
        return True
    over = np.abs(x) > FP16_MAX
    x[over] = np.copysign(np.float32(np.inf), x[over])
    return False


def _scratch_blocks() -> tuple[np.ndarray, np.ndarray]:
    blocks = getattr(_scratch, "blocks", None)
    if blocks is None:
        blocks = _scratch.blocks = (np.empty(_ROUND_BLOCK, np.uint32), np.empty(_ROUND_BLOCK, np.uint32))
    return blocks


def round_fp16_in_place(array: np.ndarray, check: bool, nonnegative: bool = False) -> bool | None:
    """Round a writeable C-contiguous float32 array through float16 in place (bit-identical to
    `round_fp16`), block by block on the kernel threads, with the finiteness check done on each
    block while it is in cache. Returns whether every value is finite when `check`, else None.
    `nonnegative`: no value has its sign bit set (an op in `NONNEGATIVE_OPS`), so no sign needs
    keeping."""
    from bench.engines.reference.ops._util import parallel_for

    flat = array.reshape(-1)
    size = flat.size
    if size <= _CAST_MAX:  # statistics, embeddings: the cast's per-value cost is less than the blocks' per-call cost
        with np.errstate(over="ignore", invalid="ignore"):
            flat[...] = flat.astype(np.float16)
        return all_finite(flat) if check else None
    finite = [True]

    def run(starts: list[int] | range) -> None:
        magic, sign = _scratch_blocks()
        for begin in starts:
            block = flat[begin : begin + _ROUND_BLOCK]
            if not _round_block(block, magic[: block.size], sign[: block.size], nonnegative):
                finite[0] = False

    if size <= _ROUND_BLOCK:  # one block, in this thread: no task list, no hand-off check
        run(range(1))
    else:
        parallel_for(run, list(range(0, size, _ROUND_BLOCK)), size)
    return finite[0] if check else None


#: `_round_block`'s M at float16's smallest normal exponent: 1.5 * 2^13 * 2^-14 = 0.75, units in the
#: last place 2^-24.
_SUBNORMAL_M = np.float32(1.5 * 2.0**13 * _MIN_NORMAL)


def round_fp16_subnormals_in_place(array: np.ndarray) -> None:
    """Round to float16's grid, in two passes instead of seven, a float32 array whose values are on
    that grid already except below its smallest normal (a float16 value times 2^-k, k >= 0: the
    product is exact in float32). Adding and subtracting M = 0.75 rounds those to nearest even on
    the 2^-24 subnormal grid and leaves every other value as it is; nothing can overflow. Only the
    sign of a zero can differ from the cast's (+0.0 for -0.0): for readers that cannot see it
    (a softmax)."""
    array += _SUBNORMAL_M
    array -= _SUBNORMAL_M


def to_compute(array: np.ndarray, precision: str, *, declared_fp16: bool = False) -> np.ndarray:
    """A floating array as the kernels see it: float32, rounded through fp16 when required."""
    array = np.asarray(array)
    if array.dtype.kind != "f":
        return array
    if precision == "fp16" or declared_fp16 or array.dtype == np.float16:
        return round_fp16(array)
    return array.astype(np.float32, copy=False)


def to_output(array: np.ndarray, precision: str) -> np.ndarray:
    """A model output as predict returns it: float32 in fp32 mode, float16 in fp16 mode."""
    if array.dtype.kind == "f":
        array = array.astype(np.float16 if precision == "fp16" else np.float32, copy=False)
    # Never hand the caller a read-only view of a weight (a const or constexpr output).
    return array if array.flags.writeable else array.copy()


@dataclass(frozen=True)
class NonFiniteOp:
    """The op whose output first held inf or nan."""

    index: int
    op_type: str
    op_name: str
    output: str
    inf_count: int
    nan_count: int
    size: int

    def describe(self) -> str:
        return (
            f"op {self.op_name!r} ({self.op_type}, #{self.index}) output {self.output!r} holds "
            f"{self.inf_count} inf and {self.nan_count} nan of {self.size} values"
        )


@dataclass
class NumericsReport:
    """Numerics of one predict: the first op with a non-finite output and how many ops had one."""

    model_path: Path
    precision: str
    first: NonFiniteOp | None = None
    nonfinite_ops: int = 0

    @property
    def ok(self) -> bool:
        return self.first is None

    def describe(self) -> str:
        if self.first is None:
            return f"{self.model_path}: every op output is finite in {self.precision}"
        return (
            f"{self.model_path}: in {self.precision}, {self.first.describe()}; "
            f"{self.nonfinite_ops} op(s) in all produced inf or nan"
        )


def nonfinite_op(index: int, op_type: str, op_name: str, output: str, array: np.ndarray) -> NonFiniteOp:
    inf_count = int(np.isinf(array).sum())
    nan_count = int(np.isnan(array).sum())
    return NonFiniteOp(index, op_type, op_name, output, inf_count, nan_count, int(array.size))


def warn_nonfinite(report: NumericsReport) -> None:
    warnings.warn(report.describe(), NumericsWarning, stacklevel=3)
