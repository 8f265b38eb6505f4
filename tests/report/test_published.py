"""Published figures: every CSV row typed and normalised; the device table; status and stars."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rich.console import Console

from bench.errors import PublishedNumbersError
from bench.report.published import (
    CSV_COLUMNS,
    PUBLISHED_CSV,
    device_table,
    load_published,
    model_family,
    parse_value,
    published_quantization,
    render_published_comparison,
)


def test_every_row_is_a_typed_figure() -> None:
    with PUBLISHED_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    figures = load_published()
    assert len(figures) == len(rows)
    assert {f.status for f in figures} == {"current", "repeat", "historical", "superseded"}
    # every performance figure with a printed number parsed to one
    for figure, row in zip(figures, rows):
        if row["value"].strip() and row["value"].strip()[0].isdigit():
            assert figure.value is not None, row


def test_sdxl_ios_table() -> None:
    table = device_table(model="sdxl-base-1.0")
    ios = table[table["compute_unit"] == "CPU_AND_NE"].set_index("device")
    assert list(ios.index) == ["iPhone 12 Pro", "iPhone 13 Pro Max", "iPhone 14 Pro Max", "iPhone 15 Pro Max",
                               "iPad Pro (M1)", "iPad Pro (M2)"]  # fmt: skip
    assert ios.loc["iPhone 15 Pro Max", "end_to_end_s"] == 31 and ios.loc["iPhone 15 Pro Max", "iter_per_s"] == 0.85
    assert (ios["resolution"] == 768).all() and (ios["attention"] == "SPLIT_EINSUM").all()
    assert (ios["quantization"] == "mbp-4.04").all() and (ios["steps"] == 20).all()
    starred = set(ios.index[ios["reduce_memory"]])
    assert starred == {"iPhone 12 Pro", "iPhone 13 Pro Max", "iPhone 14 Pro Max"}
    assert (ios["date"] == "Sep 2023").all() and ios["table"].str.contains("SDXL iOS table").all()


def test_sdxl_macos_table_without_drafts_or_repeats() -> None:
    table = device_table(model="sdxl")
    mac = table[table["compute_unit"] == "CPU_AND_GPU"].set_index("device")
    assert list(mac.index) == ["MacBook Pro (M1 Max)", "MacBook Pro (M2 Max)", "Mac Studio (M1 Ultra)", "Mac Studio (M2 Ultra)"]
    assert mac.loc["Mac Studio (M2 Ultra)", "end_to_end_s"] == 20  # not the 47 s draft
    assert (mac["resolution"] == 1024).all() and (mac["attention"] == "ORIGINAL").all()
    assert (mac["quantization"] == "float16").all()


def test_all_shows_superseded_and_repeats_marked() -> None:
    everything = device_table(model="sdxl", include_old=True)
    assert set(everything["status"]) == {"current", "repeat", "superseded"}
    draft = everything[(everything["status"] == "superseded") & (everything["device"] == "Mac Studio (M2 Ultra)")]
    assert 47 in set(draft["end_to_end_s"])
    repeats = everything[everything["status"] == "repeat"]
    assert repeats["table"].str.startswith("huggingface/blog").all() and len(repeats) == 4
    assert list(everything["status"]).index("superseded") > list(everything["status"]).index("current")


def test_sd_1_and_2_tables() -> None:
    sd21 = device_table(model="sd-2.1-base")
    mini = sd21[sd21["device"] == "iPhone 12 Mini"]
    assert len(mini) == 1 and mini["end_to_end_s"].iloc[0] == 18.5 and bool(mini["reduce_memory"].iloc[0])
    assert len(device_table(model="sd-2.1-base", include_old=True).query("device == 'iPhone 12 Mini'")) == 2
    assert not device_table(model="SD 1.5").empty
    assert "superseded" in set(device_table(model="sd-1.4", include_old=True)["status"])
    assert device_table(model="sd-1.4").query("status == 'superseded'").empty


def test_device_filter_by_name_or_chip() -> None:
    assert set(device_table(device="iPhone 15")["device"]) == {"iPhone 15 Pro Max"}
    m2 = device_table(device="M2")
    assert {"iPad Pro (M2)", "Mac (M2 24 GB)", "MacBook Pro (M2 Max)"} <= set(m2["device"])
    assert m2["chip"].str.startswith("M2").all()


@pytest.mark.parametrize(("text", "value", "approximate"),
                         [("18.5", 18.5, False), ("~8", 8.0, True), ("23-30", 26.5, True), ("", None, False),
                          ("66.02 (JSON)", 66.02, False)])  # fmt: skip
def test_parse_value(text: str, value: float | None, approximate: bool) -> None:
    assert parse_value(text) == (value, approximate)


@pytest.mark.parametrize(("text", "family"), [
    ("SDXL base 1.0 (iOS variant)", "sdxl-base-1.0"), ("sdxl-base-ios17", "sdxl-base-1.0"),
    ("SD 2.1 base", "sd-2.1-base"), ("Stable Diffusion 2 Base", "sd-2-base"), ("SD 1.4", "sd-1.4"),
    ("coreml-stable-diffusion-2-1-base", "sd-2.1-base"), ("tiny-original-fp16", None),
    ("OFA-Sys/small-stable-diffusion-v0", "small-sd-v0"),
])  # fmt: skip
def test_model_family(text: str, family: str | None) -> None:
    assert model_family(text) == family


def test_published_quantization() -> None:
    assert published_quantization("mixed-bit palettization (Unet); fp16 others", 4.04) == "mbp-4.04"
    assert published_quantization("recipe_3_41_bit_mixedpalette", None) == "mbp-3.41"
    assert published_quantization("palettized (6-bit)", 6) == "pal6"
    assert published_quantization("float16", 16) == "float16"
    assert published_quantization("", None) is None


def test_malformed_csv_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "numbers.csv"
    bad.write_text("device,value\niPhone,1\n", encoding="utf-8")
    with pytest.raises(PublishedNumbersError, match=r"numbers\.csv.*missing columns: source_url"):
        load_published(bad)
    empty_metric = tmp_path / "empty.csv"
    empty_metric.write_text(",".join(CSV_COLUMNS) + "\n" + "," * (len(CSV_COLUMNS) - 1) + "\n", encoding="utf-8")
    with pytest.raises(PublishedNumbersError, match=r"empty\.csv:2: empty metric"):
        load_published(empty_metric)


def test_run_comparison_lists_matched_cases_only() -> None:
    import pandas as pd

    summary = pd.DataFrame([{
        "run_id": "r", "case_id": "a", "case": "sdxl ios", "model": "sdxl-base-ios17", "status": "ok", "resolution": 768,
        "attention": "SPLIT_EINSUM", "quantization": "mbp-4.04", "compute_unit": "CPU_AND_NE", "steps": 20,
        "device": "iPhone16,2", "chip": "Apple A17 Pro", "end_to_end_s": 29.5, "iter_per_s": 0.91,
    }, {
        "run_id": "r", "case_id": "b", "case": "tiny", "model": "tiny-original-fp16", "status": "ok", "resolution": 64,
        "attention": "ORIGINAL", "quantization": "fp16", "compute_unit": "REFERENCE", "steps": 2, "device": "x86_64",
        "chip": "AMD EPYC", "end_to_end_s": 0.1, "iter_per_s": 50.0,
    }])  # fmt: skip
    console = Console(width=250, record=True)
    render_published_comparison(summary, console)
    text = console.export_text()
    assert "iPhone 15 Pro Max" in text and "31.00s" in text and "0.95" in text  # 29.5 / 31
    assert "tiny" not in text


@pytest.mark.parametrize(("label", "key"), [("fp16", "float16"), ("float16", "float16"), ("palettized-6bit", "pal6"),
                                            ("mbp-4.5", "mbp-4.50"), ("mbp-4.04", "mbp-4.04"), (None, None)])  # fmt: skip
def test_measured_quantization(label: str | None, key: str | None) -> None:
    from bench.report.published import measured_quantization

    assert measured_quantization(label) == key
