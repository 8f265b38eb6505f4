"""`Case`: one fully specified measurement, the unit the runner executes in one worker process."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from bench.suite.fields import DEFAULT_PROMPT, IDENTITY_FIELDS, OPTIONAL_IDENTITY_FIELDS


@dataclass(frozen=True)
class Case:
    """Everything one case needs: model, engine, compute unit, request parameters, repeats.

    `engine` and `compute_unit` are the ones that will run; after planning, `requested_*` keep
    what the suite asked for when they differ (Core ML cases collapsed onto the reference engine).
    """

    suite: str
    model: str
    engine: str = "auto"
    compute_unit: str = "ALL"
    attention: str | None = None
    quantization: str | None = None
    resolution: int | None = None
    steps: int = 20
    scheduler: str = "euler"
    guidance: float = 5.0
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = ""
    warmup: int = 1
    repeats: int = 3
    timeout: float = 600.0
    reduce_memory: bool = False
    refiner: bool = False
    high_noise_frac: float = 0.8
    strength: float | None = None
    init_image: str | None = None
    quality: bool = False
    save_image: bool = True
    reshape_frequency: str | None = None  # Core ML optimization hints (macOS 15 / iOS 18)
    specialization_strategy: str | None = None
    # `bench run --device`: the iPhone / iPad (UDID or name) whose Core ML runs every model; None: this machine.
    device: str | None = None
    # Set by planning.
    requested_engine: str | None = None
    requested_compute_units: tuple[str, ...] = ()
    skip_reason: str | None = None
    # Fields that vary within the suite, shown in the label beyond the fixed ones.
    label_extras: tuple[str, ...] = field(default=(), compare=False)

    @property
    def case_id(self) -> str:
        """Stable hash of what the case measures (not of repeats, timeout or suite name)."""
        identity = {name: getattr(self, name) for name in IDENTITY_FIELDS}
        identity.update({name: getattr(self, name) for name in OPTIONAL_IDENTITY_FIELDS if getattr(self, name) is not None})
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """Readable name, matched by `-k`: model, compute unit (which implies the engine), scheduler
        and steps, flags, and the fields that vary within the suite."""
        parts = [self.model, self.compute_unit, f"{self.scheduler}-{self.steps}steps"]
        if self.refiner:
            parts.append("refiner")
        if self.strength is not None:
            parts.append(f"img2img-{self.strength:g}")
        if self.reduce_memory:
            parts.append("reduce-memory")
        for name in self.label_extras:
            if name in ("refiner", "strength", "reduce_memory", "steps", "scheduler"):
                continue
            parts.append(f"{name}={getattr(self, name)}")
        return " ".join(parts)

    @property
    def optimization_hints(self) -> dict[str, str]:
        """The case's Core ML optimization hints, as the Core ML engine's `optimization_hints` option."""
        hints = {"reshapeFrequency": self.reshape_frequency, "specializationStrategy": self.specialization_strategy}
        return {key: value for key, value in hints.items() if value is not None}

    @property
    def batch(self) -> int:
        """UNet batch per call before the model is known: 2 ([negative, positive], Apple's layout).

        The worker replaces it with the model's (1 for `unet_batch_one` models, called twice)."""
        return 2

    def with_(self, **changes: Any) -> Case:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (worker payload, manifest); `from_dict` inverts it."""
        data = asdict(self)
        data["requested_compute_units"] = list(self.requested_compute_units)
        data["label_extras"] = list(self.label_extras)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["requested_compute_units"] = tuple(values.get("requested_compute_units", ()))
        values["label_extras"] = tuple(values.get("label_extras", ()))
        return cls(**values)
