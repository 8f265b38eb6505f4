"""`bench profile MODEL_PATH`: where one predict's time goes on the reference engine.

Feeds seeded random inputs that match the model's input specs, times every op and prints the
per-op-type (or per-op) table; `--csv` also writes it for machines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.errors import BenchError, InputError
from bench.limits import check_allocation, shape_elements


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="profile one predict of a Core ML model on the reference engine, per op",
        description=(
            "Run a Core ML model (.mlpackage or .mlmodelc) on the numpy reference engine with seeded "
            "random inputs and print the time, FLOPs and bytes moved per op type or per op."
        ),
    )
    parser.add_argument("model_path", metavar="MODEL_PATH", help=".mlpackage or .mlmodelc folder")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="compute precision (default fp32)")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="rows to show, most time first (default 20; 0 = all)")
    parser.add_argument("--by", choices=("type", "op"), default="type", help="group by op type (default) or list single ops")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the full table as CSV")
    parser.add_argument("--repeats", type=int, default=1, metavar="N", help="predicts to run; per-op times are medians (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="BLAS and kernel threads (default: the CPUs allowed, shared among running engines)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.engines import reference
    from bench.engines.reference.threads import configure_threads, current_plan

    if args.top < 0:
        raise BenchError(f"--top must be 0 or more, got {args.top}")
    if args.repeats < 1:
        raise BenchError(f"--repeats must be at least 1, got {args.repeats}")
    plan = configure_threads(args.threads)  # raises a one-line BenchError for --threads 0
    model = reference.load(args.model_path, precision=args.precision)
    inputs = random_inputs(model, seed=args.seed)
    result = model.profile(inputs, repeats=args.repeats)
    console = Console()
    console.print(result.table(by=args.by, top=args.top or None))
    plan = current_plan() or plan
    console.print(f"threads: {plan.threads} ({plan.source}; {plan.affinity_cpus} CPUs allowed, "
                  f"{plan.engine_processes} engine process(es) sharing them)")
    report = model.last_numerics
    if report is not None and not report.ok:
        console.print(f"[yellow]numerics:[/yellow] {report.describe()}")
    if args.csv is not None:
        try:
            result.to_csv(args.csv, by=args.by)
        except OSError as error:
            raise BenchError(f"{args.csv}: cannot write the CSV ({error.strerror})") from None
        console.print(f"wrote {args.csv}")
    return 0


def random_inputs(model, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs matching `model.input_specs`.

    Floats are standard normal. Integers are drawn below the size of the table they index when an
    input feeds a `gather` of a constant (token ids into an embedding), else in [0, 100); float
    inputs that are such indices (older text encoders take float ids) get whole numbers too.
    The declared shapes are checked against the memory budget (`bench.limits`) before anything is
    allocated: generating an input takes 8 bytes an element (float64 draws) plus the input itself.
    """
    total = 0
    for spec in model.input_specs:
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        where = f"{getattr(model, 'path', 'model')}: input {spec.name!r}"
        count = shape_elements(shape, where, InputError)
        total += check_allocation(count * (8 + np.dtype(spec.dtype).itemsize), f"{where} of shape {list(shape)}", InputError)
    check_allocation(total, f"{getattr(model, 'path', 'model')}: the random inputs", InputError)
    rng = np.random.default_rng(seed)
    bounds = _index_bounds(model)
    inputs: dict[str, np.ndarray] = {}
    for spec in model.input_specs:
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f" and spec.name in bounds:  # float token ids (older text encoders)
            inputs[spec.name] = rng.integers(0, max(bounds[spec.name], 1), size=shape).astype(dtype)
        elif dtype.kind == "f":
            inputs[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[spec.name] = rng.random(shape) < 0.5
        else:
            high = bounds.get(spec.name, 100)
            inputs[spec.name] = rng.integers(0, max(high, 1), size=shape).astype(dtype)
    return inputs


def _index_bounds(model) -> dict[str, int]:
    """Input name -> rows of the constant table it indexes through `gather` (following casts)."""
    from bench.engines.reference.graph import Ref

    function = model.function
    consts = {
        op.outputs[0].name: op.attributes["val"]
        for op in function.operations
        if op.type == "const" and isinstance(op.attributes.get("val"), np.ndarray)
    }
    origin = {v.name: v.name for v in function.inputs}
    bounds: dict[str, int] = {}
    for op in function.operations:
        if op.type == "cast" and isinstance(op.inputs.get("x"), Ref) and op.inputs["x"].name in origin:
            origin[op.outputs[0].name] = origin[op.inputs["x"].name]
        if op.type in ("gather", "gather_along_axis") and isinstance(op.inputs.get("indices"), Ref):
            source = origin.get(op.inputs["indices"].name)
            table = op.inputs.get("x")
            if source is None or not isinstance(table, Ref) or table.name not in consts:
                continue
            axis_binding = op.inputs.get("axis")
            axis = 0
            if isinstance(axis_binding, Ref) and axis_binding.name in consts:
                axis = int(consts[axis_binding.name])
            elif isinstance(axis_binding, np.ndarray):
                axis = int(axis_binding)
            rows = consts[table.name].shape[axis]
            bounds[source] = min(bounds.get(source, rows), rows)
    return bounds


handler = run
