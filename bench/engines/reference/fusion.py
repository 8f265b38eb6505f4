"""Load-time fusion of ops that run faster together: `linear` ops that read the same input become
one wider matrix product, and attention chains (matmul, softmax, matmul) one tiled step (below).

Linears. Why: a transformer layer projects one normalised input three times (attention query, key, value),
and every cross-attention layer of a UNet projects the same text embedding for its keys and values.
Separately these are small products that BLAS runs well below its peak (2048x320x320: 122 GFLOP/s
on the 2-core box against 180 for the three as one 2048x320x960 product, issue 13). Concatenating
the weights once at load turns each group into one product; each member's output is its column
block of the result, a view that downstream reshapes and matmuls read in place.

The arithmetic per output element is unchanged (the same dot product, in BLAS's own order), so
outputs agree with the unfused ops to float32 rounding. A fused group runs where its first member
did; the other members' outputs are simply ready earlier.

The interpreter finds the groups and chains (`CompiledFunction._fuse_linears`, `_fuse_attention`);
this module holds what they become: the fused operations, their constants and their kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import num_threads, parallel_for
from bench.engines.reference.ops.attention import _softmax_into
from bench.engines.reference.ops.gemm import blasable
from bench.engines.reference.ops.gemm import matmul as product
from bench.engines.reference.ops.registry import Kernel
from bench.engines.reference.precision import all_finite, round_fp16_in_place, round_fp16_subnormals_in_place

#: A group's concatenated weights stay under this many bytes, so the copy made at load (the
#: members' own weights are freed as each group is built) never adds more than this at once.
MAX_GROUP_WEIGHT_BYTES = 256 << 20


class NonFiniteInside(Exception):
    """A fused step met inf or nan inside (fp16 mode or a checked run): the interpreter runs the
    step's original ops instead, so its numerics report names the op that made them."""


@dataclass(frozen=True)
class Member:
    """A fusable `linear`: the position of its step, its input slot, weight and bias."""

    position: int
    x_slot: int
    weight: np.ndarray  # (D_out, D_in) float32
    bias: np.ndarray | None


def fusable(op_type: str, refs: Sequence[tuple[str, int]], lists: Sequence[Any], static: dict[str, Any]) -> bool:
    """A `linear` whose only runtime input is x and whose weight (and bias) are float32 constants."""
    if op_type != "linear" or lists or [param for param, _ in refs] != ["x"]:
        return False
    weight, bias = static.get("weight"), static.get("bias")
    if not (isinstance(weight, np.ndarray) and weight.ndim == 2 and weight.dtype == np.float32):
        return False
    extra = set(static) - {"weight", "bias"}
    ok_bias = bias is None or (isinstance(bias, np.ndarray) and bias.shape == (weight.shape[0],) and bias.dtype == np.float32)
    return not extra and ok_bias


def plan_groups(members: Sequence[Member]) -> list[list[Member]]:
    """Members with the same input and width, in program order, cut so no group's weights exceed
    `MAX_GROUP_WEIGHT_BYTES`; groups of one are left out."""
    by_input: dict[tuple[int, int], list[Member]] = {}
    for member in members:
        by_input.setdefault((member.x_slot, member.weight.shape[1]), []).append(member)
    groups: list[list[Member]] = []
    for candidates in by_input.values():
        current: list[Member] = []
        size = 0
        for member in candidates:
            if current and size + member.weight.nbytes > MAX_GROUP_WEIGHT_BYTES:
                groups.append(current)
                current, size = [], 0
            current.append(member)
            size += member.weight.nbytes
        groups.append(current)
    return [group for group in groups if len(group) > 1]


def fused_op(ops: Sequence[Operation]) -> Operation:
    """The operation a fused group runs as: type `linear`, every member's outputs, a name saying so."""
    first = ops[0]
    return Operation(
        type="linear",
        name=f"{first.name} (+{len(ops) - 1} linear ops on the same input, fused)",
        inputs={"x": first.inputs["x"]},
        outputs=tuple(value for op in ops for value in op.outputs),
    )


def fused_static(members: Sequence[Member]) -> dict[str, Any]:
    """The constant arguments of a fused group: weights stacked by rows, biases (zeros where a
    member has none), the column bounds of each member's output and which members had a bias."""
    weight = np.concatenate([m.weight for m in members])
    weight.flags.writeable = False
    bias = None
    if any(m.bias is not None for m in members):
        bias = np.concatenate([m.bias if m.bias is not None else np.zeros(m.weight.shape[0], np.float32) for m in members])
        bias.flags.writeable = False
    bounds = np.cumsum([0] + [m.weight.shape[0] for m in members]).tolist()
    return {"weight": weight, "bias": bias, "bounds": bounds, "biased": [m.bias is not None for m in members]}


def linear_group(
    op: Operation,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    bounds: list[int],
    biased: list[bool],
    round_fp16: bool = False,
) -> tuple[np.ndarray, ...]:
    """x @ weight^T + bias once, returned as each member's column block (views of one result);
    `biased` only serves the FLOP count. With `round_fp16` the whole result is rounded through
    float16 here, in one dense pass (the interpreter cannot round the column views in place), and
    inf or nan in it raises `NonFiniteInside`, so the members run one by one and the numerics
    report names the member that made them."""
    x = np.asarray(x, dtype=np.float32)
    lead = x.shape[:-1]
    y = product(x.reshape(-1, x.shape[-1]), weight.T)
    if bias is not None:
        y += bias
    if round_fp16 and not round_fp16_in_place(y, True):
        raise NonFiniteInside(op.name)
    y = y.reshape(lead + (weight.shape[0],))
    return tuple(y[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:]))


def linear_group_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """As the members' own counts: 2 * output elements * D_in, plus the bias adds of members with a bias."""
    weight = np.asarray(inputs["weight"])
    sizes = [float(np.asarray(o).size) for o in outputs]
    return 2.0 * sum(sizes) * weight.shape[-1] + sum(size for size, biased in zip(sizes, inputs["biased"]) if biased)


LINEAR_GROUP = Kernel("linear", "linear", linear_group, linear_group_flops)


# -- attention chains: matmul -> softmax -> matmul ---------------------------------------------------------
#
# An attention layer converted from torch (ORIGINAL attention) computes scores = q @ k^T, softmax over
# the last axis, then probs @ v, each op materialising a (batch, heads, L, S) tensor: the biggest
# arrays of a UNet call, written and read from memory three times. Run as one step in tiles of query
# rows, a tile's scores stay in cache from the first product through the softmax to the second, and
# whole tiles go to the kernel threads. In fp16 mode each tile's scores and probabilities are rounded
# through float16 while in cache, as the unfused ops' outputs would be. Where the interpreter checks
# numerics and a tile holds inf or nan, the kernel raises `NonFiniteInside` and the interpreter runs
# the three original ops instead, so the report names the op that made them, exactly as unfused.
# Unchecked fp32 runs (nothing to round, nothing to report) scale the queries instead of the scores
# and divide the output rows by the softmax's sums instead of the probabilities. A/B in one process
# on the 2-core box, Apple's layout, (batch, heads, queries, keys, head dim): (2, 10, 2304, 2304, 64)
# 234 ms against 252 ms op by op in tiles, (2, 10, 256, 256, 64) 4.3 against 4.8 ms, 77 keys 2.0
# against 2.5 ms; outputs within 7e-7.

#: Query rows per tile at least: a (256, S) float32 score tile is 1 MiB at S = 1024 (a 32x32 latent).
ATTENTION_TILE_ROWS = 256
#: Score values per tile at most when a tile takes more rows, or more than one batch entry, than
#: `ATTENTION_TILE_ROWS` (short key sequences): 1 MiB of float32. Fewer, larger tiles mean fewer numpy
#: calls, and numpy calls on two threads contend for the GIL (measured: see `_tiles`).
ATTENTION_TILE_VALUES = 1 << 18


@dataclass(frozen=True)
class AttentionChain:
    """Positions of the chain's steps and what the fused step reads.

    The chain is matmul (scores), an optional `mul` / `real_div` of the scores by a scalar constant
    (the attention scale, where the program applies it to the scores), softmax over the last axis,
    and matmul with the probabilities either as x (probs @ v, diffusers' layout) or as a transposed
    y (v @ probs^T, Apple's ORIGINAL layout, keys and values channel-first)."""

    scores: int  # position of the first matmul
    scale: int | None  # position of the scalar mul / real_div, if any
    softmax: int
    output: int  # position of the second matmul
    q_slot: int
    k_slot: int
    v_slot: int
    transpose_q: bool
    transpose_k: bool
    transpose_v: bool
    probs_first: bool  # probs @ v' (True) or v' @ probs^T (False)
    scale_op: str | None  # "mul" or "real_div"
    scale_value: np.ndarray | None  # the 0-d constant


def attention_op(ops: Sequence[Operation], v_input: Any) -> Operation:
    """The operation a fused chain runs as: a `matmul` (its FLOPs are the two products') with the
    chain's final output and a name listing the chain's ops."""
    return Operation(
        type="matmul",
        name=" -> ".join(op.name for op in ops) + " (attention, fused)",
        inputs={"q": ops[0].inputs["x"], "k": ops[0].inputs["y"], "v": v_input},
        outputs=ops[-1].outputs,
    )


_SCALE_UFUNCS = {"mul": np.multiply, "real_div": np.divide}


def attention_chain(
    op: Operation,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    transpose_q: bool,
    transpose_k: bool,
    transpose_v: bool,
    probs_first: bool = True,
    scale_op: str | None = None,
    scale_value: np.ndarray | None = None,
    round_fp16: bool = False,
    check: bool = False,
) -> np.ndarray:
    """The chain's result over the last two dims: scores = q' @ k' (' is the optional swap of the
    last two axes each transpose flag asks for), optionally scaled, softmax over the last axis, then
    probs @ v' (`probs_first`) or v' @ probs^T; batch dims broadcast as matmul's do. With
    `round_fp16`, every intermediate is rounded through float16 as the unfused ops' outputs would be;
    with `check` (or `round_fp16`), inf or nan in one raises `NonFiniteInside`."""
    q = np.swapaxes(q, -1, -2) if transpose_q else q
    k = np.swapaxes(k, -1, -2) if transpose_k else k
    v = np.swapaxes(v, -1, -2) if transpose_v else v
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    length = q.shape[-2]
    q = np.broadcast_to(q, lead + q.shape[-2:])
    k = np.broadcast_to(k, lead + k.shape[-2:])
    v = np.broadcast_to(v, lead + v.shape[-2:])
    # probs @ v: (L, S) @ (S, Ev) -> (L, Ev); v @ probs^T: (Ev, S) @ (S, L) -> (Ev, L)
    out_shape = (length, v.shape[-1]) if probs_first else (v.shape[-2], length)
    out = np.empty(lead + out_shape, np.float32)
    scale = None if scale_op is None else (_SCALE_UFUNCS[scale_op], np.asarray(scale_value))
    tasks = _tiles(lead, length, k.shape[-1])  # k is (E, S) here
    finite = [True]
    shrinks_exactly = round_fp16 and scale is not None and _power_of_two_shrink(scale_op, scale[1])

    def settle(tile: np.ndarray, nonnegative: bool = False) -> None:
        """Round a tile through float16 (fp16 mode) and note whether it is all finite (checked runs)."""
        if round_fp16:
            if not round_fp16_in_place(tile, True, nonnegative):
                finite[0] = False
        elif check and not all_finite(tile):
            finite[0] = False

    def run_unrounded(share: list[tuple[tuple[int | slice, ...], slice]]) -> None:
        """fp32, unchecked: the scale goes on the (rows, E) query tile instead of the (rows, S)
        scores, and the softmax's division on the (rows, Ev) output instead of the probabilities:
        two passes over the scores fewer, results equal to float32 rounding."""
        for index, rows in share:
            queries = q[index + (rows,)]
            queries = blasable(queries) if scale is None else scale[0](queries, scale[1], dtype=np.float32)
            scores = np.matmul(queries, blasable(k[index]))
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            total = scores.sum(axis=-1, keepdims=True, dtype=np.float32)
            if probs_first:
                tile = out[index + (rows,)]
                np.matmul(scores, blasable(v[index]), out=tile)
                tile /= total
            else:
                tile = out[index + (slice(None), rows)]
                np.matmul(blasable(v[index]), np.swapaxes(scores, -1, -2), out=tile)
                tile /= np.swapaxes(total, -1, -2)

    def run(share: list[tuple[tuple[int | slice, ...], slice]]) -> None:
        for index, rows in share:
            scores = np.matmul(blasable(q[index + (rows,)]), blasable(k[index]))
            settle(scores)
            if scale is not None:
                scale[0](scores, scale[1], out=scores, casting="unsafe")
                if shrinks_exactly:  # rounded scores times 2^-k: on float16's grid but below its normals
                    round_fp16_subnormals_in_place(scores)
                else:
                    settle(scores)
            _softmax_into(scores, scores, scores.ndim - 1)
            settle(scores, nonnegative=True)  # probabilities
            if probs_first:
                np.matmul(scores, blasable(v[index]), out=out[index + (rows,)])
            else:
                np.matmul(blasable(v[index]), np.swapaxes(scores, -1, -2), out=out[index + (slice(None), rows)])

    parallel_for(run if round_fp16 or check else run_unrounded, tasks, int(2 * q.size * k.shape[-1]))
    if not finite[0] and (check or round_fp16):
        raise NonFiniteInside(op.name)
    return out


def _tiles(lead: tuple[int, ...], length: int, keys: int) -> list[tuple[tuple[int | slice, ...], slice]]:
    """The chain's tiles as (index into the batch dims, query rows), each thread getting at least
    one where there are enough rows: `ATTENTION_TILE_ROWS` rows, or more while a tile holds at most
    `ATTENTION_TILE_VALUES` scores; where one tile would take every row, consecutive entries of
    the last batch dim share a tile instead. Measured in fp16, 2 threads, one tile per batch entry
    instead of one per head, (batch, heads, queries, keys, head dim): the 64/128 UNet's (2, 2, 256,
    77 or 256, 64) chains 0.71x and 0.81x the time, (2, 10, 256, 77, 64) 0.46x; fp32 0.90x, 0.94x,
    0.80x (`attention_chain` A/B in one process). Whole 64/128 UNet calls: fp16 0.96x, fp32 0.98x."""
    threads = num_threads()
    entries = math.prod(lead)
    rows = max(ATTENTION_TILE_ROWS, ATTENTION_TILE_VALUES // max(keys, 1))
    if rows >= length and lead and entries >= threads:
        per_tile = max(1, min(lead[-1], ATTENTION_TILE_VALUES // max(length * keys, 1), entries // threads))
        return [
            (prefix + (slice(start, start + per_tile),), slice(0, length))
            for prefix in np.ndindex(*lead[:-1])
            for start in range(0, lead[-1], per_tile)
        ]
    if entries < threads:  # too few batch entries to go round: split the rows among the threads
        rows = min(rows, -(-length // -(-threads // entries)))
    return [(index, slice(row, row + rows)) for index in np.ndindex(*lead) for row in range(0, length, rows)]


def _power_of_two_shrink(scale_op: str | None, value: np.ndarray) -> bool:
    """Whether the scale multiplies by 2^-k, k >= 0 (`mul` by it, or `real_div` by 2^k): the usual
    1 / sqrt(64) of a 64-wide head."""
    factor = float(value) if scale_op == "mul" else 1.0 / float(value)
    mantissa, _ = math.frexp(factor)
    return 0.0 < factor <= 1.0 and mantissa == 0.5


def attention_chain_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """The two products' FLOPs, as the unfused matmuls count them: 2 L S E + 2 L S Ev per batch entry."""
    q, k = np.asarray(inputs["q"]), np.asarray(inputs["k"])
    out = np.asarray(outputs[0])
    contracted = q.shape[-2] if inputs["transpose_q"] else q.shape[-1]
    source = k.shape[-2] if inputs["transpose_k"] else k.shape[-1]
    value_width = out.shape[-1] if inputs.get("probs_first", True) else out.shape[-2]
    queries = out.size / value_width  # L per batch entry, times the batch
    return 2.0 * queries * source * contracted + 2.0 * out.size * source


ATTENTION_CHAIN = Kernel("matmul", "attention", attention_chain, attention_chain_flops)
