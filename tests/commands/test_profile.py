"""`bench profile MODEL_PATH`: a table of where one predict's time goes, with seeded random inputs."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines" / "reference"))
from mil_programs import const, conv_add_program, ensure_kernels, op, program, t

from bench.cli import main
from bench.commands.profile import random_inputs
from bench.engines import reference
from bench.engines.base import TensorSpec


@pytest.fixture()
def model_dir(tmp_path):
    ensure_kernels()
    prog, _ = conv_add_program()
    return reference.write_mlmodelc(prog, tmp_path / "tiny.mlmodelc")


def test_prints_a_table_by_op_type(model_dir, capsys):
    assert main(["profile", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "tiny.mlmodelc: 2 ops" in out and "conv" in out and "add" in out and "FLOP/s" in out


def test_by_op_top_and_csv(model_dir, tmp_path, capsys):
    csv = tmp_path / "profile.csv"
    code = main(["profile", str(model_dir), "--by", "op", "--top", "1", "--csv", str(csv), "--precision", "fp16", "--repeats", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "top 1 of 2 rows" in out and "fp16, median of 2" in out
    frame = pd.read_csv(csv)
    assert list(frame["op_name"]) == ["conv1", "add1"] and (frame["seconds"] > 0).all()


def test_bad_model_path_is_one_line_error(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "nope.mlpackage")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and "nope.mlpackage: no such model" in err and "Traceback" not in err


def test_malformed_model_mil_names_file_and_line(model_dir, capsys):
    mil = model_dir / "model.mil"
    lines = mil.read_text().splitlines()
    lines[4] = lines[4].replace("=", "", 1)
    mil.write_text("\n".join(lines))
    assert main(["profile", str(model_dir)]) == 2
    assert "model.mil:5: expected '=' after the op's output" in capsys.readouterr().err


def test_random_inputs_are_seeded_and_bound_token_ids_by_the_embedding():
    table = np.zeros((37, 4), np.float32)
    ops = [
        const("table", table),
        const("axis", np.int32(0)),
        op("gather", "embed", [("e", t("fp32", 1, 5, 4))], x="table", indices="ids", axis="axis"),
    ]
    fake = SimpleNamespace(
        function=program([("ids", t("int32", 1, 5)), ("z", t("fp16", 2))], ops, ["e"]).main,
        input_specs=(TensorSpec("ids", (1, 5), np.dtype(np.int32)), TensorSpec("z", (2,), np.dtype(np.float16))),
    )
    a, b = random_inputs(fake, seed=3), random_inputs(fake, seed=3)
    assert a["ids"].dtype == np.int32 and a["z"].dtype == np.float16
    np.testing.assert_array_equal(a["ids"], b["ids"])
    many = random_inputs(SimpleNamespace(function=fake.function, input_specs=(TensorSpec("ids", (1, 2000), np.dtype(np.int32)),)))
    assert many["ids"].max() < 37 and many["ids"].max() > 20
    # Older text encoders take float ids and cast them: whole numbers below the table size.
    cast_ops = [const("to_int", "int32"), op("cast", "ids_int", [("ids_i", t("int32", 1, 5))], x="ids", dtype="to_int")]
    gather = op("gather", "embed", [("e", t("fp32", 1, 5, 4))], x="table", indices="ids_i", axis="axis")
    float_ids = program([("ids", t("fp32", 1, 5))], [*ops[:2], *cast_ops, gather], ["e"]).main
    got = random_inputs(SimpleNamespace(function=float_ids, input_specs=(TensorSpec("ids", (1, 400), np.dtype(np.float32)),)))
    assert got["ids"].dtype == np.float32 and (got["ids"] == np.round(got["ids"])).all() and got["ids"].max() < 37


def test_profile_refuses_inputs_over_the_memory_budget(tmp_path, capsys) -> None:
    # a terabyte input declared by a few bytes of model.mil: refused before anything is allocated
    folder = tmp_path / "huge.mlmodelc"
    folder.mkdir()
    (folder / "model.mil").write_text(
        "program(1.0)\n{\n    func main<ios17>(tensor<fp32, [1000000, 1000000]> x) {\n"
        '        tensor<fp32, [1000000, 1000000]> y = relu(x = x)[name = string("y")];\n    } -> (y);\n}\n'
    )
    assert main(["profile", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err
    assert "huge.mlmodelc: input 'x' of shape [1000000, 1000000] needs 10.9 TiB, over the memory budget" in err  # 8 + 4 bytes an element


def test_profile_refuses_a_model_reading_weights_out_of_its_folder(model_dir, capsys) -> None:
    mil = model_dir / "model.mil"
    mil.write_text(mil.read_text().replace("@model_path/weights/weight.bin", "@model_path/../../../../etc/passwd"))
    assert main(["profile", str(model_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err
    assert "model.mil:4: op 'w' (const): BLOBFILE path '@model_path/../../../../etc/passwd'" in err and "does not stay inside" in err


def test_threads_option_is_applied_and_shown(model_dir, capsys):
    from bench.engines.reference import threads

    try:
        assert main(["profile", str(model_dir), "--threads", "1"]) == 0
        out = capsys.readouterr().out
        assert "threads: 1 (requested;" in out and threads.current_plan().threads == 1
        assert main(["profile", str(model_dir), "--threads", "0"]) == 2
        assert "thread count must be at least 1, got 0" in capsys.readouterr().err
    finally:
        threads.configure_threads(None)
