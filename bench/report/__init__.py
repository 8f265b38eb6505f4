"""Reporting: summary tables of a run (and, later, comparisons, history and charts)."""

from bench.report.summary import case_summary, render_summary, stage_summary, step_times

__all__ = ["case_summary", "render_summary", "stage_summary", "step_times"]
