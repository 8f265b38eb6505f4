"""`bench run` on local model folders in Apple's layout, end to end on the reference engine.

The folders are laid out from the project's generated tiny models the way Apple's Hub repos are:
`packages/` holding `Stable_Diffusion_version_*_<part>.mlpackage` (here with a chunked UNet) and
`compiled/` holding `TextEncoder.mlmodelc`, `Unet.mlmodelc`, ... (written by the reference engine's
own `.mlmodelc` writer), each beside `vocab.json` and `merges.txt`. One step, one repeat, no warm-up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.models import layout
from bench.store import RESULTS_FILE, load_results

pytestmark = pytest.mark.slow

SUITE = """
[suite]
name = "local"
[defaults]
steps = 1
warmup = 0
repeats = 1
timeout = 600
save_image = false
{extra}
[matrix]
model = ["{model}"]
"""


def _tiny(variant_id: str):
    from bench.models.testing import tiny_model_set

    return tiny_model_set(variant_id)


def _packages_layout(root: Path, variant_id: str) -> Path:
    """`root/packages/`: the variant's packages and tokenizer files, copied (no symlinks)."""
    source = _tiny(variant_id)
    packages = root / "packages"
    packages.mkdir(parents=True)
    for path in source.files.values():
        if path.is_dir():
            shutil.copytree(path, packages / path.name, symlinks=False)
        else:
            shutil.copy(path, packages / path.name)
    return root


def _compiled_layout(root: Path, variant_id: str) -> Path:
    """`root/compiled/`: every part as `<Name>.mlmodelc` (Swift resource names) plus tokenizer files."""
    from bench.engines.reference.mlmodelc import write_mlmodelc
    from bench.engines.reference.proto_loader import read_mlpackage

    source = _tiny(variant_id)
    compiled = root / "compiled"
    compiled.mkdir(parents=True)
    for stage, path in source.files.items():
        if stage in layout.TOKENIZER_FILES:
            shutil.copy(path, compiled / path.name)
        else:
            folder = write_mlmodelc(read_mlpackage(path), compiled / layout.compiled_name(stage))
            # Core ML's compiler also writes this binary header; the reference engine does not read it,
            # and the layout check only asks that it exists.
            (folder / "coremldata.bin").write_bytes(b"")
    return root


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "suites").mkdir()
    return tmp_path


def _run(workdir: Path, model: str, extra: str = "") -> tuple[int, Path]:
    (workdir / "suites" / "local.toml").write_text(SUITE.format(model=model, extra=extra))
    code = main(["run", "-s", "local", "--no-progress"])
    (run_dir,) = sorted((workdir / "results").iterdir())
    return code, run_dir


def test_packages_folder_with_chunked_unet_runs_and_measures_quality_against_its_declared_baseline(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _packages_layout(workdir / "my-sdxl", "tiny-split-einsum-fp16-chunked")
    _tiny("tiny-split-einsum-fp16")  # the baseline the folder names (built on first use)
    (folder / "bench-baseline.json").write_text(json.dumps({"quality_baseline": "tiny-split-einsum-fp16"}))

    code, run_dir = _run(workdir, "./my-sdxl", extra="quality = true")

    out = capsys.readouterr().out
    assert code == 0, out
    frame = load_results(run_dir / RESULTS_FILE)
    assert set(frame["model"]) == {"./my-sdxl"} and set(frame["status"]) == {"ok"}
    assert set(frame["attention"]) == {"SPLIT_EINSUM"} and set(frame["resolution"]) == {512}
    measured = frame[(frame.phase == "measured") & (frame.metric == "latency")]
    assert {"unet", "vae_decoder", "end_to_end"} <= set(measured["stage"])
    # the chunked UNet is the whole fp16 UNet cut in two: its output matches the baseline's closely
    (psnr,) = frame.loc[frame.metric == "psnr", "value"]
    assert psnr > 60
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["models"]["./my-sdxl"]["quality_baseline"] == "tiny-split-einsum-fp16"
    # the folder is resolved to an absolute path, so a resume from another directory still finds it
    assert manifest["models"]["./my-sdxl"]["root"] == str(folder.absolute())
    assert manifest["models"]["tiny-split-einsum-fp16"]["role"] == "quality baseline"


def test_compiled_folder_runs_and_has_no_quality_baseline_unless_it_declares_one(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _compiled_layout(workdir / "sdxl-compiled", "tiny-split-einsum-fp16")

    code, run_dir = _run(workdir, str(workdir / "sdxl-compiled"), extra="quality = true")

    out = capsys.readouterr().out
    assert code == 0, out
    frame = load_results(run_dir / RESULTS_FILE)
    assert set(frame["status"]) == {"ok"}
    assert "end_to_end" in set(frame.loc[frame.phase == "measured", "stage"])
    assert "psnr" not in set(frame["metric"])  # no baseline declared: no PSNR row, and no error
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["models"][str(workdir / "sdxl-compiled")]["quality_baseline"] is None


def test_a_folder_that_is_not_in_apples_layout_is_refused_before_running(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "empty").mkdir()
    (workdir / "suites" / "local.toml").write_text(SUITE.format(model="./empty", extra=""))
    assert main(["run", "-s", "local", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: model folder empty is incomplete") and "\n" not in err
    assert not (workdir / "results").exists() or not any((workdir / "results").iterdir())
