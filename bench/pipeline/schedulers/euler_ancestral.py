"""Euler ancestral scheduler: an Euler step down to sigma_down, then fresh noise up to the next sigma."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.pipeline.schedulers.base import (
    BETA_SCHEDULES,
    NOISE_SCHEDULE_DEFAULTS,
    TIMESTEP_SPACINGS,
    SchedulerOutput,
    spaced_timesteps,
    standard_normal,
)
from bench.pipeline.schedulers.euler import SigmaScheduler


class EulerAncestralDiscreteScheduler(SigmaScheduler):
    """diffusers' `EulerAncestralDiscreteScheduler` (stochastic; noise from the given generator)."""

    name: ClassVar[str] = "euler_a"
    defaults: ClassVar[dict[str, Any]] = {
        **NOISE_SCHEDULE_DEFAULTS,
        "prediction_type": "epsilon",
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "rescale_betas_zero_snr": False,
    }
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "beta_schedule": BETA_SCHEDULES,
        "prediction_type": ("epsilon", "v_prediction", "sample"),
        "timestep_spacing": TIMESTEP_SPACINGS,
    }

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose `num_inference_steps` timesteps and their sigmas (plus a final zero)."""
        n = self._check_steps(num_inference_steps)
        self.num_inference_steps = n
        timesteps = spaced_timesteps(self.config, n)
        train_sigmas = self._train_sigmas()
        sigmas = np.interp(timesteps, np.arange(0, len(train_sigmas)), train_sigmas)
        self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self.timesteps = timesteps.astype(np.float32)
        self._reset_index()

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        *,
        generator: np.random.Generator | None = None,
        noise: np.ndarray | None = None,
    ) -> SchedulerOutput:
        """One ancestral step; `noise` (standard normal, sample-shaped) overrides the generator."""
        index = self._start_step(timestep)
        sigma = self.sigmas[index]
        sample = sample.astype(np.float32)
        pred_original = self._pred_original(model_output, sample, sigma, sigma)
        sigma_from, sigma_to = sigma, self.sigmas[index + 1]
        sigma_up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
        sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
        derivative = (sample - pred_original) / sigma
        prev_sample = sample + derivative * (sigma_down - sigma)
        if noise is None:
            noise = standard_normal(model_output.shape, generator)
        prev_sample = (prev_sample + noise.astype(np.float32) * sigma_up).astype(model_output.dtype)
        self._step_index += 1
        return SchedulerOutput(prev_sample, pred_original)


__all__ = ["EulerAncestralDiscreteScheduler"]
