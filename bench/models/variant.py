"""`ModelSet`: the files of one SDXL model variant, resolved to local paths.

The zoo (or a local folder in Apple's layout) resolves a variant id to a `ModelSet`; the
pipeline needs nothing else to run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The model files a model set may hold, in the order the pipeline runs them.
MODEL_PARTS: tuple[str, ...] = (
    "text_encoder",
    "text_encoder_2",
    "vae_encoder",
    "unet",
    "unet_chunk1",
    "unet_chunk2",
    "refiner",
    "refiner_chunk1",
    "refiner_chunk2",
    "vae_decoder",
)

#: File keys a model set may hold (README "Models"): the model parts and the tokenizer files.
FILE_KEYS: tuple[str, ...] = (*MODEL_PARTS, "vocab", "merges")


@dataclass(frozen=True)
class ModelSet:
    """Local files of a model variant plus the labels the results carry.

    `files` maps a file key of `FILE_KEYS` (a model part or a tokenizer file) to a `.mlpackage` /
    `.mlmodelc` folder (or, for `vocab` and `merges`, a file). A chunked UNet has `unet_chunk1` and
    `unet_chunk2` instead of `unet`.
    """

    id: str
    root: Path
    files: dict[str, Path]
    resolution: int  # image side in pixels; the latent side is resolution // 8
    attention: str  # ORIGINAL, SPLIT_EINSUM or SPLIT_EINSUM_V2
    quantization: str  # e.g. float16, float32, int8, palettized-6bit, mbp-4.04
    unet_batch_one: bool = False  # UNet takes batch 1 and is called twice under guidance
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def latent_size(self) -> int:
        return self.resolution // 8

    @property
    def chunked_unet(self) -> bool:
        return "unet_chunk1" in self.files

    def has(self, part: str) -> bool:
        return part in self.files

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the runner hands resolved model sets to its workers this way)."""
        return {
            "id": self.id,
            "root": str(self.root),
            "files": {key: str(path) for key, path in self.files.items()},
            "resolution": self.resolution,
            "attention": self.attention,
            "quantization": self.quantization,
            "unet_batch_one": self.unet_batch_one,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSet:
        return cls(
            id=data["id"],
            root=Path(data["root"]),
            files={key: Path(path) for key, path in data["files"].items()},
            resolution=int(data["resolution"]),
            attention=data["attention"],
            quantization=data["quantization"],
            unet_batch_one=bool(data.get("unet_batch_one", False)),
            labels=dict(data.get("labels", {})),
        )


@dataclass(frozen=True)
class ResolvedModels:
    """The model sets a case runs: its own, and the quality baseline (None when it has none)."""

    model_set: ModelSet | None
    baseline_set: ModelSet | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_set": self.model_set.to_dict() if self.model_set else None,
            "baseline_set": self.baseline_set.to_dict() if self.baseline_set else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolvedModels:
        own, baseline = data.get("model_set"), data.get("baseline_set")
        return cls(ModelSet.from_dict(own) if own else None, ModelSet.from_dict(baseline) if baseline else None)
