"""Input / output specs of a model file, read without loading the model.

The pipeline checks a request against the models' interfaces (latent sizes, conditioning widths)
before it runs anything, also under `reduce_memory` where nothing is loaded yet. A `.mlmodelc`
folder describes its interface in `metadata.json` (Core ML's compiler writes it, and so does the
reference engine's writer); an `.mlpackage` in its protobuf spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.engines.base import TensorSpec
from bench.errors import ModelFormatError

#: `metadata.json` dataType strings -> numpy dtypes.
_METADATA_DTYPES = {
    "Float16": np.float16,
    "Float32": np.float32,
    "Double": np.float64,
    "Float64": np.float64,
    "Int32": np.int32,
    "Int8": np.int8,
    "Int16": np.int16,
    "UInt8": np.uint8,
}
#: protobuf `ArrayFeatureType.ArrayDataType` names -> numpy dtypes.
_PROTO_DTYPES = {
    "FLOAT16": np.float16,
    "FLOAT32": np.float32,
    "DOUBLE": np.float64,
    "INT32": np.int32,
    "INT8": np.int8,
}


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs by name."""

    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    @classmethod
    def of(cls, inputs: tuple[TensorSpec, ...] | list[TensorSpec], outputs: tuple[TensorSpec, ...] | list[TensorSpec]) -> ModelIO:
        return cls({s.name: s for s in inputs}, {s.name: s for s in outputs})


def read_model_io(path: str | Path) -> ModelIO:
    """Specs of the `.mlmodelc` or `.mlpackage` at `path` (weights are not read)."""
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"model {path} does not exist")
    if (path / "metadata.json").is_file():
        return _from_metadata(path / "metadata.json")
    if path.suffix == ".mlpackage" or (path / "Manifest.json").is_file():
        return _from_package(path)
    raise ModelFormatError(f"{path}: neither a compiled model with metadata.json nor an .mlpackage")


def _parse_shape(text: str, where: str) -> tuple[int, ...]:
    try:
        dims = [d.strip() for d in text.strip().strip("[]").split(",") if d.strip()]
        return tuple(1 if d in ("?", "-1") else int(d) for d in dims)
    except ValueError:
        raise ModelFormatError(f"{where}: shape {text!r} is not a list of integers") from None


def _from_metadata(path: Path) -> ModelIO:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelFormatError(f"{path}: unreadable metadata.json ({error})") from None
    entry = entries[0] if isinstance(entries, list) and entries else entries
    if not isinstance(entry, dict) or "inputSchema" not in entry:
        raise ModelFormatError(f"{path}: no inputSchema")

    def specs(key: str) -> dict[str, TensorSpec]:
        result = {}
        for item in entry.get(key, []):
            where = f"{path} {key} {item.get('name')!r}"
            dtype = _METADATA_DTYPES.get(item.get("dataType", ""))
            if dtype is None:
                raise ModelFormatError(f"{where}: unsupported dataType {item.get('dataType')!r}")
            result[item["name"]] = TensorSpec(item["name"], _parse_shape(str(item.get("shape", "[]")), where), np.dtype(dtype))
        return result

    return ModelIO(specs("inputSchema"), specs("outputSchema"))


def _from_package(path: Path) -> ModelIO:
    # Read with the reference engine's protobuf reader: `import coremltools` costs seconds (it
    # imports torch when installed), and every benchmark worker pays it again.
    from bench.engines.reference.proto_loader import read_spec

    spec = read_spec(path)

    def specs(features) -> dict[str, TensorSpec]:
        result = {}
        for feature in features:
            if feature.type.WhichOneof("Type") != "multiArrayType":
                raise ModelFormatError(f"{path}: feature {feature.name!r} is not a multi-array")
            array = feature.type.multiArrayType
            type_enum = array.DESCRIPTOR.fields_by_name["dataType"].enum_type
            type_name = type_enum.values_by_number[array.dataType].name if array.dataType in type_enum.values_by_number else str(array.dataType)
            dtype = _PROTO_DTYPES.get(type_name)
            if dtype is None:
                raise ModelFormatError(f"{path}: feature {feature.name!r} has unsupported type {type_name}")
            result[feature.name] = TensorSpec(feature.name, tuple(int(d) for d in array.shape), np.dtype(dtype))
        return result

    return ModelIO(specs(spec.description.input), specs(spec.description.output))
