"""`Case`: one fully specified measurement, the unit the runner executes in one worker process.

`Case` is a frozen dataclass generated from the field table (`bench.suite.fields.FIELDS`), so a
field is defined in one place. Besides the table's fields it has `suite` (the suite's name) and
what planning sets: `requested_engine` / `requested_compute_units` (what the suite asked for when
a Core ML case was moved to the reference engine), `skip_reason`, and `label_extras` (fields that
vary within the suite, shown in the label).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, field, fields, make_dataclass, replace
from typing import Any

from bench.suite.fields import FIELDS, IDENTITY_FIELDS


class _CaseBehaviour:
    """What every case can do; its fields come from the `FIELDS` table (see `Case` below)."""

    __slots__ = ()

    @property
    def case_id(self) -> str:
        """Stable hash of what the case measures (not of repeats, timeout or suite name)."""
        identity = {name: getattr(self, name) for name in IDENTITY_FIELDS}
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


def _case_fields() -> list[tuple[str, Any, Any]]:
    required = [("suite", str), *[(name, spec.type) for name, spec in FIELDS.items() if spec.required]]
    optional = [(name, spec.type, field(default=spec.default)) for name, spec in FIELDS.items() if not spec.required]
    planning = [
        ("requested_engine", "str | None", field(default=None)),
        ("requested_compute_units", "tuple[str, ...]", field(default=())),
        ("skip_reason", "str | None", field(default=None)),
        ("label_extras", "tuple[str, ...]", field(default=(), compare=False)),
    ]
    return [*required, *optional, *planning]


Case = make_dataclass("Case", _case_fields(), bases=(_CaseBehaviour,), frozen=True)
Case.__module__ = __name__
Case.__doc__ = """Everything one case needs: model, engine, compute unit, request parameters, repeats.

`engine` and `compute_unit` are the ones that will run; after planning, `requested_*` keep what the
suite asked for when they differ (Core ML cases collapsed onto the reference engine). Fields and
defaults: `bench.suite.fields.FIELDS`."""
