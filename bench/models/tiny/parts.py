"""Writers of the generated units: one function per kind of part (imports coremltools)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import coremltools as ct

from bench.models import layout
from bench.models import recipe as recipes
from bench.models.metadata import ATTENTION_KEY, QUANTIZATION_KEY
from bench.models.quantize import COMPRESSIONS, QUANTIZATIONS, compress_program
from bench.models.recipe import Recipe, const_names_for, load_recipe, tiny_recipe_bits
from bench.models.tiny.convert import save_program
from bench.models.tiny.layers import Ctx
from bench.models.tiny.text_encoder import text_encoder_program
from bench.models.tiny.tokenizer import END_TOKEN, write_tokenizer_files
from bench.models.tiny.unet import unet_program
from bench.models.tiny.vae import vae_decoder_program, vae_encoder_program
from bench.models.tiny.weights import ParamSource

_INPUT_DESCRIPTIONS = {
    "input_ids": "Token ids of the prompt (77, padded), as float32",
    "sample": "Noisy latents being denoised",
    "timestep": "Current timestep of the noise schedule",
    "encoder_hidden_states": "Text encoder hidden states, (B, C, 1, 77)",
    "time_ids": "SDXL micro-conditioning: original size, crop top-left, target size (refiner: aesthetic score)",
    "text_embeds": "Pooled, projected embedding of text_encoder_2",
    "z": "Latents divided by the VAE scaling factor",
    "x": "Image in [-1, 1]",
}
_OUTPUT_DESCRIPTIONS = {
    "hidden_embeds": "Hidden states of the penultimate encoder layer",
    "pooled_outputs": "End-of-text token state after the final layer norm (projected for text_encoder_2)",
    "noise_pred": "Predicted noise, same shape as sample",
    "image": "Decoded image, nominally in [-1, 1]",
    "latent": "Latent distribution moments: mean (channels 0-3) and log-variance (4-7)",
}


def _ctx(builder, precision: str) -> Ctx:
    return Ctx(ParamSource(builder.seed), fp16=precision != "fp32")


def _metadata(builder, part: str, **extra: str) -> dict[str, str]:
    meta = {
        "bench.generator": f"bench.models.tiny (generator {_generator_version()})",
        "bench.size": builder.size,
        "bench.seed": str(builder.seed),
        "bench.part": part,
        "bench.model_version": builder.version,
    }
    meta.update(extra)
    return meta


def _generator_version() -> str:
    from bench.models.tiny.build import GENERATOR_VERSION

    return GENERATOR_VERSION


def _save(builder, prog, folder: Path, part: str, target, metadata: dict[str, str], what: str) -> Path:
    return save_program(
        prog,
        folder / layout.package_name(builder.version, part),
        target,
        metadata=metadata,
        description=f"Generated {builder.size} SDXL {what} (random weights, seed {builder.seed})",
        input_descriptions=_INPUT_DESCRIPTIONS,
        output_descriptions=_OUTPUT_DESCRIPTIONS,
    )


def write_tokenizer(builder, folder: Path) -> None:
    write_tokenizer_files(folder, builder.spec.vocab_merges)


def _vocab(builder) -> dict[str, int]:
    folder, _ = builder.ensure_unit("tokenizer")
    return json.loads((folder / "vocab.json").read_text(encoding="utf-8"))


def write_text_encoder(builder, folder: Path, part: str, precision: str) -> None:
    vocab = _vocab(builder)
    spec = builder.spec.text_encoder if part == "text_encoder" else builder.spec.text_encoder_2
    prog = text_encoder_program(_ctx(builder, precision), spec, len(vocab), vocab[END_TOKEN], ct.target.iOS16)
    label = QUANTIZATIONS[precision]
    _save(builder, prog, folder, part, ct.target.iOS16, _metadata(builder, part, **{QUANTIZATION_KEY: label}),
          "CLIP-L text encoder" if part == "text_encoder" else "OpenCLIP-bigG text encoder")


def write_vae(builder, folder: Path, part: str, precision: str) -> None:
    make = vae_decoder_program if part == "vae_decoder" else vae_encoder_program
    prog = make(_ctx(builder, precision), builder.spec.vae, builder.spec.latent_size, ct.target.iOS16)
    _save(builder, prog, folder, part, ct.target.iOS16,
          _metadata(builder, part, **{QUANTIZATION_KEY: QUANTIZATIONS[precision]}), part.replace("_", " "))


def weight_consts(prog) -> dict[str, int]:
    """Weight const name -> element count (rank >= 2 float consts: conv / linear / embedding weights)."""
    sizes = {}
    for op in prog.functions["main"].operations:
        if op.op_type == "const" and op.name.endswith(("_weight", "_weight_to_fp16")):
            value = op.outputs[0].val
            if getattr(value, "ndim", 0) >= 2:
                sizes[op.name] = int(value.size)
    return sizes


def _recipe_path(builder) -> Path:
    return builder.unit_dir("recipe") / f"{builder.version.replace('/', '-')}_palettization_recipe.json"


def write_recipe(builder, folder: Path) -> None:
    """The size's mixed-bit recipe: every UNet weight above the compression threshold, with the
    bit width of `tiny_recipe_bits`, named after its size-weighted mean bits like Apple's."""
    from bench.models.tiny.build import WEIGHT_THRESHOLD

    prog = unet_program(_ctx(builder, "fp16"), builder.spec.unet, builder.spec.latent_size, "ORIGINAL", ct.target.iOS16)
    sizes = {
        name[: -len("_weight_to_fp16")]: n for name, n in weight_consts(prog).items() if n > WEIGHT_THRESHOLD[builder.size]
    }
    layers = {_module_name(name, prog): tiny_recipe_bits(_module_name(name, prog)) for name in sizes}
    by_module = {_module_name(name, prog): n for name, n in sizes.items()}
    draft = Recipe("draft", layers)
    mean = draft.mean_bits(by_module)
    recipe = Recipe(f"recipe_{mean:.2f}_bit_mixedpalette", layers)
    recipes.write_recipe(folder / _recipe_path(builder).name, recipe, builder.version)


_MODULE_NAMES: dict[int, dict[str, str]] = {}


def _module_name(const_prefix: str, prog) -> str:
    """Torch module path of a weight const prefix (`down_blocks_1_attentions_0_proj_in` ->
    `down_blocks.1.attentions.0.proj_in`), from the generator's own path table."""
    table = _MODULE_NAMES.get(id(prog))
    if table is None:
        from bench.models.tiny.layers import PATHS

        table = {path.replace(".", "_"): path for path in PATHS}
        _MODULE_NAMES[id(prog)] = table
    return table[const_prefix]


def write_unet(builder, folder: Path, part: str, attention: str, quant: str, *, chunked: bool = False) -> None:
    """A UNet (or refiner) unit: fp32 / fp16, or compressed from the fp16 program; maybe chunked."""
    from bench.models.tiny.build import WEIGHT_THRESHOLD

    spec = builder.spec.unet if part == "unet" else builder.spec.refiner
    compression = COMPRESSIONS.get(quant)
    target = ct.target.iOS18 if compression and compression.ios18 else ct.target.iOS16
    precision = "fp32" if quant == "fp32" else "fp16"
    label = builder.quantization_label(quant)
    recipe = load_recipe(_recipe_path(builder)) if quant == "mbp" else None
    model = f"the generated {builder.size} {part} ({attention}, {label})"

    def make_program():
        prog = unet_program(_ctx(builder, precision), spec, builder.spec.latent_size, attention, target)
        if compression:
            bits = const_names_for(recipe, set(weight_consts(prog)), model=model) if recipe else None
            compress_program(prog, quant, WEIGHT_THRESHOLD[builder.size], bits)
        return prog

    meta = _metadata(builder, part, **{ATTENTION_KEY: attention, QUANTIZATION_KEY: label})
    what = f"{'refiner ' if part == 'refiner' else ''}UNet ({attention}, {label})"
    if recipe is not None:
        shutil.copy2(_recipe_path(builder), folder / _recipe_path(builder).name)
    if chunked:
        from bench.models.chunk import chunk_programs

        chunk_programs(
            make_program,
            folder / layout.package_name(builder.version, f"{part}_chunk1"),
            folder / layout.package_name(builder.version, f"{part}_chunk2"),
            metadata=meta,
            description=f"Generated {builder.size} SDXL {what} (random weights, seed {builder.seed})",
        )
    else:
        _save(builder, make_program(), folder, part, target, meta, what)
