"""Torch oracles for the reference engine's parity tests and its speed benchmark.

Builds small, randomly initialised diffusers / transformers modules from a seed, wraps them with
Apple's input and output names (apple/ml-stable-diffusion conventions),
converts them with `coremltools.convert` and computes the torch outputs the engine must reproduce.
torch is only the independent oracle here; nothing in `bench` imports it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Apple's own conversion check refuses anything below this (ABSOLUTE_MIN_PSNR in
#: apple/ml-stable-diffusion python_coreml_stable_diffusion/torch2coreml.py).
FP16_MIN_PSNR = 35.0
#: Float32 compute should agree with torch float32 to rounding noise.
FP32_MIN_PSNR = 60.0


def psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB of the engine's output against torch's, as Apple's conversion check computes it.

    apple/ml-stable-diffusion `python_coreml_stable_diffusion/torch2coreml.py` `compute_psnr`:
    20 * log10((peak + 1e-5) / (rms + 1e-10)), rms = sqrt(mean((a - b)^2)). Apple takes the peak from its second
    argument (the Core ML output); `bench.models.quality.psnr` takes it from the reference (torch)
    side, so the engine's own output cannot raise its score. A nan or inf anywhere in the
    output scores -inf here, where the formula alone would give nan and compare as not-below the bar.
    """
    from bench.models.quality import psnr as apple_psnr

    out = np.asarray(candidate)
    if out.shape != np.shape(reference):
        raise AssertionError(f"shape mismatch: torch {np.shape(reference)} vs engine {out.shape}")
    if not np.all(np.isfinite(out)):
        return float("-inf")
    return apple_psnr(out, reference)


def randomize_norm_affine(module: nn.Module, generator: torch.Generator, spread: float = 0.2) -> None:
    """Give every LayerNorm / GroupNorm a non-trivial gamma and beta.

    Default initialisation leaves gamma = 1 and beta = 0, under which a kernel that ignored them
    would still pass. Perturbing them makes the oracle see those parameters.
    """
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.LayerNorm, nn.GroupNorm)) and getattr(sub, "weight", None) is not None:
                sub.weight.copy_(1.0 + spread * torch.randn(sub.weight.shape, generator=generator))
                if sub.bias is not None:
                    sub.bias.copy_(spread * torch.randn(sub.bias.shape, generator=generator))


# --------------------------------------------------------------------------------------------
# UNet (SDXL style: text_time add-embedding, cross-attention transformer blocks)


@dataclass(frozen=True)
class UNetConfig:
    """A tiny SDXL-architecture UNet and the call it is checked with."""

    name: str
    block_out_channels: tuple[int, ...] = (32, 64)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    #: heads per block (diffusers' SDXL configs spell the head count as `attention_head_dim`)
    attention_head_dim: int | tuple[int, ...] = 2
    transformer_layers_per_block: int | tuple[int, ...] = 1
    cross_attention_dim: int = 32
    norm_num_groups: int = 8
    text_embeds_dim: int = 32
    addition_time_embed_dim: int = 8
    use_linear_projection: bool = True
    latent: int = 8
    batch: int = 2
    seq_len: int = 77
    target: str = "macOS13"
    seed: int = 0

    def build(self) -> nn.Module:
        from diffusers import UNet2DConditionModel

        torch.manual_seed(self.seed)
        unet = UNet2DConditionModel(
            sample_size=self.latent,
            in_channels=4,
            out_channels=4,
            down_block_types=self.down_block_types,
            up_block_types=self.up_block_types,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            attention_head_dim=self.attention_head_dim,
            transformer_layers_per_block=self.transformer_layers_per_block,
            cross_attention_dim=self.cross_attention_dim,
            norm_num_groups=self.norm_num_groups,
            addition_embed_type="text_time",
            addition_time_embed_dim=self.addition_time_embed_dim,
            projection_class_embeddings_input_dim=self.text_embeds_dim + 6 * self.addition_time_embed_dim,
            use_linear_projection=self.use_linear_projection,
        )
        randomize_norm_affine(unet, torch.Generator().manual_seed(self.seed + 1))
        return UNetWrapper(unet).eval()

    def sample_inputs(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed + 2)
        b = self.batch
        return {
            "sample": rng.standard_normal((b, 4, self.latent, self.latent)).astype(np.float32),
            "timestep": rng.uniform(1.0, 999.0, size=(b,)).astype(np.float32),
            # Apple's layout (B, C, 1, S) for the encoder states (apple/ml-stable-diffusion)
            "encoder_hidden_states": rng.standard_normal((b, self.cross_attention_dim, 1, self.seq_len)).astype(
                np.float32
            ),
            "text_embeds": rng.standard_normal((b, self.text_embeds_dim)).astype(np.float32),
            "time_ids": np.tile(
                np.array([[self.latent * 8, self.latent * 8, 0, 0, self.latent * 8, self.latent * 8]], np.float32),
                (b, 1),
            ),
        }

    output_names: tuple[str, ...] = ("noise_pred",)


class UNetWrapper(nn.Module):
    """Apple's UNet interface over a stock diffusers UNet2DConditionModel."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        states = encoder_hidden_states.squeeze(2).transpose(1, 2)  # (B, C, 1, S) -> (B, S, C)
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=states,
            added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
            return_dict=False,
        )[0]


# --------------------------------------------------------------------------------------------
# CLIP text encoders


@dataclass(frozen=True)
class TextEncoderConfig:
    """A tiny CLIP text encoder; `projection` selects CLIPTextModelWithProjection (encoder 2)."""

    name: str
    projection: bool = False
    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    hidden_act: str = "quick_gelu"
    projection_dim: int = 24
    vocab_size: int = 1000
    #: 2 takes the pooled token at argmax(input_ids) (old CLIP configs); anything else at the first eos
    eos_token_id: int = 2
    seq_len: int = 77
    #: "eager" traces matmul + softmax; "sdpa" traces torch's scaled_dot_product_attention
    attn_implementation: str = "eager"
    target: str = "macOS13"
    seed: int = 0
    output_names: tuple[str, ...] = ("hidden_embeds", "pooled_outputs")

    def build(self) -> nn.Module:
        from transformers import (
            CLIPTextConfig,
            CLIPTextModel,
            CLIPTextModelWithProjection,
        )

        torch.manual_seed(self.seed)
        config = CLIPTextConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            max_position_embeddings=self.seq_len,
            hidden_act=self.hidden_act,
            projection_dim=self.projection_dim,
            eos_token_id=self.eos_token_id,
            bos_token_id=self.vocab_size - 2,
            pad_token_id=self.vocab_size - 1 if self.eos_token_id == 2 else self.eos_token_id,
            attn_implementation=self.attn_implementation,
        )
        model_cls = CLIPTextModelWithProjection if self.projection else CLIPTextModel
        model = model_cls(config)
        randomize_norm_affine(model, torch.Generator().manual_seed(self.seed + 1))
        return TextEncoderWrapper(model, self.projection).eval()

    def sample_inputs(self) -> dict[str, np.ndarray]:
        """One tokenised prompt: bos, words, eos, then padding, as the CLIP tokenizer lays it out."""
        rng = np.random.default_rng(self.seed + 2)
        n_words = 11
        bos = self.vocab_size - 2
        words = rng.integers(3, self.vocab_size - 3, size=n_words)
        if self.eos_token_id == 2:
            # old-style configs rely on eos having the largest id; pad is the largest of all here,
            # so pad with a small id instead, like "!" (id 0) in SDXL's second tokenizer
            eos, pad = self.vocab_size - 1, 0
        else:
            eos = pad = self.eos_token_id
        ids = np.full((1, self.seq_len), pad, dtype=np.int32)
        ids[0, 0] = bos
        ids[0, 1 : 1 + n_words] = words
        ids[0, 1 + n_words] = eos
        return {"input_ids": ids}


class TextEncoderWrapper(nn.Module):
    """Apple's SDXL text encoder interface: penultimate hidden states and the pooled output."""

    def __init__(self, model: nn.Module, projection: bool) -> None:
        super().__init__()
        self.model = model
        self.projection = projection

    def forward(self, input_ids):
        out = self.model(input_ids, output_hidden_states=True, return_dict=True)
        pooled = out.text_embeds if self.projection else out.pooler_output
        return out.hidden_states[-2], pooled


# --------------------------------------------------------------------------------------------
# VAE decoder


@dataclass(frozen=True)
class VAEDecoderConfig:
    """A tiny AutoencoderKL; only its decoder path (post_quant_conv + decoder) is converted."""

    name: str
    block_out_channels: tuple[int, ...] = (16, 32)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    latent_channels: int = 4
    latent: int = 8
    target: str = "macOS13"
    seed: int = 0
    output_names: tuple[str, ...] = ("image",)

    def build(self) -> nn.Module:
        from diffusers import AutoencoderKL

        torch.manual_seed(self.seed)
        n = len(self.block_out_channels)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            latent_channels=self.latent_channels,
            norm_num_groups=self.norm_num_groups,
            sample_size=self.latent * 2 ** (n - 1),
        )
        randomize_norm_affine(vae, torch.Generator().manual_seed(self.seed + 1))
        return VAEDecoderWrapper(vae).eval()

    def sample_inputs(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed + 2)
        return {"z": rng.standard_normal((1, self.latent_channels, self.latent, self.latent)).astype(np.float32)}


class VAEDecoderWrapper(nn.Module):
    """Apple's VAE decoder interface: `z` in, `image` out (post_quant_conv, then the decoder)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, z):
        return self.decoder(self.post_quant_conv(z))


# --------------------------------------------------------------------------------------------
# Conversion


OracleConfig = UNetConfig | TextEncoderConfig | VAEDecoderConfig


@dataclass
class Converted:
    """A converted module, its torch reference outputs and the inputs they came from."""

    config: OracleConfig
    precision: str  # "fp32" or "fp16"
    path: Path
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    op_counts: Counter = field(default_factory=Counter)


def torch_outputs(module: nn.Module, inputs: Mapping[str, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Run the float32 torch module on `inputs` (positional, in dict order)."""
    with torch.no_grad():
        out = module(*(torch.from_numpy(v) for v in inputs.values()))
    outs = out if isinstance(out, tuple) else (out,)
    return {name: t.detach().numpy().astype(np.float32) for name, t in zip(names, outs, strict=True)}


@dataclass
class Traced:
    """A config's torch module traced once, with the float32 torch outputs on its sample inputs."""

    config: OracleConfig
    module: torch.jit.ScriptModule
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    eager: nn.Module  # the module that was traced, for timing torch eager on the same weights


def trace(config: OracleConfig) -> Traced:
    """Build `config`'s module, compute its torch outputs and trace it for conversion."""
    module = config.build()
    inputs = config.sample_inputs()
    expected = torch_outputs(module, inputs, config.output_names)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer and deprecation warnings concern building the oracle, not the engine under test.
        warnings.simplefilter("ignore")
        # check_trace would re-run the module twice more; the parity tests compare against
        # `expected` from the eager module anyway.
        traced = torch.jit.trace(module, tuple(torch.from_numpy(v) for v in inputs.values()), check_trace=False)
    return Traced(config, traced, inputs, expected, module)


def convert(traced: Traced, precision: str, out_dir: Path, stem: str | None = None) -> Converted:
    """Convert a traced module to `<out_dir>/<stem>.mlpackage` with the given compute precision."""
    import coremltools as ct

    config, inputs = traced.config, traced.inputs
    with warnings.catch_warnings():
        # e.g. "overflow encountered in cast" when torch's finfo.min attention mask becomes fp16 -inf
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(
            traced.module,
            inputs=[ct.TensorType(name=k, shape=v.shape, dtype=v.dtype) for k, v in inputs.items()],
            outputs=[ct.TensorType(name=n) for n in config.output_names],
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, config.target),
            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
            skip_model_load=True,
        )
    path = Path(out_dir) / f"{stem or f'{config.name}-{precision}'}.mlpackage"
    mlmodel.save(str(path))
    return Converted(config, precision, path, inputs, traced.expected, op_counts(mlmodel.get_spec()))


def cache_stem(config: OracleConfig, precision: str) -> str:
    """File stem for an opt-in conversion cache: changes with the config, this file and the libraries."""
    import coremltools
    import diffusers
    import transformers

    key = repr(
        (config, precision, torch.__version__, coremltools.__version__, diffusers.__version__,
         transformers.__version__, Path(__file__).read_bytes())
    )
    return f"{config.name}-{precision}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def save_for_cache(conv: Converted) -> None:
    """Store the inputs and torch outputs beside a cached conversion."""
    arrays = {f"in.{k}": v for k, v in conv.inputs.items()} | {f"out.{k}": v for k, v in conv.expected.items()}
    np.savez(conv.path.with_suffix(".npz"), **arrays)


def load_from_cache(config: OracleConfig, precision: str, cache_dir: Path) -> Converted | None:
    """A conversion stored by `save_for_cache` under the current key, or None."""
    import coremltools as ct

    path = Path(cache_dir) / f"{cache_stem(config, precision)}.mlpackage"
    arrays_path = path.with_suffix(".npz")
    if not (path.is_dir() and arrays_path.is_file()):
        return None
    with np.load(arrays_path) as arrays:
        inputs = {k[3:]: arrays[k] for k in arrays.files if k.startswith("in.")}
        expected = {k[4:]: arrays[k] for k in arrays.files if k.startswith("out.")}
    # npz keeps insertion order, so the inputs stay in the positional order of the torch module
    return Converted(config, precision, path, inputs, expected, op_counts(ct.utils.load_spec(str(path))))


def op_counts(spec) -> Counter:
    """Op types of a converted program's main function, counted."""
    counts: Counter = Counter()
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        _count_block(block, counts)
    return counts


def _count_block(block, counts: Counter) -> None:
    for op in block.operations:
        counts[op.type] += 1
        for nested in op.blocks:
            _count_block(nested, counts)


MIN_PSNR: dict[str, float] = {"fp32": FP32_MIN_PSNR, "fp16": FP16_MIN_PSNR}


def compare(conv: Converted, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    """PSNR of each expected output; a missing output is an AssertionError naming it."""
    missing = sorted(set(conv.expected) - set(outputs))
    if missing:
        raise AssertionError(f"{conv.path.name}: engine returned {sorted(outputs)}, missing {missing}")
    return {name: psnr(ref, outputs[name]) for name, ref in conv.expected.items()}


def run_engine(conv: Converted) -> dict[str, np.ndarray]:
    """Load `conv` with the reference engine (fp16 mode for fp16 conversions) and predict."""
    from bench.engines import reference

    model = reference.load(conv.path, precision=conv.precision)
    try:
        return model.predict(conv.inputs)
    finally:
        close: Callable[[], None] | None = getattr(model, "close", None)
        if close is not None:
            close()
