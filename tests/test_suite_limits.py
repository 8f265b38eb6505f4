"""Suite and selection limits: hostile suite files and `-k` expressions are refused with one line
naming the file and the key (or the column), before the work they ask for."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import SuiteError
from bench.limits import FILTER_MAX_CHARS, INIT_IMAGE_MAX_BYTES, SUITE_MAX_BYTES, SUITE_MAX_CASES
from bench.suite import load_suite, parse_filter


def write(tmp_path: Path, text: str, name: str = "s") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_deeply_nested_toml_is_refused_without_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[matrix]\nmodel = " + "[" * 50000 + "]" * 50000 + "\n")
    with pytest.raises(SuiteError, match=r"s\.toml: invalid TOML: arrays or tables nested too deeply") as caught:
        load_suite(str(path))
    one_line(caught)


def test_suite_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# padding\n" * (SUITE_MAX_BYTES // 10 + 1) + "[matrix]\nmodel = ['m']\n")
    with pytest.raises(SuiteError, match=r"s\.toml: the suite file is 1\.0 MiB, over the limit of 1\.0 MiB"):
        load_suite(str(path))


def test_a_matrix_of_ten_million_cases_is_refused_before_expanding(tmp_path: Path) -> None:
    axes = "\n".join(f"{axis} = [{', '.join(str(i) for i in range(1, 11))}]" for axis in ("seed", "steps", "guidance"))
    text = f"[matrix]\nmodel = {[f'm{i}' for i in range(1000)]}\nresolution = {list(range(8, 1008, 100))}\n{axes}\n"
    path = write(tmp_path, text)  # 1000 * 10 * 10 * 10 * 10 = ten million
    tracemalloc.start()
    try:
        with pytest.raises(SuiteError, match=rf"s\.toml: the matrix and includes expand to 10000000 cases \(before excludes\), over the limit of {SUITE_MAX_CASES}") as caught:
            load_suite(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_line(caught)
    assert peak < 8 << 20  # nothing was expanded (ten million cases would take gigabytes)


def test_includes_count_toward_the_case_limit(tmp_path: Path) -> None:
    seeds = list(range(SUITE_MAX_CASES))
    path = write(tmp_path, f"[matrix]\nmodel = ['m']\n[[include]]\nmodel = 'x'\nseed = {seeds}\n")
    with pytest.raises(SuiteError, match=rf"expand to {SUITE_MAX_CASES + 1} cases"):
        load_suite(str(path))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("steps = 1000000000", r"defaults\.steps must be an integer in \[1, 1000\], got 1000000000"),
        ("repeats = 1001", r"defaults\.repeats must be an integer in \[1, 1000\], got 1001"),
        ("warmup = 101", r"defaults\.warmup must be an integer in \[0, 100\], got 101"),
        ("timeout = nan", r"defaults\.timeout must be a finite number of seconds in \(0, 604800\], got nan"),
        ("timeout = inf", r"defaults\.timeout must be a finite number of seconds in \(0, 604800\], got inf"),
        ("timeout = -1", r"defaults\.timeout must be a finite number"),
        ("timeout = 1e9", r"defaults\.timeout must be a finite number"),
        ("guidance = nan", r"defaults\.guidance must be a finite number >= 0, got nan"),
        ("guidance = inf", r"defaults\.guidance must be a finite number >= 0, got inf"),
        ("high_noise_frac = nan", r"defaults\.high_noise_frac must be a number in \(0, 1\), got nan"),
    ],
)
def test_numbers_must_be_finite_and_within_their_limits(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"[defaults]\n{line}\n[matrix]\nmodel = ['m']\n")
    with pytest.raises(SuiteError, match=message) as caught:
        load_suite(str(path))
    assert one_line(caught).startswith(str(path))


def test_the_largest_allowed_values_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "[defaults]\nsteps = 1000\nrepeats = 1000\nwarmup = 100\ntimeout = 604800\n[matrix]\nmodel = ['m']\n")
    (case,) = load_suite(str(path)).cases()
    assert (case.steps, case.repeats, case.warmup, case.timeout) == (1000, 1000, 100, 604800.0)


def test_a_model_with_a_lone_brace_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[matrix]\nmodel = ['my{model']\n")
    with pytest.raises(SuiteError, match=r"s\.toml: model 'my\{model' is not a valid template"):
        load_suite(str(path))


# -- init images -------------------------------------------------------------------------------------


def test_init_image_that_is_a_fifo_is_refused_at_load(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    path = write(tmp_path, f"[defaults]\nstrength = 0.5\ninit_image = '{fifo}'\n[matrix]\nmodel = ['m']\n")
    with pytest.raises(SuiteError, match=r"s\.toml: defaults\.init_image: init_image .*pipe\.png: not a regular file"):
        load_suite(str(path))


def test_init_image_over_the_size_limit_is_refused_at_load(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(INIT_IMAGE_MAX_BYTES + 1)
    path = write(tmp_path, f"[matrix]\nmodel = ['m']\ninit_image = ['{big}']\n")
    with pytest.raises(SuiteError, match=r"s\.toml: matrix\.init_image\[0\]: init_image .*big\.png is 64\.0 MiB, over the limit of 64\.0 MiB"):
        load_suite(str(path))


def test_missing_init_image_is_refused_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "[matrix]\nmodel = ['m']\n[[include]]\nmodel = 'm'\ninit_image = 'nope.png'\n")
    with pytest.raises(SuiteError, match=r"s\.toml: include\[0\]\.init_image: init_image nope\.png: cannot read the image"):
        load_suite(str(path))


# -- -k expressions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 4000 + "fp16" + ")" * 4000,
        "not " * 2001 + "fp16",
        " or ".join(["zz"] * 1499 + ["fp16"]),
        " and ".join(["fp16"] * 1000),
    ],
    ids=["nested-parentheses", "not-chain", "or-chain", "and-chain"],
)
def test_long_and_deep_expressions_parse_and_match_without_recursion(expression: str) -> None:
    # each is deeper than Python's recursion limit (1000) would allow a recursive parser or matcher
    matcher = parse_filter(expression)
    negated = expression.startswith("not")  # an odd number of nots
    assert matcher("tiny fp16 reference") is not negated
    assert matcher("tiny fp32 reference") is negated


def test_expressions_over_the_length_limit_are_refused() -> None:
    with pytest.raises(SuiteError, match=rf"bad -k expression .*: 10001 characters, over the limit of {FILTER_MAX_CHARS}"):
        parse_filter("a" * (FILTER_MAX_CHARS + 1))


def test_unbalanced_deep_parentheses_are_reported_with_a_column() -> None:
    with pytest.raises(SuiteError, match=r"bad -k expression .*: expected '\)' at column 2005"):
        parse_filter("(" * 2000 + "fp16")


def test_cli_refuses_bad_suite_values_with_exit_2_and_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    write(tmp_path / "suites", "[defaults]\ntimeout = nan\n[matrix]\nmodel = ['m']\n", name="bad")
    assert main(["run", "-s", "bad", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "bad.toml: defaults.timeout must be a finite number" in err
    assert "\n" not in err and not (tmp_path / "results").exists()


@pytest.mark.parametrize(("flag", "value"), [("--timeout", "nan"), ("--timeout", "inf"), ("--repeats", "1001"), ("--warmup", "101")])
def test_cli_overrides_obey_the_same_limits(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", flag, value, "--dry-run"])
    assert exited.value.code == 2
    assert f"argument {flag}: must be" in capsys.readouterr().err
