"""Load-time fusion of `linear` ops that read one input: same results as the ops one by one, one
product instead of several, profiled FLOPs unchanged, and only what qualifies is fused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.engines.reference import fusion
from bench.engines.reference.graph import Operation
from bench.engines.reference.interpreter import CompiledFunction
from tests.engines.reference.mil_programs import const, op, program, t

PATH = Path("fusion-test.mlpackage")


def attention_projections(rng: np.random.Generator, with_other_input: bool = True):
    """x (2, 16, 8) -> q, k, v (three linears on x; v without bias) and, on a second input y, a
    fourth linear that must stay alone; q + k + v + w summed per row so every output is read."""
    weights = {name: rng.standard_normal((6, 8)).astype(np.float32) for name in ("wq", "wk", "wv")}
    weights["wo"] = rng.standard_normal((6, 8)).astype(np.float32)
    biases = {name: rng.standard_normal(6).astype(np.float32) for name in ("bq", "bk", "bo")}
    ops = [const(n, w) for n, w in weights.items()] + [const(n, b) for n, b in biases.items()]
    row = t("fp32", 2, 16, 6)
    ops += [
        op("linear", "q_proj", [("q", row)], x="x", weight="wq", bias="bq"),
        op("relu", "between", [("r", t("fp32", 2, 16, 8))], x="x"),  # unrelated work between members
        op("linear", "k_proj", [("k", row)], x="x", weight="wk", bias="bk"),
        op("linear", "v_proj", [("v", row)], x="x", weight="wv"),
        op("linear", "other_proj", [("o", row)], x="y" if with_other_input else "r", weight="wo", bias="bo"),
        op("add", "qk", [("qk", row)], x="q", y="k"),
        op("add", "qkv", [("qkv", row)], x="qk", y="v"),
        op("add", "out", [("out", row)], x="qkv", y="o"),
    ]
    inputs = [("x", t("fp32", 2, 16, 8)), ("y", t("fp32", 2, 16, 8))]
    return program(inputs, ops, ["out", "v"]).main, weights, biases


def expected(x, y, weights, biases):
    q = x @ weights["wq"].T + biases["bq"]
    k = x @ weights["wk"].T + biases["bk"]
    v = x @ weights["wv"].T
    o = y @ weights["wo"].T + biases["bo"]
    return q + k + v + o, v


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_linears_on_one_input_run_as_one_product_with_the_same_results(precision):
    rng = np.random.default_rng(0)
    function, weights, biases = attention_projections(rng)
    compiled = CompiledFunction(function, PATH, precision=precision)
    linear_steps = [step for step in compiled.steps if step.op.type == "linear"]
    assert len(linear_steps) == 2  # q, k, v fused; the projection of y alone
    fused = next(step for step in linear_steps if step.kernel is fusion.LINEAR_GROUP)
    assert fused.op.name.startswith("q_proj") and [o.name for o in fused.op.outputs] == ["q", "k", "v"]
    assert fused.static["weight"].shape == (18, 8) and fused.static["bounds"] == [0, 6, 12, 18]
    assert [step.index for step in compiled.steps] == list(range(len(compiled.steps)))

    x = rng.standard_normal((2, 16, 8)).astype(np.float32)
    y = rng.standard_normal((2, 16, 8)).astype(np.float32)
    got = compiled.run({"x": x, "y": y})
    want_out, want_v = expected(x, y, weights, biases)
    tolerance = 1e-5 if precision == "fp32" else 2e-2
    np.testing.assert_allclose(got["out"], want_out, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(got["v"], want_v, rtol=tolerance, atol=tolerance)
    if precision == "fp16":  # every fused output is rounded like any op output
        assert np.array_equal(got["v"], got["v"].astype(np.float16).astype(np.float32))


def test_profile_counts_the_fused_flops_as_the_members_would():
    rng = np.random.default_rng(1)
    function, _, _ = attention_projections(rng)
    compiled = CompiledFunction(function, PATH)
    timings: list = []
    compiled.run({"x": np.ones((2, 16, 8), np.float32), "y": np.ones((2, 16, 8), np.float32)}, timings=timings)
    flops = sum(entry.flops for entry in timings if entry.op_type == "linear")
    rows = 2 * 16
    assert flops == 4 * (2 * rows * 6 * 8) + 3 * rows * 6  # four products of D_in 8; three with bias


def test_a_linear_reading_a_computed_value_fuses_only_with_its_own_input():
    rng = np.random.default_rng(2)
    function, _, _ = attention_projections(rng, with_other_input=False)
    compiled = CompiledFunction(function, PATH)
    names = sorted(step.op.name for step in compiled.steps if step.op.type == "linear")
    assert names == ["other_proj", "q_proj (+2 linear ops on the same input, fused)"]


def test_groups_are_cut_at_the_weight_budget(monkeypatch):
    monkeypatch.setattr(fusion, "MAX_GROUP_WEIGHT_BYTES", 2 * 6 * 8 * 4)  # two members' weights
    rng = np.random.default_rng(3)
    function, weights, biases = attention_projections(rng)
    compiled = CompiledFunction(function, PATH)
    fused = [step for step in compiled.steps if step.kernel is fusion.LINEAR_GROUP]
    assert [len(step.op.outputs) for step in fused] == [2]  # q + k; v alone, then other_proj alone
    x = rng.standard_normal((2, 16, 8)).astype(np.float32)
    y = rng.standard_normal((2, 16, 8)).astype(np.float32)
    np.testing.assert_allclose(compiled.run({"x": x, "y": y})["out"], expected(x, y, weights, biases)[0], rtol=1e-5, atol=1e-5)


def test_only_float32_constant_weights_with_x_alone_qualify():
    w = np.ones((4, 3), np.float32)
    assert fusion.fusable("linear", [("x", 0)], [], {"weight": w})
    assert fusion.fusable("linear", [("x", 0)], [], {"weight": w, "bias": np.zeros(4, np.float32)})
    assert not fusion.fusable("matmul", [("x", 0)], [], {"weight": w})
    assert not fusion.fusable("linear", [("x", 0), ("weight", 1)], [], {})  # weight computed at run time
    assert not fusion.fusable("linear", [("x", 0)], [], {"weight": w.astype(np.float64)})
    assert not fusion.fusable("linear", [("x", 0)], [], {"weight": w, "bias": np.zeros(5, np.float32)})


# -- attention chains ----------------------------------------------------------------------------------


def attention_program(also_read_scores: bool = False):
    """q (2, 3, 300, 8), k (2, 3, 40, 8) -> matmul(q, k, transpose_y) -> softmax(-1) -> matmul(., v)."""
    scores_t = t("fp32", 2, 3, 300, 40)
    ops = [
        const("ty", np.bool_(True)),
        const("no", np.bool_(False)),
        const("last", np.int32(-1)),
        op("matmul", "scores", [("s", scores_t)], x="q", y="k", transpose_x="no", transpose_y="ty"),
        op("softmax", "probs", [("p", scores_t)], x="s", axis="last"),
        op("matmul", "attended", [("out", t("fp32", 2, 3, 300, 8))], x="p", y="v", transpose_x="no", transpose_y="no"),
    ]
    outputs = ["out"]
    if also_read_scores:
        ops.append(op("relu", "peek", [("peek", scores_t)], x="s"))
        outputs.append("peek")
    inputs = [("q", t("fp32", 2, 3, 300, 8)), ("k", t("fp32", 2, 3, 40, 8)), ("v", t("fp32", 2, 3, 40, 8))]
    return program(inputs, ops, outputs).main


def attention_inputs():
    rng = np.random.default_rng(4)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in
            (("q", (2, 3, 300, 8)), ("k", (2, 3, 40, 8)), ("v", (2, 3, 40, 8)))}


def attention_expected(feeds):
    scores = feeds["q"].astype(np.float64) @ np.swapaxes(feeds["k"], -1, -2)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (scores / scores.sum(axis=-1, keepdims=True)) @ feeds["v"]


def test_matmul_softmax_matmul_runs_as_one_tiled_step():
    compiled = CompiledFunction(attention_program(), PATH)
    assert [step.kernel for step in compiled.steps] == [fusion.ATTENTION_CHAIN]
    assert compiled.steps[0].op.name == "scores -> probs -> attended (attention, fused)"
    feeds = attention_inputs()
    np.testing.assert_allclose(compiled.run(dict(feeds))["out"], attention_expected(feeds), rtol=1e-5, atol=1e-5)
    timings: list = []
    compiled.run(dict(feeds), timings=timings)
    assert timings[0].op_type == "matmul" and timings[0].flops == 2 * (2 * 3 * 300 * 40 * 8) * 2


def test_attention_stays_unfused_where_the_scores_are_read_elsewhere():
    shared = CompiledFunction(attention_program(also_read_scores=True), PATH)
    assert [step.op.type for step in shared.steps] == ["matmul", "softmax", "matmul", "relu"]
    feeds = attention_inputs()
    np.testing.assert_allclose(shared.run(dict(feeds))["out"], attention_expected(feeds), rtol=1e-5, atol=1e-5)


def unfused(function, precision: str, **options) -> CompiledFunction:
    compiled = CompiledFunction.__new__(CompiledFunction)
    compiled._fuse_attention = lambda: None  # type: ignore[method-assign]
    CompiledFunction.__init__(compiled, function, PATH, precision=precision, **options)
    return compiled


def test_fp16_fused_attention_rounds_scores_and_probabilities_like_the_ops_one_by_one():
    feeds = attention_inputs()
    fused = CompiledFunction(attention_program(), PATH, precision="fp16")
    assert [step.kernel for step in fused.steps] == [fusion.ATTENTION_CHAIN]
    separate = unfused(attention_program(), "fp16")
    assert [step.op.type for step in separate.steps] == ["matmul", "softmax", "matmul"]
    got, want = fused.run(dict(feeds))["out"], separate.run(dict(feeds))["out"]
    # the same roundings: at most a float16 step apart where BLAS's tile order moved a last bit
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
    exact = attention_expected(feeds)
    assert np.abs(got - exact).max() < 5 * np.abs(exact).max() * 2**-11 and np.abs(got - exact).max() > 0


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_inf_inside_a_fused_chain_is_reported_at_the_op_that_made_it(precision):
    feeds = attention_inputs()
    feeds["q"][1, 2, 7] = 3e4 if precision == "fp16" else 3e38  # q k^T overflows in this row
    feeds["k"][1, 2, :, :] = 30.0
    fused = CompiledFunction(attention_program(), PATH, precision=precision, on_nonfinite="warn")
    separate = unfused(attention_program(), precision, on_nonfinite="warn")
    assert [step.kernel for step in fused.steps] == [fusion.ATTENTION_CHAIN]
    got = fused.run(dict(feeds))["out"]
    want = separate.run(dict(feeds))["out"]
    assert fused.last_numerics.first.op_name == separate.last_numerics.first.op_name == "scores"
    assert fused.last_numerics.first == separate.last_numerics.first
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_fp16_overflow_in_a_fused_linear_is_reported_at_the_member_that_made_it():
    rng = np.random.default_rng(5)
    function, _, _ = attention_projections(rng)
    for operation in function.operations:  # q and v stay small; k of a large input row overflows
        if operation.type == "const" and operation.name in ("wq", "wv"):
            operation.attributes["val"] = (operation.attributes["val"] * 1e-3).astype(np.float32)
    fused = CompiledFunction(function, PATH, precision="fp16", on_nonfinite="warn")
    assert any(step.kernel is fusion.LINEAR_GROUP for step in fused.steps)
    x = rng.standard_normal((2, 16, 8)).astype(np.float32)
    x[0, 3] = 4e4
    got = fused.run({"x": x, "y": rng.standard_normal((2, 16, 8)).astype(np.float32)})
    assert fused.last_numerics.first.op_name == "k_proj"
    assert np.isinf(got["out"][0, 3]).any() and np.isfinite(got["v"]).all()


def apple_original_attention_program(scale_op: str = "mul"):
    """Apple's ORIGINAL layout (as `bench.models.tiny.unet` writes it): q, k, v (B, heads, d, S);
    weights = q^T @ k, scaled, softmax over the keys, out = v @ weights^T -> (B, heads, d, Sq)."""
    ops = [
        const("ty", np.bool_(True)),
        const("no", np.bool_(False)),
        const("last", np.int32(3)),
        const("scale", np.float32(8**-0.5 if scale_op == "mul" else 8**0.5)),
        op("matmul", "weights", [("w", t("fp32", 2, 3, 300, 40))], x="q", y="k", transpose_x="ty", transpose_y="no"),
        op(scale_op, "scaled", [("ws", t("fp32", 2, 3, 300, 40))], x="w", y="scale"),
        op("softmax", "probs", [("p", t("fp32", 2, 3, 300, 40))], x="ws", axis="last"),
        op("matmul", "attended", [("out", t("fp32", 2, 3, 8, 300))], x="v", y="p", transpose_x="no", transpose_y="ty"),
    ]
    inputs = [("q", t("fp32", 2, 3, 8, 300)), ("k", t("fp32", 2, 3, 8, 40)), ("v", t("fp32", 2, 3, 8, 40))]
    return program(inputs, ops, ["out"]).main


@pytest.mark.parametrize("scale_op", ["mul", "real_div"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_apple_layout_with_a_scaled_softmax_is_fused_too(precision, scale_op):
    rng = np.random.default_rng(6)
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in
             (("q", (2, 3, 8, 300)), ("k", (2, 3, 8, 40)), ("v", (2, 3, 8, 40)))}
    fused = CompiledFunction(apple_original_attention_program(scale_op), PATH, precision=precision)
    assert [step.kernel for step in fused.steps] == [fusion.ATTENTION_CHAIN]
    assert fused.steps[0].op.name == "weights -> scaled -> probs -> attended (attention, fused)"
    separate = unfused(apple_original_attention_program(scale_op), precision)
    assert [step.op.type for step in separate.steps] == ["matmul", scale_op, "softmax", "matmul"]
    got, want = fused.run(dict(feeds))["out"], separate.run(dict(feeds))["out"]
    assert got.shape == (2, 3, 8, 300)
    tolerance = 1e-5 if precision == "fp32" else 2e-3
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    scores = np.swapaxes(feeds["q"], -1, -2).astype(np.float64) @ feeds["k"] / np.sqrt(8)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, feeds["v"] @ np.swapaxes(probs, -1, -2), rtol=5e-3 if precision == "fp16" else 1e-5, atol=5e-3 if precision == "fp16" else 1e-5)
    timings: list = []
    fused.run(dict(feeds), timings=timings)
    assert timings[0].flops == 2 * (2 * 3 * 300 * 40 * 8) * 2  # the two products, as unfused


@pytest.mark.parametrize("layout", ["diffusers", "apple"])
def test_unchecked_fp32_attention_scales_queries_and_divides_outputs_to_the_same_result(layout):
    """Unchecked fp32 runs take the shorter tile path (scale on the queries, softmax division on the
    output rows); checked runs keep the op-by-op tile path. Both agree to float32 rounding."""
    program = attention_program if layout == "diffusers" else apple_original_attention_program
    rng = np.random.default_rng(10)
    shapes = {"q": (2, 3, 300, 8), "k": (2, 3, 40, 8), "v": (2, 3, 40, 8)}
    if layout == "apple":
        shapes = {"q": (2, 3, 8, 300), "k": (2, 3, 8, 40), "v": (2, 3, 8, 40)}
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    unchecked = CompiledFunction(program(), PATH, precision="fp32", on_nonfinite="ignore")
    checked = CompiledFunction(program(), PATH, precision="fp32", on_nonfinite="raise")
    assert unchecked.steps[0].static["check"] is False and checked.steps[0].static["check"] is True
    fast, exact = unchecked.run(dict(feeds))["out"], checked.run(dict(feeds))["out"]
    np.testing.assert_allclose(fast, exact, rtol=1e-5, atol=2e-6)
    assert not np.array_equal(fast, exact)  # the two paths really differ in their rounding


def test_power_of_two_attention_scale_rounds_like_the_float16_cast():
    """Scaled float16 scores are rounded in two passes where the scale is 2^-k: the same values as
    the cast (signed zeros aside), subnormal results and ties included."""
    from bench.engines.reference.precision import round_fp16, round_fp16_subnormals_in_place

    rng = np.random.default_rng(11)
    # float16 values from its subnormals up to its largest, and both signs
    scores = round_fp16((rng.standard_normal(100_000) * np.exp(rng.uniform(-20, 10, 100_000))).astype(np.float32))
    scores[:4] = [2.0**-24, -3 * 2.0**-24, 65504.0, -0.0]
    for scale_op, value, factor in (("mul", 0.125, 0.125), ("real_div", 4.0, 0.25), ("mul", 1.0, 1.0)):
        assert fusion._power_of_two_shrink(scale_op, np.float32(value))
        scaled = scores * np.float32(factor)
        expected = round_fp16(scaled)
        round_fp16_subnormals_in_place(scaled)
        np.testing.assert_array_equal(scaled, expected)  # -0.0 == 0.0 here: only zero signs may differ
    for scale_op, value in (("mul", 8**-0.5), ("mul", 2.0), ("real_div", 0.5), ("mul", -0.125)):
        assert not fusion._power_of_two_shrink(scale_op, np.float32(value))


@pytest.mark.parametrize("scale_op", ["mul", "real_div"])
def test_fp16_attention_with_a_power_of_two_scale_matches_the_general_rounding(monkeypatch, scale_op):
    rng = np.random.default_rng(12)
    feeds = {name: (rng.standard_normal(shape) * 3).astype(np.float32) for name, shape in
             (("q", (2, 3, 8, 300)), ("k", (2, 3, 8, 40)), ("v", (2, 3, 8, 40)))}
    program = apple_original_attention_program(scale_op)
    for operation in program.operations:  # a head of 64 scales by 1/8; here 1/4 (or / 4)
        if operation.name == "scale":
            operation.attributes["val"] = np.float32(0.25 if scale_op == "mul" else 4.0)
    compiled = CompiledFunction(program, PATH, precision="fp16")
    assert float(compiled.steps[0].static["scale_value"]) == (0.25 if scale_op == "mul" else 4.0)
    two_passes = compiled.run(dict(feeds))["out"]
    monkeypatch.setattr(fusion, "_power_of_two_shrink", lambda *args: False)
    general = CompiledFunction(program, PATH, precision="fp16").run(dict(feeds))["out"]
    np.testing.assert_array_equal(two_passes, general)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("lead", "length", "keys"), [
    ((2, 3), 300, 40),  # short keys: whole rows, batch entries grouped (the last group ragged at 2 threads)
    ((2, 10), 1024, 1024),  # long keys: row tiles of ATTENTION_TILE_ROWS
    ((2, 2), 256, 77),
    ((4,), 5000, 64),  # more rows than one tile takes even at short keys
    ((), 300, 40),  # no batch dims
])
def test_attention_tiles_cover_every_query_row_once(monkeypatch, lead, length, keys, threads):
    monkeypatch.setattr(fusion, "num_threads", lambda: threads)
    tiles = fusion._tiles(lead, length, keys)
    covered = np.zeros(lead + (length,), np.int32)
    for index, rows in tiles:
        covered[index + (rows,)] += 1
        tile_values = covered[index + (rows,)].size * keys
        assert tile_values <= max(fusion.ATTENTION_TILE_VALUES, fusion.ATTENTION_TILE_ROWS * keys)
    assert (covered == 1).all()
    assert len(tiles) >= min(threads, int(np.prod(lead)) * -(-length // fusion.ATTENTION_TILE_ROWS))


@pytest.mark.parametrize("tile_values", [None, 1])  # grouped batch entries / ragged row tiles
@pytest.mark.parametrize("layout", ["diffusers", "apple"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_attention_tiles_of_either_shape_give_the_unfused_result(monkeypatch, layout, precision, tile_values):
    if tile_values is not None:  # 128 query rows per tile: 300 rows make tiles of 128, 128 and 44
        monkeypatch.setattr(fusion, "ATTENTION_TILE_VALUES", tile_values)
        monkeypatch.setattr(fusion, "ATTENTION_TILE_ROWS", 128)
    program = attention_program if layout == "diffusers" else apple_original_attention_program
    shapes = {"q": (2, 3, 300, 8), "k": (2, 3, 40, 8), "v": (2, 3, 40, 8)}
    if layout == "apple":
        shapes = {"q": (2, 3, 8, 300), "k": (2, 3, 8, 40), "v": (2, 3, 8, 40)}
    rng = np.random.default_rng(13)
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    fused = CompiledFunction(program(), PATH, precision=precision, on_nonfinite="raise")
    assert [step.kernel for step in fused.steps] == [fusion.ATTENTION_CHAIN]
    got, want = fused.run(dict(feeds))["out"], unfused(program(), precision).run(dict(feeds))["out"]
    tolerance = 1e-5 if precision == "fp32" else 2e-3
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("probs_first", [True, False])
def test_attention_tiles_of_several_heads_read_broadcast_keys_and_values(probs_first):
    """Keys and values shared by every head (a broadcast batch dim, stride 0) in tiles that take
    several heads at once: the same result as the plain formula."""
    rng = np.random.default_rng(14)
    q = rng.standard_normal((2, 3, 300, 8)).astype(np.float32)
    k = rng.standard_normal((2, 1, 40, 8)).astype(np.float32)
    v = rng.standard_normal((2, 1, 40, 8)).astype(np.float32)
    scores = q.astype(np.float64) @ np.swapaxes(k, -1, -2)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = probs @ v
    operation = Operation(type="matmul", name="chain", inputs={}, outputs=())
    if probs_first:
        got = fusion.attention_chain(operation, q, k, v, False, True, False, probs_first=True)
    else:  # v' @ probs^T with v' = v^T: (8, 40) @ (40, 300) -> (8, 300) per head
        got = np.swapaxes(fusion.attention_chain(operation, q, k, v, False, True, True, probs_first=False), -1, -2)
    assert len(fusion._tiles((2, 3), 300, 40)) < 2 * 3  # heads share tiles here
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
