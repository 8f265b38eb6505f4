"""The fields of a case: their types, defaults and allowed values, in one table.

Suite files are validated against this table, so an error can always say which key was wrong
and what it accepts. Numbers must be finite (`nan` and `inf` are refused); steps, repeats, warm-up
and timeout have upper bounds (`bench.limits`) so a typo cannot ask for a run of years.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.engines.base import COREML_COMPUTE_UNITS, REFERENCE_COMPUTE_UNIT
from bench.limits import MAX_REPEATS, MAX_STEPS, MAX_TIMEOUT_SECONDS, MAX_WARMUP
from bench.pipeline.request import SCHEDULERS

ENGINES: tuple[str, ...] = ("auto", "coreml", "reference")
COMPUTE_UNITS: tuple[str, ...] = (*COREML_COMPUTE_UNITS, REFERENCE_COMPUTE_UNIT)
ATTENTIONS: tuple[str, ...] = ("ORIGINAL", "SPLIT_EINSUM", "SPLIT_EINSUM_V2")

DEFAULT_PROMPT = "a photo of an astronaut riding a horse on mars"


@dataclass(frozen=True)
class Field:
    """One case field: how to check a value, how to say what is allowed, and its default."""

    name: str
    allowed: str  # human text for error messages: "a positive integer", "one of a, b"
    check: Callable[[Any], Any]  # returns the normalized value or raises ValueError
    default: Any = None
    axis: bool = True  # may be a [matrix] axis
    help: str = ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (TOML's `nan` and `inf` are not numbers a case can use)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> int:
    if not _is_int(value) or value <= 0:
        raise ValueError
    return int(value)


def _non_negative_int(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError
    return int(value)


def _int_up_to(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not _is_int(value) or not low <= value <= high:
            raise ValueError
        return int(value)

    return check


def _timeout(value: Any) -> float:
    if not _is_number(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise ValueError
    return float(value)


def _non_negative_number(value: Any) -> float:
    if not _is_number(value) or value < 0:
        raise ValueError
    return float(value)


def _unit_interval_open(value: Any) -> float:
    if not _is_number(value) or not 0 < value < 1:
        raise ValueError
    return float(value)


def _strength(value: Any) -> float:
    if not _is_number(value) or not 0 < value <= 1:
        raise ValueError
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value.strip()


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _choice(options: tuple[str, ...], normalize: Callable[[str], str] = lambda s: s) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or normalize(value) not in options:
            raise ValueError
        return normalize(value)

    return check


def _attention_name(value: str) -> str:
    return value.strip().upper().replace("-", "_")


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("model", "a model variant id or a local model folder", _name, None,
              help="zoo id (may use {attention} and {quantization} placeholders) or a folder"),
        Field("engine", f"one of {', '.join(ENGINES)}", _choice(ENGINES), "auto"),
        Field("compute_unit", f"one of {', '.join(COMPUTE_UNITS)}", _choice(COMPUTE_UNITS), "ALL"),
        Field("attention", f"one of {', '.join(ATTENTIONS)}", _choice(ATTENTIONS, _attention_name), None),
        Field("quantization", "a quantization label such as fp16, pal6 or mbp", _name, None),
        Field("resolution", "a positive integer (image side in pixels)", _positive_int, None),
        Field("steps", f"an integer in [1, {MAX_STEPS}]", _int_up_to(1, MAX_STEPS), 20),
        Field("scheduler", f"one of {', '.join(SCHEDULERS)}", _choice(tuple(SCHEDULERS)), "euler"),
        Field("guidance", "a finite number >= 0", _non_negative_number, 5.0),
        Field("seed", "an integer >= 0", _non_negative_int, 0),
        Field("prompt", "a string", _text, DEFAULT_PROMPT),
        Field("negative_prompt", "a string", _text, ""),
        Field("warmup", f"an integer in [0, {MAX_WARMUP}]", _int_up_to(0, MAX_WARMUP), 1, axis=False),
        Field("repeats", f"an integer in [1, {MAX_REPEATS}]", _int_up_to(1, MAX_REPEATS), 3, axis=False),
        Field("timeout", f"a finite number of seconds in (0, {MAX_TIMEOUT_SECONDS:g}]", _timeout, 600.0, axis=False),
        Field("reduce_memory", "true or false", _boolean, False),
        Field("refiner", "true or false", _boolean, False),
        Field("high_noise_frac", "a number in (0, 1)", _unit_interval_open, 0.8),
        Field("strength", "a number in (0, 1] (img2img strength)", _strength, None),
        Field("init_image", "a path to an image file", _name, None),
        Field("quality", "true or false", _boolean, False, axis=False,
              help="also measure UNet PSNR against the variant's quality baseline"),
        Field("save_image", "true or false", _boolean, True, axis=False),
    )
}  # fmt: skip

#: Fields that identify what a case measures (its id is a hash of these).
IDENTITY_FIELDS: tuple[str, ...] = (
    "model", "engine", "compute_unit", "attention", "quantization", "resolution", "steps",
    "scheduler", "guidance", "seed", "prompt", "negative_prompt", "reduce_memory", "refiner",
    "high_noise_frac", "strength", "init_image",
)  # fmt: skip

#: Keys of the [suite] table.
SUITE_KEYS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("name", "a non-empty string", _name, None),
        Field("description", "a string", _text, ""),
        Field("reference_fallback", "true or false", _boolean, True,
              help="run coreml cases on the reference engine where Core ML does not run"),
    )
}  # fmt: skip
