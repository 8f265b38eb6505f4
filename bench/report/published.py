"""Published Stable Diffusion device numbers (Apple's and Hugging Face's), loaded once, normalised.

`bench/published/published_numbers.csv` keeps each figure as its source printed it, one row per
(source table, device, configuration, metric). This module is the only reader: it turns every row
into a typed `PublishedFigure` (parsed numbers, normalised compute unit / attention / quantization
/ model keys that match what `bench run` records, a status) and pivots them into the device table
`bench published` prints and `bench report --against published` matches against.

CSV schema (one row per published figure; every cell is text as the source printed it):

| column | meaning |
|---|---|
| `source_url` | where the figure is published (a commit-pinned URL where one exists) |
| `source_file` | which table: repo:file@commit (section), or blog / model card, with dates where known |
| `model`, `model_version` | Hub model id(s); the model as the table names it (`SDXL base 1.0`, `SD 2.1 base`) |
| `device`, `device_chip` | device as the table names it; its chip (`[annotated]` = added by us, not in the table) |
| `os` | OS version(s) the source states |
| `compute_unit`, `attention` | Core ML compute unit (`CPU_AND_NE`, `CPU+GPU`, ...); attention implementation |
| `quantization`, `bits` | weight compression as described (`float16`, `palettized (6-bit)`, mixed-bit recipes); bits |
| `resolution`, `steps`, `scheduler` | image size (`768x768`), denoising steps, scheduler, as stated |
| `metric`, `value`, `unit` | `end_to_end_latency` / `generation_time` / `image_generation_time` (s), `diffusion_speed` (iter/s), `psnr_signal_strength` (dB), sizes, ...; the value as printed (`~8`, `23-30`); the unit |
| `notes` | the source's conditions; `HISTORICAL` / `SUPERSEDED` mark figures later replaced; `* reduceMemory enabled` marks Apple's starred devices |

Derived here: `metric` `end_to_end` (seconds per image) or `iter_per_s`; `status` `current`,
`historical` (an older wording of a source), `superseded` (replaced by a later table or draft) or
`repeat` (a secondary source repeating a primary table's figure for the same device); `date` (the
first ISO date in `source_file`, else the "Month YYYY" the notes give); `reduce_memory` (Apple's
star). Values like `~8` parse as 8 (approximate), ranges like `23-30` as their midpoint (approximate).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import PublishedNumbersError
from bench.report.devices import parse_published_device

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

PUBLISHED_CSV = Path(__file__).resolve().parent.parent / "published" / "published_numbers.csv"

CSV_COLUMNS: tuple[str, ...] = (
    "source_url", "source_file", "model", "model_version", "device", "device_chip", "os", "compute_unit",
    "attention", "quantization", "bits", "resolution", "steps", "scheduler", "metric", "value", "unit", "notes",
)  # fmt: skip

#: Published metric names -> the metric this harness measures.
METRICS: dict[str, str] = {
    "end_to_end_latency": "end_to_end",
    "generation_time": "end_to_end",
    "image_generation_time": "end_to_end",
    "diffusion_speed": "iter_per_s",
    "psnr_signal_strength": "psnr",
}
_COMPUTE_UNITS = {"CPU+GPU": "CPU_AND_GPU", "CPU+ANE": "CPU_AND_NE", "Neural Engine (mobile)": "CPU_AND_NE"}
_KNOWN_COMPUTE_UNITS = {"CPU_AND_NE", "CPU_AND_GPU", "ALL", "CPU_ONLY"}
_ATTENTIONS = {"ORIGINAL", "SPLIT_EINSUM", "SPLIT_EINSUM_V2"}
#: Figure statuses, in the order tables list them.
STATUSES: tuple[str, ...] = ("current", "repeat", "historical", "superseded")
_MONTH = re.compile(r"\b(Jan|Feb|Mar|Apr|May|June?|July?|Aug|Sept?|Oct|Nov|Dec)[a-z]*\.? (\d{4})\b")


@dataclass(frozen=True)
class PublishedFigure:
    """One published number with its configuration normalised to the harness's labels."""

    line: int  # line in the CSV (header = 1)
    source_url: str
    table: str  # the CSV's source_file: which table / text of which source
    date: str | None
    status: str  # current | repeat | historical | superseded
    model: str | None  # family key: sdxl-base-1.0, sd-2.1-base, sd-1.4, ...
    model_label: str
    device: str | None
    device_line: str | None  # "iPad Pro", "iPhone 15 Pro Max", "MacBook Pro", "Mac"
    chip: str | None  # "M2", "A17 Pro"
    os: str
    compute_unit: str | None
    attention: str | None  # None where the source does not state one
    quantization: str | None  # float16, pal6, int8, mbp-4.04, ...; None when not stated
    quantization_label: str
    bits: float | None
    resolution: int | None
    steps: int | None
    metric: str  # end_to_end, iter_per_s, psnr, or the source's name for others
    value: float | None
    value_text: str
    approximate: bool
    unit: str
    reduce_memory: bool
    notes: str


def load_published(path: Path = PUBLISHED_CSV) -> list[PublishedFigure]:
    """Every figure of the published CSV; a malformed file raises `PublishedNumbersError` naming it."""
    return list(_load_cached(Path(path).resolve()))


@lru_cache(maxsize=4)
def _load_cached(path: Path) -> tuple[PublishedFigure, ...]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise PublishedNumbersError(f"{path}: not a published-numbers CSV (missing columns: {', '.join(missing)})")
            figures = [_figure(line, row, path) for line, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PublishedNumbersError(f"cannot read {path}: {error}") from None
    return tuple(_mark_repeats(figures))


def _figure(line: int, row: dict[str, str], path: Path) -> PublishedFigure:
    cells = {key: (row.get(key) or "").strip() for key in CSV_COLUMNS}
    if not cells["metric"]:
        raise PublishedNumbersError(f"{path}:{line}: empty metric")
    value, approximate = parse_value(cells["value"])
    device = cells["device"] or None
    device_line, chip = parse_published_device(device, cells["device_chip"]) if device else (None, None)
    bits = _number(cells["bits"])
    notes = cells["notes"]
    return PublishedFigure(
        line=line,
        source_url=cells["source_url"],
        table=cells["source_file"],
        date=_date(cells["source_file"], notes),
        status=_status(cells["source_file"], notes),
        model=model_family(cells["model_version"] or cells["model"]),
        model_label=cells["model_version"] or cells["model"],
        device=device,
        device_line=device_line,
        chip=chip,
        os=cells["os"],
        compute_unit=_compute_unit(cells["compute_unit"]),
        attention=cells["attention"] if cells["attention"] in _ATTENTIONS else None,
        quantization=published_quantization(cells["quantization"], bits),
        quantization_label=cells["quantization"],
        bits=bits,
        resolution=_resolution(cells["resolution"]),
        steps=int(cells["steps"]) if cells["steps"].isdigit() else None,
        metric=METRICS.get(cells["metric"], cells["metric"]),
        value=value,
        value_text=cells["value"],
        approximate=approximate,
        unit=cells["unit"],
        reduce_memory=_reduce_memory(notes, device),
        notes=notes,
    )


def parse_value(text: str) -> tuple[float | None, bool]:
    """"18.5" -> (18.5, False); "~8" -> (8.0, True); "23-30" -> (26.5, True); "" -> (None, False)."""
    text = text.strip()
    approximate = text.startswith("~")
    text = text.lstrip("~").strip()
    span = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?)", text)
    if span:
        return (float(span.group(1)) + float(span.group(2))) / 2, True
    number = _number(text)
    return number, approximate and number is not None


def _number(text: str) -> float | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)", text)
    return float(match.group(1)) if match else None


def _resolution(text: str) -> int | None:
    match = re.match(r"^(\d+)x(\d+)", text)
    return int(match.group(1)) if match and match.group(1) == match.group(2) else None


def _compute_unit(text: str) -> str | None:
    text = _COMPUTE_UNITS.get(text, text)
    return text if text in _KNOWN_COMPUTE_UNITS else None


def _status(source: str, notes: str) -> str:
    both = f"{source} {notes}".lower()
    if "superseded" in both or "replaced" in both:
        return "superseded"
    if "historical" in both or "older version" in both:
        return "historical"
    return "current"


def _date(source: str, notes: str) -> str | None:
    iso = re.search(r"\b(\d{4}-\d{2}-\d{2})\b", source)
    if iso:
        return iso.group(1)
    month = _MONTH.search(notes)
    return f"{month.group(1)[:3]} {month.group(2)}" if month else None


def _reduce_memory(notes: str, device: str | None) -> bool:
    """Apple's star: "* reduceMemory enabled" on a device's row, or a note listing the devices."""
    if re.search(r"reduceMemory\)?\s+enabled", notes):
        return True
    listed = re.search(r"reduceMemory for ([^;(]+)", notes)
    if listed and device:
        names = [n.strip().lower() for n in re.split(r",| and ", listed.group(1))]
        return device.lower() in names
    return False


def model_family(text: str | None) -> str | None:
    """A model name or id -> family key: "SDXL base 1.0 (iOS variant)" and "sdxl-base-ios17" ->
    "sdxl-base-1.0"; "SD 2.1 base" / "coreml-stable-diffusion-2-1-base" -> "sd-2.1-base"; "SD 1.4" ->
    "sd-1.4"; unknown -> None."""
    if not text:
        return None
    lower = str(text).lower()
    if "refiner" in lower:
        return "sdxl-refiner-1.0" if "xl" in lower else None
    if "sdxl" in lower or "-xl-" in lower or "diffusion xl" in lower or "diffusion-xl" in lower:
        return "sdxl-base-1.0"
    if "small-stable-diffusion" in lower:
        return "small-sd-v0"
    match = re.search(r"(?:stable[- _]diffusion|\bsd)[- _]?v?(\d)(?:[-._ ](\d))?(?![\d])", lower)
    if not match:
        return None
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return f"sd-{version}" + ("-base" if "base" in lower else "")


def published_quantization(text: str, bits: float | None) -> str | None:
    """The published weight description -> the quantization key a run records."""
    lower = text.lower()
    if lower in ("float16", "original", "float16 original"):
        return "float16"
    palette = re.fullmatch(r"palettized \((\d)-bit\)", lower)
    if palette:
        return f"pal{palette.group(1)}"
    if "linear" in lower and "8" in lower:
        return "int8"
    recipe = re.search(r"recipe_(\d+)[._](\d+)_bit", lower)
    if recipe:
        return f"mbp-{int(recipe.group(1))}.{recipe.group(2)}"
    if "mixed-bit" in lower and bits is not None:
        return f"mbp-{bits:.2f}"
    return None


def measured_quantization(text: str | None) -> str | None:
    """A run's quantization label -> the same key space: "fp16" -> "float16", "palettized-6bit" ->
    "pal6", "mbp-4.5" -> "mbp-4.50"."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    lower = str(text).lower()
    aliases = {"fp16": "float16", "fp32": "float32", "w8": "int8", "linear-8": "int8"}
    if lower in aliases:
        return aliases[lower]
    palette = re.fullmatch(r"(?:palettized-|pal)(\d)(?:bit)?", lower)
    if palette:
        return f"pal{palette.group(1)}"
    mbp = re.fullmatch(r"mbp-(\d+(?:\.\d+)?)", lower)
    return f"mbp-{float(mbp.group(1)):.2f}" if mbp else lower


def _mark_repeats(figures: list[PublishedFigure]) -> list[PublishedFigure]:
    """A current figure another source printed first (Apple's README before a blog repeating it) is a
    `repeat`: same model, device, compute unit, attention, quantization, metric and value."""
    from dataclasses import replace

    def key(f: PublishedFigure) -> tuple:
        return (f.model, f.device, f.compute_unit, f.attention, f.quantization, f.metric, f.value)

    primary: dict[tuple, str] = {}
    for figure in figures:
        if figure.status == "current" and figure.table.startswith("apple/"):
            primary.setdefault(key(figure), figure.table)
    out = []
    for figure in figures:
        first = primary.get(key(figure))
        if figure.status == "current" and first is not None and first != figure.table and figure.device:
            figure = replace(figure, status="repeat")
        out.append(figure)
    return out


def figures_frame(figures: list[PublishedFigure]) -> pd.DataFrame:
    """The figures as a DataFrame, one column per `PublishedFigure` field."""
    import pandas as pd

    return pd.DataFrame([asdict(f) for f in figures], columns=[f.name for f in fields(PublishedFigure)])


#: Columns of `device_table`: the configuration, then the two figures and where they come from.
DEVICE_TABLE_COLUMNS: tuple[str, ...] = (
    "model", "model_label", "device", "chip", "os", "compute_unit", "attention", "quantization",
    "quantization_label", "resolution", "steps", "end_to_end_s", "iter_per_s", "approximate",
    "reduce_memory", "status", "table", "date", "source_url",
)  # fmt: skip
_CONFIG = ("table", "model", "model_label", "device", "chip", "os", "compute_unit", "attention", "quantization",
           "quantization_label", "resolution", "steps", "status", "date", "source_url")  # fmt: skip


def device_table(
    figures: list[PublishedFigure] | None = None,
    *,
    model: str | None = None,
    device: str | None = None,
    include_old: bool = False,
) -> pd.DataFrame:
    """One row per (table, device, configuration) with its end-to-end seconds and iter/s.

    `model` keeps rows whose model key or label contains the text (case-insensitively) or whose
    family is the text's ("SD 1.5" finds "Stable Diffusion 1.5"); `device` keeps rows whose device
    name contains the text or whose chip is it. Historical, superseded and repeated rows only with `include_old`.
    """
    import pandas as pd

    figures = load_published() if figures is None else figures
    wanted = [f for f in figures if f.device and f.metric in ("end_to_end", "iter_per_s") and f.value is not None]
    if not include_old:
        wanted = [f for f in wanted if f.status == "current"]
    if model:
        needle, family = model.lower(), model_family(model)
        wanted = [f for f in wanted if needle in (f.model or "").lower() or needle in f.model_label.lower()
                  or (family is not None and f.model == family)]  # fmt: skip
    if device:
        needle = device.lower()
        wanted = [f for f in wanted if needle in (f.device or "").lower() or needle == (f.chip or "").lower()]
    rows: dict[tuple, dict] = {}
    for figure in wanted:
        record = asdict(figure)
        key = tuple(record[c] for c in _CONFIG)
        row = rows.setdefault(key, {**{c: record[c] for c in _CONFIG}, "end_to_end_s": None, "iter_per_s": None,
                                    "approximate": False, "reduce_memory": False})  # fmt: skip
        row["end_to_end_s" if figure.metric == "end_to_end" else "iter_per_s"] = figure.value
        row["approximate"] = row["approximate"] or figure.approximate
        row["reduce_memory"] = row["reduce_memory"] or figure.reduce_memory
    frame = pd.DataFrame(list(rows.values()), columns=list(DEVICE_TABLE_COLUMNS))
    for column in ("end_to_end_s", "iter_per_s"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["resolution"] = frame["resolution"].astype("Int64")
    frame["steps"] = frame["steps"].astype("Int64")
    order = {status: index for index, status in enumerate(STATUSES)}
    frame = frame.assign(_order=frame["status"].map(order)).sort_values("_order", kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)


def render_published_comparison(summary: pd.DataFrame, console: Console) -> None:
    """After `bench run`: each measured case that has a published configuration, beside it."""
    from bench.report.matching import match_cases
    from bench.report.tables import render_matches_term

    if summary.empty:
        return
    matches = [m for m in match_cases(summary) if m.config_rows > 0]
    if matches:
        render_matches_term(matches, console)
