"""Each measured case beside the published figure of the same configuration on the same device.

A case matches a published row on model family, resolution, attention, quantization, compute unit
and steps (a field the source does not state matches anything, and the match says so), then on the
device: the same model of device first (`iPhone16,2` = "iPhone 15 Pro Max", `Mac14,5` = a MacBook
Pro with M2 Max), else the same chip on another device (an M2 Mac against the iPad Pro (M2)), said
as such. A case with no device match lists the devices that published its configuration; a case
whose configuration nobody published says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.report.devices import MachineIdentity, identify, same_device
from bench.report.published import device_table, measured_quantization, model_family

if TYPE_CHECKING:
    import pandas as pd

#: Configuration fields a match compares: (case summary column, device table column).
MATCH_FIELDS: tuple[str, ...] = ("resolution", "attention", "quantization", "compute_unit", "steps")


@dataclass(frozen=True)
class PublishedFigureRow:
    """One published device row a case is compared with, and the ratios measured / published."""

    device: str
    chip: str | None
    end_to_end_s: float
    iter_per_s: float
    ratio_end_to_end: float  # measured / published seconds: > 1 is slower than published
    ratio_iter_per_s: float  # measured / published iter/s: > 1 is faster than published
    reduce_memory: bool
    approximate: bool
    table: str
    date: str | None


@dataclass(frozen=True)
class PublishedMatch:
    """The published context of one measured case."""

    run_id: str
    case_id: str
    case: str
    model: str
    machine: MachineIdentity
    kind: str  # "device", "chip", "other-devices" or "unpublished"
    end_to_end_s: float
    iter_per_s: float
    figures: tuple[PublishedFigureRow, ...]  # the matched device (or same-chip) rows
    reference_devices: tuple[str, ...]  # devices that published this configuration (when no match)
    config_rows: int  # published rows with this configuration, on any device
    note: str


def match_cases(summary: pd.DataFrame, published: pd.DataFrame | None = None) -> list[PublishedMatch]:
    """One `PublishedMatch` per row of `case_summary` output, in the same order."""
    table = device_table() if published is None else published
    # Cases sharing a configuration and machine share the published rows: look them up once.
    found: dict[tuple, tuple[str, list[dict[str, Any]], tuple[str, ...], int, str]] = {}
    matches = []
    for record in summary.to_dict("records"):
        key = tuple(_text(record.get(c)) for c in ("model", "refiner", "device", "device_name", "chip", *MATCH_FIELDS))
        if key not in found:
            found[key] = _lookup(record, table)
        matches.append(_match(record, *found[key]))
    return matches


def _lookup(record: dict[str, Any], table: pd.DataFrame) -> tuple[str, list[dict[str, Any]], tuple[str, ...], int, str]:
    """(kind, matched published rows, devices for reference, rows of this configuration, note)."""
    machine = _machine(record)
    family = model_family(_text(record.get("model")))
    if _text(record.get("refiner")) == "True":
        family = None  # the published tables are base-model figures
    wanted = {
        "resolution": _int(record.get("resolution")),
        "attention": _text(record.get("attention")),
        "quantization": measured_quantization(_text(record.get("quantization"))),
        "compute_unit": _text(record.get("compute_unit")),
        "steps": _int(record.get("steps")),
    }
    rows = table[table["model"] == family] if family else table.iloc[0:0]
    for name, value in wanted.items():
        column = rows[name]
        rows = rows[column.isna() | (column.astype(object) == value)]
    unstated = {name for name in wanted if rows[name].isna().any()}
    if rows.empty:
        return "unpublished", [], (), 0, "no published figure for this configuration"
    records = rows.to_dict("records")
    exact = [r for r in records if same_device(machine, _published_line(r), r["chip"])]
    same_chip = [r for r in records if machine.chip is not None and r["chip"] == machine.chip]
    unstated_note = f"; the source does not state {', '.join(sorted(unstated))}" if unstated else ""
    who = machine.name or machine.device or "this machine"
    if exact:
        return "device", exact, (), len(records), f"same device ({who}){unstated_note}"
    if same_chip:
        devices = ", ".join(sorted({r["device"] for r in same_chip}))
        note = f"no published {who}; same chip ({machine.chip}) on {devices}{unstated_note}"
        return "chip", same_chip, (), len(records), note
    devices = tuple(dict.fromkeys(r["device"] for r in records))
    chip = f" ({machine.chip})" if machine.chip else ""
    return "other-devices", [], devices, len(records), f"no published figure for {who}{chip}; published for: {', '.join(devices)}"


def _match(record: dict[str, Any], kind: str, rows: list[dict[str, Any]], devices: tuple[str, ...], config_rows: int,
           note: str) -> PublishedMatch:
    e2e, ips = _float(record.get("end_to_end_s")), _float(record.get("iter_per_s"))
    return PublishedMatch(
        run_id=str(record.get("run_id", "")), case_id=str(record.get("case_id", "")), case=str(record.get("case", "")),
        model=str(record.get("model", "")), machine=_machine(record),
        kind=kind, end_to_end_s=e2e, iter_per_s=ips, figures=_figures(rows, e2e, ips), reference_devices=devices,
        config_rows=config_rows, note=note,
    )  # fmt: skip


def _machine(record: dict[str, Any]) -> MachineIdentity:
    return identify(_text(record.get("device")), _text(record.get("chip")), _text(record.get("device_name")))


def _published_line(row: dict[str, Any]) -> str:
    from bench.report.devices import parse_published_device

    return parse_published_device(str(row["device"]), row["chip"])[0]


def _figures(rows: list[dict[str, Any]], e2e: float, ips: float) -> tuple[PublishedFigureRow, ...]:
    out = []
    for row in rows:
        published_e2e, published_ips = _float(row["end_to_end_s"]), _float(row["iter_per_s"])
        out.append(PublishedFigureRow(
            device=str(row["device"]), chip=row["chip"], end_to_end_s=published_e2e, iter_per_s=published_ips,
            ratio_end_to_end=_ratio(e2e, published_e2e), ratio_iter_per_s=_ratio(ips, published_ips),
            reduce_memory=bool(row["reduce_memory"]), approximate=bool(row["approximate"]),
            table=str(row["table"]), date=row["date"],
        ))  # fmt: skip
    return tuple(out)


def _ratio(measured: float, published: float) -> float:
    if math.isfinite(measured) and math.isfinite(published) and published > 0:
        return measured / published
    return math.nan


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _int(value: Any) -> int | None:
    text = _text(value)
    return int(float(text)) if text is not None else None


def _float(value: Any) -> float:
    text = _text(value)
    return float(text) if text is not None else math.nan
