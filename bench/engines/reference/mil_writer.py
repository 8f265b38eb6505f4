"""Write a `graph.Program` as `model.mil` text plus `weights/weight.bin`.

No compiler exists off macOS, so this writer is how tests (and users) build `.mlmodelc` folders
from `.mlpackage` files: `write_mlmodelc(read_mlpackage(p), out)` gives a folder the text parser
reads back into the same graph. The output follows the grammar of real compiled files
(see `mil_text`); constants of 10 or more elements go to the weight file, as coremltools does.
Function attributes (flexible-shape information) are not written.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.engines.reference.graph import (
    Binding,
    Function,
    Literal,
    Operation,
    Program,
    Ref,
    TensorType,
    default_mil_dtype,
    deployment_target,
)
from bench.engines.reference.weights import CODES_BY_DTYPE, WeightWriter

WEIGHT_PATH = "@model_path/weights/weight.bin"
MIN_BLOB_ELEMENTS = 10


def uses_old_form(version: str) -> bool:
    """`program(1.0)` (and `program(1)`) spell scalars as `tensor<T, []>`; later versions as `T`."""
    parts = version.replace(",", ".").split(".")
    return parts[0] in ("", "1") and all(p.strip() in ("", "0") for p in parts[1:])


def text_opset(opset: str) -> str:
    """Compiled files name opsets `ios15` ... `ios18`; the protobuf names them `CoreML5` ... `CoreML8`."""
    target = deployment_target(opset)
    return target.lower() if target.startswith("iOS") else opset


def write_mil_text(program: Program, weights: WeightWriter | None = None) -> str:
    """The model.mil text of `program`; large constants are appended to `weights` when given."""
    return _Writer(uses_old_form(program.version), weights).program(program)


class _Writer:
    def __init__(self, old_form: bool, weights: WeightWriter | None):
        self.old = old_form
        self.weights = weights

    def program(self, program: Program) -> str:
        lines = [f"program({program.version})"]
        build_info = program.attributes.get("buildInfo")
        if isinstance(build_info, dict):
            string_type = self.type_text(TensorType("string", ()))
            entries = ", ".join(f"{{{_quote(str(k))}, {_quote(str(v))}}}" for k, v in build_info.items())
            lines.append(f"[buildInfo = dict<{string_type}, {string_type}>({{{entries}}})]")
        lines.append("{")
        for function in program.functions.values():
            lines.extend(self.function(function))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def function(self, function: Function) -> list[str]:
        signature = ", ".join(f"{self.type_text(v.type)} {v.name}" for v in function.inputs)
        lines = [f"    func {function.name}<{text_opset(function.opset)}>({signature}) {{"]
        lines.extend(f"        {self.operation(op)}" for op in function.operations)
        lines.append(f"    }} -> ({', '.join(function.outputs)});")
        return lines

    def operation(self, op: Operation) -> str:
        outputs = [f"{self.type_text(v.type)} {v.name}" for v in op.outputs]
        target = outputs[0] if len(outputs) == 1 else f"({', '.join(outputs)})"
        args = ", ".join(f"{param} = {self.binding(op, param, op.inputs[param])}" for param in sorted(op.inputs))
        attributes = {"name": op.name, **op.attributes}
        attrs = []
        for key in sorted(attributes):
            value = attributes[key]
            if key == "name":
                dtype = "string"
            elif key == "val" and op.type == "const":
                dtype = op.outputs[0].type.dtype
            else:
                dtype = op.literal_dtypes.get(key) or default_mil_dtype(value)
            attrs.append(f"{key} = {self.literal(value, dtype)}")
        return f"{target} = {op.type}({args})[{', '.join(attrs)}];"

    def binding(self, op: Operation, param: str, binding: Binding) -> str:
        if isinstance(binding, tuple):
            items = [self.argument(op, f"{param}.{i}", arg) for i, arg in enumerate(binding)]
            return f"({', '.join(items)})"
        return self.argument(op, param, binding)

    def argument(self, op: Operation, key: str, arg: Any) -> str:
        if isinstance(arg, Ref):
            return arg.name
        return self.literal(arg, op.literal_dtypes.get(key) or default_mil_dtype(arg))

    def type_text(self, vtype: TensorType) -> str:
        if vtype.shape == () and not self.old:
            return vtype.dtype
        dims = ", ".join("?" if d is None else str(d) for d in vtype.shape)
        return f"tensor<{vtype.dtype}, [{dims}]>"

    def literal(self, value: Literal, dtype: str) -> str:
        if isinstance(value, str):
            return f"{self.type_text(TensorType('string', ()))}({_quote(value)})"
        array = np.asarray(value)
        type_text = self.type_text(TensorType(dtype, tuple(array.shape)))
        if self.weights is not None and array.size >= MIN_BLOB_ELEMENTS and dtype in CODES_BY_DTYPE:
            offset = self.weights.add(array, dtype)
            path = self.literal(WEIGHT_PATH, "string")
            offset_text = f"{self.type_text(TensorType('uint64', ()))}({offset})"
            return f"{type_text}(BLOBFILE(path = {path}, offset = {offset_text}))"
        if array.ndim == 0:
            return f"{type_text}({_scalar(array.item(), dtype)})"
        return f"{type_text}({_nested(array, dtype)})"


def _nested(array: np.ndarray, dtype: str) -> str:
    if array.ndim == 1:
        return "[" + ", ".join(_scalar(v, dtype) for v in array.tolist()) + "]"
    return "[" + ", ".join(_nested(sub, dtype) for sub in array) + "]"


def _scalar(value: Any, dtype: str) -> str:
    if dtype == "string":
        return _quote(str(value))
    if dtype == "bool":
        return "true" if value else "false"
    if isinstance(value, float) or dtype.startswith(("fp", "bf")):
        return hex_float(float(value))
    return str(int(value))


def hex_float(value: float) -> str:
    """C hex-float spelling of `value` (`0x1.388p+13`), exact for every float; `inf` / `nan` as words."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = value.hex()  # e.g. '0x1.3880000000000p+13'
    mantissa, exponent = text.split("p")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
