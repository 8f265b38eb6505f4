"""`GenerationRequest`: everything one image generation needs besides the models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Scheduler names used in suites and on the command line, mapped to diffusers class names.
SCHEDULERS: dict[str, str] = {
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
}


@dataclass(frozen=True)
class GenerationRequest:
    """One text-to-image (or img2img, or base + refiner) generation."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    scheduler: str = "euler"
    guidance_scale: float = 5.0
    seed: int = 0
    refiner: bool = False
    high_noise_frac: float = 0.8  # share of the schedule the base denoises before the refiner
    init_image: np.ndarray | None = None  # img2img: (3, H, W) or (1, 3, H, W) in [-1, 1]
    strength: float | None = None  # img2img strength in (0, 1]
    aesthetic_score: float = 6.0
    negative_aesthetic_score: float = 2.5
    # SDXL micro-conditioning (time_ids); None means the image size, as diffusers and Swift default.
    original_size: tuple[int, int] | None = None
    crops_coords_top_left: tuple[int, int] = (0, 0)
    target_size: tuple[int, int] | None = None
    # Scheduler configuration on top of SDXL's (diffusers keys, e.g. {"timestep_spacing": "trailing"}).
    scheduler_config: Mapping[str, Any] | None = None

    @property
    def classifier_free_guidance(self) -> bool:
        """Guidance runs the UNet on [negative, positive] only when the scale is above 1."""
        return self.guidance_scale > 1.0

    @property
    def img2img(self) -> bool:
        return self.init_image is not None
