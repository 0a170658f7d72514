"""The quick lab as CI runs it: ``normlab lab run --all --quick`` once, its results and its page in a browser."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.chromium import Browser, find_chromium
from tests.lab_checks import check_html, check_in_browser, check_results

PART_ONE = ("covariate-shift", "bn-learning-rate", "batch-size", "online-learning", "mnist1d-baselines")


@pytest.fixture(scope="module")
def quick_lab(tmp_path_factory):
    """Run the whole quick lab once, in a fresh process (as a user would), with every core as workers."""
    out = tmp_path_factory.mktemp("quick-lab")
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "normlab", "lab", "run", "--all", "--quick", "--out", str(out),
                                "--no-progress"], capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    print(f"\nquick lab: {seconds:.0f} s wall\n{completed.stdout}")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


def test_quick_lab_results_and_figures(quick_lab):
    document = check_results(quick_lab)
    assert document["quick"] is True
    records = {record["id"]: record for record in document["experiments"]}
    assert set(PART_ONE) <= set(records)
    for name, record in records.items():
        assert record["status"] == "ok", record.get("traceback")
        assert record["figures"], name
    check_html(quick_lab, document)


@pytest.mark.skipif(find_chromium() is None,
                    reason="no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it)")
def test_quick_lab_report_in_a_real_browser(quick_lab):
    document = check_results(quick_lab)
    screenshot = Path(tempfile.gettempdir()) / "normlab-lab-report-first-screen.png"
    with Browser(find_chromium()) as browser:
        facts = check_in_browser(browser, quick_lab, document, screenshot)
    print(f"\nscreenshot of the report's first screen: {screenshot} ({len(facts['images'])} figures loaded)")
