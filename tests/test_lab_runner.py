"""The lab's machinery on tiny fake experiments: runner, failure isolation, --jobs, reproducibility, report."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import normlab.lab as lab
from normlab.lab.experiment import Check, Experiment, combine, register, vote
from normlab.lab.report import text_html
from tests import lab_fakes  # noqa: F401  (registers tiny-fake and failing-fake)
from tests.chromium import Browser, find_chromium
from tests.lab_checks import broken_links, check_html, check_in_browser, check_results


def _run(out, names=("tiny-fake",), **options):
    options.setdefault("quick", True)
    options.setdefault("progress", False)
    return lab.run(list(names), out=out, command="test", log=None, **options)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """tiny-fake three times: one worker, two workers, and one worker again."""
    outs = [tmp_path_factory.mktemp(name) for name in ("jobs1", "jobs2", "again")]
    return [(out, _run(out, jobs=jobs)) for out, jobs in zip(outs, (1, 2, 1))]


def test_a_run_writes_results_report_and_figures(tiny_runs):
    out, document = tiny_runs[0]
    assert check_results(out) == document
    check_html(out, document)
    (record,) = document["experiments"]
    assert record["status"] == "ok" and record["seeds"] == [0, 1] and document["quick"] is True
    assert record["figures"] == ["tiny-fake/loss.png"]
    # two tasks per seed were merged into one effect per seed, and the mean is over seeds
    assert len(record["effect_per_seed"]) == 2
    assert record["effect"]["accuracy"] == pytest.approx(np.mean([e["accuracy"] for e in record["effect_per_seed"]]))
    assert record["effect"]["accuracy"] > 0.5  # it really trained
    # 'learns' holds, 'impossible' fails: quick mode makes the failure inconclusive, never not_reproduced
    verdicts = {check["name"]: check["verdict"] for check in record["checks"]}
    assert verdicts == {"learns": "reproduced", "impossible": "inconclusive"}
    assert record["verdict"] == "inconclusive"
    assert document["provenance"]["threads_per_worker"] == 1
    assert record["threads_observed"] == [1]  # measured inside the workers, not only asked for
    assert document["provenance"]["seeds"] == {"tiny-fake": [0, 1]}


def test_same_numbers_with_one_or_two_workers_and_when_run_again(tiny_runs):
    effects = [document["experiments"][0]["effect_per_seed"] for _, document in tiny_runs]
    assert effects[0] == effects[1] == effects[2]  # exact equality: same arithmetic, same seeds
    # and the two seeds really differ (the seed reaches the initialization)
    assert effects[0][0]["first_weight_8"] != effects[0][1]["first_weight_8"]


def test_a_failing_experiment_is_reported_and_the_others_still_run(tmp_path):
    document = _run(tmp_path, names=("failing-fake", "tiny-fake"), jobs=2)
    check_results(tmp_path)
    check_html(tmp_path, document)
    failing, tiny = document["experiments"]
    assert failing["id"] == "failing-fake" and failing["status"] == "failed"
    assert "breaks on purpose in seed 1" in failing["traceback"]
    assert failing["verdict"] == "inconclusive" and failing["figures"] == []
    assert tiny["status"] == "ok" and tiny["figures"]
    page = (tmp_path / "index.html").read_text()
    assert "breaks on purpose in seed 1" in page and "failed" in page


def test_full_mode_says_not_reproduced_when_a_criterion_fails_in_every_seed(tmp_path):
    document = _run(tmp_path, quick=False, seeds=1)
    (record,) = document["experiments"]
    assert record["seeds"] == [0] and record["size"] == {"steps": 30}
    assert {c["name"]: c["verdict"] for c in record["checks"]} == {"learns": "reproduced",
                                                                    "impossible": "not_reproduced"}
    assert record["verdict"] == "not_reproduced"


@pytest.mark.parametrize("held, on_mean, quick, expected", [
    ([True] * 5, True, False, "reproduced"),
    ([True, True, True, True, False], True, False, "reproduced"),      # 4 of 5 = 80 %
    ([True, True, True, False, False], True, False, "inconclusive"),   # 3 of 5
    ([False] * 5, False, False, "not_reproduced"),
    ([True, False, False, False, False], False, False, "not_reproduced"),
    ([True, True, False, False, False], False, False, "inconclusive"),
    ([False] * 5, False, True, "inconclusive"),                        # quick never refutes
    ([True], True, True, "reproduced"),
    ([True, False], True, False, "inconclusive"),
    ([True, True], False, False, "inconclusive"),                      # mean disagrees with the seeds
    ([], True, False, "inconclusive"),
])
def test_vote(held, on_mean, quick, expected):
    assert vote(held, on_mean, quick) == expected


def test_combine():
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "not_reproduced", "reproduced"]) == "not_reproduced"
    assert combine([]) == "inconclusive"


def test_register_refuses_a_bad_declaration():
    class NoChecks(Experiment):
        id, title, claim, anchor, method = "no-checks", "t", "c", "a", "m"

    with pytest.raises(ValueError, match="no-checks needs at least one Check"):
        register(NoChecks)

    class BadId(Experiment):
        id, title, claim, anchor, method = "Bad_Id", "t", "c", "a", "m"
        checks = (Check("x", "x", lambda e: True),)

    with pytest.raises(ValueError, match="lower-case words joined by '-'"):
        register(BadId)

    class Duplicate(Experiment):
        id, title, claim, anchor, method = "tiny-fake", "t", "c", "a", "m"
        checks = (Check("x", "x", lambda e: True),)

    with pytest.raises(ValueError, match="already registered"):
        register(Duplicate)
    with pytest.raises(TypeError):
        register(object)


def test_run_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        lab.run(["nope"], out=tmp_path)
    with pytest.raises(ValueError, match="jobs"):
        lab.run(["tiny-fake"], out=tmp_path, jobs=0)
    with pytest.raises(ValueError, match="seeds"):
        lab.run(["tiny-fake"], out=tmp_path, seeds=0)
    with pytest.raises(ValueError, match="no experiment"):
        lab.run([], out=tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_results_json_is_strict_json(tiny_runs):
    out, _ = tiny_runs[0]
    text = (out / "results.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"results.json contains {name}"))


def test_report_text_is_escaped_and_broken_links_are_found(tmp_path):
    assert text_html("a <b> & `x<y`\n\nsecond") == "<p>a &lt;b&gt; &amp; <code>x&lt;y</code></p>\n<p>second</p>"
    (tmp_path / "there.png").write_bytes(b"")
    hrefs = ["#here", "#gone", "there.png", "missing.png", "https://example.org/"]
    assert broken_links(tmp_path, hrefs, {"here"}) == ["#gone", "missing.png", "https://example.org/"]


def test_every_part_one_experiment_is_registered_with_a_criterion():
    known = lab.list_experiments()
    for name in ("covariate-shift", "bn-learning-rate", "batch-size", "online-learning", "mnist1d-baselines"):
        experiment = known[name]
        assert experiment.checks and experiment.criterion
        assert experiment.quick and experiment.full
        assert experiment.describe().startswith(f"{name}: ")


@pytest.mark.skipif(find_chromium() is None,
                    reason="no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it)")
def test_the_browser_check_sees_figures_and_catches_a_missing_one(tiny_runs, tmp_path):
    source, document = tiny_runs[0]
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    with Browser(find_chromium()) as browser:
        check_in_browser(browser, out, document, tmp_path / "first.png")
        (out / document["experiments"][0]["figures"][0]).unlink()
        with pytest.raises(AssertionError, match="figures the browser could not show"):
            check_in_browser(browser, out, document, tmp_path / "second.png")


def test_a_deterministic_experiment_runs_one_seed_in_full_mode(tmp_path):
    document = _run(tmp_path, names=("deterministic-fake",), quick=False)
    (record,) = document["experiments"]
    assert record["seeds"] == [0] and record["verdict"] == "reproduced" and record["effect"] == {"sum": 4.0}


def test_provenance_describes_the_code_before_the_run(tmp_path, monkeypatch):
    # The commit is read before any task runs: a checkout that changes during a long run
    # must not be recorded as the code that made its numbers.
    from normlab.lab import runner

    state = {"commit": "before"}
    monkeypatch.setattr(runner, "_git_commit", lambda: state["commit"])
    original = lab_fakes.DeterministicFake.figures

    def figures(self, *args):
        state["commit"] = "after"
        return original(self, *args)

    monkeypatch.setattr(lab_fakes.DeterministicFake, "figures", figures)
    document = _run(tmp_path, names=("deterministic-fake",))
    assert state["commit"] == "after" and document["provenance"]["git_commit"] == "before"
    versions = document["provenance"]["versions"]
    assert versions["numpy"] == np.__version__ and versions["mnist1d"] and versions["scikit-learn"]


def test_threads_reach_the_workers(tmp_path):
    document = _run(tmp_path, names=("deterministic-fake",), threads=2)
    assert document["provenance"]["thread_variables"]["NUMBA_NUM_THREADS"] == "2"
    assert document["experiments"][0]["threads_observed"] == [2]
