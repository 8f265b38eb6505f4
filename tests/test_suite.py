"""Suite files: validation errors that name file, key and what is allowed; matrix, include,
exclude, model templates; planning for this machine; -k filters; shards; the shipped suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.suite import (
    Case,
    available_suites,
    filter_cases,
    find_suite,
    load_suite,
    parse_filter,
    parse_shard,
    plan_cases,
    shard_cases,
)

REPO_SUITES = Path(__file__).resolve().parent.parent / "suites"


def write(tmp_path: Path, text: str, name: str = "s") -> Path:
    path = tmp_path / "suites" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def cases_of(tmp_path: Path, text: str) -> list[Case]:
    return load_suite(str(write(tmp_path, text))).cases()


BASIC = """
[suite]
name = "basic"
description = "d"
[defaults]
steps = 4
[matrix]
model = ["m1", "m2"]
compute_unit = ["CPU_AND_NE", "ALL"]
"""


def test_matrix_product_in_file_order(tmp_path: Path) -> None:
    cases = cases_of(tmp_path, BASIC)
    assert [(c.model, c.compute_unit) for c in cases] == [
        ("m1", "CPU_AND_NE"), ("m1", "ALL"), ("m2", "CPU_AND_NE"), ("m2", "ALL"),
    ]  # fmt: skip
    assert all(c.steps == 4 and c.suite == "basic" and c.engine == "auto" for c in cases)
    assert len({c.case_id for c in cases}) == 4


def test_case_id_is_stable_and_ignores_repeats(tmp_path: Path) -> None:
    first = cases_of(tmp_path, BASIC)
    again = cases_of(tmp_path, BASIC.replace("steps = 4", "steps = 4\nrepeats = 9\ntimeout = 5"))
    assert [c.case_id for c in first] == [c.case_id for c in again]
    changed = cases_of(tmp_path, BASIC.replace("steps = 4", "steps = 5"))
    assert not {c.case_id for c in first} & {c.case_id for c in changed}
    # The id is a hash of the parameters alone: a known case has a known id on every machine.
    assert Case(suite="x", model="m").case_id == Case(suite="y", model="m", repeats=7).case_id


def test_exclude_and_include(tmp_path: Path) -> None:
    text = BASIC + """
[[exclude]]
model = "m2"
compute_unit = ["CPU_AND_NE"]
[[include]]
model = "m3"
refiner = true
steps = [10, 20]
"""
    cases = cases_of(tmp_path, text)
    assert [(c.model, c.compute_unit, c.steps, c.refiner) for c in cases] == [
        ("m1", "CPU_AND_NE", 4, False), ("m1", "ALL", 4, False), ("m2", "ALL", 4, False),
        ("m3", "ALL", 10, True), ("m3", "ALL", 20, True),
    ]  # fmt: skip


def test_duplicates_are_dropped(tmp_path: Path) -> None:
    cases = cases_of(tmp_path, BASIC + '\n[[include]]\nmodel = "m1"\ncompute_unit = "ALL"\n')
    assert len(cases) == 4


def test_model_template(tmp_path: Path) -> None:
    text = """
[defaults]
model = "tiny-{attention}-{quantization}"
[matrix]
attention = ["ORIGINAL", "split_einsum_v2"]
quantization = ["fp16", "pal4"]
"""
    cases = cases_of(tmp_path, text)
    assert [c.model for c in cases] == [
        "tiny-original-fp16", "tiny-original-pal4", "tiny-split-einsum-v2-fp16", "tiny-split-einsum-v2-pal4",
    ]  # fmt: skip
    assert cases[2].attention == "SPLIT_EINSUM_V2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[matrix]\nmodel = ['m']\nbogus = [1]\n", r"unknown key matrix\.bogus; allowed: model, engine"),
        ("[defaults]\nstepz = 3\n[matrix]\nmodel = ['m']\n", r"unknown key defaults\.stepz; allowed: model"),
        ("[suite]\ncolour = 'red'\n[matrix]\nmodel = ['m']\n", r"unknown key suite\.colour; allowed: name"),
        ("[sweet]\n[matrix]\nmodel = ['m']\n", r"unknown key sweet; allowed: suite, defaults"),
        ("[defaults]\nsteps = '20'\n[matrix]\nmodel = ['m']\n", r"defaults\.steps must be an integer in \[1, 1000\], got '20'"),
        ("[defaults]\nsteps = 0\n[matrix]\nmodel = ['m']\n", r"defaults\.steps must be an integer in \[1, 1000\], got 0"),
        ("[defaults]\nrefiner = 1\n[matrix]\nmodel = ['m']\n", r"defaults\.refiner must be true or false, got 1"),
        ("[defaults]\nstrength = 1.5\n[matrix]\nmodel = ['m']\n", r"defaults\.strength must be a number in \(0, 1\]"),
        ("[matrix]\nmodel = ['m']\ncompute_unit = ['GPU']\n",
         r"matrix\.compute_unit\[0\] must be one of CPU_ONLY, CPU_AND_GPU, CPU_AND_NE, ALL, REFERENCE, got 'GPU'"),
        ("[matrix]\nmodel = ['m']\nscheduler = ['ddim']\n", r"matrix\.scheduler\[0\] must be one of euler"),
        ("[matrix]\nmodel = ['m']\nengine = ['tpu']\n", r"matrix\.engine\[0\] must be one of auto, coreml, reference"),
        ("[matrix]\nmodel = []\n", r"matrix\.model is empty; list at least one value"),
        ("[matrix]\nmodel = 'm'\n", r"matrix\.model must be a list of values"),
        ("[matrix]\n", r"\[matrix\] is empty"),
        ("[suite]\nname = 's'\n", r"\[matrix\] is empty"),
        ("[matrix]\nrepeats = [1, 2]\nmodel = ['m']\n", r"unknown key matrix\.repeats"),
        ("[matrix]\nsteps = [1]\n", r"no model for a case; set defaults\.model or matrix\.model"),
        ("[matrix]\nmodel = ['m']\n[[exclude]]\nmodel = 'm'\n", r"the matrix expands to no cases"),
        ("[matrix]\nmodel = ['m']\n[[exclude]]\nwhatever = 1\n", r"unknown key exclude\[0\]\.whatever"),
        ("[matrix]\nmodel = ['m-{colour}']\n", r"unknown placeholder \{colour\}"),
        ("[matrix]\nmodel = ['m-{attention}']\n", r"needs a value for attention"),
        ("[matrix]\nmodel = ['m'\n", r"invalid TOML"),
        ("exclude = 3\n[matrix]\nmodel = ['m']\n", r"exclude must be an array of tables"),
    ],
)
def test_malformed_suites_name_file_key_and_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SuiteError, match=message) as caught:
        load_suite(str(path))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value).strip()


def test_unknown_suite_names_known_ones(tmp_path: Path) -> None:
    write(tmp_path, BASIC, "alpha")
    with pytest.raises(SuiteError, match=r"unknown suite 'nope'; known suites: .*alpha"):
        find_suite("nope", cwd=tmp_path)
    with pytest.raises(SuiteError, match="does not exist"):
        find_suite(str(tmp_path / "missing.toml"))


def test_cwd_suites_come_first(tmp_path: Path) -> None:
    write(tmp_path, BASIC, "smoke")
    assert find_suite("smoke", cwd=tmp_path) == tmp_path / "suites" / "smoke.toml"
    assert available_suites(cwd=tmp_path)["smoke"] == tmp_path / "suites" / "smoke.toml"


def test_shipped_suites_are_found_from_any_folder(tmp_path: Path) -> None:
    found = available_suites(cwd=tmp_path)
    assert sorted(found) == sorted(p.stem for p in REPO_SUITES.glob("*.toml"))
    for name, path in found.items():
        assert path.read_bytes() == (REPO_SUITES / f"{name}.toml").read_bytes()


@pytest.mark.slow
def test_built_wheel_carries_the_suites(tmp_path: Path) -> None:
    """A non-editable install has no checkout to fall back on: the wheel must hold suites/."""
    import subprocess
    import sys
    import zipfile

    repo = REPO_SUITES.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in REPO_SUITES.glob("*.toml"):
        assert f"bench/builtin_suites/{suite.name}" in names
    assert "bench/published/published_numbers.csv" in names


# --------------------------------------------------------------------------- planning


def test_plan_without_coreml_collapses_compute_units(tmp_path: Path) -> None:
    cases = cases_of(tmp_path, BASIC)
    planned = plan_cases(cases, coreml_available=False, reference_fallback=True)
    assert [(c.model, c.engine, c.compute_unit) for c in planned] == [("m1", "reference", "REFERENCE"), ("m2", "reference", "REFERENCE")]
    assert planned[0].requested_compute_units == ("CPU_AND_NE", "ALL")
    assert planned[0].skip_reason is None


def test_plan_with_coreml_keeps_units(tmp_path: Path) -> None:
    planned = plan_cases(cases_of(tmp_path, BASIC), coreml_available=True, reference_fallback=True)
    assert [(c.engine, c.compute_unit) for c in planned] == [("coreml", "CPU_AND_NE"), ("coreml", "ALL")] * 2


def test_plan_skips_coreml_cases_when_suite_forbids_fallback(tmp_path: Path) -> None:
    cases = cases_of(tmp_path, BASIC.replace("steps = 4", 'steps = 4\nengine = "coreml"'))
    planned = plan_cases(cases, coreml_available=False, reference_fallback=False)
    assert len(planned) == 4 and all("reference_fallback = false" in c.skip_reason for c in planned)
    fallback = plan_cases(cases, coreml_available=False, reference_fallback=True)
    assert {c.engine for c in fallback} == {"reference"} and not any(c.skip_reason for c in fallback)


def test_plan_engine_override(tmp_path: Path) -> None:
    planned = plan_cases(cases_of(tmp_path, BASIC), coreml_available=True, reference_fallback=True,
                         engine_override="reference")  # fmt: skip
    assert {(c.engine, c.compute_unit) for c in planned} == {("reference", "REFERENCE")}


def test_reference_unit_on_coreml_is_skipped() -> None:
    planned = plan_cases([Case(suite="s", model="m", compute_unit="REFERENCE", engine="coreml")],
                         coreml_available=True, reference_fallback=True)  # fmt: skip
    assert "belongs to the reference engine" in planned[0].skip_reason


# --------------------------------------------------------------------------- -k and shards


LABELS = [
    "tiny-original-fp16 REFERENCE euler-3steps",
    "tiny-split-einsum-fp16 CPU_AND_NE euler-3steps",
    "tiny-split-einsum-pal4 ALL euler-3steps refiner",
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fp16", [0, 1]),
        ("FP16", [0, 1]),
        ("not fp16", [2]),
        ("split and not pal4", [1]),
        ("original or refiner", [0, 2]),
        ("(original or pal4) and not refiner", [0]),
        ("not not original", [0]),
        ("cpu_and_ne or reference", [0, 1]),
    ],
)
def test_filter_expressions(expression: str, expected: list[int]) -> None:
    matcher = parse_filter(expression)
    assert [i for i, label in enumerate(LABELS) if matcher(label.lower())] == expected


@pytest.mark.parametrize("expression", ["", "   ", "a and", "and a", "(a", "a)", "a b", "not", "a or or b", "()"])
def test_bad_filter_expressions(expression: str) -> None:
    with pytest.raises(SuiteError, match=r"bad -k expression"):
        parse_filter(expression)


def test_filter_never_evaluates_python() -> None:
    with pytest.raises(SuiteError, match="unexpected"):
        parse_filter("__import__('os').system('false')")
    matcher = parse_filter("os.system and 1+1")  # plain words, matched as text
    assert not matcher("anything") and matcher("call os.system with 1+1")


def test_filter_cases(tmp_path: Path) -> None:
    cases = cases_of(tmp_path, BASIC)
    assert [c.model for c in filter_cases(cases, "m2 and cpu_and_ne")] == ["m2"]
    assert filter_cases(cases, None) == cases
    assert filter_cases(cases, cases[3].case_id) == [cases[3]]


def test_shards_are_disjoint_and_cover(tmp_path: Path) -> None:
    cases = cases_of(tmp_path, BASIC)
    shards = [shard_cases(cases, i, 3) for i in (1, 2, 3)]
    assert sorted(c.case_id for shard in shards for c in shard) == sorted(c.case_id for c in cases)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "a/b", "1/0", "3"):
        with pytest.raises(SuiteError, match="bad --shard"):
            parse_shard(bad)


# --------------------------------------------------------------------------- shipped suites


SHIPPED = ("smoke", "ios17", "macos", "refiner", "img2img", "quantization", "attention", "nightly")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_suites_load(name: str) -> None:
    suite = load_suite(str(REPO_SUITES / f"{name}.toml"))
    assert suite.name == name and suite.description
    assert suite.cases()


def test_ios17_is_apples_setup() -> None:
    cases = load_suite(str(REPO_SUITES / "ios17.toml")).cases()
    assert {c.compute_unit for c in cases} == {"CPU_AND_NE", "CPU_AND_GPU", "ALL", "CPU_ONLY"}
    assert all(c.resolution == 768 and c.steps == 20 and c.repeats == 5 and c.attention == "SPLIT_EINSUM" for c in cases)
    assert all(c.engine == "coreml" for c in cases)


def test_macos_is_apples_setup() -> None:
    (case,) = load_suite(str(REPO_SUITES / "macos.toml")).cases()
    assert (case.resolution, case.attention, case.compute_unit, case.steps, case.repeats) == (1024, "ORIGINAL", "CPU_AND_GPU", 20, 3)


def test_smoke_covers_every_attention_and_quantization() -> None:
    cases = load_suite(str(REPO_SUITES / "smoke.toml")).cases()
    models = {c.model for c in cases}
    for attention in ("original", "split-einsum", "split-einsum-v2"):
        assert any(m.startswith(f"tiny-{attention}-") for m in models)
    for quantization in ("fp32", "fp16", "int8", "pal6", "pal4", "mbp"):
        assert any(f"-{quantization}" in m for m in models)
    assert all(c.quality for c in cases if not c.model.endswith(("-fp16", "-fp32")))


def test_optimization_hints_are_suite_strings_checked_against_coremltools_names(tmp_path: Path) -> None:
    import hashlib
    import json

    from bench.suite.fields import IDENTITY_FIELDS

    hinted = BASIC.replace("steps = 4", 'steps = 4\nreshape_frequency = "Infrequent"\nspecialization_strategy = "FastPrediction"')
    cases = cases_of(tmp_path, hinted)
    assert cases[0].optimization_hints == {"reshapeFrequency": "Infrequent", "specializationStrategy": "FastPrediction"}
    assert not {c.case_id for c in cases} & {c.case_id for c in cases_of(tmp_path, BASIC)}
    # Cases without hints keep the ids they had before the hint fields existed.
    plain = Case(suite="x", model="m")
    before = {name: getattr(plain, name) for name in IDENTITY_FIELDS}
    text = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert plain.case_id == hashlib.sha256(text.encode()).hexdigest()[:12]
    with pytest.raises(SuiteError, match=r"reshape_frequency.*one of Frequent, Infrequent"):
        cases_of(tmp_path, BASIC.replace("steps = 4", 'steps = 4\nreshape_frequency = "sometimes"'))
    # On the reference engine the hints mean nothing: the cases collapse as without them.
    planned = plan_cases(cases, coreml_available=False, reference_fallback=True)
    assert [c.optimization_hints for c in planned] == [{}, {}]
