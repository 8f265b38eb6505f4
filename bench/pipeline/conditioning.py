"""SDXL conditioning: text embeddings in the Core ML UNet layout, pooled embeddings, time ids.

SDXL conditions its UNet on the penultimate hidden states of both text encoders concatenated on
channels (768 + 1280 = 2048 for the real models), the pooled and projected output of text encoder 2
(`text_embeds`), and micro-conditioning `time_ids`: original size, crop top-left and target size
(base), or original size, crop and aesthetic score (refiner). Apple's Core ML text encoders already
return the penultimate layer as `hidden_embeds`; the Core ML UNet takes embeddings laid out
(B, C, 1, S) rather than (B, S, C). Classifier-free guidance batches [negative, positive].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import PipelineError

#: Output names of Apple's SDXL text encoders (apple/ml-stable-diffusion's conversion names them so).
HIDDEN_OUTPUT = "hidden_embeds"
POOLED_OUTPUT = "pooled_outputs"


@dataclass(frozen=True)
class EncodedPrompt:
    """One text encoder's outputs for one prompt: hidden (1, S, C) and pooled (1, P)."""

    hidden: np.ndarray
    pooled: np.ndarray


@dataclass(frozen=True)
class TextConditioning:
    """UNet text inputs for a batch of prompts (1 without guidance, [negative, positive] with)."""

    encoder_hidden_states: np.ndarray  # (B, C, 1, S) float32
    text_embeds: np.ndarray  # (B, P) float32

    @property
    def batch(self) -> int:
        return int(self.encoder_hidden_states.shape[0])

    def row(self, i: int) -> TextConditioning:
        """The conditioning of batch row `i` alone (for batch-one UNets)."""
        return TextConditioning(self.encoder_hidden_states[i : i + 1], self.text_embeds[i : i + 1])

    def repeated(self, batch: int) -> TextConditioning:
        """This (batch-1) conditioning repeated to `batch` rows."""
        return TextConditioning(
            np.repeat(self.encoder_hidden_states, batch, axis=0), np.repeat(self.text_embeds, batch, axis=0)
        )


def encoder_outputs(outputs: dict[str, np.ndarray], part: str) -> EncodedPrompt:
    """Pick `hidden_embeds` and `pooled_outputs` out of a text encoder's prediction."""
    missing = [name for name in (HIDDEN_OUTPUT, POOLED_OUTPUT) if name not in outputs]
    if missing:
        raise PipelineError(f"{part} returned {sorted(outputs)}; expected {HIDDEN_OUTPUT!r} and {POOLED_OUTPUT!r}")
    hidden = np.asarray(outputs[HIDDEN_OUTPUT], dtype=np.float32)
    pooled = np.asarray(outputs[POOLED_OUTPUT], dtype=np.float32)
    if hidden.ndim == 2:
        hidden = hidden[None]
    return EncodedPrompt(hidden, pooled.reshape(1, -1))


def unet_layout(hidden: np.ndarray) -> np.ndarray:
    """(B, S, C) -> (B, C, 1, S), the layout of Apple's UNet `encoder_hidden_states`."""
    return np.ascontiguousarray(hidden.transpose(0, 2, 1)[:, :, None, :])


def base_conditioning(
    encoder_1: list[EncodedPrompt], encoder_2: list[EncodedPrompt]
) -> TextConditioning:
    """Both encoders' hidden states concatenated on channels; pooled from encoder 2. Rows in order."""
    hidden = np.concatenate(
        [np.concatenate([a.hidden, b.hidden], axis=-1) for a, b in zip(encoder_1, encoder_2, strict=True)], axis=0
    )
    pooled = np.concatenate([b.pooled for b in encoder_2], axis=0)
    return TextConditioning(unet_layout(hidden), pooled)


def refiner_conditioning(encoder_2: list[EncodedPrompt]) -> TextConditioning:
    """The refiner is conditioned on text encoder 2 alone (hidden and pooled)."""
    hidden = np.concatenate([b.hidden for b in encoder_2], axis=0)
    pooled = np.concatenate([b.pooled for b in encoder_2], axis=0)
    return TextConditioning(unet_layout(hidden), pooled)


def base_time_ids(
    original_size: tuple[int, int], crops_coords_top_left: tuple[int, int], target_size: tuple[int, int]
) -> np.ndarray:
    """(6,) micro-conditioning of the base model: original (h, w), crop (top, left), target (h, w)."""
    return np.array([*original_size, *crops_coords_top_left, *target_size], dtype=np.float32)


def refiner_time_ids(
    original_size: tuple[int, int], crops_coords_top_left: tuple[int, int], aesthetic_score: float
) -> np.ndarray:
    """(5,) micro-conditioning of the refiner: original (h, w), crop (top, left), aesthetic score."""
    return np.array([*original_size, *crops_coords_top_left, aesthetic_score], dtype=np.float32)
