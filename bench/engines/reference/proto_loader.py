"""Load an `.mlpackage` into a `graph.Program`: the protobuf spec plus `weights/weight.bin`.

The spec is parsed with coremltools' generated protobuf classes (the well-kept reader of the format);
the walk from `spec.mlProgram` to the graph is ours, so no pymil program is built and nothing is
re-evaluated per predict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.engines.reference import weights as weight_files
from bench.engines.reference.coreml_proto import proto_modules
from bench.engines.reference.graph import (
    MIL_DTYPES,
    Arg,
    Binding,
    Function,
    Operation,
    Program,
    Ref,
    TensorType,
    Value,
    default_mil_dtype,
    deployment_target,
)
from bench.errors import ModelFormatError, UnsupportedOpError
from bench.limits import MODEL_JSON_MAX_BYTES, SPEC_MAX_BYTES, check_allocation, check_file_size, check_tensor
from bench.safe_paths import path_inside

#: Parameters that always take a tuple of values, even when the file binds just one.
VARIADIC_PARAMS: frozenset[tuple[str, str]] = frozenset(
    {("concat", "values"), ("stack", "values"), ("einsum", "values")}
)

_DEFAULT_ROOT = "Data/com.apple.CoreML/model.mlmodel"


def _dtype_names() -> dict[int, str]:
    MIL_pb2, _ = proto_modules()
    names = {
        "BOOL": "bool",
        "STRING": "string",
        "FLOAT16": "fp16",
        "FLOAT32": "fp32",
        "FLOAT64": "fp64",
        "BFLOAT16": "bf16",
        "INT4": "int4",
        "INT8": "int8",
        "INT16": "int16",
        "INT32": "int32",
        "INT64": "int64",
        "UINT1": "uint1",
        "UINT2": "uint2",
        "UINT3": "uint3",
        "UINT4": "uint4",
        "UINT6": "uint6",
        "UINT8": "uint8",
        "UINT16": "uint16",
        "UINT32": "uint32",
        "UINT64": "uint64",
    }
    return {MIL_pb2.DataType.Value(key): value for key, value in names.items() if key in MIL_pb2.DataType.keys()}  # noqa: SIM118


def package_paths(path: str | Path) -> tuple[Path, Path]:
    """(spec file, weights folder) of an `.mlpackage`, found through its Manifest.json.

    The spec path the manifest names must stay inside the package's `Data` folder.
    """
    root = Path(path)
    manifest_path = root / "Manifest.json"
    if not root.is_dir():
        raise ModelFormatError(f"{root}: not a folder; expected an .mlpackage folder")
    if not manifest_path.is_file():
        raise ModelFormatError(f"{root}: Manifest.json is missing; expected an .mlpackage folder")
    check_file_size(manifest_path.stat().st_size, MODEL_JSON_MAX_BYTES, str(manifest_path), ModelFormatError)
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["itemInfoEntries"]
        root_id = manifest["rootModelIdentifier"]
        spec_rel = entries[root_id]["path"]
        if not isinstance(spec_rel, str):
            raise TypeError(f"the root model's path is {spec_rel!r}, not a string")
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise ModelFormatError(
            f"{manifest_path}: corrupt manifest ({type(error).__name__}: {error}); expected JSON with "
            "'itemInfoEntries' and 'rootModelIdentifier'"
        ) from None
    spec_path = path_inside(root / "Data", spec_rel, f"{manifest_path}: root model path")
    if not _is_file(spec_path):
        raise ModelFormatError(f"{manifest_path}: root model {spec_rel!r} does not exist in {root / 'Data'}")
    return spec_path, spec_path.parent / "weights"


def _is_file(path: Path) -> bool:
    """`path.is_file()`, False also for names the OS refuses (too long, bad bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_spec(path: str | Path) -> Any:
    """The parsed `Model` protobuf of an `.mlpackage`."""
    _, Model_pb2 = proto_modules()
    spec_path, _ = package_paths(path)
    spec = Model_pb2.Model()
    size = spec_path.stat().st_size
    check_file_size(size, SPEC_MAX_BYTES, str(spec_path), ModelFormatError)
    check_allocation(size, f"{spec_path}: reading the spec", ModelFormatError)
    try:
        spec.ParseFromString(spec_path.read_bytes())
    except Exception as error:  # noqa: BLE001  (protobuf raises DecodeError or RuntimeError on corrupt bytes)
        raise ModelFormatError(f"{spec_path}: corrupt Core ML spec ({error}); expected a Model protobuf") from None
    return spec


def read_mlpackage(path: str | Path) -> Program:
    """Read an `.mlpackage` into a `Program` (weights decoded, nothing executed)."""
    spec = read_spec(path)
    _, weights_dir = package_paths(path)
    return program_from_spec(spec, weights_dir, source=Path(path))


def program_from_spec(spec: Any, weights_dir: Path, source: Path) -> Program:
    """Convert a parsed Core ML `Model` spec holding an ML Program into a `Program`."""
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ModelFormatError(
            f"{source}: the spec holds a {kind or 'empty'} model; the reference engine runs ML Programs only"
        )
    reader = _SpecReader(weights_dir, source)
    functions = {
        name: reader.function(name, function) for name, function in spec.mlProgram.functions.items()
    }
    if not functions:
        raise ModelFormatError(f"{source}: the ML Program has no functions")
    metadata = {str(k): str(v) for k, v in spec.description.metadata.userDefined.items()}
    metadata["specificationVersion"] = str(spec.specificationVersion)
    if spec.description.defaultFunctionName:
        metadata["defaultFunctionName"] = spec.description.defaultFunctionName
    attributes = {key: reader.loose_value(value) for key, value in spec.mlProgram.attributes.items()}
    opset = next(iter(functions.values())).opset
    return Program(version=text_version(opset), functions=functions, metadata=metadata, attributes=attributes)


def text_version(opset: str) -> str:
    """The `program(x.y)` version the compiled text of this opset carries (1.3 from iOS18 on)."""
    return "1.3" if deployment_target(opset) in ("iOS18", "iOS26") else "1.0"


class _SpecReader:
    """Walks one spec; holds the weight files opened so far."""

    def __init__(self, weights_dir: Path, source: Path):
        self.weights_dir = weights_dir
        self.source = source
        self.dtypes = _dtype_names()
        self.files: dict[str, weight_files.WeightFile] = {}

    def function(self, name: str, spec: Any) -> Function:
        opset = spec.opset
        if opset not in spec.block_specializations:
            raise ModelFormatError(f"{self.source}: function {name!r} has no block for its opset {opset!r}")
        block = spec.block_specializations[opset]
        inputs = tuple(Value(v.name, self.value_type(v.type, f"input {v.name!r} of function {name!r}")) for v in spec.inputs)
        operations = [self.operation(op) for op in block.operations]
        attributes = {key: self.loose_value(value) for key, value in spec.attributes.items()}
        return Function(name, opset, inputs, operations, tuple(block.outputs), attributes)

    def value_type(self, spec: Any, where: str) -> TensorType:
        kind = spec.WhichOneof("type")
        if kind != "tensorType":
            raise UnsupportedOpError(f"{self.source}: {where} has a {kind}; the reference engine supports tensors only")
        tensor = spec.tensorType
        dtype = self.dtypes.get(tensor.dataType)
        if dtype is None:
            raise UnsupportedOpError(f"{self.source}: {where} has data type code {tensor.dataType}, unknown to the reference engine")
        shape = tuple(
            int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None for d in tensor.dimensions
        )
        return TensorType(dtype, shape)

    def operation(self, spec: Any) -> Operation:
        if "name" in spec.attributes:
            name = str(self.value(spec.attributes["name"], f"name of a {spec.type} op"))
        else:  # unnamed ops are named after their first output, as Core ML does
            name = spec.outputs[0].name if spec.outputs else spec.type
        where = f"op {name!r} ({spec.type})"
        if len(spec.blocks):
            raise UnsupportedOpError(
                f"{self.source}: {where} has nested blocks; control flow is not supported by the reference engine"
            )
        literal_dtypes: dict[str, str] = {}
        inputs: dict[str, Binding] = {}
        for param, argument in spec.inputs.items():
            args: list[Arg] = []
            for index, binding in enumerate(argument.arguments):
                if binding.WhichOneof("binding") == "name":
                    args.append(Ref(binding.name))
                else:
                    literal, dtype = self.typed_value(binding.value, f"{where}, parameter {param!r}")
                    args.append(literal)
                    if dtype != default_mil_dtype(literal):
                        literal_dtypes[param if len(argument.arguments) == 1 else f"{param}.{index}"] = dtype
            if len(args) == 1 and (spec.type, param) not in VARIADIC_PARAMS:
                inputs[param] = args[0]
            else:
                if len(args) == 1 and param in literal_dtypes:
                    literal_dtypes[f"{param}.0"] = literal_dtypes.pop(param)
                inputs[param] = tuple(args)
        attributes: dict[str, Any] = {}
        for key, value in spec.attributes.items():
            if key == "name":
                continue
            literal, dtype = self.typed_value(value, f"{where}, attribute {key!r}")
            attributes[key] = literal
            if key != "val" and dtype != default_mil_dtype(literal):
                literal_dtypes[key] = dtype
        outputs = tuple(Value(v.name, self.value_type(v.type, f"output {v.name!r} of {where}")) for v in spec.outputs)
        return Operation(spec.type, name, inputs, outputs, attributes, literal_dtypes)

    def loose_value(self, spec: Any) -> Any:
        """A program or function attribute: decoded where we can, else kept as protobuf text.

        The engine does not use these (buildInfo, flexible-shape information), so an attribute of
        a form we do not decode must not make the model unreadable.
        """
        try:
            return self.value(spec, "attribute")
        except Exception:  # noqa: BLE001  (unused attribute: never fatal)
            return str(spec)

    def value(self, spec: Any, where: str) -> Any:
        """A value decoded to its numpy / str / dict form."""
        if spec.type.WhichOneof("type") == "dictionaryType":
            return {
                self.value(entry.key, where): self.value(entry.value, where)
                for entry in spec.immediateValue.dictionary.values
            }
        return self.typed_value(spec, where)[0]

    def typed_value(self, spec: Any, where: str) -> tuple[Any, str]:
        """(value, MIL dtype) of a tensor value: immediate or from a weight file."""
        vtype = self.value_type(spec.type, where)
        dtype, shape = vtype.dtype, vtype.shape
        if any(d is None for d in shape):
            raise ModelFormatError(f"{self.source}: {where} is a constant of unknown shape {shape}")
        np_dtype = MIL_DTYPES.get(dtype)
        bits = 8 * np_dtype.itemsize if np_dtype is not None and np_dtype != np.dtype(object) else 64
        check_tensor(shape, bits, f"{self.source}: {where}", ModelFormatError)
        kind = spec.WhichOneof("value")
        if kind == "blobFileValue":
            return self.blob(spec.blobFileValue, dtype, shape, where), dtype
        if kind != "immediateValue" or spec.immediateValue.WhichOneof("value") != "tensor":
            raise ModelFormatError(f"{self.source}: {where} is neither an immediate tensor nor a weight-file value")
        tensor = spec.immediateValue.tensor
        field = tensor.WhichOneof("value")
        try:
            if field == "bytes":
                return weight_files.decode(tensor.bytes.values, dtype, shape), dtype
            if dtype == "string":
                values = [str(s) for s in tensor.strings.values]
                if shape == ():
                    return values[0] if values else "", dtype
                return np.array(values, dtype=object).reshape(shape), dtype
            values = getattr(tensor, field).values if field else []
            array = np.array(list(values), dtype=MIL_DTYPES[dtype] if dtype != "bf16" else np.float32)
            return array.reshape(shape), dtype
        except (ValueError, KeyError) as error:
            raise ModelFormatError(f"{self.source}: {where}: cannot decode {dtype}{list(shape)} value ({error})") from None

    def blob(self, spec: Any, dtype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
        file_name = spec.fileName.replace("@model_path/weights/", "").replace("@model_path/", "")
        try:
            path = path_inside(self.weights_dir, Path(file_name).name, f"weight file {spec.fileName!r}")
            weight_file = self.files.get(str(path))
            if weight_file is None:
                weight_file = self.files[str(path)] = weight_files.WeightFile(path)
            return weight_file.read(int(spec.offset), dtype, shape)
        except ModelFormatError as error:
            raise ModelFormatError(f"{error} (read for {where} of {self.source})") from None
