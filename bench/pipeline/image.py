"""Conversions between the VAE's image tensors and 8-bit RGB images, and PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import PipelineError


def to_uint8(decoded: np.ndarray) -> np.ndarray:
    """VAE decoder output (1, 3, H, W) or (3, H, W) in [-1, 1] -> (H, W, 3) uint8, as diffusers rounds."""
    decoded = np.asarray(decoded, dtype=np.float32)
    if decoded.ndim == 4:
        decoded = decoded[0]
    if decoded.ndim != 3 or decoded.shape[0] != 3:
        raise PipelineError(f"vae_decoder image has shape {decoded.shape}; expected (1, 3, H, W)")
    unit = np.clip(decoded / 2 + 0.5, 0.0, 1.0)
    return np.round(unit.transpose(1, 2, 0) * 255).astype(np.uint8)


def to_model_input(image: object) -> np.ndarray:
    """An init image for img2img -> (1, 3, H, W) float32 in [-1, 1].

    Accepts a PIL image, an (H, W, 3) uint8 array, or a (3, H, W) / (1, 3, H, W) float array
    already in [-1, 1].
    """
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise PipelineError(f"init_image of dtype uint8 has shape {array.shape}; expected (H, W, 3)")
        return (array.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[:2] != (1, 3):
        raise PipelineError(f"init_image has shape {array.shape}; expected (3, H, W) or (1, 3, H, W) in [-1, 1]")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)) or array.min() < -1.0 - 1e-3 or array.max() > 1.0 + 1e-3:
        raise PipelineError("init_image values must be finite and within [-1, 1] (or pass uint8 RGB)")
    return array


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (creating parent folders)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path, format="PNG")
    return path
