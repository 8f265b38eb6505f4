"""The reference engine's in-memory form of a Core ML ML Program.

Both loaders produce this: the `.mlpackage` loader from the protobuf spec, the `.mlmodelc` loader
from the textual `model.mil`. The executor only ever sees this form, so one program read either way
computes the same thing.

Conventions:
- A tensor type is a MIL dtype name (`fp16`, `fp32`, `int32`, `bool`, `string`, `uint4`, ...) and a
  shape; a scalar has shape `()`. Unknown dimensions are `None`.
- An op input binds a parameter name to one `Arg` or, for variadic parameters (`concat.values`),
  a tuple of them. An `Arg` is either a reference to a named value (`Ref`) or an inline literal.
- Literals are numpy arrays (0-d for scalars) or, for strings, `str`.
- `const` ops carry their value in `attributes["val"]`; weights from weight.bin are already read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

#: MIL dtype name -> numpy dtype used to hold it. Sub-byte types are held unpacked as uint8 / int8.
MIL_DTYPES: dict[str, np.dtype] = {
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "fp64": np.dtype(np.float64),
    "bf16": np.dtype(np.float32),  # numpy has no bfloat16; held widened to float32
    "int4": np.dtype(np.int8),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint1": np.dtype(np.uint8),
    "uint2": np.dtype(np.uint8),
    "uint3": np.dtype(np.uint8),
    "uint4": np.dtype(np.uint8),
    "uint6": np.dtype(np.uint8),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(object),
}


@dataclass(frozen=True)
class TensorType:
    """MIL dtype name and shape of a value (shape `()` for a scalar, `None` for unknown dims)."""

    dtype: str
    shape: tuple[int | None, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return MIL_DTYPES[self.dtype]


@dataclass(frozen=True)
class Value:
    """A named value: a function input or an op output."""

    name: str
    type: TensorType


@dataclass(frozen=True)
class Ref:
    """An op argument that refers to a named value produced earlier (or a function input)."""

    name: str


Literal = Union[np.ndarray, str]
Arg = Union[Ref, Literal]
Binding = Union[Arg, tuple[Arg, ...]]


@dataclass
class Operation:
    """One MIL op: its type, its name, its bound inputs, its outputs and its attributes."""

    type: str
    name: str
    inputs: dict[str, Binding]
    outputs: tuple[Value, ...]
    attributes: dict[str, Literal] = field(default_factory=dict)

    def refs(self) -> list[str]:
        """Names of the values this op reads, in parameter order."""
        names: list[str] = []
        for binding in self.inputs.values():
            for arg in binding if isinstance(binding, tuple) else (binding,):
                if isinstance(arg, Ref):
                    names.append(arg.name)
        return names


@dataclass
class Function:
    """A MIL function: typed inputs, ops in execution order, output value names."""

    name: str
    opset: str  # e.g. "CoreML7" or "ios17"
    inputs: tuple[Value, ...]
    operations: list[Operation]
    outputs: tuple[str, ...]

    def value_types(self) -> dict[str, TensorType]:
        """Type of every named value (function inputs and op outputs)."""
        types = {v.name: v.type for v in self.inputs}
        for op in self.operations:
            types.update((v.name, v.type) for v in op.outputs)
        return types


@dataclass
class Program:
    """A whole ML Program: its functions and the metadata the file carried."""

    version: str  # "1.0", "1.3", ...
    functions: dict[str, Function]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def main(self) -> Function:
        return self.functions["main"]
