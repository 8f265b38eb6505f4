"""Model variants: the zoo of known SDXL sets, the tiny-model generator, quantization, fetching."""

from bench.models.variant import STAGES, ModelSet

__all__ = ["STAGES", "ModelSet"]
