"""Read and write compiled `.mlmodelc` folders: `model.mil`, `weights/`, `metadata.json`.

Reading uses our own text parser (`mil_text`); `coremldata.bin` (a binary Apple format) is not
read: the I/O specs come from the function signature. Writing produces `model.mil`,
`weights/weight.bin` and a `metadata.json` holding a subset of the fields Core ML's compiler
writes (input / output schema, user metadata); it writes no `coremldata.bin`, so Core ML itself
would not load such a folder, but this engine does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.engines.reference.graph import Program
from bench.engines.reference.mil_text import parse_file
from bench.engines.reference.mil_writer import write_mil_text
from bench.engines.reference.weights import WeightFile, WeightWriter
from bench.errors import ModelFormatError
from bench.limits import MIL_MAX_FILE_BYTES, MODEL_JSON_MAX_BYTES, check_file_size
from bench.safe_paths import path_inside

MODEL_PATH_PREFIX = "@model_path/"


def read_mlmodelc(path: str | Path) -> Program:
    """Read a compiled `.mlmodelc` folder into a `Program`.

    `model.mil` may be at most `MIL_MAX_FILE_BYTES`; every `BLOBFILE` path must stay inside the
    folder (`@model_path/../..` is refused), and `mil_text` bounds the rest.
    """
    root = Path(path)
    mil_path = root / "model.mil"
    if not root.is_dir():
        raise ModelFormatError(f"{root}: not a folder; expected an .mlmodelc folder")
    if not mil_path.is_file():
        raise ModelFormatError(f"{root}: model.mil is missing; expected a compiled ML Program (.mlmodelc)")
    check_file_size(mil_path.stat().st_size, MIL_MAX_FILE_BYTES, str(mil_path), ModelFormatError)
    files: dict[Path, WeightFile] = {}

    def read_blob(file: str, offset: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        if not file.startswith(MODEL_PATH_PREFIX):
            raise ModelFormatError(f"BLOBFILE path {file!r} does not start with {MODEL_PATH_PREFIX!r}")
        blob_path = path_inside(root, file[len(MODEL_PATH_PREFIX) :], f"BLOBFILE path {file!r}")
        weight_file = files.get(blob_path)
        if weight_file is None:
            weight_file = files[blob_path] = WeightFile(blob_path)
        return weight_file.read(offset, dtype, shape)

    program = parse_file(mil_path, read_blob)
    program.metadata.update(_read_metadata(root / "metadata.json"))
    return program


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    check_file_size(path.stat().st_size, MODEL_JSON_MAX_BYTES, str(path), ModelFormatError)
    try:
        data = json.loads(path.read_text())
        entry = data[0] if isinstance(data, list) else data
        metadata = {str(k): str(v) for k, v in entry.get("userDefinedMetadata", {}).items()}
        if "specificationVersion" in entry:
            metadata["specificationVersion"] = str(entry["specificationVersion"])
        return metadata
    except (ValueError, AttributeError, IndexError, KeyError, TypeError, RecursionError) as error:
        raise ModelFormatError(f"{path}: corrupt metadata.json ({error})") from None


def write_mlmodelc(program: Program, path: str | Path) -> Path:
    """Write `program` as a compiled-layout folder (`model.mil` + `weights/weight.bin` + `metadata.json`)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    weights = WeightWriter()
    text = write_mil_text(program, weights)
    (root / "model.mil").write_text(text, encoding="utf-8")
    if weights.count:
        weights.write(root / "weights" / "weight.bin")
    (root / "metadata.json").write_text(json.dumps([_metadata(program)], indent=2))
    return root


def storage_precision(function) -> str:
    """How the weights are stored, in the words of Core ML's metadata ("Float16",
    "Mixed (Float16, Palettized (4 bits))", ...): float dtypes of large consts, LUT bits, int8."""
    parts: list[str] = []

    def add(part: str) -> None:
        if part not in parts:
            parts.append(part)

    names = {"fp16": "Float16", "fp32": "Float32"}
    for op in function.operations:
        if op.type == "const":
            value = op.attributes.get("val")
            vtype = op.outputs[0].type
            if vtype.dtype in names and isinstance(value, np.ndarray) and value.size >= 10:
                add(names[vtype.dtype])
        elif op.type == "constexpr_lut_to_dense":
            lut = op.inputs.get("lut", op.attributes.get("lut"))
            if isinstance(lut, np.ndarray) and lut.ndim >= 1:
                entries = lut.shape[0] if lut.ndim == 1 else lut.shape[-2]
                add(f"Palettized ({int(np.log2(entries))} bits)")
            else:
                add("Palettized")
        elif op.type in ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"):
            add("Quantized (Int8)")
        elif op.type.startswith("constexpr_sparse") or op.type == "constexpr_lut_to_sparse":
            add("Sparse")
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else f"Mixed ({', '.join(parts)})"


_SCHEMA_TYPES = {"fp16": "Float16", "fp32": "Float32", "fp64": "Double", "int32": "Int32", "int8": "Int8"}


def _metadata(program: Program) -> dict:
    function = program.main

    def schema(name: str, vtype) -> dict:
        dims = ", ".join("?" if d is None else str(d) for d in vtype.shape)
        return {
            "name": name,
            "type": "MultiArray",
            "dataType": _SCHEMA_TYPES.get(vtype.dtype, vtype.dtype),
            "shape": f"[{dims}]",
            "hasShapeFlexibility": "1" if any(d is None for d in vtype.shape) else "0",
        }

    types = function.value_types()
    user = {k: v for k, v in program.metadata.items() if k != "specificationVersion"}
    histogram: dict[str, int] = {}
    for op in function.operations:
        histogram[op.type] = histogram.get(op.type, 0) + 1
    metadata = {
        "metadataOutputVersion": "3.0",
        "modelType": {"name": "MLModelType_mlProgram"},
        "inputSchema": [schema(v.name, v.type) for v in function.inputs],
        "outputSchema": [schema(name, types[name]) for name in function.outputs],
        "userDefinedMetadata": user,
        "mlProgramOperationTypeHistogram": histogram,
        "storagePrecision": storage_precision(function),
        "generatedClassName": "bench_reference_writer",
    }
    if "specificationVersion" in program.metadata:
        metadata["specificationVersion"] = int(program.metadata["specificationVersion"])
    return metadata
