"""The numpy schedulers against diffusers' torch schedulers (the test extra), step by step."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import PipelineError
from bench.pipeline.request import SCHEDULERS
from bench.pipeline.schedulers import (
    SCHEDULER_CLASSES,
    SDXL_SCHEDULER_CONFIG,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    SchedulerConfigError,
    make_scheduler,
)

pytestmark = [
    # diffusers' own deprecation noise under numpy 2 / its dpmsolver deprecation; not ours.
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*algorithm_type dpmsolver is deprecated:FutureWarning"),
]

SHAPE = (1, 4, 8, 8)


def _close(actual, expected, tol=1e-5, **kwargs):
    """Equal to `tol`, relative to the sample's scale (float32 samples reach |x| ~ 100 early on)."""
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, **kwargs)


def _config_for(cls, **overrides):
    config = {k: v for k, v in SDXL_SCHEDULER_CONFIG.items() if k in cls.defaults}
    return {**config, **overrides}


def _run_both(cls, config, steps, seed=0, exact_timesteps=True):
    """Step ours and diffusers' side by side on the same model outputs; compare every step.

    Each step of `ours` starts from diffusers' current sample, so a step is compared on equal input
    (to 1e-5); a second copy runs free on its own samples and must stay within 1e-4 of diffusers
    over the whole schedule. (torch's float32 linspace rounds some betas 1 ulp differently, and
    that seeds a drift of ~1e-6 per step.)
    """
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    ours, free = cls(**config), cls(**config)
    theirs = getattr(diffusers, cls.__name__)(**config)
    for scheduler in (ours, free, theirs):
        scheduler.set_timesteps(steps)
    if exact_timesteps:
        np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())
    else:  # fractional (Karras) timesteps inherit the 1-ulp sigma differences
        np.testing.assert_allclose(ours.timesteps, theirs.timesteps.numpy(), rtol=1e-6)
    assert ours.timesteps.dtype == theirs.timesteps.numpy().dtype
    np.testing.assert_allclose(float(ours.init_noise_sigma), float(theirs.init_noise_sigma), rtol=1e-6)
    rng = np.random.default_rng(seed)
    sample = rng.standard_normal(SHAPE).astype(np.float32) * np.float32(ours.init_noise_sigma)
    free_sample, theirs_sample = sample.copy(), torch.from_numpy(sample.copy())
    their_generator = torch.Generator().manual_seed(seed)
    our_noise_generator = torch.Generator().manual_seed(seed)
    for i, t in enumerate(ours.timesteps):
        t_theirs = theirs.timesteps[i]
        current = theirs_sample.numpy().copy()
        scaled = ours.scale_model_input(current, t)
        free.scale_model_input(free_sample, t)
        scaled_theirs = theirs.scale_model_input(theirs_sample, t_theirs)
        _close(scaled, scaled_theirs.numpy(), err_msg=f"scale_model_input step {i}")
        model_output = (0.5 * scaled + rng.standard_normal(SHAPE).astype(np.float32)).astype(np.float32)
        kwargs, their_kwargs = {}, {}
        if cls is EulerAncestralDiscreteScheduler:
            their_kwargs["generator"] = their_generator
            kwargs["noise"] = torch.randn(SHAPE, generator=our_noise_generator, dtype=torch.float32).numpy()
        ours_sample = ours.step(model_output, t, current, **kwargs).prev_sample
        free_sample = free.step(model_output, t, free_sample, **kwargs).prev_sample
        theirs_sample = theirs.step(torch.from_numpy(model_output), t_theirs, theirs_sample, **their_kwargs).prev_sample
        _close(ours_sample, theirs_sample.numpy(), err_msg=f"step {i} (t={t})")
        assert ours_sample.dtype == np.float32
    _close(free_sample, theirs_sample.numpy(), tol=1e-4, err_msg="free run")
    return ours, theirs


@pytest.mark.torch
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 20, 50])
@pytest.mark.parametrize("cls", list(SCHEDULER_CLASSES.values()), ids=lambda c: c.__name__)
def test_matches_diffusers_with_sdxl_config(cls, steps, spacing):
    ours, _ = _run_both(cls, _config_for(cls, timestep_spacing=spacing), steps)
    if cls is PNDMScheduler:
        # The PLMS warm-up evaluates one timestep twice (diffusers too has one timestep for 1 step).
        assert len(ours.timesteps) == (steps + 1 if steps > 1 else 1)


@pytest.mark.torch
@pytest.mark.parametrize(
    "cls, overrides",
    [
        (EulerDiscreteScheduler, {"use_karras_sigmas": True}),
        (EulerDiscreteScheduler, {"prediction_type": "v_prediction", "final_sigmas_type": "sigma_min"}),
        (EulerDiscreteScheduler, {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}),
        (EulerDiscreteScheduler, {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}),
        (EulerAncestralDiscreteScheduler, {"prediction_type": "v_prediction"}),
        (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
        (DPMSolverMultistepScheduler, {"solver_order": 3}),
        (DPMSolverMultistepScheduler, {"solver_type": "heun", "lower_order_final": False}),
        (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}),
        (DPMSolverMultistepScheduler, {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}),
        (DPMSolverMultistepScheduler, {"euler_at_final": True, "final_sigmas_type": "sigma_min"}),
        (PNDMScheduler, {"skip_prk_steps": False}),
        (PNDMScheduler, {"set_alpha_to_one": True, "prediction_type": "v_prediction"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else ",".join(f"{k}={w}" for k, w in v.items()),
)
@pytest.mark.parametrize("steps", [8, 20])
def test_matches_diffusers_with_other_configs(cls, overrides, steps):
    _run_both(cls, _config_for(cls, **overrides), steps, seed=steps, exact_timesteps=False)


@pytest.mark.torch
@pytest.mark.parametrize("cls", list(SCHEDULER_CLASSES.values()), ids=lambda c: c.__name__)
def test_add_noise_matches_diffusers_from_begin_index(cls):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    config = _config_for(cls)
    ours, theirs = cls(**config), getattr(diffusers, cls.__name__)(**config)
    ours.set_timesteps(20)
    theirs.set_timesteps(20)
    start = 6  # img2img with strength 0.7 starts 6 of 20 steps in
    if hasattr(theirs, "set_begin_index"):
        ours.set_begin_index(start)
        theirs.set_begin_index(start)
    rng = np.random.default_rng(1)
    x0, noise = (rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2))
    t = ours.timesteps[start : start + 1]
    ours_noisy = ours.add_noise(x0, noise, t)
    theirs_noisy = theirs.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), theirs.timesteps[start : start + 1])
    _close(ours_noisy, theirs_noisy.numpy())


def test_make_scheduler_uses_sdxl_config_and_suite_names():
    assert set(SCHEDULERS) == {"euler", "euler_a", "dpmpp", "pndm"}
    for name, class_name in SCHEDULERS.items():
        scheduler = make_scheduler(name)
        assert type(scheduler).__name__ == class_name
        assert scheduler.config.beta_schedule == "scaled_linear"
        assert scheduler.config.beta_end == 0.012
    euler = make_scheduler("euler")
    euler.set_timesteps(20)
    assert euler.timesteps[0] == 951 and euler.timesteps[-1] == 1  # leading spacing, steps_offset 1
    assert euler.init_noise_sigma == pytest.approx((float(euler.sigmas[0]) ** 2 + 1) ** 0.5)
    assert make_scheduler("EulerDiscreteScheduler", timestep_spacing="trailing").config.timestep_spacing == "trailing"


def test_pndm_default_repeats_first_timestep():
    pndm = make_scheduler("pndm")
    pndm.set_timesteps(20)
    assert len(pndm.timesteps) == 21
    assert pndm.timesteps[1] == pndm.timesteps[2]  # the PLMS warm-up evaluates one timestep twice


def test_bad_configuration_names_key_and_choices():
    with pytest.raises(SchedulerConfigError, match="unknown configuration key.*clip_sample"):
        EulerDiscreteScheduler(clip_sample=False)
    with pytest.raises(SchedulerConfigError, match="timestep_spacing='sideways'.*'leading'"):
        make_scheduler("euler", timestep_spacing="sideways")
    with pytest.raises(SchedulerConfigError, match="thresholding"):
        make_scheduler("dpmpp", thresholding=True)
    with pytest.raises(SchedulerConfigError, match="unknown scheduler 'ddim'"):
        make_scheduler("ddim")
    with pytest.raises(SchedulerConfigError, match="trained_betas"):
        make_scheduler("euler", trained_betas=[0.1, 0.2])
    with pytest.raises(SchedulerConfigError, match="final_sigmas_type"):
        make_scheduler("dpmpp", algorithm_type="dpmsolver")
    assert issubclass(SchedulerConfigError, PipelineError)


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_step_counts_are_errors(steps):
    with pytest.raises(PipelineError, match="num_inference_steps"):
        make_scheduler("euler").set_timesteps(steps)


def test_step_before_set_timesteps_is_an_error():
    scheduler = make_scheduler("dpmpp")
    with pytest.raises(PipelineError, match="set_timesteps"):
        scheduler.step(np.zeros(SHAPE, np.float32), 999, np.zeros(SHAPE, np.float32))


def test_config_is_read_only_with_attribute_access():
    scheduler = make_scheduler("euler")
    assert scheduler.config.steps_offset == scheduler.config["steps_offset"] == 1
    with pytest.raises(TypeError):
        scheduler.config["steps_offset"] = 0
