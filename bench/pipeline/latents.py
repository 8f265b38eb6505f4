"""Latent noise, the VAE posterior and latent scaling.

Noise is numpy's PCG64 standard normal from the request seed, so a seed gives the same image on
every engine. Apple's Swift pipeline draws from its own NumPy-compatible Mersenne-Twister source
(`NumPyRandomSource`, like numpy's legacy `RandomState`) or a torch-compatible one, so the same seed
gives different latents, and different images, there and here.
"""

from __future__ import annotations

import numpy as np

#: SDXL VAE `scaling_factor` (diffusers' AutoencoderKL config for SDXL); SD 1.x/2.x use 0.18215.
SDXL_VAE_SCALING_FACTOR = 0.13025


def make_rng(seed: int) -> np.random.Generator:
    """The request's random source: numpy `Generator(PCG64(seed))`."""
    return np.random.Generator(np.random.PCG64(seed))


def initial_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 noise of `shape` (scale it by the scheduler's `init_noise_sigma`)."""
    return rng.standard_normal(shape, dtype=np.float32)


def sample_posterior(moments: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sample of the VAE encoder's diagonal Gaussian: moments are (B, 2C, h, w) = mean, log-variance."""
    mean, logvar = np.split(np.asarray(moments, dtype=np.float32), 2, axis=1)
    std = np.exp(0.5 * np.clip(logvar, -30.0, 20.0))
    return mean + std * rng.standard_normal(mean.shape, dtype=np.float32)
