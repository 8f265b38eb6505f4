"""load_results' two reading paths agree: the typed (pyarrow) parse of current files and the string
path (older versions, and any file the typed parse rejects) give the same frame."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_factory import million_row_csv, run_id_at, write_run, write_tree  # noqa: E402

from bench import store  # noqa: E402
from bench.errors import ResultsError  # noqa: E402
from bench.store import RESULTS_FILE, format_rows, load_results  # noqa: E402


def string_path(path: Path) -> pd.DataFrame:
    files = store.find_results_files(path)
    frames = [store._read_strings(f) for f in files]
    return store._apply_dtypes(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0])


def test_typed_and_string_paths_agree(tmp_path: Path) -> None:
    write_run(tmp_path, run_id_at(0), {"a": {}, "b": {"status": "error", "device": "iPhone16,2"}}, repeats=2)
    run = write_run(tmp_path, run_id_at(1), {"c": {"chip": "Apple M3"}}, repeats=1)
    text = (run / RESULTS_FILE).read_text().splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",2026-01-02T02:00:00.123Z"  # a second distinct timestamp
    cells = text[4].split(",")
    cells[list(store.COLUMN_NAMES).index("value")] = "inf"
    cells[list(store.COLUMN_NAMES).index("error")] = '"comma, and ""quotes"""'
    text[4] = ",".join(cells)
    (run / RESULTS_FILE).write_text("\n".join(text) + "\n")
    typed, strings = load_results(tmp_path), string_path(tmp_path)
    pd.testing.assert_frame_equal(typed, strings)
    assert np.isinf(typed["value"]).sum() == 1 and typed["error"].str.contains('comma, and "quotes"').any()
    assert list(typed["stage"].cat.categories) == sorted(typed["stage"].cat.categories)


def test_generated_tree_is_what_the_writer_writes(tmp_path: Path) -> None:
    """The vectorised generator of the scale benchmark writes exactly the store's format."""
    texts = million_row_csv(2000, cases=3, repeats=2, steps=2)
    write_tree(tmp_path, texts)
    frame = load_results(tmp_path)
    pd.testing.assert_frame_equal(frame, string_path(tmp_path))
    first = next(iter(texts.values()))
    rows = store.read_rows(tmp_path / next(iter(texts)) / RESULTS_FILE)
    assert first == ",".join(store.COLUMN_NAMES) + "\n" + format_rows(rows)


def test_a_bad_cell_is_named_by_the_string_path(tmp_path: Path) -> None:
    run = write_run(tmp_path, run_id_at(0), {"a": {}}, repeats=1)
    lines = (run / RESULTS_FILE).read_text().splitlines()
    cells = lines[2].split(",")
    cells[list(store.COLUMN_NAMES).index("steps")] = "many"
    lines[2] = ",".join(cells)
    (run / RESULTS_FILE).write_text("\n".join(lines) + "\n")
    assert store._read_typed(run / RESULTS_FILE) is None
    with pytest.raises((ResultsError, ValueError)):  # the string path's own error (bench.store owns its wording)
        load_results(run)
