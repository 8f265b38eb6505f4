"""Weight compression variants, applied with coremltools.optimize's own compression passes.

`coremltools.optimize.coreml.palettize_weights(model, config)` is a thin wrapper: it loads the model
into a MIL program, applies the `compression::palettize_weights` graph pass configured by `config`
(likewise `compression::linear_quantize_weights`), and converts the program back through the full
pass pipeline. The generator already holds the program, so it applies the same registered passes to
it and exports directly (see `bench.models.tiny.convert`): same algorithm, same op forms
(`constexpr_affine_dequantize`, `constexpr_lut_to_dense` in the iOS16 or iOS18 form), without the
round trip that takes tens of seconds per UNet.

Quantization labels (the `quantization` column of the results):

| key | label | form |
|---|---|---|
| fp32 | float32 | plain fp32 weights |
| fp16 | float16 | fp16 weights and compute (fp16 inputs, fp32 outputs, as Apple converts) |
| int8 | int8 | per-channel symmetric int8, `constexpr_affine_dequantize` (iOS16) |
| pal6 | palettized-6bit | 6-bit k-means LUT per tensor, `constexpr_lut_to_dense` (iOS16: packed indices) |
| pal4 | palettized-4bit | 4-bit k-means LUT per group of 16 output channels, iOS18 `constexpr_lut_to_dense` |
| mbp | mbp-<mean bits> | per-layer bit widths from a mixed-bit recipe (Apple's pre-analysis format) |
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: quantization key -> label, in display order.
QUANTIZATIONS: dict[str, str] = {
    "fp32": "float32",
    "fp16": "float16",
    "int8": "int8",
    "pal6": "palettized-6bit",
    "pal4": "palettized-4bit",
    "mbp": "mbp",
}
#: Channel group of the per-grouped-channel (iOS18) 4-bit palettization.
PAL4_GROUP_SIZE = 16
#: Bit widths Apple's recipes use (16 = leave the layer in fp16).
RECIPE_NBITS = (1, 2, 4, 6, 8, 16)


@dataclass(frozen=True)
class Compression:
    """How to compress one UNet program: which pass, which config, which deployment target."""

    key: str
    ios18: bool  # the form needs an iOS18 program (per-grouped-channel LUTs)


COMPRESSIONS = {
    "int8": Compression("int8", ios18=False),
    "pal6": Compression("pal6", ios18=False),
    "pal4": Compression("pal4", ios18=True),
    "mbp": Compression("mbp", ios18=False),
}


def kmeans_lut(nbits: int, iterations: int = 16) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A `lut_function` for `OpPalettizerConfig(mode="custom")`: 1-D k-means (Lloyd) with quantile
    initialisation, deterministic.

    coremltools' own `mode="kmeans"` needs scikit-learn (or kmeans1d for large fp16 tensors), which
    bench does not depend on; Apple's recipes are k-means palettizations, so the same clustering is
    done here in a few lines of numpy.
    """
    k = 1 << nbits

    def lut_function(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = np.asarray(weight, dtype=np.float64).reshape(-1)
        values = np.sort(flat)
        if np.unique(values).size <= k:
            unique = np.unique(values)
            lut = np.concatenate([unique, np.full(k - unique.size, unique[-1])])
            return lut.astype(weight.dtype), np.searchsorted(unique, flat).astype(np.uint8)
        # Lloyd iterations on the sorted values: clusters are contiguous runs, so each step is a
        # search for the run boundaries and a difference of prefix sums.
        prefix = np.concatenate([[0.0], np.cumsum(values)])
        centers = np.quantile(values, (np.arange(k) + 0.5) / k)
        for _ in range(iterations):
            cuts = np.concatenate([[0], np.searchsorted(values, (centers[1:] + centers[:-1]) / 2), [values.size]])
            counts = np.diff(cuts)
            sums = prefix[cuts[1:]] - prefix[cuts[:-1]]
            centers = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centers))
        indices = np.searchsorted((centers[1:] + centers[:-1]) / 2, flat)
        return centers.astype(weight.dtype), indices.astype(np.uint8)

    return lut_function


def compression_config(key: str, weight_threshold: int, layer_bits: dict[str, int] | None = None):
    """The `coremltools.optimize.coreml.OptimizationConfig` of compression `key`.

    For `mbp`, `layer_bits` maps const op names to bit widths (16 = leave uncompressed).
    """
    import coremltools.optimize.coreml as cto

    if key == "int8":
        return cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=weight_threshold
            )
        )
    if key == "pal6":
        return cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(
                mode="custom", lut_function=kmeans_lut(6), granularity="per_tensor", weight_threshold=weight_threshold
            )
        )
    if key == "pal4":
        return cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(
                mode="custom", lut_function=kmeans_lut(4), granularity="per_grouped_channel",
                group_size=PAL4_GROUP_SIZE, weight_threshold=weight_threshold,
            )
        )
    if key == "mbp":
        if not layer_bits:
            raise ValueError("a mixed-bit palettization needs per-layer bit widths")
        configs = {
            name: cto.OpPalettizerConfig(mode="custom", lut_function=kmeans_lut(bits), granularity="per_tensor",
                                         weight_threshold=weight_threshold)
            for name, bits in layer_bits.items()
            if bits != 16
        }
        return cto.OptimizationConfig(op_name_configs=configs)
    raise ValueError(f"unknown compression {key!r}; expected one of {', '.join(COMPRESSIONS)}")


def compress_program(prog, key: str, weight_threshold: int, layer_bits: dict[str, int] | None = None):
    """Apply coremltools.optimize's compression pass for `key` to the MIL program `prog` in place."""
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    config = compression_config(key, weight_threshold, layer_bits)
    pass_name = "compression::linear_quantize_weights" if key == "int8" else "compression::palettize_weights"
    graph_pass = PASS_REGISTRY[pass_name]
    graph_pass.set_options([PassOption("config", config), PassOption("joint_compression", False)])
    # the pass draws a per-op tqdm bar on stderr; in a build of twenty models that is only noise
    with contextlib.redirect_stderr(io.StringIO()):
        graph_pass.apply(prog)
    return prog
