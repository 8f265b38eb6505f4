"""Generated SDXL model sets: Apple's SDXL Core ML packages in miniature, random weights, no download.

Built with coremltools' MIL builder and numpy only (no torch), deterministically from a seed: the
same seed gives the same weights and the same package bytes. Every set has exactly the I/O names,
ranks and layouts of apple/ml-stable-diffusion's SDXL packages, and the ops real conversions emit
(see `bench.models.tiny.layers`), so the reference engine and the pipeline meet the same graphs as in
Apple's models. Spec for the pipeline (B = 2, guidance batch; all float outputs float32):

| part | inputs | outputs |
|---|---|---|
| text_encoder (CLIP-L style, quick-gelu) | `input_ids` (1, 77) float32 | `hidden_embeds` (1, 77, H1) penultimate layer, `pooled_outputs` (1, H1) |
| text_encoder_2 (bigG style, gelu) | `input_ids` (1, 77) float32 | `hidden_embeds` (1, 77, H2), `pooled_outputs` (1, P2) projected, at the end-of-text token |
| unet | `sample` (B, 4, L, L), `timestep` (B,), `encoder_hidden_states` (B, H1+H2, 1, 77), `time_ids` (B, 6), `text_embeds` (B, P2) | `noise_pred` (B, 4, L, L) |
| unet chunks | chunk1: the unet inputs; chunk2: `encoder_hidden_states` + chunk1's outputs (same names) | chunk1: intermediates; chunk2: `noise_pred` |
| refiner | as unet, `encoder_hidden_states` (B, H2, 1, 77), `time_ids` (B, 5) | `noise_pred` |
| vae_decoder | `z` (1, 4, L, L) = latents / scaling factor | `image` (1, 3, 8L, 8L), about [-1, 1] |
| vae_encoder | `x` (1, 3, 8L, 8L) in [-1, 1] | `latent` (1, 8, L, L): mean (0-3), log-variance (4-7) |
| vocab.json / merges.txt | CLIP BPE layout, 994 tokens: 256 byte symbols, their `</w>` forms, 480 merges, `<|startoftext|>` = 992, `<|endoftext|>` = 993 | text_encoder_2 pads with `!` (id 0) |

| size | H1 | H2 = P2 | cross dim | L (latent) | image | UNet widths | VAE widths |
|---|---|---|---|---|---|---|---|
| tiny | 32 | 64 | 96 | 64 | 512x512 | (16, 32, 64), heads (-, 2, 2), transformer depth (0, 1, 1), mid 1 | (8, 8, 16, 16) |
| small | 64 | 128 | 192 | 32 | 256x256 | (64, 128, 256), heads (-, 4, 8), depth (0, 1, 2), mid 2 | (16, 32, 64, 64) |

Dtypes: the fp32 sets are float32 throughout. The fp16 and compressed sets take float16 `sample`,
`timestep`, `encoder_hidden_states`, `time_ids`, `text_embeds` (UNet) and `z` (decoder), as Apple's
fp16 conversions declare them; `input_ids` is float32 everywhere (cast to int32 inside); the VAE
encoder is float32 in every set (Apple converts SDXL's at float32). Feed each input in the dtype
`Model.input_specs` states. The tiny UNet has SDXL's 3 levels (no attention at the first), 2
resnets per down level and 3 per up level; the tiny refiner has SDXL-refiner's 4 levels with one
resnet per down level.

    from bench.models.tiny import build_tiny_set, ensure_built
    folders = ensure_built(["tiny-split-einsum-fp16"])   # id -> variant folder (built if needed)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bench.models.tiny.build import (
    DEFAULT_TINY_IDS,
    GENERATOR_VERSION,
    ProgressFn,
    build_variants,
    generated_ids,
    parse_id,
)
from bench.models.tiny.spec import SIZES


def build_tiny_set(out_dir: str | Path | None = None, *, size: str = "tiny", seed: int = 0,
                   variant_ids: Iterable[str] | None = None, jobs: int | None = None,
                   progress: ProgressFn | None = None) -> dict[str, Path]:
    """Build a generated size's variants (default: all of that size) under `out_dir`
    (default `models_dir()`); returns id -> variant folder. Valid existing parts are kept."""
    ids = list(variant_ids) if variant_ids is not None else (list(DEFAULT_TINY_IDS) if size == "tiny" else generated_ids(size))
    return build_variants(ids, seed=seed, out_dir=Path(out_dir) if out_dir is not None else None, jobs=jobs,
                          progress=progress)


def ensure_built(ids: Iterable[str] | None = None, *, out_dir: str | Path | None = None, jobs: int | None = None,
                 progress: ProgressFn | None = None) -> dict[str, Path]:
    """Make sure generated variants `ids` (default: the default tiny set) are built and valid."""
    return build_variants(list(ids) if ids is not None else list(DEFAULT_TINY_IDS),
                          out_dir=Path(out_dir) if out_dir is not None else None, jobs=jobs, progress=progress)


__all__ = ["DEFAULT_TINY_IDS", "GENERATOR_VERSION", "SIZES", "build_tiny_set", "ensure_built", "generated_ids", "parse_id"]
