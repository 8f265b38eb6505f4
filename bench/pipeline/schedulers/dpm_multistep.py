"""DPM-Solver++ multistep scheduler (Lu et al. 2022, arXiv 2211.01095): the Swift pipeline's `dpmpp`.

With the defaults (`solver_order=2`, `algorithm_type="dpmsolver++"`, `solver_type="midpoint"`) it
is DPM-Solver++ 2M: a first-order (DDIM) step first, then second-order multistep updates from the
last two data predictions, and a first-order last step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.pipeline.schedulers.base import (
    BETA_SCHEDULES,
    NOISE_SCHEDULE_DEFAULTS,
    TIMESTEP_SPACINGS,
    IndexedScheduler,
    SchedulerConfigError,
    SchedulerOutput,
    broadcast_to_sample,
    karras_sigmas,
    sigma_to_t,
)


class DPMSolverMultistepScheduler(IndexedScheduler):
    """diffusers' `DPMSolverMultistepScheduler` for the deterministic algorithms (dpmsolver++, dpmsolver)."""

    name: ClassVar[str] = "dpmpp"
    defaults: ClassVar[dict[str, Any]] = {
        **NOISE_SCHEDULE_DEFAULTS,
        "solver_order": 2,
        "prediction_type": "epsilon",
        "thresholding": False,
        "dynamic_thresholding_ratio": 0.995,
        "sample_max_value": 1.0,
        "algorithm_type": "dpmsolver++",
        "solver_type": "midpoint",
        "lower_order_final": True,
        "euler_at_final": False,
        "use_karras_sigmas": False,
        "use_exponential_sigmas": False,
        "use_beta_sigmas": False,
        "use_lu_lambdas": False,
        "use_flow_sigmas": False,
        "flow_shift": 1.0,
        "final_sigmas_type": "zero",
        "lambda_min_clipped": -float("inf"),
        "variance_type": None,
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "rescale_betas_zero_snr": False,
        "use_dynamic_shifting": False,
        "time_shift_type": "exponential",
    }
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {
        "beta_schedule": BETA_SCHEDULES,
        "solver_order": (1, 2, 3),
        "prediction_type": ("epsilon", "sample", "v_prediction"),
        # Not ported: dynamic thresholding, the SDE variants, and the exotic sigma schedules.
        "thresholding": (False,),
        "algorithm_type": ("dpmsolver++", "dpmsolver"),
        "solver_type": ("midpoint", "heun"),
        "use_karras_sigmas": (False, True),
        "use_exponential_sigmas": (False,),
        "use_beta_sigmas": (False,),
        "use_lu_lambdas": (False,),
        "use_flow_sigmas": (False,),
        "final_sigmas_type": ("zero", "sigma_min"),
        "variance_type": (None,),
        "timestep_spacing": TIMESTEP_SPACINGS,
        "use_dynamic_shifting": (False,),
        "time_shift_type": ("exponential",),
    }

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if self.config.algorithm_type == "dpmsolver" and self.config.final_sigmas_type == "zero":
            raise SchedulerConfigError(
                "DPMSolverMultistepScheduler: final_sigmas_type='zero' needs algorithm_type 'dpmsolver++'; "
                "use final_sigmas_type='sigma_min'"
            )
        self.alpha_t = np.sqrt(self.alphas_cumprod)
        self.sigma_t = np.sqrt(1 - self.alphas_cumprod)
        self.lambda_t = np.log(self.alpha_t) - np.log(self.sigma_t)
        self.sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).astype(np.float32)
        self.init_noise_sigma = 1.0
        self.model_outputs: list[np.ndarray | None] = [None] * self.config.solver_order
        self.lower_order_nums = 0

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose integer timesteps and their sigmas; reset the multistep history."""
        n = self._check_steps(num_inference_steps)
        n_train = int(self.config.num_train_timesteps)
        # Clip the smallest lambda(t) for numerical stability (matters for the cosine schedule).
        clipped_idx = int(np.searchsorted(self.lambda_t[::-1], self.config.lambda_min_clipped))
        last_timestep = n_train - clipped_idx
        spacing = self.config.timestep_spacing
        if spacing == "linspace":
            timesteps = np.linspace(0, last_timestep - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif spacing == "leading":
            ratio = last_timestep // (n + 1)
            timesteps = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
            timesteps += self.config.steps_offset
        else:  # trailing
            ratio = n_train / n
            timesteps = np.arange(last_timestep, 0, -ratio).round().copy().astype(np.int64) - 1
        train_sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).astype(np.float32)
        log_sigmas = np.log(train_sigmas)
        if self.config.use_karras_sigmas:
            sigmas = karras_sigmas(np.flip(train_sigmas).copy(), n)
            timesteps = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
            if self.config.beta_schedule != "squaredcos_cap_v2":
                timesteps = timesteps.round()
        else:
            sigmas = np.interp(timesteps, np.arange(0, len(train_sigmas)), train_sigmas)
        self.sigmas = np.concatenate([sigmas, [self._final_sigma()]]).astype(np.float32)
        self.timesteps = np.asarray(timesteps).astype(np.int64)
        self.num_inference_steps = len(self.timesteps)
        self.model_outputs = [None] * self.config.solver_order
        self.lower_order_nums = 0
        self._reset_index()

    def scale_model_input(self, sample: np.ndarray, timestep: float | None = None) -> np.ndarray:
        """DPM-Solver takes the sample as is."""
        return sample

    def index_for_timestep(self, timestep: float, schedule_timesteps: np.ndarray | None = None) -> int:
        """Index of `timestep` in the schedule (second match if repeated, last index if absent)."""
        schedule = self.timesteps if schedule_timesteps is None else schedule_timesteps
        candidates = np.flatnonzero(schedule == timestep)
        if len(candidates) == 0:
            return len(self.timesteps) - 1
        return int(candidates[1] if len(candidates) > 1 else candidates[0])

    @staticmethod
    def _alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
        alpha_t = np.float32(1) / ((sigma**2 + 1) ** 0.5)
        return alpha_t, sigma * alpha_t

    def _lambda(self, index: int) -> tuple[np.float32, np.float32, np.float32]:
        alpha, sigma = self._alpha_sigma(self.sigmas[index])
        with np.errstate(divide="ignore"):  # sigma = 0 at the end gives lambda = +inf, as in diffusers
            return alpha, sigma, np.log(alpha) - np.log(sigma)

    def convert_model_output(self, model_output: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """The data prediction x0 (dpmsolver++) or the noise prediction (dpmsolver) at this step."""
        alpha_t, sigma_t = self._alpha_sigma(self.sigmas[self._step_index])
        prediction = self.config.prediction_type
        if self.config.algorithm_type == "dpmsolver++":
            if prediction == "epsilon":
                return (sample - sigma_t * model_output) / alpha_t
            if prediction == "sample":
                return model_output
            return alpha_t * sample - sigma_t * model_output  # v_prediction
        if prediction == "epsilon":
            return model_output
        if prediction == "sample":
            return (sample - alpha_t * model_output) / sigma_t
        return alpha_t * model_output + sigma_t * sample  # v_prediction

    def _first_order(self, model_output: np.ndarray, sample: np.ndarray) -> np.ndarray:
        alpha_t, sigma_t, lambda_t = self._lambda(self._step_index + 1)
        alpha_s, sigma_s, lambda_s = self._lambda(self._step_index)
        h = lambda_t - lambda_s
        with np.errstate(over="ignore"):
            if self.config.algorithm_type == "dpmsolver++":
                return (sigma_t / sigma_s) * sample - (alpha_t * (np.exp(-h) - 1.0)) * model_output
            return (alpha_t / alpha_s) * sample - (sigma_t * (np.exp(h) - 1.0)) * model_output

    def _second_order(self, sample: np.ndarray) -> np.ndarray:
        alpha_t, sigma_t, lambda_t = self._lambda(self._step_index + 1)
        alpha_s0, sigma_s0, lambda_s0 = self._lambda(self._step_index)
        _, _, lambda_s1 = self._lambda(self._step_index - 1)
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
        r0 = h_0 / h
        d0, d1 = m0, (1.0 / r0) * (m0 - m1)
        midpoint = self.config.solver_type == "midpoint"
        if self.config.algorithm_type == "dpmsolver++":
            x_t = (sigma_t / sigma_s0) * sample - (alpha_t * (np.exp(-h) - 1.0)) * d0
            if midpoint:
                return x_t - 0.5 * (alpha_t * (np.exp(-h) - 1.0)) * d1
            return x_t + (alpha_t * ((np.exp(-h) - 1.0) / h + 1.0)) * d1
        x_t = (alpha_t / alpha_s0) * sample - (sigma_t * (np.exp(h) - 1.0)) * d0
        if midpoint:
            return x_t - 0.5 * (sigma_t * (np.exp(h) - 1.0)) * d1
        return x_t - (sigma_t * ((np.exp(h) - 1.0) / h - 1.0)) * d1

    def _third_order(self, sample: np.ndarray) -> np.ndarray:
        alpha_t, sigma_t, lambda_t = self._lambda(self._step_index + 1)
        alpha_s0, sigma_s0, lambda_s0 = self._lambda(self._step_index)
        _, _, lambda_s1 = self._lambda(self._step_index - 1)
        _, _, lambda_s2 = self._lambda(self._step_index - 2)
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        h, h_0, h_1 = lambda_t - lambda_s0, lambda_s0 - lambda_s1, lambda_s1 - lambda_s2
        r0, r1 = h_0 / h, h_1 / h
        d1_0, d1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        d2 = (1.0 / (r0 + r1)) * (d1_0 - d1_1)
        if self.config.algorithm_type == "dpmsolver++":
            return (
                (sigma_t / sigma_s0) * sample
                - (alpha_t * (np.exp(-h) - 1.0)) * m0
                + (alpha_t * ((np.exp(-h) - 1.0) / h + 1.0)) * d1
                - (alpha_t * ((np.exp(-h) - 1.0 + h) / h**2 - 0.5)) * d2
            )
        return (
            (alpha_t / alpha_s0) * sample
            - (sigma_t * (np.exp(h) - 1.0)) * m0
            - (sigma_t * ((np.exp(h) - 1.0) / h - 1.0)) * d1
            - (sigma_t * ((np.exp(h) - 1.0 - h) / h**2 - 0.5)) * d2
        )

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        *,
        generator: np.random.Generator | None = None,
    ) -> SchedulerOutput:
        """One multistep update; lower orders at the start and (for short schedules) at the end."""
        index = self._start_step(timestep)
        n = len(self.timesteps)
        lower_order_final = index == n - 1 and (
            self.config.euler_at_final
            or (self.config.lower_order_final and n < 15)
            or self.config.final_sigmas_type == "zero"
        )
        lower_order_second = index == n - 2 and self.config.lower_order_final and n < 15
        converted = self.convert_model_output(model_output, sample)
        self.model_outputs = self.model_outputs[1:] + [converted]
        sample = sample.astype(np.float32)
        order = self.config.solver_order
        if order == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev_sample = self._first_order(converted, sample)
        elif order == 2 or self.lower_order_nums < 2 or lower_order_second:
            prev_sample = self._second_order(sample)
        else:
            prev_sample = self._third_order(sample)
        if self.lower_order_nums < order:
            self.lower_order_nums += 1
        self._step_index += 1
        pred_original = converted if self.config.algorithm_type == "dpmsolver++" else None
        return SchedulerOutput(prev_sample.astype(model_output.dtype), pred_original)

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """alpha_t * x0 + sigma_t * noise at the given timesteps (or at the begin index when set)."""
        indices = self._noise_indices(np.atleast_1d(np.asarray(timesteps)))
        sigma = broadcast_to_sample(self.sigmas[indices].astype(original_samples.dtype), original_samples)
        alpha_t, sigma_t = self._alpha_sigma(sigma)
        return alpha_t * original_samples + sigma_t * noise


__all__ = ["DPMSolverMultistepScheduler"]
