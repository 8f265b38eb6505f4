"""The UNets the speed benchmark runs: stock diffusers SDXL-style UNets converted to Core ML.

Same weights on both sides: the torch module is built from a seed, traced and converted float32;
torch eager runs the module, the reference engine runs the converted .mlpackage. Inputs use Apple's
names and layouts (coreml-facts.md section 1).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class BenchUNet:
    """An SDXL-architecture UNet (text_time add-embedding, linear projections) and its call."""

    name: str
    block_out_channels: tuple[int, int]
    heads: tuple[int, int]  # per block; diffusers spells the head count `attention_head_dim`
    cross_attention_dim: int
    layers_per_block: int = 2
    transformer_layers_per_block: tuple[int, int] = (1, 2)
    text_embeds_dim: int = 128
    addition_time_embed_dim: int = 32
    latent: int = 32
    batch: int = 2
    seq_len: int = 77
    seed: int = 0
    #: too slow to convert and run in the untimed default test run
    timed_only: bool = False

    def build(self) -> nn.Module:
        from diffusers import UNet2DConditionModel

        torch.manual_seed(self.seed)
        unet = UNet2DConditionModel(
            sample_size=self.latent,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            attention_head_dim=self.heads,
            transformer_layers_per_block=self.transformer_layers_per_block,
            cross_attention_dim=self.cross_attention_dim,
            addition_embed_type="text_time",
            addition_time_embed_dim=self.addition_time_embed_dim,
            projection_class_embeddings_input_dim=self.text_embeds_dim + 6 * self.addition_time_embed_dim,
            use_linear_projection=True,
        )
        return AppleUNetInterface(unet).eval()

    def inputs(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed + 1)
        b, size = self.batch, self.latent * 8
        return {
            "sample": rng.standard_normal((b, 4, self.latent, self.latent)).astype(np.float32),
            "timestep": np.full((b,), 500.0, np.float32),
            "encoder_hidden_states": rng.standard_normal((b, self.cross_attention_dim, 1, self.seq_len)).astype(
                np.float32
            ),
            "text_embeds": rng.standard_normal((b, self.text_embeds_dim)).astype(np.float32),
            "time_ids": np.tile(np.array([[size, size, 0, 0, size, size]], np.float32), (b, 1)),
        }


class AppleUNetInterface(nn.Module):
    """Apple's UNet inputs ((B, C, 1, S) encoder states) over a stock diffusers UNet."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        states = encoder_hidden_states.squeeze(2).transpose(1, 2)
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=states,
            added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
            return_dict=False,
        )[0]


def convert_float32(module: nn.Module, inputs: dict[str, np.ndarray], path: Path) -> Path:
    """Trace `module` and save it as a float32 ML Program (.mlpackage) at `path`."""
    import coremltools as ct

    example = tuple(torch.from_numpy(v) for v in inputs.values())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / deprecation noise about building the model
        traced = torch.jit.trace(module, example, check_trace=False)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name=k, shape=v.shape, dtype=v.dtype) for k, v in inputs.items()],
            outputs=[ct.TensorType(name="noise_pred")],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.macOS13,
            compute_precision=ct.precision.FLOAT32,
            skip_model_load=True,
        )
    mlmodel.save(str(path))
    return path


def blas_threads() -> tuple[int, str]:
    """Threads numpy's BLAS uses, and how that was found out.

    threadpoolctl asks the loaded BLAS itself; without it, OpenBLAS's own rule applies: the
    OPENBLAS_NUM_THREADS / OMP_NUM_THREADS variables, else one thread per online CPU.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
        if counts:
            return max(counts), "threadpoolctl"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").strip().isdigit():
            return int(os.environ[var]), var
    return os.cpu_count() or 1, "os.cpu_count (OpenBLAS default)"
