from __future__ import annotations

import json

import numpy as np
import pytest

from bench.engines.model_io import read_model_io
from bench.errors import ModelFormatError


def _metadata(path, inputs, outputs):
    path.mkdir(parents=True)
    (path / "metadata.json").write_text(json.dumps([{"inputSchema": inputs, "outputSchema": outputs}]))
    return path


def test_reads_compiled_model_metadata(tmp_path):
    model = _metadata(
        tmp_path / "Unet.mlmodelc",
        [
            {"name": "sample", "dataType": "Float16", "shape": "[2, 4, 96, 96]"},
            {"name": "timestep", "dataType": "Float32", "shape": "[2]"},
            {"name": "input_ids", "dataType": "Int32", "shape": "[1, 77]"},
            {"name": "flexible", "dataType": "Float16", "shape": "[?, 8]"},
        ],
        [{"name": "noise_pred", "dataType": "Float16", "shape": "[2, 4, 96, 96]"}],
    )
    io = read_model_io(model)
    assert io.inputs["sample"].shape == (2, 4, 96, 96) and io.inputs["sample"].dtype == np.float16
    assert io.inputs["timestep"].dtype == np.float32 and io.inputs["input_ids"].dtype == np.int32
    assert io.inputs["flexible"].shape == (1, 8)
    assert list(io.outputs) == ["noise_pred"]


def test_bad_model_folders_name_the_file(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        read_model_io(tmp_path / "missing.mlmodelc")
    (tmp_path / "empty.mlmodelc").mkdir()
    with pytest.raises(ModelFormatError, match="empty.mlmodelc"):
        read_model_io(tmp_path / "empty.mlmodelc")
    broken = tmp_path / "broken.mlmodelc"
    broken.mkdir()
    (broken / "metadata.json").write_text("[{")
    with pytest.raises(ModelFormatError, match="broken.mlmodelc.*metadata.json"):
        read_model_io(broken)
    odd = _metadata(tmp_path / "odd.mlmodelc", [{"name": "x", "dataType": "Complex64", "shape": "[1]"}], [])
    with pytest.raises(ModelFormatError, match="'x'.*Complex64"):
        read_model_io(odd)


@pytest.mark.slow
def test_reads_an_mlpackage_spec_with_coremltools(tmp_path):
    ct = pytest.importorskip("coremltools")
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 77), dtype=types.int32)])
    def program(input_ids):
        x = mb.cast(x=input_ids, dtype="fp32")
        hidden = mb.expand_dims(x=x, axes=[-1], name="hidden_embeds")
        pooled = mb.reduce_mean(x=x, axes=[1], keep_dims=False, name="pooled_outputs")
        return hidden, pooled

    model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS14)
    path = tmp_path / "TextEncoder.mlpackage"
    model.save(str(path))
    io = read_model_io(path)
    assert io.inputs["input_ids"].shape == (1, 77) and io.inputs["input_ids"].dtype == np.int32
    assert io.outputs["hidden_embeds"].shape == (1, 77, 1)
    assert io.outputs["pooled_outputs"].dtype == np.float32
