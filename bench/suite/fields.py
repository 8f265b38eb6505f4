"""The fields of a case, in one table: type, default, allowed values, identity, results column.

This table is the one place a case field is defined. Suite files are validated against it (so an
error can always say which key was wrong and what it accepts); `Case` is generated from it; a
case's id hashes its identity fields; and the fields that are results columns get their column
(dtype and meaning) in `bench.schema` from here. Adding a field means adding a row here (plus its
check function). Numbers must be finite (`nan` and `inf` are refused); steps, repeats, warm-up and
timeout have upper bounds (`bench.limits`) so a typo cannot ask for a run of years.
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
    """One case field: how to check a value, how to say what is allowed, its default, and its roles."""

    name: str
    allowed: str  # human text for error messages: "a positive integer", "one of a, b"
    check: Callable[[Any], Any]  # returns the normalized value or raises ValueError
    default: Any = None
    axis: bool = True  # may be a [matrix] axis
    help: str = ""
    type: Any = Any  # the Python type of the value (the generated Case's annotation)
    required: bool = False  # no default: every case must set it
    identity: bool = True  # part of what the case measures (hashed into its id)
    identity_when_set: bool = False  # hashed into the id only when set (fields added later keep old ids)
    coreml_only: bool = False  # means nothing to the reference engine (cleared when a case moves there)
    column: str | None = None  # results column dtype (bench.schema.DTYPES), None if not a column
    from_model: bool = False  # the column shows the resolved model's own label when it has one
    meaning: str = ""  # the results column's meaning (README schema table)


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


def _positive_number(value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ValueError
    return float(value)


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
        Field("model", "a model variant id or a local model folder", _name, None, type=str, required=True,
              help="zoo id (may use {attention} and {quantization} placeholders) or a folder",
              column="category", meaning="model variant id (or folder)"),
        Field("engine", f"one of {', '.join(ENGINES)}", _choice(ENGINES), "auto", type=str,
              column="category", meaning="what ran: `coreml` / `reference`"),
        Field("compute_unit", f"one of {', '.join(COMPUTE_UNITS)}", _choice(COMPUTE_UNITS), "ALL", type=str,
              column="category", meaning="`CPU_AND_NE`, ... or `REFERENCE`"),
        Field("attention", f"one of {', '.join(ATTENTIONS)}", _choice(ATTENTIONS, _attention_name), None,
              type=str | None, column="category", from_model=True, meaning="the model set's attention label"),
        Field("quantization", "a quantization label such as fp16, pal6 or mbp", _name, None, type=str | None,
              column="category", from_model=True, meaning="the model set's quantization label"),
        Field("resolution", "a positive integer (image side in pixels)", _positive_int, None, type=int | None,
              column="Int64", from_model=True, meaning="image side in pixels (the model set's)"),
        Field("steps", f"an integer in [1, {MAX_STEPS}]", _int_up_to(1, MAX_STEPS), 20, type=int, column="Int64",
              meaning="denoising steps requested"),
        Field("scheduler", f"one of {', '.join(SCHEDULERS)}", _choice(tuple(SCHEDULERS)), "euler", type=str,
              column="category", meaning="scheduler requested"),
        Field("guidance", "a finite number >= 0", _non_negative_number, 5.0, type=float, column="float64",
              meaning="classifier-free guidance scale"),
        Field("seed", "an integer >= 0", _non_negative_int, 0, type=int, column="Int64", meaning="noise seed"),
        Field("prompt", "a string", _text, DEFAULT_PROMPT, type=str),
        Field("negative_prompt", "a string", _text, "", type=str),
        Field("warmup", f"an integer in [0, {MAX_WARMUP}]", _int_up_to(0, MAX_WARMUP), 1, axis=False, type=int,
              identity=False),
        Field("repeats", f"an integer in [1, {MAX_REPEATS}]", _int_up_to(1, MAX_REPEATS), 3, axis=False, type=int,
              identity=False),
        Field("timeout", f"a finite number of seconds in (0, {MAX_TIMEOUT_SECONDS:g}]", _timeout, 600.0, axis=False,
              type=float, identity=False),
        Field("min_repeats", f"an integer in [1, {MAX_REPEATS}]", _int_up_to(1, MAX_REPEATS), 3, axis=False, type=int, identity=False,
              help="a case with fewer measured repeats is flagged invalid"),
        Field("max_spread", "a finite number > 0 (IQR / median of end-to-end latency)", _positive_number, 0.10,
              axis=False, type=float, identity=False,
              help="a case whose end-to-end spread exceeds this is flagged invalid"),
        Field("reduce_memory", "true or false", _boolean, False, type=bool, column="boolean",
              meaning="each model loads just before its stage and is released after"),
        Field("refiner", "true or false", _boolean, False, type=bool, column="boolean",
              meaning="base + refiner ensemble"),
        Field("high_noise_frac", "a number in (0, 1)", _unit_interval_open, 0.8, type=float),
        Field("strength", "a number in (0, 1] (img2img strength)", _strength, None, type=float | None,
              column="float64", meaning="img2img strength (empty for text-to-image)"),
        Field("init_image", "a path to an image file", _name, None, type=str | None),
        Field("quality", "true or false", _boolean, False, axis=False, type=bool, identity=False,
              help="also measure UNet PSNR against the variant's quality baseline"),
        Field("save_image", "true or false", _boolean, True, axis=False, type=bool, identity=False),
        # Core ML optimization hints (macOS 15 / iOS 18): names of ct.ReshapeFrequency / ct.SpecializationStrategy.
        Field("reshape_frequency", "one of Frequent, Infrequent (Core ML's reshapeFrequency hint)",
              _choice(("Frequent", "Infrequent")), None, type=str | None, identity_when_set=True, coreml_only=True),
        Field("specialization_strategy", "one of Default, FastPrediction (Core ML's specializationStrategy hint)",
              _choice(("Default", "FastPrediction")), None, type=str | None, identity_when_set=True,
              coreml_only=True),
    )
}  # fmt: skip

#: Fields that identify what a case measures (its id is a hash of these).
IDENTITY_FIELDS: tuple[str, ...] = tuple(
    name for name, spec in FIELDS.items() if spec.identity and not spec.identity_when_set
)
#: Identity fields added later: part of a case's id only when set, so older ids stay the same.
OPTIONAL_IDENTITY_FIELDS: tuple[str, ...] = tuple(name for name, spec in FIELDS.items() if spec.identity_when_set)
#: Fields that only mean something to Core ML (cleared when a case runs on the reference engine).
COREML_ONLY_FIELDS: tuple[str, ...] = tuple(name for name, spec in FIELDS.items() if spec.coreml_only)

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
