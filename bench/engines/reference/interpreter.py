"""Compile a `graph.Function` once at load and run it per predict.

At load: `const` ops and every constexpr op (kernel family `constexpr`: compressed weights) are
evaluated once; every other op becomes a `Step` whose kernel, constant arguments and value slots
are resolved in advance, so a predict is a loop over steps with no lookups by name. Liveness is
computed too: a value's slot is cleared right after its last reader runs, so dead intermediates are
freed during the call rather than at its end.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds

import bench.engines.reference.ops  # noqa: F401  (importing registers every kernel)
from bench.engines.reference import fusion
from bench.engines.reference.graph import Binding, Function, Operation, Ref, TensorType
from bench.engines.reference.ops.registry import Kernel, registered_kernels
from bench.engines.reference.precision import (
    FLOAT_DTYPES,
    NONNEGATIVE_OPS,
    VALUE_PRESERVING_OPS,
    NumericsReport,
    all_finite,
    nonfinite_op,
    round_fp16_in_place,
    to_compute,
)
from bench.engines.reference.profile import OpProfile
from bench.errors import (
    BenchError,
    ModelFormatError,
    NumericalError,
    OpExecutionError,
    UnsupportedOpError,
)


@dataclass
class OutputSpec:
    """What the interpreter enforces on one op output."""

    slot: int
    name: str
    is_float: bool
    dtype: np.dtype
    shape: tuple[int | None, ...]
    fixed: bool  # every dimension known
    #: fp16 mode: the op only moves values (`VALUE_PRESERVING_OPS`) and reads no non-finite constant,
    #: so its float32 output needs neither rounding nor a finiteness check while every value so far is finite
    exact: bool = False


@dataclass
class Step:
    """One op, ready to run: kernel, constant kwargs, slot-bound kwargs, outputs, slots to free."""

    index: int
    op: Operation
    kernel: Kernel
    static: dict[str, Any]
    refs: list[tuple[str, int]]
    lists: list[tuple[str, list[Any], list[tuple[int, int]]]]
    outputs: list[OutputSpec]
    free: list[int] = field(default_factory=list)
    #: a fused step's original steps, run instead when it raises `fusion.NonFiniteInside`
    unfused: list[Step] = field(default_factory=list)


class CompiledFunction:
    """A function ready to run: constants evaluated, schedule and liveness built."""

    def __init__(
        self,
        function: Function,
        model_path: Path,
        precision: str = "fp32",
        on_nonfinite: str = "ignore",
    ):
        self.function = function
        self.model_path = Path(model_path)
        self.precision = precision
        self.on_nonfinite = on_nonfinite
        self.check_numerics = on_nonfinite != "ignore"
        self._feeds_finite = True
        self.last_numerics: NumericsReport | None = None
        self._slots: dict[str, int] = {}
        self._constants: dict[str, Any] = {}
        self.steps: list[Step] = []
        self.constexpr_count = 0
        self._compile()

    # -- load time -------------------------------------------------------------------------------
    def _where(self, op: Operation) -> str:
        return f"{self.model_path}: op {op.name!r} ({op.type})"

    def _op_error(self, op: Operation, error: Exception, failure: str, detail: str = "") -> BenchError:
        """`error` raised by `op`'s kernel, as an error naming the model and the op: the project's own
        errors keep their type, anything else becomes an OpExecutionError saying what failed."""
        if isinstance(error, BenchError):
            return type(error)(f"{self._where(op)}: {error}")
        return OpExecutionError(f"{self._where(op)} {failure}: {type(error).__name__}: {error}{detail}")

    def _slot(self, name: str) -> int:
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = len(self._slots)
        return slot

    def _compile(self) -> None:
        kernels = registered_kernels()
        function = self.function
        self.input_slots = [(v, self._slot(v.name)) for v in function.inputs]
        unsupported: list[Operation] = []
        for op in function.operations:
            if op.type == "const":
                self._add_const(op)
                continue
            kernel = kernels.get(op.type)
            if kernel is None:
                unsupported.append(op)
                for value in op.outputs:  # so later readers resolve; the op is reported below
                    self._slot(value.name)
                continue
            if kernel.is_constexpr:
                self._run_constexpr(op, kernel)
            else:
                self._add_step(op, kernel)
        if unsupported:
            first = unsupported[0]
            others = sorted({op.type for op in unsupported} - {first.type})
            more = f"; the model also uses unsupported op types: {', '.join(others)}" if others else ""
            raise UnsupportedOpError(
                f"{self._where(first)}: the reference engine has no kernel for op type {first.type!r} "
                f"({len(unsupported)} unsupported op(s) in all{more})"
            )
        self._plan_outputs()
        # Constants now live inside the steps that read them; drop the table so weights read only
        # by constexpr ops (packed indices, LUTs) are freed, and so fusion frees what it replaces.
        self._output_constants = {n: self._constants[n] for n in function.outputs if n in self._constants}
        self._constants = {}
        self._fuse_linears()
        self._fuse_attention()
        self._plan_liveness()

    def _add_const(self, op: Operation) -> None:
        if len(op.outputs) != 1 or "val" not in op.attributes:
            raise ModelFormatError(f"{self._where(op)}: a const needs one output and a 'val' attribute")
        value = op.attributes["val"]
        if isinstance(value, (np.ndarray, np.generic)):
            value = _frozen(to_compute(np.asarray(value), self.precision))
        self._constants[op.outputs[0].name] = value

    def _literal(self, value: Any) -> Any:
        return _frozen(to_compute(value, self.precision)) if isinstance(value, np.ndarray) else value

    def _run_constexpr(self, op: Operation, kernel: Kernel) -> None:
        kwargs: dict[str, Any] = {}
        for param, binding in op.inputs.items():
            kwargs[param] = self._constant_binding(op, param, binding)
        for key, value in op.attributes.items():  # iOS16 / iOS17 files carry the parameters here
            kwargs[key] = self._literal(value)
        with np.errstate(all="ignore"):
            outputs = self._invoke(kernel, op, kwargs, "failed while decompressing weights at load")
        for value, array in zip(op.outputs, outputs):
            array = self._finish_const(op, value.name, value.type, np.asarray(array))
            self._constants[value.name] = _frozen(array)
        self.constexpr_count += 1

    def _finish_const(self, op: Operation, name: str, vtype: TensorType, array: np.ndarray) -> np.ndarray:
        spec = self._output_spec(name, vtype, slot=-1)
        return self._finish(op, spec, array)

    def _constant_binding(self, op: Operation, param: str, binding: Binding) -> Any:
        args = binding if isinstance(binding, tuple) else (binding,)
        values = []
        for arg in args:
            if isinstance(arg, Ref):
                if arg.name not in self._constants:
                    raise ModelFormatError(
                        f"{self._where(op)}: parameter {param!r} reads {arg.name!r}, which is not a constant; "
                        "constexpr ops take constants only"
                    )
                values.append(self._constants[arg.name])
            else:
                values.append(self._literal(arg))
        return values if isinstance(binding, tuple) else values[0]

    def _add_step(self, op: Operation, kernel: Kernel) -> None:
        static: dict[str, Any] = {}
        refs: list[tuple[str, int]] = []
        lists: list[tuple[str, list[Any], list[tuple[int, int]]]] = []
        for param, binding in op.inputs.items():
            if isinstance(binding, tuple):
                template: list[Any] = []
                positions: list[tuple[int, int]] = []
                for position, arg in enumerate(binding):
                    if isinstance(arg, Ref) and arg.name not in self._constants:
                        positions.append((position, self._reader_slot(op, arg.name)))
                        template.append(None)
                    else:
                        template.append(self._resolve_static(arg))
                if positions:
                    lists.append((param, template, positions))
                else:
                    static[param] = template
            elif isinstance(binding, Ref) and binding.name not in self._constants:
                refs.append((param, self._reader_slot(op, binding.name)))
            else:
                static[param] = self._resolve_static(binding)
        for key, value in op.attributes.items():
            static[key] = self._literal(value)
        if kernel.prepare is not None and static:
            try:
                static = kernel.prepare(op, static)
            except Exception as error:
                raise self._op_error(op, error, "failed while preparing its constants at load") from error
        outputs = [self._output_spec(v.name, v.type, self._slot(v.name)) for v in op.outputs]
        if self.precision == "fp16" and op.type in VALUE_PRESERVING_OPS and _finite_constants(static):
            for spec in outputs:
                spec.exact = spec.is_float
        self.steps.append(Step(len(self.steps), op, kernel, static, refs, lists, outputs))

    def _fuse_linears(self) -> None:
        """Replace each group of `linear` steps sharing one input by one fused step (`fusion.py`)."""
        members = [
            fusion.Member(i, step.refs[0][1], step.static["weight"], step.static.get("bias"))
            for i, step in enumerate(self.steps)
            if fusion.fusable(step.op.type, step.refs, step.lists, step.static)
        ]
        replacements: dict[int, Step | None] = {}
        half = self.precision == "fp16"
        for group in fusion.plan_groups(members):
            steps = [self.steps[member.position] for member in group]
            static = {**fusion.fused_static(group), "round_fp16": half}
            # fp16: the kernel rounds (and raises on inf / nan), so its column views are stored as they are
            outputs = [dataclasses.replace(spec, exact=half) for step in steps for spec in step.outputs]
            op = fusion.fused_op([step.op for step in steps])
            fused = Step(0, op, fusion.LINEAR_GROUP, static, [("x", group[0].x_slot)], [], outputs)
            if half:
                fused.unfused = [self._member_step(step, static, i) for i, step in enumerate(steps)]
            replacements[group[0].position] = fused
            for member, step in zip(group, steps):
                step.static = {}  # the members' own weights go now, not at the end of the load
                replacements.setdefault(member.position, None)
        self._replace_steps(replacements)

    def _replace_steps(self, replacements: dict[int, Step | None]) -> None:
        """Put each replacement at its step's position (None drops the step) and renumber."""
        kept = [replacements.get(i, step) for i, step in enumerate(self.steps)]
        self.steps = [step for step in kept if step is not None]
        for index, step in enumerate(self.steps):
            step.index = index

    @staticmethod
    def _member_step(step: Step, fused: dict[str, Any], position: int) -> Step:
        """Member `position` of a fused linear as a step of its own, for the rare rerun
        (`_run_unfused`): its weight and bias are views of the group's, so the member's own arrays
        are still freed at load."""
        lo, hi = fused["bounds"][position], fused["bounds"][position + 1]
        static = {"weight": fused["weight"][lo:hi]}
        if fused["biased"][position]:
            static["bias"] = fused["bias"][lo:hi]
        return Step(step.index, step.op, step.kernel, static, step.refs, step.lists, step.outputs)

    def _fuse_attention(self) -> None:
        """Replace each matmul -> softmax (last axis) -> matmul chain whose scores and probabilities
        nothing else reads by one tiled step, at the second matmul's place (`fusion.py`)."""
        readers: dict[int, int] = {}
        for step in self.steps:
            for slot in _slots_read(step):
                readers[slot] = readers.get(slot, 0) + 1
        for _, slot in self.output_slots:
            if slot is not None:
                readers[slot] = readers.get(slot, 0) + 1
        producer = {out.slot: i for i, step in enumerate(self.steps) for out in step.outputs}
        chains = []
        for position, second in enumerate(self.steps):
            chain = self._attention_chain(position, second, readers, producer)
            if chain is not None:
                chains.append(chain)
        if not chains:
            return
        replacements: dict[int, Step | None] = {}
        for chain in chains:
            positions = [chain.scores] + ([chain.scale] if chain.scale is not None else []) + [chain.softmax, chain.output]
            originals = [self.steps[i] for i in positions]
            second = originals[-1]
            static = {
                "transpose_q": chain.transpose_q,
                "transpose_k": chain.transpose_k,
                "transpose_v": chain.transpose_v,
                "probs_first": chain.probs_first,
                "scale_op": chain.scale_op,
                "scale_value": chain.scale_value,
                "round_fp16": self.precision == "fp16",
                "check": self.check_numerics,
            }
            refs = [("q", chain.q_slot), ("k", chain.k_slot), ("v", chain.v_slot)]
            v_input = second.op.inputs["y" if chain.probs_first else "x"]
            op = fusion.attention_op([step.op for step in originals], v_input)
            for i in positions[:-1]:
                replacements[i] = None
            fused = Step(0, op, fusion.ATTENTION_CHAIN, static, refs, [], second.outputs)
            fused.unfused = originals
            replacements[chain.output] = fused
        self._replace_steps(replacements)

    def _attention_chain(
        self, position: int, second: Step, readers: dict[int, int], producer: dict[int, int]
    ) -> fusion.AttentionChain | None:
        """The chain ending at matmul step `second`, or None where the pattern does not hold."""

        def matmul_operands(step: Step) -> dict[str, int] | None:
            if step.op.type != "matmul" or step.kernel.op_type != "matmul" or step.lists or len(step.outputs) != 1:
                return None
            refs = dict(step.refs)
            flags = set(step.static) - {"transpose_x", "transpose_y"}
            return refs if set(refs) == {"x", "y"} and not flags else None

        def flag(step: Step, name: str) -> bool:
            return bool(np.asarray(step.static.get(name, False)).reshape(()))

        def private(slot: int) -> bool:  # read by exactly one step and not a function output
            return readers.get(slot, 0) == 1

        second_refs = matmul_operands(second)
        if second_refs is None:
            return None
        # probs @ v' (probs as x, untransposed) or v' @ probs^T (probs as y, transposed)
        for probs_first, probs_param, v_param in ((True, "x", "y"), (False, "y", "x")):
            probs = second_refs[probs_param]
            wanted_flag = flag(second, "transpose_x") if probs_first else not flag(second, "transpose_y")
            if wanted_flag or producer.get(probs) is None or not private(probs):
                continue
            softmax_at = producer[probs]
            softmax = self.steps[softmax_at]
            if softmax.op.type != "softmax" or [p for p, _ in softmax.refs] != ["x"] or set(softmax.static) - {"axis"}:
                continue
            rank = len(softmax.outputs[0].shape)
            if int(np.asarray(softmax.static.get("axis", -1)).reshape(())) not in (-1, rank - 1):
                continue
            scores = softmax.refs[0][1]
            scale_at, scale_op, scale_value = self._scalar_scale(producer.get(scores), private(scores))
            if scale_at is not None:
                scores = self.steps[scale_at].refs[0][1]
            first_at = producer.get(scores)
            if first_at is None or not private(scores):
                continue
            first = self.steps[first_at]
            first_refs = matmul_operands(first)
            if first_refs is None:
                continue
            v_flag = flag(second, "transpose_y") if probs_first else flag(second, "transpose_x")
            return fusion.AttentionChain(
                first_at, scale_at, softmax_at, position, first_refs["x"], first_refs["y"], second_refs[v_param],
                flag(first, "transpose_x"), flag(first, "transpose_y"), v_flag, probs_first, scale_op, scale_value,
            )
        return None

    def _scalar_scale(self, position: int | None, scaled_is_private: bool) -> tuple[int | None, str | None, np.ndarray | None]:
        """Step `position` as an attention scale (`mul` / `real_div` of a computed value by a
        scalar float constant whose result only the softmax reads), or (None, None, None)."""
        if position is None or not scaled_is_private:
            return None, None, None
        step = self.steps[position]
        factor = step.static.get("y")
        if step.op.type not in ("mul", "real_div") or [p for p, _ in step.refs] != ["x"] or set(step.static) != {"y"}:
            return None, None, None
        if not (isinstance(factor, np.ndarray) and factor.size == 1 and factor.dtype.kind == "f"):
            return None, None, None
        return position, step.op.type, factor.reshape(())

    def _resolve_static(self, arg: Any) -> Any:
        if isinstance(arg, Ref):
            return self._constants[arg.name]
        return self._literal(arg)

    def _reader_slot(self, op: Operation, name: str) -> int:
        slot = self._slots.get(name)
        if slot is None:
            raise ModelFormatError(f"{self._where(op)} reads {name!r}, which no earlier op or input defines")
        return slot

    @staticmethod
    def _output_spec(name: str, vtype: TensorType, slot: int) -> OutputSpec:
        is_float = vtype.dtype in FLOAT_DTYPES
        dtype = np.dtype(np.float32) if is_float else vtype.numpy_dtype
        fixed = all(d is not None for d in vtype.shape)
        return OutputSpec(slot, name, is_float, dtype, tuple(vtype.shape), fixed)

    def _plan_outputs(self) -> None:
        self.output_slots: list[tuple[str, int | None]] = []
        for name in self.function.outputs:
            if name in self._constants:
                self.output_slots.append((name, None))
            elif name in self._slots:
                self.output_slots.append((name, self._slots[name]))
            else:
                raise ModelFormatError(f"{self.model_path}: function output {name!r} is never defined")

    def _plan_liveness(self) -> None:
        last_read: dict[int, int] = {}
        for step in self.steps:
            for slot in _slots_read(step):
                last_read[slot] = step.index
        keep = {slot for _, slot in self.output_slots if slot is not None}
        for step in self.steps:
            for out in step.outputs:  # outputs nobody reads are freed right away
                if out.slot not in last_read and out.slot not in keep:
                    step.free.append(out.slot)
        for slot, index in last_read.items():
            if slot not in keep:
                self.steps[index].free.append(slot)
        self.slot_count = len(self._slots)

    # -- run time --------------------------------------------------------------------------------
    def _finish(self, op: Operation, spec: OutputSpec, array: np.ndarray) -> np.ndarray:
        return self._finish_checked(op, spec, array, check=False)[0]

    def _finish_checked(
        self, op: Operation, spec: OutputSpec, array: np.ndarray, check: bool, all_finite_so_far: bool = False
    ) -> tuple[np.ndarray, bool | None]:
        """The output as stored: float32, rounded through fp16 in fp16 mode, shape checked. With
        `check`, also whether it is all finite where that came for free (None: not known)."""
        finite: bool | None = None
        if spec.is_float:
            if spec.exact and array.dtype == np.float32:
                # fp16-exact already (see OutputSpec.exact); finite if every value before it was
                finite = True if all_finite_so_far else None
            else:
                if array.dtype != np.float32:
                    array = array.astype(np.float32)
                if self.precision == "fp16":
                    # In place over the array's memory when it is one dense block in any axis order
                    # (transposed results of einsum / matmul too); safe even when the kernel returned
                    # a view of an input, since every float value in fp16 mode is already
                    # fp16-representable. Read-only or scattered results are copied first.
                    flat = np.ravel(array, order="K") if array.flags.writeable else None
                    if flat is None or not np.may_share_memory(flat, array):
                        array = np.array(array, dtype=np.float32, order="C")
                        flat = array.reshape(-1)
                    finite = round_fp16_in_place(flat, check, nonnegative=op.type in NONNEGATIVE_OPS)
        elif array.dtype != spec.dtype:
            array = array.astype(spec.dtype)
        if spec.fixed:
            if array.shape != spec.shape:
                raise OpExecutionError(
                    f"{self._where(op)}: output {spec.name!r} has shape {array.shape}, the program declares {spec.shape}"
                )
        elif len(array.shape) != len(spec.shape) or any(
            d is not None and d != a for d, a in zip(spec.shape, array.shape)
        ):
            raise OpExecutionError(
                f"{self._where(op)}: output {spec.name!r} has shape {array.shape}, the program declares {spec.shape}"
            )
        return array, finite

    def _call(self, step: Step, env: list[Any]) -> tuple[Any, ...]:
        """Run one step's kernel; its arguments are dropped on return (no reference outlives it)."""
        return self._call_with_args(step, env)[1]

    def _call_with_args(self, step: Step, env: list[Any]) -> tuple[dict[str, Any], tuple[Any, ...]]:
        kwargs = dict(step.static) if step.static else {}
        for param, slot in step.refs:
            kwargs[param] = env[slot]
        for param, template, positions in step.lists:
            values = list(template)
            for position, slot in positions:
                values[position] = env[slot]
            kwargs[param] = values
        return kwargs, self._invoke(step.kernel, step.op, kwargs, "failed")

    def _run_unfused(self, step: Step, env: list[Any], report: NumericsReport | None) -> None:
        """Run a fused step's original steps (it met inf or nan inside): the numerics report then
        names the op that made them. Their intermediates die with this call's environment."""
        for original in step.unfused:
            self._store(original, self._call(original, env), env, report)

    def _invoke(self, kernel: Kernel, op: Operation, kwargs: dict[str, Any], failure: str) -> tuple[Any, ...]:
        """Call a kernel so that any error names the op and its inputs, and check its output count."""
        try:
            result = kernel.fn(op, **kwargs)
        except fusion.NonFiniteInside:
            raise
        except Exception as error:
            raise self._op_error(op, error, failure, f" (inputs: {_describe_inputs(kwargs)})") from error
        outputs = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        if len(outputs) != len(op.outputs):
            raise OpExecutionError(
                f"{self._where(op)}: kernel returned {len(outputs)} output(s), the op declares {len(op.outputs)}"
            )
        return outputs

    def _store(self, step: Step, outputs: tuple[Any, ...], env: list[Any], report: NumericsReport | None) -> None:
        for spec, value in zip(step.outputs, outputs):
            check = report is not None and spec.is_float
            all_finite_so_far = check and report.first is None and self._feeds_finite
            array, finite = self._finish_checked(step.op, spec, np.asarray(value), check, all_finite_so_far)
            env[spec.slot] = array
            if check and not (finite if finite is not None else all_finite(array)):
                report.nonfinite_ops += 1
                if report.first is None:
                    report.first = nonfinite_op(step.index, step.op.type, step.op.name, spec.name, array)
                    if self.on_nonfinite == "raise":
                        raise NumericalError(report.describe())

    def run(
        self,
        feeds: dict[str, np.ndarray],
        timings: list[OpProfile] | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
        consume: bool = False,
    ) -> dict[str, np.ndarray]:
        """Execute with validated, compute-ready inputs; `timings` collects per-op profiling.

        With `consume`, the entries of `feeds` are taken out of the dict, so an input is freed
        after its last reader rather than held by the caller's dict for the whole call.

        numpy's floating-point warnings are silenced: inf / nan are found by the numerics check,
        which names the op, instead of a RuntimeWarning from inside a kernel.
        """
        with np.errstate(all="ignore"):
            return self._run(feeds, timings, clock, consume)

    def _run(
        self,
        feeds: dict[str, np.ndarray],
        timings: list[OpProfile] | None,
        clock: Callable[[], int],
        consume: bool,
    ) -> dict[str, np.ndarray]:
        env: list[Any] = [None] * self.slot_count
        for value, slot in self.input_slots:
            env[slot] = feeds.pop(value.name) if consume else feeds[value.name]
        # Memory bounds, not the arrays: holding the inputs would defeat freeing them after their last reader.
        fed = [byte_bounds(env[slot]) for _, slot in self.input_slots if isinstance(env[slot], np.ndarray)]
        report = NumericsReport(self.model_path, self.precision) if self.check_numerics else None
        self.last_numerics = report
        self._feeds_finite = report is None or all(
            all_finite(env[slot]) for _, slot in self.input_slots
            if isinstance(env[slot], np.ndarray) and env[slot].dtype.kind == "f"
        )
        if timings is None:
            for step in self.steps:
                try:
                    self._store(step, self._call(step, env), env, report)
                except fusion.NonFiniteInside:
                    self._run_unfused(step, env, report)
                for slot in step.free:
                    env[slot] = None
        else:
            for step in self.steps:
                start = clock()
                try:
                    kwargs, outputs = self._call_with_args(step, env)
                    self._store(step, outputs, env, report)
                except fusion.NonFiniteInside:
                    self._run_unfused(step, env, report)
                    kwargs = {**step.static, **{name: env[slot] for name, slot in step.refs}}
                elapsed = (clock() - start) / 1e9
                stored = tuple(env[spec.slot] for spec in step.outputs)
                timings.append(
                    OpProfile(
                        step.index,
                        step.op.type,
                        step.op.name,
                        step.kernel.family,
                        elapsed,
                        _flops(step, kwargs, stored),
                        _nbytes(kwargs.values()) + _nbytes(stored),
                    )
                )
                kwargs = outputs = stored = None  # type: ignore[assignment]  (free before the next op)
                for slot in step.free:
                    env[slot] = None
        results: dict[str, np.ndarray] = {}
        for name, slot in self.output_slots:
            if slot is None:
                results[name] = np.array(self._output_constants[name], copy=True)
            else:
                value = env[slot]
                # An output must not alias the caller's array: an input itself, or a view of one
                # (reshape, transpose, slices return views).
                results[name] = value.copy() if _overlaps(value, fed) else value
        return results


def _slots_read(step: Step) -> list[int]:
    """The value slots a step reads at run time (a slot read twice is listed twice)."""
    return [slot for _, slot in step.refs] + [slot for _, _, positions in step.lists for _, slot in positions]


def _overlaps(array: np.ndarray, bounds: list[tuple[int, int]]) -> bool:
    """True where `array`'s memory overlaps any of the (low, high) byte bounds."""
    low, high = byte_bounds(array)
    return any(low < other_high and other_low < high for other_low, other_high in bounds)


def _frozen(array: np.ndarray) -> np.ndarray:
    """Constants are read-only: a kernel cannot corrupt a weight, and a model output that is a
    view of one is copied before it reaches the caller (see `precision.to_output`)."""
    array.flags.writeable = False
    return array


def _finite_constants(static: dict[str, Any]) -> bool:
    """No constant float argument of an op holds inf or nan (fp16 rounding can make them: -3.4e38 masks)."""
    for value in static.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, np.ndarray) and item.dtype.kind == "f" and not all_finite(item):
                return False
    return True


def _flops(step: Step, kwargs: dict[str, Any], outputs: tuple[np.ndarray, ...]) -> float | None:
    if step.kernel.flops is None:
        return None
    try:
        return float(step.kernel.flops(step.op, kwargs, outputs))
    except Exception:  # noqa: BLE001  (a broken estimate must not break profiling; the column shows it missing)
        return None


def _nbytes(values: Any) -> int:
    total = 0
    for value in values:
        if isinstance(value, np.ndarray) or hasattr(value, "nbytes") and isinstance(value.nbytes, int):
            total += value.nbytes
        elif isinstance(value, list):
            total += _nbytes(value)
    return total


def _describe_inputs(kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        if isinstance(value, np.ndarray):
            text = f"{value.dtype}{list(value.shape)}" if value.size > 4 else np.array2string(value.reshape(-1), separator=",")
        elif isinstance(value, list):
            text = "(" + ", ".join(
                f"{v.dtype}{list(v.shape)}" if isinstance(v, np.ndarray) else repr(v) for v in value
            ) + ")"
        else:
            text = repr(value)
        parts.append(f"{key}={text}")
    return ", ".join(parts)
