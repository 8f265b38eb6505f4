"""The registry: every model variant the zoo knows, generated or published.

Generated variants (`tiny-*`, `small-*`) are built locally from a seed (`bench.models.tiny`).
Published ones are Apple's Core ML SDXL sets on the Hugging Face Hub; the folder and file names
below are those of the Hub repos (checked against the repo trees and apple/ml-stable-diffusion):

- apple/coreml-stable-diffusion-xl-base-ios: only compiled models, in
  `coreml-stable-diffusion-xl-base-ios_split_einsum_compiled/` (TextEncoder, TextEncoder2,
  UnetChunk1, UnetChunk2, VAEDecoder, vocab.json, merges.txt): SPLIT_EINSUM, 768x768, UNet
  mixed-bit palettized to 4.04 bits, the rest 16-bit; no VAE encoder.
- apple/coreml-stable-diffusion-xl-base: `compiled/` (TextEncoder, TextEncoder2, Unet, VAEDecoder,
  VAEEncoder, vocab.json, merges.txt) and `packages/` (Stable_Diffusion_version_stabilityai_
  stable-diffusion-xl-base-1.0_{text_encoder, text_encoder_2, unet, vae_decoder, vae_encoder}
  .mlpackage; the tokenizer files are only in compiled/): ORIGINAL, float16, 1024x1024.
- apple/coreml-stable-diffusion-xl-base-with-refiner: the same plus UnetRefiner (compiled) /
  ..._refiner.mlpackage.
- apple/coreml-stable-diffusion-mixed-bit-palettization: `recipes/stabilityai-stable-diffusion-xl-
  base-1.0_palettization_recipe.json` (Apple's pre-analysis output), `unet-mbp-sdxl-1-base/
  recipe_{3_41,4_50,6_55}_bit_mixedpalette/Unet.mlmodelc` (UNets only) and a full 4.50-bit set in
  `coreml-stable-diffusion-xl-base_mbp_4_50_palettized/compiled/`. The UNet-only recipes are
  completed with the other parts of apple/coreml-stable-diffusion-xl-base.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubFiles:
    """Files of one Hub repo folder a variant uses: part -> name inside `folder`."""

    repo_id: str
    folder: str
    parts: dict[str, str]
    optional: tuple[str, ...] = ()  # parts the set may lack (fetched when present)
    revision: str = "main"

    def path_in_repo(self, part: str) -> str:
        return f"{self.folder}/{self.parts[part]}" if self.folder else self.parts[part]


@dataclass(frozen=True)
class Variant:
    """A model variant: its id, its labels, and where its files come from."""

    id: str
    kind: str  # "generated", "hub" or "recipe"
    description: str
    attention: str
    quantization: str
    resolution: int
    parts: tuple[str, ...]
    source: str
    hub: tuple[HubFiles, ...] = field(default=())
    chunked: bool = False
    size: str | None = None  # generated size ("tiny", "small")

    @property
    def generated(self) -> bool:
        return self.kind == "generated"


_XL_BASE = "apple/coreml-stable-diffusion-xl-base"
_XL_IOS = "apple/coreml-stable-diffusion-xl-base-ios"
_XL_REFINER = "apple/coreml-stable-diffusion-xl-base-with-refiner"
_MBP = "apple/coreml-stable-diffusion-mixed-bit-palettization"
_PKG = "Stable_Diffusion_version_stabilityai_stable-diffusion-xl-base-1.0_{}.mlpackage"
_TOKENIZER = {"vocab": "vocab.json", "merges": "merges.txt"}
_COMPILED_BASE = {
    "text_encoder": "TextEncoder.mlmodelc",
    "text_encoder_2": "TextEncoder2.mlmodelc",
    "unet": "Unet.mlmodelc",
    "vae_decoder": "VAEDecoder.mlmodelc",
    "vae_encoder": "VAEEncoder.mlmodelc",
    **_TOKENIZER,
}
_NON_UNET = {k: v for k, v in _COMPILED_BASE.items() if k != "unet"}
#: Apple's SDXL mixed-bit recipe file (pre-analysis output).
MBP_RECIPE_FILE = "recipes/stabilityai-stable-diffusion-xl-base-1.0_palettization_recipe.json"


def _mbp_unet_only(bits: str) -> Variant:
    folder = f"unet-mbp-sdxl-1-base/recipe_{bits.replace('.', '_')}_bit_mixedpalette"
    return Variant(
        id=f"sdxl-mbp-{bits}",
        kind="hub",
        description=f"SDXL base, UNet mixed-bit palettized to {bits} bits (Apple's pre-applied recipe), other parts from the macOS set",
        attention="ORIGINAL",
        quantization=f"mbp-{bits}",
        resolution=1024,
        parts=tuple(_COMPILED_BASE),
        source=f"huggingface: {_MBP}/{folder} + {_XL_BASE}/compiled",
        hub=(
            HubFiles(_MBP, folder, {"unet": "Unet.mlmodelc"}),
            HubFiles(_XL_BASE, "compiled", _NON_UNET, optional=("vae_encoder",)),
        ),
    )


HUB_VARIANTS: tuple[Variant, ...] = (
    Variant(
        id="sdxl-base-ios17",
        kind="hub",
        description="SDXL base for iOS 17 / iPadOS 17: chunked UNet, 4.04-bit mixed-bit palettization, 768x768",
        attention="SPLIT_EINSUM",
        quantization="mbp-4.04",
        resolution=768,
        parts=("text_encoder", "text_encoder_2", "unet_chunk1", "unet_chunk2", "vae_decoder", "vocab", "merges"),
        source=f"huggingface: {_XL_IOS}/coreml-stable-diffusion-xl-base-ios_split_einsum_compiled",
        hub=(
            HubFiles(
                _XL_IOS,
                "coreml-stable-diffusion-xl-base-ios_split_einsum_compiled",
                {
                    "text_encoder": "TextEncoder.mlmodelc",
                    "text_encoder_2": "TextEncoder2.mlmodelc",
                    "unet_chunk1": "UnetChunk1.mlmodelc",
                    "unet_chunk2": "UnetChunk2.mlmodelc",
                    "vae_decoder": "VAEDecoder.mlmodelc",
                    **_TOKENIZER,
                },
            ),
        ),
        chunked=True,
    ),
    Variant(
        id="sdxl-base-macos",
        kind="hub",
        description="SDXL base for macOS (compiled), float16, 1024x1024",
        attention="ORIGINAL",
        quantization="float16",
        resolution=1024,
        parts=tuple(_COMPILED_BASE),
        source=f"huggingface: {_XL_BASE}/compiled",
        hub=(HubFiles(_XL_BASE, "compiled", _COMPILED_BASE),),
    ),
    Variant(
        id="sdxl-base-macos-packages",
        kind="hub",
        description="SDXL base for macOS as .mlpackage (compiled on load), float16, 1024x1024",
        attention="ORIGINAL",
        quantization="float16",
        resolution=1024,
        parts=tuple(_COMPILED_BASE),
        source=f"huggingface: {_XL_BASE}/packages (+ tokenizer from compiled/)",
        hub=(
            HubFiles(
                _XL_BASE,
                "packages",
                {part: _PKG.format(part) for part in ("text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder")},
            ),
            HubFiles(_XL_BASE, "compiled", _TOKENIZER),
        ),
    ),
    Variant(
        id="sdxl-base-refiner-macos",
        kind="hub",
        description="SDXL base with the SDXL refiner for macOS (compiled), float16, 1024x1024",
        attention="ORIGINAL",
        quantization="float16",
        resolution=1024,
        parts=tuple(_COMPILED_BASE) + ("refiner",),
        source=f"huggingface: {_XL_REFINER}/compiled",
        hub=(HubFiles(_XL_REFINER, "compiled", {**_COMPILED_BASE, "refiner": "UnetRefiner.mlmodelc"}),),
    ),
    Variant(
        id="sdxl-mbp-4.50",
        kind="hub",
        description="SDXL base pipeline with Apple's 4.50-bit mixed-bit recipe pre-applied to the UNet",
        attention="ORIGINAL",
        quantization="mbp-4.50",
        resolution=1024,
        parts=tuple(_COMPILED_BASE),
        source=f"huggingface: {_MBP}/coreml-stable-diffusion-xl-base_mbp_4_50_palettized/compiled",
        hub=(
            HubFiles(_MBP, "coreml-stable-diffusion-xl-base_mbp_4_50_palettized/compiled", _COMPILED_BASE,
                     optional=("vae_encoder",)),
        ),
    ),
    _mbp_unet_only("3.41"),
    _mbp_unet_only("6.55"),
    Variant(
        id="sdxl-mbp-recipes",
        kind="recipe",
        description="Apple's SDXL mixed-bit palettization pre-analysis (per-layer recipes); apply with `bench.models.recipe`",
        attention="-",
        quantization="-",
        resolution=1024,
        parts=("recipe",),
        source=f"huggingface: {_MBP}/{MBP_RECIPE_FILE}",
        hub=(HubFiles(_MBP, "recipes", {"recipe": MBP_RECIPE_FILE.split("/", 1)[1]}),),
    ),
)

#: Local baseline for the PSNR of published quantized variants (same resolution and attention).
HUB_QUALITY_BASELINES: dict[str, str] = {
    "sdxl-mbp-4.50": "sdxl-base-macos",
    "sdxl-mbp-3.41": "sdxl-base-macos",
    "sdxl-mbp-6.55": "sdxl-base-macos",
}
