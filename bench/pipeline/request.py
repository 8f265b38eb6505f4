"""`GenerationRequest`: everything one image generation needs besides the models."""

from __future__ import annotations

from dataclasses import dataclass

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
