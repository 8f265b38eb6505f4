"""What a model file says about itself: input shapes, user metadata, op histogram, labels.

Works on Linux: packages are read with coremltools' spec loader (no Core ML needed), compiled
models from their `metadata.json` (which carries the input schema, the user metadata and an op
histogram). Labels a local folder does not state are inferred: resolution from the UNet's `sample`
input, attention from einsum ops (SPLIT_EINSUM) or their absence (ORIGINAL), quantization from
compressed-weight ops and LUT sizes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import ModelFormatError
from bench.limits import MODEL_JSON_MAX_BYTES, check_file_size

#: User metadata keys the generator writes (Apple's models carry none of them).
ATTENTION_KEY = "bench.attention"
QUANTIZATION_KEY = "bench.quantization"


@dataclass
class ModelInfo:
    """Facts read from one model file."""

    path: Path
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    user_metadata: dict[str, str]
    op_histogram: Counter
    lut_bits: list[tuple[int, int]] = field(default_factory=list)  # (bits, weight elements) per LUT
    storage_precision: str = ""


def read_model_info(path: Path) -> ModelInfo:
    """Read I/O shapes, metadata and op histogram of a `.mlpackage` or `.mlmodelc`."""
    path = Path(path)
    if path.suffix == ".mlmodelc":
        return _compiled_info(path)
    return _package_info(path)


def _shape(feature) -> tuple[int, ...]:
    return tuple(int(d) for d in feature.type.multiArrayType.shape)


def _package_info(path: Path) -> ModelInfo:
    import coremltools as ct

    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as error:  # coremltools raises bare exceptions for unreadable packages
        raise ModelFormatError(f"cannot read model package {path}: {error}") from error
    histogram: Counter = Counter()
    lut_bits: list[tuple[int, int]] = []
    if spec.WhichOneof("Type") == "mlProgram":
        function = spec.mlProgram.functions["main"]
        for block in function.block_specializations.values():
            for op in block.operations:
                histogram[op.type] += 1
                if op.type == "constexpr_lut_to_dense":
                    bits = _lut_bits(op, block)
                    if bits:
                        lut_bits.append(bits)
    return ModelInfo(
        path=path,
        inputs={f.name: _shape(f) for f in spec.description.input},
        outputs={f.name: _shape(f) for f in spec.description.output},
        user_metadata=dict(spec.description.metadata.userDefined),
        op_histogram=histogram,
        lut_bits=lut_bits,
    )


def _tensor_numel(value_type) -> int:
    dims = value_type.tensorType.dimensions
    return int(np.prod([d.constant.size for d in dims])) if dims else 1


def _lut_bits(op, block) -> tuple[int, int] | None:
    """(bits, elements) of a `constexpr_lut_to_dense` op from its LUT and output types.

    The LUT is an attribute in the iOS16 form and an input (inline or a const) in the iOS18 form.
    """
    if "lut" in op.attributes:
        lut_type = op.attributes["lut"].type
    elif "lut" in op.inputs and op.inputs["lut"].arguments:
        arg = op.inputs["lut"].arguments[0]
        if arg.name:
            producers = [o for o in block.operations if o.outputs and o.outputs[0].name == arg.name]
            if not producers:
                return None
            lut_type = producers[0].outputs[0].type
        else:
            lut_type = arg.value.type
    else:
        return None
    dims = [d.constant.size for d in lut_type.tensorType.dimensions]
    # iOS16 form: flat LUT of 2**bits; iOS18 form: [..groups.., 2**bits, vector size]
    entries = dims[0] if len(dims) == 1 else dims[-2]
    bits = round(float(np.log2(entries))) if entries > 0 else 0
    return bits, _tensor_numel(op.outputs[0].type)


def _compiled_info(path: Path) -> ModelInfo:
    meta_path = path / "metadata.json"
    try:
        check_file_size(meta_path.stat().st_size, MODEL_JSON_MAX_BYTES, f"compiled model {path}: metadata.json", ModelFormatError)
        meta = json.loads(meta_path.read_text())
        entry = meta[0] if isinstance(meta, list) else meta
        return _info_from_metadata(path, entry)
    except (OSError, ValueError, IndexError, KeyError, TypeError, AttributeError, RecursionError) as error:
        # ValueError also covers a count that is not a number; Type/AttributeError, entries of the wrong kind
        raise ModelFormatError(f"compiled model {path}: cannot read metadata.json ({type(error).__name__}: {error})") from None


def _info_from_metadata(path: Path, entry: dict) -> ModelInfo:
    def shapes(schema_key: str) -> dict[str, tuple[int, ...]]:
        out = {}
        for item in entry.get(schema_key, []):
            dims = re.findall(r"\d+", str(item.get("shape", "")))
            out[item.get("name", "")] = tuple(int(d) for d in dims)
        return out

    histogram: Counter = Counter()
    for name, count in entry.get("mlProgramOperationTypeHistogram", {}).items():
        # keys look like "Ios16.einsum" or "Concat"; normalise to MIL op names
        op = name.split(".", 1)[-1]
        histogram[re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()] += int(count)
    return ModelInfo(
        path=path,
        inputs=shapes("inputSchema"),
        outputs=shapes("outputSchema"),
        user_metadata={str(k): str(v) for k, v in entry.get("userDefinedMetadata", {}).items()},
        op_histogram=histogram,
        storage_precision=str(entry.get("storagePrecision", "")),
    )


def infer_resolution(unet: ModelInfo) -> int:
    """Image side in pixels from the UNet's `sample` input (B, 4, h, w)."""
    sample = unet.inputs.get("sample")
    if not sample or len(sample) != 4:
        raise ModelFormatError(f"UNet {unet.path} has no 4-d `sample` input (inputs: {sorted(unet.inputs)})")
    return int(sample[2]) * 8


def infer_attention(unet: ModelInfo, hint: str = "") -> str:
    """ORIGINAL / SPLIT_EINSUM / SPLIT_EINSUM_V2 from metadata, the folder name, or the ops."""
    label = unet.user_metadata.get(ATTENTION_KEY)
    if label:
        return label
    lowered = hint.lower()
    if "split_einsum_v2" in lowered or "split-einsum-v2" in lowered:
        return "SPLIT_EINSUM_V2"
    if "split_einsum" in lowered or "split-einsum" in lowered:
        return "SPLIT_EINSUM"
    if "original" in lowered:
        return "ORIGINAL"
    return "SPLIT_EINSUM" if unet.op_histogram.get("einsum") else "ORIGINAL"


def infer_quantization(unet: ModelInfo, hint: str = "") -> str:
    """Quantization label from metadata, the folder name (Apple's `mbp_4_50`), or the weights."""
    label = unet.user_metadata.get(QUANTIZATION_KEY)
    if label:
        return label
    match = re.search(r"(?:mbp|recipe)[_-](\d+)[_.](\d+)", hint)
    if match:
        return f"mbp-{match.group(1)}.{match.group(2)}"
    if unet.lut_bits:
        bits = {b for b, _ in unet.lut_bits}
        if len(bits) == 1:
            return f"palettized-{bits.pop()}bit"
        total = sum(n for _, n in unet.lut_bits)
        return f"mbp-{sum(b * n for b, n in unet.lut_bits) / total:.2f}"
    if unet.op_histogram.get("constexpr_affine_dequantize") or unet.op_histogram.get("constexpr_blockwise_shift_scale"):
        return "int8"
    precision = unet.storage_precision
    if precision:
        palettized = sorted({int(b) for b in re.findall(r"Palettized \((\d+) bits?\)", precision)})
        if len(palettized) == 1:
            return f"palettized-{palettized[0]}bit"
        if palettized:
            return "mbp"
        if "Int8" in precision or "Quantized" in precision:
            return "int8"
        if "Float16" in precision:
            return "float16"
        if "Float32" in precision:
            return "float32"
    if unet.inputs.get("sample") is not None and unet.path.suffix == ".mlpackage":
        return _package_weight_precision(unet.path)
    return "unknown"


def _package_weight_precision(path: Path) -> str:
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        for op in block.operations:
            if op.type == "const" and op.outputs:
                dtype = op.outputs[0].type.tensorType.dataType
                if dtype == ct.proto.MIL_pb2.FLOAT16:
                    return "float16"
    return "float32"
