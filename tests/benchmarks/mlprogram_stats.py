"""FLOPs, weight bytes and the largest live activation set of an ML Program, read from its spec.

The benchmark judges the reference engine with these figures, so they are computed here from the
Core ML protobuf (via coremltools) without any of the engine's code: a bug in the engine's loader,
profiler or liveness cannot make its own yardstick agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bytes per element of the MIL protobuf data types that hold tensors.
_DTYPE_BYTES = {
    "FLOAT16": 2,
    "FLOAT32": 4,
    "FLOAT64": 8,
    "BFLOAT16": 2,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "UINT8": 1,
    "UINT16": 2,
    "UINT32": 4,
    "UINT64": 8,
    "BOOL": 1,
}

#: Op types whose arithmetic is a matrix product; everything else is comparatively negligible.
MATRIX_OPS = ("conv", "linear", "matmul", "scaled_dot_product_attention")


@dataclass(frozen=True)
class ValueInfo:
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _DTYPE_BYTES.get(self.dtype, 4)


@dataclass(frozen=True)
class OpInfo:
    type: str
    inputs: dict[str, list[str]]  # parameter -> names of the values bound to it
    outputs: tuple[str, ...]


@dataclass
class ProgramStats:
    """What the benchmark needs to know about a program, independent of any engine."""

    op_types: dict[str, int]
    matrix_flops: dict[str, float]  # per op type in MATRIX_OPS
    weight_bytes: int  # every const value (weights and op parameters)
    peak_live_bytes: int  # largest set of non-const values alive at once under ideal freeing
    peak_live_op: str  # the op during which that set is alive
    total_activation_bytes: int  # all non-const values a predict produces (what never freeing would hold)

    @property
    def flops(self) -> float:
        return float(sum(self.matrix_flops.values()))


def read_main_block(path: str | Path):
    """The main function's block of an .mlpackage's ML Program spec, its inputs and the spec."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    return function, block


def program_stats(path: str | Path) -> ProgramStats:
    """Count the matrix FLOPs, weights and the peak live activation set of `path`'s main function."""
    function, block = read_main_block(path)
    values: dict[str, ValueInfo] = {v.name: _value_info(v.type) for v in function.inputs}
    const_values: dict[str, object] = {}
    ops: list[OpInfo] = []
    weight_bytes = 0
    for op in block.operations:
        outputs = tuple(o.name for o in op.outputs)
        for out in op.outputs:
            values[out.name] = _value_info(out.type)
        if op.type == "const":
            weight_bytes += sum(values[name].nbytes for name in outputs)
            const_values[outputs[0]] = op.attributes["val"]
            continue
        inputs = {param: [b.name for b in arg.arguments if b.name] for param, arg in op.inputs.items()}
        ops.append(OpInfo(op.type, inputs, outputs))

    flops: dict[str, float] = {}
    for op in ops:
        if op.type in MATRIX_OPS:
            flops[op.type] = flops.get(op.type, 0.0) + _matrix_flops(op, values, const_values)

    peak, peak_op, total = _liveness(function, block, ops, values, set(const_values))
    counts: dict[str, int] = {}
    for op in block.operations:
        counts[op.type] = counts.get(op.type, 0) + 1
    return ProgramStats(counts, flops, weight_bytes, peak, peak_op, total)


def _value_info(value_type) -> ValueInfo:
    from coremltools.proto import MIL_pb2

    tensor = value_type.tensorType
    dims = tuple(int(d.constant.size) for d in tensor.dimensions)
    return ValueInfo(MIL_pb2.DataType.Name(tensor.dataType), dims)


def _bool_param(op: OpInfo, name: str, const_values: dict[str, object]) -> bool:
    bound = op.inputs.get(name)
    if not bound:
        return False
    val = const_values[bound[0]]
    return bool(val.immediateValue.tensor.bools.values[0])


def _matrix_flops(op: OpInfo, values: dict[str, ValueInfo], const_values: dict[str, object]) -> float:
    """Multiply-adds x 2 of one matrix op, from its input and output shapes."""
    out = values[op.outputs[0]].shape
    out_elems = float(np.prod(out, dtype=np.float64))
    if op.type == "conv":
        weight = values[op.inputs["weight"][0]].shape  # (C_out, C_in / groups, kh, kw)
        return 2.0 * out_elems * float(np.prod(weight[1:]))
    if op.type == "linear":
        weight = values[op.inputs["weight"][0]].shape  # (out, in)
        return 2.0 * out_elems * weight[1]
    if op.type == "matmul":
        x = values[op.inputs["x"][0]].shape
        k = x[-2] if _bool_param(op, "transpose_x", const_values) else x[-1]
        return 2.0 * out_elems * k
    if op.type == "scaled_dot_product_attention":
        q = values[op.inputs["query"][0]].shape  # (..., L, E)
        k = values[op.inputs["key"][0]].shape  # (..., S, E)
        v = values[op.inputs["value"][0]].shape  # (..., S, Ev)
        rows = float(np.prod(q[:-1], dtype=np.float64))
        return 2.0 * rows * k[-2] * q[-1] + 2.0 * rows * k[-2] * v[-1]
    raise ValueError(op.type)


def _liveness(function, block, ops: list[OpInfo], values: dict[str, ValueInfo], consts: set[str]):
    """Peak bytes of values alive at once if each is freed right after its last reader.

    During op i the live set is: values produced at or before i and read at or after i, with the
    function inputs born before the first op and the function outputs kept to the end.
    """
    end = len(ops)
    birth = {v.name: -1 for v in function.inputs}
    last = {v.name: -1 for v in function.inputs}
    for i, op in enumerate(ops):
        for names in op.inputs.values():
            for name in names:
                if name not in consts:
                    last[name] = i
        for name in op.outputs:
            birth[name] = i
            last.setdefault(name, i)
    for name in block.outputs:
        last[name] = end
    # sweep: +size at birth (clamped to 0), -size after last use
    delta = np.zeros(end + 2, dtype=np.int64)
    for name, born in birth.items():
        size = values[name].nbytes
        delta[max(born, 0)] += size
        delta[last[name] + 1] -= size
    live = np.cumsum(delta)[:end]
    peak_index = int(np.argmax(live))
    total = sum(values[n].nbytes for n in birth)
    return int(live[peak_index]), f"{ops[peak_index].type} #{peak_index}", total
