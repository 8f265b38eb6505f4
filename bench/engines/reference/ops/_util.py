"""Helpers shared by the kernel families: reading op parameters, float32 discipline, chunked loops.

Parameters reach a kernel as numpy arrays (0-d for scalars), `str`, or lists (variadic); these
helpers turn them into Python values once so each kernel reads like its MIL definition.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.errors import OpExecutionError, UnsupportedOpError

F32 = np.float32


def as_int(value: Any) -> int:
    """A scalar parameter as a Python int."""
    return int(np.asarray(value).reshape(()))


def as_float(value: Any) -> float:
    """A scalar parameter as a Python float (use for index math only, never for tensor arithmetic)."""
    return float(np.asarray(value).reshape(()))


def as_bool(value: Any) -> bool:
    return bool(np.asarray(value).reshape(()))


def as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.size == 1:
        item = array.reshape(()).item()
        return item.decode() if isinstance(item, bytes) else str(item)
    raise OpExecutionError(f"expected a string parameter, got {array.dtype}{list(array.shape)}")


def as_ints(value: Any) -> tuple[int, ...]:
    """A 1-D (or scalar) integer parameter as a tuple of ints."""
    if value is None:
        return ()
    return tuple(int(v) for v in np.asarray(value).reshape(-1).tolist())


def as_bools(value: Any, rank: int) -> tuple[bool, ...]:
    """A boolean mask parameter (None means all False)."""
    if value is None:
        return (False,) * rank
    return tuple(bool(v) for v in np.asarray(value).reshape(-1).tolist())


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """A possibly negative axis as a non-negative one, or an error naming it."""
    if not -rank <= axis < max(rank, 1):
        raise OpExecutionError(f"{what} {axis} is out of range for a rank-{rank} input")
    return axis + rank if axis < 0 else axis


def norm_axes(axes: Any, rank: int, what: str = "axes") -> tuple[int, ...]:
    return tuple(norm_axis(a, rank, what) for a in as_ints(axes))


def f32(array: Any) -> np.ndarray:
    """Keep floats float32: numpy promotes to float64 in a few corners (int / int, float64 scalars)."""
    array = np.asarray(array)
    if array.dtype == np.float64 or array.dtype == np.float16:
        return array.astype(F32)
    return array


def out_dtype(op: Operation, index: int = 0) -> str:
    """The MIL dtype the program declares for output `index` (e.g. `fp32`, `int32`)."""
    return op.outputs[index].type.dtype


def unsupported(message: str) -> UnsupportedOpError:
    return UnsupportedOpError(message)


# -- elementwise chains in cache-sized chunks, spread over threads -----------------------------------
#
# A chain of numpy ufuncs over a large array walks memory once per ufunc. Running the chain over
# blocks that fit in L2 keeps the temporaries in cache, and numpy releases the GIL inside ufunc
# loops, so blocks can run on several threads (torch eager also uses every intra-op thread for
# elementwise work, and the speed target compares against it at the same thread count).

CHUNK = 1 << 17  # elements per block: 512 KiB of float32; measured on the 2-core box (1 MiB L2 per core,
# issue 13), gelu over (2, 256, 2560): 3.5 ms at this size, 5.3 ms at 1 << 15 (four times the numpy calls)
_PARALLEL_MIN = 1 << 17  # below this, thread hand-off costs more than it saves


def _default_threads() -> int:
    for name in ("BENCH_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name)
        if value and value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, os.cpu_count() or 1)


_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None
_in_pool = threading.local()  # set inside a share (pool threads, the caller's): work started there runs serially


def set_num_threads(count: int) -> None:
    """Threads the kernels compute with: the calling thread plus `count - 1` pool threads."""
    global _threads, _pool
    if count < 1:
        raise ValueError("thread count must be >= 1")
    if count != _threads and _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None
    _threads = count


def num_threads() -> int:
    return _threads


def _mark_pool_thread() -> None:
    _in_pool.active = True


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, _threads - 1), thread_name_prefix="bench-ref-kernels", initializer=_mark_pool_thread)
    return _pool


def parallel_for(run: Callable[[list[Any]], None], tasks: list[Any], size: int) -> None:
    """Call `run(share)` on about equal shares of `tasks`, one per kernel thread, and wait for all.

    The calling thread computes the first share itself (one hand-off fewer). `size` (elements
    touched, or FLOPs for a product) decides whether threads are worth their hand-off; work started
    from inside a share (in a pool thread or the caller's own) runs serially, so a nested call never
    waits for a pool thread that is busy with the outer work. numpy's
    errstate is per thread, so every share runs with floating-point warnings off (non-finite
    outputs are the interpreter's numerics report's business).
    """

    def quiet(share: list[Any]) -> None:
        with np.errstate(all="ignore"):
            run(share)

    if _threads <= 1 or size < _PARALLEL_MIN or len(tasks) < 2 or getattr(_in_pool, "active", False):
        quiet(tasks)
        return
    step = -(-len(tasks) // _threads)
    shares = [tasks[i : i + step] for i in range(0, len(tasks), step)]
    futures = [_executor().submit(quiet, share) for share in shares[1:]]
    _in_pool.active = True  # the caller's share is inside the parallel region too: no nested hand-offs
    try:
        quiet(shares[0])
    finally:
        _in_pool.active = False
        for future in futures:  # wait for every share before an error leaves: they write shared arrays
            future.exception()
    for future in futures:
        future.result()


def chunked(
    fn: Callable[..., None],
    out: np.ndarray,
    *inputs: np.ndarray,
) -> np.ndarray:
    """Run `fn(out_block, *input_blocks)` over matching flat blocks of C-contiguous arrays.

    Every array must be C-contiguous with `out.size` elements; `fn` writes its block of `out` and
    may use it as scratch. Blocks run on the kernel thread pool when the array is large.
    """
    flat_out = out.reshape(-1)
    flats = [a.reshape(-1) for a in inputs]
    size = flat_out.size

    def run(starts: list[int]) -> None:
        for begin in starts:
            end = min(begin + CHUNK, size)
            fn(flat_out[begin:end], *(f[begin:end] for f in flats))

    parallel_for(run, list(range(0, size, CHUNK)), size)
    return out


def contiguous(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array)


def size_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """FLOPs estimate of an elementwise op: one per output element."""
    return float(sum(np.asarray(o).size for o in outputs))


def scaled_size_flops(per_element: float) -> Callable[[Operation, dict[str, Any], Sequence[np.ndarray]], float]:
    """FLOPs estimate of an elementwise op costing `per_element` operations per output element."""

    def flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
        return per_element * float(np.asarray(outputs[0]).size)

    return flops
