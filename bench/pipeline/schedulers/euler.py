"""Euler discrete scheduler (Karras et al. 2022, algorithm 2 without churn): the SDXL default."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.errors import PipelineError
from bench.pipeline.schedulers.base import (
    BETA_SCHEDULES,
    NOISE_SCHEDULE_DEFAULTS,
    TIMESTEP_SPACINGS,
    IndexedScheduler,
    SchedulerOutput,
    broadcast_to_sample,
    karras_sigmas,
    sigma_to_t,
    spaced_timesteps,
)


class SigmaScheduler(IndexedScheduler):
    """Schedulers that step in sigma space (x = x0 + sigma * noise): the Euler family."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.sigmas = np.concatenate([self._train_sigmas()[::-1], [0.0]]).astype(np.float32)
        self.timesteps = np.linspace(0, self.config.num_train_timesteps - 1, self.config.num_train_timesteps)[::-1]
        self.timesteps = self.timesteps.astype(np.float32)

    def _train_sigmas(self) -> np.ndarray:
        return (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).astype(np.float32)

    @property
    def init_noise_sigma(self) -> float:
        """Standard deviation of the initial noise: sigma_max, or sqrt(sigma_max^2 + 1) for leading."""
        max_sigma = float(self.sigmas.max())
        if self.config.timestep_spacing in ("linspace", "trailing"):
            return max_sigma
        return (max_sigma**2 + 1) ** 0.5

    def index_for_timestep(self, timestep: float, schedule_timesteps: np.ndarray | None = None) -> int:
        """Index of `timestep` in the schedule; the second match when it occurs twice (as diffusers)."""
        schedule = self.timesteps if schedule_timesteps is None else schedule_timesteps
        indices = np.flatnonzero(schedule == np.asarray(timestep, dtype=schedule.dtype))
        if len(indices) == 0:
            raise PipelineError(f"{type(self).__name__}: timestep {timestep} is not in the schedule")
        return int(indices[1] if len(indices) > 1 else indices[0])

    def scale_model_input(self, sample: np.ndarray, timestep: float) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1) so the UNet sees unit-variance input."""
        self._init_step_index(timestep)
        sigma = self.sigmas[self._step_index]
        return sample / ((sigma**2 + 1) ** 0.5)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """x0 + sigma(t) * noise, with sigma taken at the begin index when one is set."""
        indices = self._noise_indices(np.atleast_1d(np.asarray(timesteps)))
        sigma = broadcast_to_sample(self.sigmas[indices].astype(original_samples.dtype), original_samples)
        return original_samples + noise * sigma

    def _pred_original(self, model_output: np.ndarray, sample: np.ndarray, sigma: np.float32,
                       sigma_hat: np.float32) -> np.ndarray:
        prediction = self.config.prediction_type
        if prediction in ("sample", "original_sample"):
            return model_output
        if prediction == "epsilon":
            return sample - sigma_hat * model_output
        if prediction == "v_prediction":
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))
        raise PipelineError(f"{type(self).__name__}: prediction_type {prediction!r} is not supported")


class EulerDiscreteScheduler(SigmaScheduler):
    """diffusers' `EulerDiscreteScheduler`: deterministic Euler steps on the probability-flow ODE."""

    name: ClassVar[str] = "euler"
    defaults: ClassVar[dict[str, Any]] = {
        **NOISE_SCHEDULE_DEFAULTS,
        "prediction_type": "epsilon",
        "interpolation_type": "linear",
        "use_karras_sigmas": False,
        "use_exponential_sigmas": False,
        "use_beta_sigmas": False,
        "sigma_min": None,
        "sigma_max": None,
        "timestep_spacing": "linspace",
        "timestep_type": "discrete",
        "steps_offset": 0,
        "rescale_betas_zero_snr": False,
        "final_sigmas_type": "zero",
    }
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "beta_schedule": BETA_SCHEDULES,
        "prediction_type": ("epsilon", "v_prediction", "sample", "original_sample"),
        "interpolation_type": ("linear", "log_linear"),
        "use_karras_sigmas": (False, True, None),
        # Exponential and beta sigmas (the latter needs scipy) are not ported.
        "use_exponential_sigmas": (False, None),
        "use_beta_sigmas": (False, None),
        "timestep_spacing": TIMESTEP_SPACINGS,
        "timestep_type": ("discrete",),
        "final_sigmas_type": ("zero", "sigma_min"),
    }

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose `num_inference_steps` timesteps and their sigmas (plus a final sigma)."""
        n = self._check_steps(num_inference_steps)
        self.num_inference_steps = n
        timesteps = spaced_timesteps(self.config, n)
        train_sigmas = self._train_sigmas()
        log_sigmas = np.log(train_sigmas)
        if self.config.interpolation_type == "linear":
            sigmas = np.interp(timesteps, np.arange(0, len(train_sigmas)), train_sigmas)
        else:  # log_linear
            sigmas = np.exp(np.linspace(np.log(train_sigmas[-1]), np.log(train_sigmas[0]), n + 1, dtype=np.float32))
        if self.config.use_karras_sigmas:
            sigmas = karras_sigmas(sigmas, n, self.config.sigma_min, self.config.sigma_max)
            timesteps = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
        self.sigmas = np.concatenate([sigmas, [self._final_sigma()]]).astype(np.float32)
        self.timesteps = np.asarray(timesteps).astype(np.float32)
        self._reset_index()

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        *,
        generator: np.random.Generator | None = None,
    ) -> SchedulerOutput:
        """One Euler step from sigma(t) to the next sigma."""
        index = self._start_step(timestep)
        sample = sample.astype(np.float32)
        sigma = self.sigmas[index]
        pred_original = self._pred_original(model_output, sample, sigma, sigma)
        derivative = (sample - pred_original) / sigma
        dt = self.sigmas[index + 1] - sigma
        prev_sample = (sample + derivative * dt).astype(model_output.dtype)
        self._step_index += 1
        return SchedulerOutput(prev_sample, pred_original)


__all__ = ["EulerDiscreteScheduler", "SigmaScheduler"]
