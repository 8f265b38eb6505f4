"""Model variants: the zoo of known SDXL sets, the tiny-model generator, quantization, fetching.

`bench.models.zoo` resolves ids and folders to `ModelSet`s; `bench.models.tiny` generates SDXL-shaped
sets locally; `bench.models.fetch` downloads Apple's published sets; `bench.models.quality` measures
a quantized UNet's PSNR against its baseline. Heavy modules (coremltools) are imported lazily.
"""

from bench.models.variant import FILE_KEYS, ModelSet

__all__ = ["FILE_KEYS", "ModelSet"]
