"""The HTML report in a real headless Chromium: no failed request, no console error, every chart drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from tests.report.devtools import Chromium, file_url, find_chromium
from tests.report.example_data import EXAMPLE_RESULTS

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it with apt-get)")

CHART_SIZES = "JSON.stringify(Array.from(document.querySelectorAll('img.chart')).map(i => [i.naturalWidth, i.naturalHeight]))"


def test_html_report_loads_cleanly_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(EXAMPLE_RESULTS), "--against", "published", "--format", "html", "--out", str(tmp_path)]) == 0
    page_path = tmp_path / "report.html"
    text = page_path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text.split("<table>")[0]  # nothing to fetch in the head
    with Chromium(CHROMIUM) as browser:
        page, session = browser.load(file_url(page_path))
        sizes = json.loads(browser.evaluate(CHART_SIZES, session))
        headings = browser.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)", session)
    assert page.loaded
    assert page.failed_requests == [] and page.console_errors == [] and page.exceptions == []
    assert all(url.startswith(("file:", "data:")) for url in page.requests)
    assert len(sizes) == 5 and all(w > 0 and h > 0 for w, h in sizes)  # 6 charts, the published one skipped
    assert headings[0] == "Cases" and any(h.startswith("Against published") for h in headings)


def test_browser_check_sees_a_broken_page(tmp_path: Path) -> None:
    """The same check fails a page with a missing image and a script error (the test can fail)."""
    page_path = tmp_path / "broken.html"
    page_path.write_text("<!DOCTYPE html><html><body><img class='chart' src='missing.png'>"
                         "<script>console.error('boom'); undefined_call();</script></body></html>")  # fmt: skip
    with Chromium(CHROMIUM) as browser:
        page, session = browser.load(file_url(page_path))
        sizes = json.loads(browser.evaluate(CHART_SIZES, session))
    assert page.failed_requests and page.console_errors and page.exceptions
    assert sizes == [[0, 0]]
