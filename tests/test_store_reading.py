"""load_results' two reading paths agree: a clean current-schema file is parsed by pyarrow straight
into its dtypes; everything else (older versions, torn or unparsable rows) takes the string path,
which leaves bad rows out with a counted warning. Both give the same frame for the same rows."""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_factory import million_row_csv, run_id_at, write_run, write_tree  # noqa: E402

from bench import store  # noqa: E402
from bench.errors import ResultsWarning  # noqa: E402
from bench.store import RESULTS_FILE, format_rows, load_results  # noqa: E402


def string_path(path: Path) -> pd.DataFrame:
    """load_results with every file forced through the string path."""
    frames = [store._without_incomplete_cases(store._read_strings(f), f, "drop") for f in store.find_results_files(path)]
    return store._apply_dtypes(pd.concat(frames, ignore_index=True))


def rewrite(path: Path, edit) -> None:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    edit(rows)
    path.write_text(",".join(store.COLUMN_NAMES) + "\n" + format_rows(rows))


def two_runs(root: Path) -> list[Path]:
    first = write_run(root, run_id_at(0), {"a": {}, "b": {"status": "error", "device": "iPhone16,2"}}, repeats=2)
    second = write_run(root, run_id_at(1), {"c": {"chip": "Apple M3"}}, repeats=1)

    def edit(rows: list[dict]) -> None:
        rows[-1]["error"] = 'comma, and "quotes"'
        rows[2]["timestamp"] = "2026-01-02T02:00:00.123Z"

    rewrite(second / RESULTS_FILE, edit)
    return [first / RESULTS_FILE, second / RESULTS_FILE]


def test_clean_files_take_the_typed_path_and_agree(tmp_path: Path) -> None:
    files = two_runs(tmp_path)
    assert all(store._read_typed(f) is not None for f in files)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultsWarning)
        typed = load_results(tmp_path)
    pd.testing.assert_frame_equal(typed, string_path(tmp_path))
    assert typed["error"].str.contains('comma, and "quotes"').any()
    assert list(typed["stage"].cat.categories) == sorted(typed["stage"].cat.categories)
    assert typed["timestamp"].nunique() == 2


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda rows: rows[3].update(value="inf"), "non-finite"),
        (lambda rows: rows[3].update(value="nan"), "literal NaN"),
        (lambda rows: rows[4].update(steps="many"), "not an integer"),
        (lambda rows: rows[5].update(timestamp="yesterday"), "not a time"),
        (lambda rows: rows[6].update(stage=""), "required field missing"),
    ],
)
def test_dirty_files_take_the_string_path(tmp_path: Path, edit, reason: str) -> None:
    files = two_runs(tmp_path)
    rewrite(files[1], edit)
    assert store._read_typed(files[1]) is None, reason
    with pytest.warns(ResultsWarning, match="left out 1 torn or unparsable rows"):
        frame = load_results(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultsWarning)
        pd.testing.assert_frame_equal(frame, string_path(tmp_path))


def test_a_torn_last_line_takes_the_string_path(tmp_path: Path) -> None:
    files = two_runs(tmp_path)
    text = files[1].read_text()
    files[1].write_text(text[:-20])  # killed mid-write
    assert store._read_typed(files[1]) is None
    with pytest.warns(ResultsWarning):
        load_results(tmp_path)


def test_generated_tree_is_what_the_writer_writes(tmp_path: Path) -> None:
    """The vectorised generator of the scale benchmark writes exactly the store's format."""
    texts = million_row_csv(2000, cases=3, repeats=2, steps=2)
    write_tree(tmp_path, texts)
    first_run, first_text = next(iter(texts.items()))
    assert store._read_typed(tmp_path / first_run / RESULTS_FILE) is not None
    pd.testing.assert_frame_equal(load_results(tmp_path), string_path(tmp_path))
    rows = store.read_rows(tmp_path / first_run / RESULTS_FILE)
    assert first_text == ",".join(store.COLUMN_NAMES) + "\n" + format_rows(rows)
