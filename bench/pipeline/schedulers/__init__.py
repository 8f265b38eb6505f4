"""Diffusion schedulers in numpy, configured like diffusers' schedulers.

`make_scheduler(name, **config)` builds one by its suite name (`euler`, `euler_a`, `dpmpp`, `pndm`;
see `bench.pipeline.request.SCHEDULERS`) or its diffusers class name, starting from SDXL's
published scheduler configuration and applying `config` on top.
"""

from __future__ import annotations

from typing import Any

from bench.pipeline.request import SCHEDULERS
from bench.pipeline.schedulers.base import (
    BaseScheduler,
    SchedulerConfigError,
    SchedulerOutput,
)
from bench.pipeline.schedulers.dpm_multistep import DPMSolverMultistepScheduler
from bench.pipeline.schedulers.euler import EulerDiscreteScheduler
from bench.pipeline.schedulers.euler_ancestral import EulerAncestralDiscreteScheduler
from bench.pipeline.schedulers.pndm import PNDMScheduler

#: Scheduler classes by diffusers class name.
SCHEDULER_CLASSES: dict[str, type[BaseScheduler]] = {
    cls.__name__: cls
    for cls in (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler, PNDMScheduler)
}

#: stabilityai/stable-diffusion-xl-base-1.0 `scheduler/scheduler_config.json` (keys every scheduler
#: here may use). `skip_prk_steps` and `set_alpha_to_one` matter to PNDM only.
SDXL_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "trained_betas": None,
}


def scheduler_class(name: str) -> type[BaseScheduler]:
    """The class for a suite name (`euler`) or a diffusers class name (`EulerDiscreteScheduler`)."""
    class_name = SCHEDULERS.get(name, name)
    if class_name not in SCHEDULER_CLASSES:
        raise SchedulerConfigError(
            f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)} "
            f"(or {', '.join(SCHEDULER_CLASSES)})"
        )
    return SCHEDULER_CLASSES[class_name]


def make_scheduler(name: str, **config: Any) -> BaseScheduler:
    """A scheduler with SDXL's configuration, overridden by `config` (unknown keys are errors)."""
    cls = scheduler_class(name)
    base = {k: v for k, v in SDXL_SCHEDULER_CONFIG.items() if k in cls.defaults}
    return cls(**{**base, **config})


__all__ = [
    "SCHEDULER_CLASSES",
    "SDXL_SCHEDULER_CONFIG",
    "BaseScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "PNDMScheduler",
    "SchedulerConfigError",
    "SchedulerOutput",
    "make_scheduler",
    "scheduler_class",
]
