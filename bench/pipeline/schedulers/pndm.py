"""PNDM scheduler (Liu et al. 2022, arXiv 2202.09778): the Swift pipeline's default.

With `skip_prk_steps=True` (Stable Diffusion's setting, and the only mode the Swift pipeline has)
it runs the pseudo linear multistep method only, whose warm-up evaluates the model twice at the
first timestep: `timesteps` has `steps + 1` entries, so the UNet runs `steps + 1` times.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.pipeline.schedulers.base import (
    BETA_SCHEDULES,
    NOISE_SCHEDULE_DEFAULTS,
    TIMESTEP_SPACINGS,
    BaseScheduler,
    SchedulerOutput,
    broadcast_to_sample,
)


class PNDMScheduler(BaseScheduler):
    """diffusers' `PNDMScheduler` (PLMS, with the Runge-Kutta warm-up unless `skip_prk_steps`)."""

    name: ClassVar[str] = "pndm"
    defaults: ClassVar[dict[str, Any]] = {
        **NOISE_SCHEDULE_DEFAULTS,
        "skip_prk_steps": False,
        "set_alpha_to_one": False,
        "prediction_type": "epsilon",
        "timestep_spacing": "leading",
        "steps_offset": 0,
    }
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "beta_schedule": BETA_SCHEDULES,
        "prediction_type": ("epsilon", "v_prediction"),
        "timestep_spacing": TIMESTEP_SPACINGS,
    }
    #: Number of Runge-Kutta warm-up timesteps (each evaluated four times) without `skip_prk_steps`.
    pndm_order = 4

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.final_alpha_cumprod = np.float32(1.0) if self.config.set_alpha_to_one else self.alphas_cumprod[0]
        self.init_noise_sigma = 1.0
        self._reset_state()
        self.prk_timesteps = np.array([], dtype=np.int64)
        self.plms_timesteps = np.array([], dtype=np.int64)

    def _reset_state(self) -> None:
        self.cur_model_output: np.ndarray | float = 0.0
        self.counter = 0
        self.cur_sample: np.ndarray | None = None
        self.ets: list[np.ndarray] = []

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose timesteps: PRK warm-up (unless skipped) then the PLMS timesteps."""
        n = self._check_steps(num_inference_steps)
        n_train = int(self.config.num_train_timesteps)
        self.num_inference_steps = n
        spacing = self.config.timestep_spacing
        if spacing == "linspace":
            base = np.linspace(0, n_train - 1, n).round().astype(np.int64)
        elif spacing == "leading":
            base = (np.arange(0, n) * (n_train // n)).round().astype(np.int64) + self.config.steps_offset
        else:  # trailing
            base = np.round(np.arange(n_train, 0, -n_train / n))[::-1].astype(np.int64) - 1
        if self.config.skip_prk_steps:
            self.prk_timesteps = np.array([], dtype=np.int64)
            self.plms_timesteps = np.concatenate([base[:-1], base[-2:-1], base[-1:]])[::-1].copy()
        else:
            half_step = n_train // n // 2
            prk = np.array(base[-self.pndm_order :]).repeat(2) + np.tile(np.array([0, half_step]), self.pndm_order)
            self.prk_timesteps = prk[:-1].repeat(2)[1:-1][::-1].copy()
            self.plms_timesteps = base[:-3][::-1].copy()
        self.timesteps = np.concatenate([self.prk_timesteps, self.plms_timesteps]).astype(np.int64)
        self._reset_state()

    def scale_model_input(self, sample: np.ndarray, timestep: float | None = None) -> np.ndarray:
        """PNDM takes the sample as is."""
        return sample

    def step(
        self,
        model_output: np.ndarray,
        timestep: int,
        sample: np.ndarray,
        *,
        generator: np.random.Generator | None = None,
    ) -> SchedulerOutput:
        """A Runge-Kutta warm-up step or a linear multistep step, by the internal counter."""
        self._require_timesteps()
        if self.counter < len(self.prk_timesteps) and not self.config.skip_prk_steps:
            return self._step_prk(model_output, int(timestep), sample)
        return self._step_plms(model_output, int(timestep), sample)

    def _step_prk(self, model_output: np.ndarray, timestep: int, sample: np.ndarray) -> SchedulerOutput:
        n_train = int(self.config.num_train_timesteps)
        diff_to_prev = 0 if self.counter % 2 else n_train // self.num_inference_steps // 2
        prev_timestep = timestep - diff_to_prev
        timestep = int(self.prk_timesteps[self.counter // 4 * 4])
        phase = self.counter % 4
        if phase == 0:
            self.cur_model_output = self.cur_model_output + (1 / 6) * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif phase in (1, 2):
            self.cur_model_output = self.cur_model_output + (1 / 3) * model_output
        else:
            model_output = self.cur_model_output + (1 / 6) * model_output
            self.cur_model_output = 0.0
        current = self.cur_sample if self.cur_sample is not None else sample
        prev_sample = self._prev_sample(current, timestep, prev_timestep, model_output)
        self.counter += 1
        return SchedulerOutput(prev_sample)

    def _step_plms(self, model_output: np.ndarray, timestep: int, sample: np.ndarray) -> SchedulerOutput:
        n_train = int(self.config.num_train_timesteps)
        if not self.config.skip_prk_steps and len(self.ets) < 3:
            raise ValueError("PNDMScheduler: PLMS steps need the Runge-Kutta warm-up first (12 evaluations)")
        prev_timestep = timestep - n_train // self.num_inference_steps
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            prev_timestep = timestep
            timestep = timestep + n_train // self.num_inference_steps
        ets = self.ets
        if len(ets) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(ets) == 1 and self.counter == 1:
            model_output = (model_output + ets[-1]) / 2
            sample = self.cur_sample
            self.cur_sample = None
        elif len(ets) == 2:
            model_output = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            model_output = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])
        prev_sample = self._prev_sample(sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return SchedulerOutput(prev_sample)

    def _prev_sample(self, sample: np.ndarray, timestep: int, prev_timestep: int, model_output: np.ndarray) -> np.ndarray:
        """x_(t - delta) from x_t by formula (9) of the PNDM paper."""
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        if self.config.prediction_type == "v_prediction":
            model_output = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        sample_coeff = (alpha_prod_t_prev / alpha_prod_t) ** 0.5
        denom = alpha_prod_t * beta_prod_t_prev**0.5 + (alpha_prod_t * beta_prod_t * alpha_prod_t_prev) ** 0.5
        return sample_coeff * sample - (alpha_prod_t_prev - alpha_prod_t) * model_output / denom

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise."""
        alphas = self.alphas_cumprod.astype(original_samples.dtype)[np.atleast_1d(np.asarray(timesteps, np.int64))]
        return (broadcast_to_sample(alphas**0.5, original_samples) * original_samples
                + broadcast_to_sample((1 - alphas) ** 0.5, original_samples) * noise)


__all__ = ["PNDMScheduler"]
