"""Compare two sets of runs: per case, stage and metric, is the candidate slower (or bigger)?

    result = compare_results(load_side("results/base-*"), load_side("results/cand"))

A change is a regression only if the ratio of medians (candidate / baseline) exceeds the threshold
of its stage group and metric AND a Mann-Whitney U test calls it significant at asv's level
(p < 0.002). The test is one-sided, in the direction of the change (is the candidate slower? is it
faster?). Whether the samples are large enough for the test to decide is asv's rule
(`bench.measure.stats.enough_for_significance`: 1 / C(n_a + n_b, min(n_a, n_b)) < alpha, which is
exactly the smallest p this one-sided test can reach); when they are not, the comparison says
"too few samples" instead of guessing. Samples are the raw span values: one per measured repeat
(per step for per-step stages, per run for cold loads), pooled over every run of a side, so a
glob of several nights on each side gives the test enough samples for the cold-load stages too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bench.errors import ResultsError
from bench.measure.stats import (
    BOOTSTRAP_RESAMPLES,
    SIGNIFICANCE_ALPHA,
    describe,
    enough_for_significance,
    mann_whitney_p,
    median_ratio_interval,
)
from bench.report.summary import format_bytes, format_seconds
from bench.schema import OUTCOME_STAGE

if TYPE_CHECKING:
    import pandas as pd

#: Metrics compared; for all of them more is worse.
METRICS: tuple[str, ...] = ("latency", "peak_rss", "peak_footprint")
#: Stage groups a threshold can name, and the stages in each.
STAGE_GROUPS: dict[str, str] = {
    "encoders": "tokenize, text_encoder, text_encoder_2",
    "unet": "unet, scheduler, refiner, diffusion",
    "vae": "vae_encoder, vae_decoder",
    "load": "compile/<part>, load/<part>, first_predict/<part>",
    "end_to_end": "end_to_end, process",
}
_GROUP_OF = {
    "tokenize": "encoders", "text_encoder": "encoders", "text_encoder_2": "encoders",
    "unet": "unet", "scheduler": "unet", "refiner": "unet", "diffusion": "unet",
    "vae_encoder": "vae", "vae_decoder": "vae",
    "end_to_end": "end_to_end", "process": "end_to_end",
}  # fmt: skip
DEFAULT_THRESHOLD = 0.05

Verdict = Literal[
    "regression", "improvement", "unchanged", "not_significant", "too_few_samples", "not_gated", "failed", "missing"
]


def stage_group(stage: str) -> str:
    """The threshold group of a stage (`other` for a stage no group names)."""
    if stage.split("/", 1)[0] in ("compile", "load", "first_predict"):
        return "load"
    return _GROUP_OF.get(stage, "other")


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    """Relative thresholds: a default, per stage group, per metric and per group.metric (most specific wins)."""

    default: float = DEFAULT_THRESHOLD
    specific: Mapping[str, float] = field(default_factory=dict)

    def for_(self, group: str, metric: str) -> float:
        for key in (f"{group}.{metric}", group, metric):
            if key in self.specific:
                return self.specific[key]
        return self.default

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Thresholds:
        """From `--threshold` values: `5%` (default), `unet=3%`, `peak_rss=10%`, `load.latency=20%`."""
        default, specific = DEFAULT_THRESHOLD, {}
        for spec in specs:
            key, value = parse_threshold(spec)
            if key is None:
                default = value
            else:
                specific[key] = value
        return cls(default, specific)


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def parse_threshold(spec: str) -> tuple[str | None, float]:
    """`[KEY=]N%` -> (KEY or None, N / 100); ValueError naming what is wrong."""
    key, _, amount = spec.rpartition("=")
    key = key.strip()
    match = _PERCENT.match(amount)
    if not match:
        raise ValueError(f"threshold {spec!r}: expected a percentage such as 5% or unet=3%")
    if key:
        group, _, metric = key.partition(".")
        known_groups, known = set(STAGE_GROUPS) | {"other"}, set(STAGE_GROUPS) | {"other"} | set(METRICS)
        if (metric and (group not in known_groups or metric not in METRICS)) or (not metric and group not in known):
            raise ValueError(
                f"threshold {spec!r}: unknown key {key!r} (stage groups: {', '.join(STAGE_GROUPS)}; "
                f"metrics: {', '.join(METRICS)}; or GROUP.METRIC)"
            )
    return (key or None), float(match.group(1)) / 100.0


# --------------------------------------------------------------------------- the two sides


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its rows and where they came from."""

    label: str
    results: pd.DataFrame

    @property
    def run_ids(self) -> list[str]:
        return sorted(str(r) for r in self.results["run_id"].dropna().unique())


def load_side(spec: str) -> Side:
    """Rows of a run folder, a results.csv or a glob; ResultsError if there are none."""
    from bench.store import load_results

    results = load_results(spec)
    if results.empty:
        raise ResultsError(f"{spec}: no measurements (an empty run)")
    return Side(spec, results)


def _machines(results: pd.DataFrame) -> set[str]:
    if "device_name" in results and results["device_name"].notna().any():
        names = results["device_name"].astype("string")
    else:
        names = results["device"].astype("string").fillna("?") + " / " + results["chip"].astype("string").fillna("?")
    return {str(n) for n in names.dropna().unique()}


def check_same_machine(baseline: Side, candidate: Side) -> None:
    """Refuse runs from more than one device, or sides run on different engines (ResultsError)."""
    base, cand = _machines(baseline.results), _machines(candidate.results)
    if len(base | cand) > 1:
        raise ResultsError(
            f"cannot compare runs from different devices: {baseline.label} ran on {', '.join(sorted(base))}; "
            f"{candidate.label} on {', '.join(sorted(cand))} (pass --allow-mixed to compare anyway)"
        )
    base, cand = ({str(e) for e in side.results["engine"].dropna().unique()} for side in (baseline, candidate))
    if base != cand:
        raise ResultsError(
            f"cannot compare runs from different engines: {baseline.label} used {', '.join(sorted(base))}; "
            f"{candidate.label} used {', '.join(sorted(cand))} (pass --allow-mixed to compare anyway)"
        )


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class CaseRef:
    case_id: str
    case: str


@dataclass(frozen=True)
class Comparison:
    """The verdict on one case, phase, stage and metric."""

    case_id: str
    case: str
    phase: str
    stage: str
    group: str
    metric: str
    unit: str
    baseline_n: int
    candidate_n: int
    baseline_median: float
    candidate_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float | None
    significance_decidable: bool
    threshold: float
    verdict: Verdict
    note: str = ""

    @property
    def label(self) -> str:
        """The stage as JUnit and tables name it: cold-phase spans are marked (cold)."""
        return f"{self.stage} (cold)" if self.phase == "cold" else self.stage


@dataclass(frozen=True)
class CompareResult:
    baseline: str
    candidate: str
    baseline_runs: list[str]
    candidate_runs: list[str]
    alpha: float
    confidence: float
    resamples: int
    seed: int
    thresholds: Thresholds
    comparisons: list[Comparison]
    only_baseline: list[CaseRef]
    only_candidate: list[CaseRef]
    warnings: list[str]

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "regression"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for comparison in self.comparisons:
            counts[comparison.verdict] = counts.get(comparison.verdict, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; NaN becomes null."""
        data = asdict(self)
        data["thresholds"] = {"default": self.thresholds.default, **dict(self.thresholds.specific)}
        data["regressions"] = len(self.regressions)
        data["counts"] = self.counts()
        return _json_safe(data)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class _CaseInfo:
    label: str
    statuses: set[str]
    invalid: list[str]


def _case_info(results: pd.DataFrame) -> dict[str, _CaseInfo]:
    """Per case id: its label, the statuses of its closing rows and why it is invalid (if it is)."""
    info: dict[str, _CaseInfo] = {}
    labels = results.drop_duplicates("case_id")[["case_id", "case"]]
    for case_id, label in zip(labels["case_id"].astype(str), labels["case"].astype("string").fillna("")):
        info[case_id] = _CaseInfo(str(label), set(), [])
    closing = results[results["stage"].astype("string") == OUTCOME_STAGE]
    for record in closing.to_dict("records"):
        entry = info[str(record["case_id"])]
        entry.statuses.add(str(record["status"]))
        valid = record.get("valid")
        if valid is not None and not _missing(valid) and not bool(valid):
            reason = record.get("invalid_reason")
            entry.invalid.append(str(reason) if reason is not None and not _missing(reason) else "marked invalid")
    return info


def _missing(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _samples(results: pd.DataFrame) -> tuple[dict[tuple[str, str, str, str], list[float]], dict[str, str], int]:
    """Raw values per (case_id, phase, stage, metric) of the compared phases and metrics, the unit of
    each metric, and how many non-finite values were left out."""
    import numpy as np

    metric = results["metric"].astype("string")
    phase = results["phase"].astype("string").fillna("")
    keep = metric.isin(METRICS) & phase.isin(["cold", "measured", ""]) & (results["stage"].astype("string") != OUTCOME_STAGE)
    rows = results[keep.fillna(False)]
    values = rows["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    dropped = int((~finite).sum())
    rows = rows[finite]
    frame = rows.assign(_phase=phase[rows.index])
    samples: dict[tuple[str, str, str, str], list[float]] = {}
    for key, group in frame.groupby(["case_id", "_phase", "stage", "metric"], observed=True, sort=False):
        samples[tuple(str(k) for k in key)] = group["value"].tolist()  # type: ignore[index]
    units = {str(m): str(u) for m, u in rows[["metric", "unit"]].drop_duplicates("metric").itertuples(index=False)}
    return samples, units, dropped


def compare_results(
    baseline: Side,
    candidate: Side,
    *,
    thresholds: Thresholds | None = None,
    alpha: float = SIGNIFICANCE_ALPHA,
    confidence: float = 0.99,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    allow_mixed: bool = False,
    include_invalid: bool = False,
) -> CompareResult:
    """Verdicts for every case, phase, stage and metric measured on both sides."""
    thresholds = thresholds or Thresholds()
    if not allow_mixed:
        check_same_machine(baseline, candidate)
    base_info, cand_info = _case_info(baseline.results), _case_info(candidate.results)
    base_samples, base_units, base_dropped = _samples(baseline.results)
    cand_samples, cand_units, cand_dropped = _samples(candidate.results)
    warnings = [
        f"{side.label}: {count} non-finite value(s) left out of the samples"
        for side, count in ((baseline, base_dropped), (candidate, cand_dropped))
        if count
    ]
    units = {**base_units, **cand_units}
    shared = [case_id for case_id in cand_info if case_id in base_info]
    only_baseline = [CaseRef(c, base_info[c].label) for c in base_info if c not in cand_info]
    only_candidate = [CaseRef(c, cand_info[c].label) for c in cand_info if c not in base_info]

    comparisons: list[Comparison] = []
    for case_id in shared:
        keys = [k for k in cand_samples if k[0] == case_id]
        keys += [k for k in base_samples if k[0] == case_id and k not in cand_samples]
        blocked = _blocked(base_info[case_id], cand_info[case_id], include_invalid)
        for key in keys:
            comparisons.append(
                _compare_one(key, cand_info[case_id].label, base_samples.get(key, []), cand_samples.get(key, []),
                             units.get(key[3], ""), thresholds, alpha, confidence, resamples, seed, blocked)  # fmt: skip
            )
    return CompareResult(
        baseline.label, candidate.label, baseline.run_ids, candidate.run_ids, alpha, confidence, resamples, seed,
        thresholds, comparisons, only_baseline, only_candidate, warnings,
    )  # fmt: skip


def _blocked(base: _CaseInfo, cand: _CaseInfo, include_invalid: bool) -> tuple[Verdict, str] | None:
    """Why a case is not gated (a failed run on either side, or an invalid one), or None."""
    for side, info in (("baseline", base), ("candidate", cand)):
        bad = sorted(info.statuses - {"ok"}) or ([] if info.statuses else ["incomplete"])
        if bad:
            return "failed", f"{side} status {', '.join(bad)}"
    if not include_invalid:
        for side, info in (("baseline", base), ("candidate", cand)):
            if info.invalid:
                return "not_gated", f"{side} invalid: {'; '.join(dict.fromkeys(info.invalid))}"
    return None


def _compare_one(
    key: tuple[str, str, str, str],
    label: str,
    base: Sequence[float],
    cand: Sequence[float],
    unit: str,
    thresholds: Thresholds,
    alpha: float,
    confidence: float,
    resamples: int,
    seed: int,
    blocked: tuple[Verdict, str] | None,
) -> Comparison:
    case_id, phase, stage, metric = key
    group = stage_group(stage)
    threshold = thresholds.for_(group, metric)
    decidable = enough_for_significance(len(base), len(cand), alpha)
    interval = median_ratio_interval(base, cand, confidence=confidence, resamples=resamples, seed=seed)
    ratio = interval.ratio
    direction = "greater" if ratio > 1.0 else "less"  # the question a gate asks: slower (or faster)?
    p_value = mann_whitney_p(base, cand, direction) if decidable and math.isfinite(ratio) else None
    verdict: Verdict
    note = ""
    if blocked:
        verdict, note = blocked
    elif not base or not cand:
        verdict, note = "missing", f"not measured in the {'baseline' if not base else 'candidate'}"
    elif not math.isfinite(ratio):
        verdict, note = "missing", "baseline median is not positive"
    elif 1.0 - threshold <= ratio <= 1.0 + threshold:
        verdict = "unchanged"
    elif not decidable:
        verdict = "too_few_samples"
        note = f"{len(base)} vs {len(cand)} samples cannot reach p < {alpha:g}"
    elif p_value is not None and p_value < alpha:
        verdict = "regression" if ratio > 1.0 else "improvement"
    else:
        verdict = "not_significant"
    return Comparison(
        case_id, label, phase, stage, group, metric, unit, len(base), len(cand),
        describe(base).median, describe(cand).median, ratio, interval.low, interval.high,
        p_value, decidable, threshold, verdict, note,
    )  # fmt: skip


# --------------------------------------------------------------------------- markdown and JUnit


def format_value(value: float, unit: str) -> str:
    if unit == "bytes":
        return format_bytes(value)
    if unit == "s":
        return format_seconds(value)
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def format_ratio(comparison: Comparison) -> str:
    if not math.isfinite(comparison.ratio):
        return "-"
    return f"{comparison.ratio:.3f}"


def format_interval(comparison: Comparison) -> str:
    if not (math.isfinite(comparison.ci_low) and math.isfinite(comparison.ci_high)):
        return "-"
    return f"{comparison.ci_low:.3f}-{comparison.ci_high:.3f}"


def format_p(comparison: Comparison) -> str:
    return "-" if comparison.p_value is None or not math.isfinite(comparison.p_value) else f"{comparison.p_value:.2g}"


def _md_row(c: Comparison) -> str:
    cells = [c.case, c.label, c.metric, format_value(c.baseline_median, c.unit), format_value(c.candidate_median, c.unit),
             format_ratio(c), format_interval(c), format_p(c), f"{c.baseline_n}/{c.candidate_n}", f"{c.threshold:.0%}",
             c.verdict.replace("_", " ") + (f" ({c.note})" if c.note else "")]  # fmt: skip
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def markdown_summary(result: CompareResult) -> str:
    """The comparison as GitHub-flavoured markdown (what CI shows on the job's summary page)."""
    header = ("| case | stage | metric | baseline | candidate | ratio | "
              f"{result.confidence:.0%} CI | p | n | threshold | verdict |\n|" + "---|" * 11)  # fmt: skip
    counts = result.counts()
    lines = [f"## bench compare: {result.candidate} against {result.baseline}", ""]
    lines.append(f"Baseline runs: {', '.join(result.baseline_runs)}; candidate runs: {', '.join(result.candidate_runs)}.")
    lines.append("")
    regressions = result.regressions
    lines.append(f"**{len(regressions)} regression(s)**" if regressions else "**No regression.**")
    lines.append("")
    lines.append(" · ".join(f"{name.replace('_', ' ')}: {n}" for name, n in sorted(counts.items())))
    lines.append("")
    lines.append(
        f"A regression is a ratio of medians (candidate / baseline) above its threshold with a one-sided Mann-Whitney U "
        f"p < {result.alpha:g}; intervals are {result.resamples}-resample bootstrap intervals of the ratio."
    )
    if regressions:
        lines += ["", "### Regressions", "", header, *(_md_row(c) for c in regressions)]
    notable = [c for c in result.comparisons if c.verdict not in ("regression", "unchanged")]
    if notable:
        lines += ["", "### Not a regression, but worth a look", "", header, *(_md_row(c) for c in notable)]
    for title, refs in (("Cases only in the baseline", result.only_baseline),
                        ("Cases only in the candidate", result.only_candidate)):  # fmt: skip
        if refs:
            lines += ["", f"### {title}", "", *(f"- {ref.case} (`{ref.case_id}`)" for ref in refs)]
    for warning in result.warnings:
        lines += ["", f"> warning: {warning}"]
    if result.comparisons:
        lines += ["", "<details><summary>All comparisons</summary>", "", header,
                  *(_md_row(c) for c in result.comparisons), "", "</details>"]  # fmt: skip
    return "\n".join(lines) + "\n"


def junit_xml(result: CompareResult) -> str:
    """JUnit XML: a testsuite per case, a testcase per stage; a regression is a <failure>, a stage
    whose every metric could not be decided is <skipped>; details go to <system-out>."""
    import xml.etree.ElementTree as ET

    by_case: dict[str, dict[str, list[Comparison]]] = {}
    for comparison in result.comparisons:
        by_case.setdefault(comparison.case_id, {}).setdefault(comparison.label, []).append(comparison)
    root = ET.Element("testsuites", name="bench compare")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for case_id, stages in by_case.items():
        label = next(iter(stages.values()))[0].case
        suite = ET.SubElement(root, "testsuite", name=label or case_id, id=case_id)
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for stage, comparisons in stages.items():
            latency = [c for c in comparisons if c.metric == "latency" and math.isfinite(c.candidate_median)]
            case = ET.SubElement(suite, "testcase", classname=f"bench.compare.{case_id}", name=stage,
                                 time=f"{latency[0].candidate_median:.6f}" if latency else "0")  # fmt: skip
            counts["tests"] += 1
            failed = [c for c in comparisons if c.verdict == "regression"]
            decided = [c for c in comparisons if c.verdict in ("unchanged", "improvement", "not_significant")]
            if failed:
                counts["failures"] += 1
                message = "; ".join(f"{c.metric} {c.ratio:.3f}x (threshold {c.threshold:.0%}, p={format_p(c)})" for c in failed)
                failure = ET.SubElement(case, "failure", message=f"regression: {message}", type="regression")
                failure.text = "\n".join(_text_line(c) for c in failed)
            elif not decided:
                counts["skipped"] += 1
                reasons = "; ".join(dict.fromkeys(f"{c.verdict.replace('_', ' ')}{f' ({c.note})' if c.note else ''}" for c in comparisons))
                ET.SubElement(case, "skipped", message=reasons)
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(_text_line(c) for c in comparisons)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
        suite.set("time", "0")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _text_line(c: Comparison) -> str:
    return (f"{c.metric}: {format_value(c.baseline_median, c.unit)} -> {format_value(c.candidate_median, c.unit)} "
            f"ratio {format_ratio(c)} CI {format_interval(c)} p {format_p(c)} n {c.baseline_n}/{c.candidate_n} "
            f"threshold {c.threshold:.0%}: {c.verdict}{f' ({c.note})' if c.note else ''}")  # fmt: skip
