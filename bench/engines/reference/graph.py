"""The reference engine's in-memory form of a Core ML ML Program.

Both loaders produce this: the `.mlpackage` loader from the protobuf spec, the `.mlmodelc` loader
from the textual `model.mil`. The interpreter only ever sees this form, so one program read either way
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


Literal = np.ndarray | str
Arg = Ref | Literal
Binding = Arg | tuple[Arg, ...]


@dataclass
class Operation:
    """One MIL op: its type, its name, its bound inputs, its outputs and its attributes."""

    type: str
    name: str
    inputs: dict[str, Binding]
    outputs: tuple[Value, ...]
    attributes: dict[str, Literal] = field(default_factory=dict)
    #: MIL dtype of inline literals whose numpy form does not say it (`uint4` held as uint8,
    #: `bf16` held as float32), keyed by parameter name, or `"param.i"` inside a variadic tuple.
    literal_dtypes: dict[str, str] = field(default_factory=dict)

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
    #: Function attributes the file carried (e.g. `FlexibleShapeInformation`), decoded loosely.
    attributes: dict[str, object] = field(default_factory=dict)

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
    #: Program attributes (`buildInfo` as a dict of strings).
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def main(self) -> Function:
        return self.functions["main"]


#: Opset names as the two file forms spell them -> deployment target (`iOS15` ... `iOS18`).
OPSET_TARGETS: dict[str, str] = {
    "CoreML5": "iOS15",
    "CoreML6": "iOS16",
    "CoreML7": "iOS17",
    "CoreML8": "iOS18",
    "CoreML9": "iOS26",
    "ios15": "iOS15",
    "ios16": "iOS16",
    "ios17": "iOS17",
    "ios18": "iOS18",
    "ios26": "iOS26",
}


def deployment_target(opset: str) -> str:
    """The deployment target an opset name stands for (`CoreML7` and `ios17` are both `iOS17`)."""
    return OPSET_TARGETS.get(opset, opset)


def default_mil_dtype(value: Literal) -> str:
    """The MIL dtype a literal's numpy form implies (see `Operation.literal_dtypes` for the rest)."""
    if isinstance(value, str):
        return "string"
    kind = np.asarray(value).dtype
    for name in ("fp16", "fp32", "fp64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"):
        if MIL_DTYPES[name] == kind:
            return name
    if kind == np.dtype(object) or kind.kind in "US":
        return "string"
    raise ValueError(f"no MIL dtype for numpy dtype {kind}")


def first_difference(a: Program, b: Program) -> str | None:
    """Where two programs differ (None when equal): used to check that both loaders agree."""
    if a.version != b.version:
        return f"version {a.version!r} != {b.version!r}"
    if a.functions.keys() != b.functions.keys():
        return f"functions {sorted(a.functions)} != {sorted(b.functions)}"
    for name, fa in a.functions.items():
        fb = b.functions[name]
        where = f"function {name!r}"
        if deployment_target(fa.opset) != deployment_target(fb.opset):
            return f"{where}: opset {fa.opset!r} != {fb.opset!r}"
        if fa.inputs != fb.inputs:
            return f"{where}: inputs {fa.inputs} != {fb.inputs}"
        if fa.outputs != fb.outputs:
            return f"{where}: outputs {fa.outputs} != {fb.outputs}"
        if len(fa.operations) != len(fb.operations):
            return f"{where}: {len(fa.operations)} ops != {len(fb.operations)} ops"
        for oa, ob in zip(fa.operations, fb.operations):
            at = f"{where}, op {oa.name!r} ({oa.type})"
            if (oa.type, oa.name, oa.outputs) != (ob.type, ob.name, ob.outputs):
                return f"{at}: {(oa.type, oa.name, oa.outputs)} != {(ob.type, ob.name, ob.outputs)}"
            if oa.inputs.keys() != ob.inputs.keys():
                return f"{at}: parameters {sorted(oa.inputs)} != {sorted(ob.inputs)}"
            for param in oa.inputs:
                if not _bindings_equal(oa.inputs[param], ob.inputs[param]):
                    return f"{at}: parameter {param!r} differs"
            if oa.attributes.keys() != ob.attributes.keys():
                return f"{at}: attributes {sorted(oa.attributes)} != {sorted(ob.attributes)}"
            for key in oa.attributes:
                if not _literals_equal(oa.attributes[key], ob.attributes[key]):
                    return f"{at}: attribute {key!r} differs"
            if oa.literal_dtypes != ob.literal_dtypes:
                return f"{at}: literal dtypes {oa.literal_dtypes} != {ob.literal_dtypes}"
    return None


def _bindings_equal(a: Binding, b: Binding) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (
            isinstance(a, tuple)
            and isinstance(b, tuple)
            and len(a) == len(b)
            and all(_bindings_equal(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, Ref) or isinstance(b, Ref):
        return a == b
    return _literals_equal(a, b)


def _literals_equal(a: Literal, b: Literal) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
