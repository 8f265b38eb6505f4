"""Summaries of Core ML's `MLComputePlan`: which device each op is planned on, and its estimated cost.

`coremltools.models.compute_plan.MLComputePlan.load_from_path(compiled_path, compute_units)`
(macOS 14.4+ / iOS 17.4+, coremltools >= 8.1) gives, per ML Program operation, the preferred compute
device and an estimated share of the model's cost. It is the framework's plan, not a measurement;
the summary says so by its name. Off macOS, or on older systems, there is no plan and the summary
carries the reason instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: coremltools compute-device class names -> short labels used in results.
DEVICE_LABELS: dict[str, str] = {
    "MLCPUComputeDevice": "CPU",
    "MLGPUComputeDevice": "GPU",
    "MLNeuralEngineComputeDevice": "NE",
}
UNKNOWN_DEVICE = "unknown"


@dataclass(frozen=True)
class DeviceShare:
    """Ops planned on one device and their share of the op count and of the estimated cost."""

    device: str
    operations: int
    op_share: float
    cost: float
    cost_share: float | None  # None when no op had a cost estimate


@dataclass(frozen=True)
class ComputePlanSummary:
    """Per-device op and cost shares of one model for one compute-unit setting."""

    path: str
    compute_unit: str
    operations: int = 0  # executable ops (const ops excluded)
    const_operations: int = 0
    devices: tuple[DeviceShare, ...] = ()
    unavailable: str | None = None  # why there is no plan, when there is none
    op_types: dict[str, dict[str, int]] = field(default_factory=dict)  # op type -> device -> count

    @property
    def available(self) -> bool:
        return self.unavailable is None

    def share(self, device: str) -> DeviceShare | None:
        return next((d for d in self.devices if d.device == device), None)

    def as_metrics(self) -> dict[str, float]:
        """Flat numbers for a results row: `plan_op_share/<device>`, `plan_cost_share/<device>`."""
        metrics: dict[str, float] = {}
        for d in self.devices:
            metrics[f"plan_op_share/{d.device}"] = d.op_share
            if d.cost_share is not None:
                metrics[f"plan_cost_share/{d.device}"] = d.cost_share
        return metrics


def _operations(block: Any) -> Iterator[Any]:
    """Every operation of a block, nested blocks (loops, conditionals) included."""
    for operation in block.operations:
        yield operation
        for inner in getattr(operation, "blocks", None) or ():
            yield from _operations(inner)


def device_label(device: Any) -> str:
    """`CPU`, `GPU` or `NE` for a coremltools compute-device object."""
    return DEVICE_LABELS.get(type(device).__name__, UNKNOWN_DEVICE)


def summarize(plan: Any, *, path: str, compute_unit: str, function: str = "main") -> ComputePlanSummary:
    """Count ops and sum estimated cost per preferred device over `function` of an ML Program plan."""
    program = plan.model_structure.program
    if program is None:
        return ComputePlanSummary(path, compute_unit, unavailable="not an ML Program (no per-op plan)")
    functions = program.functions
    if function not in functions:
        return ComputePlanSummary(path, compute_unit, unavailable=f"no function {function!r} in the plan")
    counts: dict[str, int] = {}
    costs: dict[str, float] = {}
    op_types: dict[str, dict[str, int]] = {}
    const_ops = 0
    any_cost = False
    for operation in _operations(functions[function].block):
        if operation.operator_name == "const":
            const_ops += 1
            continue
        usage = plan.get_compute_device_usage_for_mlprogram_operation(operation)
        device = UNKNOWN_DEVICE if usage is None else device_label(usage.preferred_compute_device)
        counts[device] = counts.get(device, 0) + 1
        per_type = op_types.setdefault(operation.operator_name, {})
        per_type[device] = per_type.get(device, 0) + 1
        cost = plan.get_estimated_cost_for_mlprogram_operation(operation)
        if cost is not None:
            any_cost = True
            costs[device] = costs.get(device, 0.0) + float(cost.weight)
    total_ops = sum(counts.values())
    total_cost = sum(costs.values())
    devices = tuple(
        DeviceShare(
            device=device,
            operations=n,
            op_share=n / total_ops if total_ops else 0.0,
            cost=costs.get(device, 0.0),
            cost_share=(costs.get(device, 0.0) / total_cost) if any_cost and total_cost > 0 else None,
        )
        for device, n in sorted(counts.items(), key=lambda item: -item[1])
    )
    return ComputePlanSummary(path, compute_unit, total_ops, const_ops, devices, None, op_types)
