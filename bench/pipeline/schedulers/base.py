"""What every scheduler shares: configuration checking, the beta schedule, the step output.

The schedulers are numpy ports of diffusers' schedulers with the same configuration keys, defaults
and interface (`set_timesteps`, `timesteps`, `init_noise_sigma`, `scale_model_input`, `step`,
`add_noise`), so a diffusers `scheduler_config.json` configures them and diffusers is their test
oracle. They are written here because the pipeline must not depend on torch (diffusers' schedulers
are torch code).

Precision follows diffusers: betas and `alphas_cumprod` are float32 (the cumulative product is taken
in float64, as torch does on CPU), sigmas float32, and steps run in float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.errors import PipelineError


class SchedulerConfigError(PipelineError):
    """A scheduler configuration key is unknown or has a value this port does not support."""


@dataclass(frozen=True)
class SchedulerOutput:
    """Result of one `step`: the sample at the previous timestep and the predicted clean sample."""

    prev_sample: np.ndarray
    pred_original_sample: np.ndarray | None = None


class SchedulerConfig(dict):
    """A read-only mapping with attribute access, like diffusers' `scheduler.config`."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("scheduler configuration is read-only; build a new scheduler instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _readonly  # type: ignore[assignment]


#: Values every scheduler accepts for the shared enumerated keys.
TIMESTEP_SPACINGS: tuple[str, ...] = ("linspace", "leading", "trailing")
BETA_SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "squaredcos_cap_v2")

#: The training noise schedule keys every scheduler has, with diffusers' defaults.
NOISE_SCHEDULE_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "trained_betas": None,
}


class BaseScheduler:
    """Configuration handling and the training noise schedule; subclasses add the sampler."""

    #: Name used in suites (`bench.pipeline.request.SCHEDULERS`).
    name: ClassVar[str] = ""
    #: Model evaluations per scheduler step (1 for all schedulers here, as in diffusers).
    order: ClassVar[int] = 1
    #: Every configuration key with its diffusers default.
    defaults: ClassVar[dict[str, Any]] = {}
    #: Allowed values of enumerated (or not-yet-ported) keys.
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init__(self, **config: Any) -> None:
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise SchedulerConfigError(
                f"{type(self).__name__}: unknown configuration key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(self.defaults))}"
            )
        merged = {**self.defaults, **config}
        for key, allowed in self.choices.items():
            if merged[key] not in allowed:
                raise SchedulerConfigError(
                    f"{type(self).__name__}: {key}={merged[key]!r} is not supported; "
                    f"expected one of {', '.join(repr(a) for a in allowed)}"
                )
        if int(merged["num_train_timesteps"]) < 2:
            raise SchedulerConfigError(f"{type(self).__name__}: num_train_timesteps must be >= 2")
        self.config = SchedulerConfig(merged)
        self.betas = training_betas(self.config)
        if self.config.get("rescale_betas_zero_snr", False):
            self.betas = rescale_zero_terminal_snr(self.betas)
        self.alphas = (np.float32(1.0) - self.betas).astype(np.float32)
        # torch.cumprod accumulates float32 in double on CPU; doing the same keeps parity to ~1 ulp.
        self.alphas_cumprod = np.cumprod(self.alphas.astype(np.float64)).astype(np.float32)
        if self.config.get("rescale_betas_zero_snr", False):
            self.alphas_cumprod[-1] = 2.0**-24  # as diffusers: near zero, so the first sigma is finite
        self.num_inference_steps: int | None = None
        self.timesteps = np.arange(self.config.num_train_timesteps)[::-1].copy()

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.config.items() if self.defaults.get(k) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(changed.items()))})"

    def _require_timesteps(self) -> None:
        if self.num_inference_steps is None:
            raise PipelineError(f"{type(self).__name__}: call set_timesteps() before stepping")

    @staticmethod
    def _check_steps(num_inference_steps: int) -> int:
        if isinstance(num_inference_steps, bool) or int(num_inference_steps) != num_inference_steps:
            raise PipelineError(f"num_inference_steps must be an integer, got {num_inference_steps!r}")
        if num_inference_steps < 1:
            raise PipelineError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        return int(num_inference_steps)


class IndexedScheduler(BaseScheduler):
    """Schedulers that keep a step index into `timesteps` (Euler and DPM-Solver, as in diffusers).

    The index is found from the first timestep seen, or set up front with `set_begin_index` when
    stepping starts mid-schedule (img2img, the refiner).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._step_index: int | None = None
        self._begin_index: int | None = None

    @property
    def step_index(self) -> int | None:
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start stepping at this index of `timesteps` (img2img and the refiner start mid-schedule)."""
        self._begin_index = begin_index

    def index_for_timestep(self, timestep: float, schedule_timesteps: np.ndarray | None = None) -> int:
        raise NotImplementedError

    def _final_sigma(self) -> float:
        """The sigma after the last step: 0, or the smallest training sigma (`final_sigmas_type`)."""
        if self.config.get("final_sigmas_type", "zero") == "sigma_min":
            return float(((1 - self.alphas_cumprod[0]) / self.alphas_cumprod[0]) ** 0.5)
        return 0.0

    def _reset_index(self) -> None:
        self._step_index = None
        self._begin_index = None

    def _init_step_index(self, timestep: float) -> None:
        if self._step_index is None:
            self._step_index = self.index_for_timestep(timestep) if self._begin_index is None else self._begin_index

    def _start_step(self, timestep: float) -> int:
        """Check `set_timesteps` ran and return the index of the step about to be taken."""
        self._require_timesteps()
        self._init_step_index(timestep)
        assert self._step_index is not None
        return self._step_index

    def _noise_indices(self, timesteps: np.ndarray) -> list[int]:
        """Schedule indices `add_noise` uses: each timestep's own, or the current / begin index."""
        if self._begin_index is None:
            return [self.index_for_timestep(t) for t in timesteps]
        index = self._step_index if self._step_index is not None else self._begin_index
        return [index] * len(timesteps)


def training_betas(config: Mapping[str, Any]) -> np.ndarray:
    """The training beta schedule diffusers builds from `beta_start`, `beta_end`, `beta_schedule`."""
    n = int(config["num_train_timesteps"])
    if config.get("trained_betas") is not None:
        betas = np.asarray(config["trained_betas"], dtype=np.float32)
        if betas.shape != (n,):
            raise SchedulerConfigError(f"trained_betas has shape {betas.shape}, expected ({n},)")
        return betas
    start, end, schedule = float(config["beta_start"]), float(config["beta_end"]), config["beta_schedule"]
    if schedule == "linear":
        return np.linspace(start, end, n).astype(np.float32)
    if schedule == "scaled_linear":
        # The latent-diffusion schedule: linear in sqrt(beta).
        return (np.linspace(start**0.5, end**0.5, n).astype(np.float32)) ** 2
    if schedule == "squaredcos_cap_v2":
        return cosine_betas(n)
    raise SchedulerConfigError(f"beta_schedule={schedule!r} is not supported; expected one of {BETA_SCHEDULES}")


def cosine_betas(n: int, max_beta: float = 0.999) -> np.ndarray:
    """The Glide cosine schedule (diffusers' `betas_for_alpha_bar` with the cosine transform)."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)], np.float32)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas to zero terminal SNR (arXiv 2305.08891, algorithm 1)."""
    alphas_bar_sqrt = np.sqrt(np.cumprod(1.0 - betas.astype(np.float64)))
    first, last = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return (1 - alphas).astype(np.float32)


def spaced_timesteps(config: Mapping[str, Any], num_inference_steps: int, *, last_timestep: int | None = None) -> np.ndarray:
    """Descending timesteps for `timestep_spacing` linspace / leading / trailing (Table 2 of 2305.08891).

    This is the Euler form (float, `num_inference_steps` values); DPM-Solver and PNDM space their
    own timesteps and call this only where the rule is the same.
    """
    n_train = int(config["num_train_timesteps"])
    spacing = config["timestep_spacing"]
    if spacing == "linspace":
        return np.linspace(0, n_train - 1, num_inference_steps, dtype=np.float32)[::-1].copy()
    if spacing == "leading":
        ratio = n_train // num_inference_steps
        timesteps = (np.arange(0, num_inference_steps) * ratio).round()[::-1].copy().astype(np.float32)
        return timesteps + config["steps_offset"]
    if spacing == "trailing":
        ratio = n_train / num_inference_steps
        return np.arange(n_train, 0, -ratio).round().copy().astype(np.float32) - 1
    raise SchedulerConfigError(f"timestep_spacing={spacing!r} is not supported; expected one of {TIMESTEP_SPACINGS}")


def sigma_to_t(sigma: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """Fractional training timestep of each sigma, by interpolating in log-sigma."""
    sigma = np.asarray(sigma)
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(sigma.shape)


def karras_sigmas(in_sigmas: np.ndarray, num_inference_steps: int, sigma_min: float | None = None,
                  sigma_max: float | None = None, rho: float = 7.0) -> np.ndarray:
    """Noise levels of Karras et al. 2022 (arXiv 2206.00364), eq. 5, between the schedule's extremes."""
    sigma_min = float(in_sigmas[-1]) if sigma_min is None else sigma_min
    sigma_max = float(in_sigmas[0]) if sigma_max is None else sigma_max
    ramp = np.linspace(0, 1, num_inference_steps)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


def broadcast_to_sample(values: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Reshape per-batch scalars (B,) so they broadcast over a (B, ...) sample."""
    values = np.asarray(values).reshape(-1)
    return values.reshape(values.shape + (1,) * (sample.ndim - 1))


def standard_normal(shape: tuple[int, ...], generator: np.random.Generator | None) -> np.ndarray:
    """Float32 standard-normal noise from `generator` (a fresh unseeded one if None)."""
    rng = generator if generator is not None else np.random.default_rng()
    return rng.standard_normal(shape, dtype=np.float32)
