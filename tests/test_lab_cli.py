"""``normlab lab list | show | run`` through ``normlab.cli.main``."""
from __future__ import annotations

import json

import pytest

from normlab.cli import main
from tests import lab_fakes  # noqa: F401  (registers tiny-fake and failing-fake)

PART_ONE = ("covariate-shift", "bn-learning-rate", "batch-size", "online-learning", "mnist1d-baselines")


def test_list_names_every_experiment_with_its_title(capsys):
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert set(PART_ONE) <= set(names)
    assert names.index("covariate-shift") < names.index("mnist1d-baselines")  # report order
    assert any("Batch normalization at small batches" in line for line in lines)


def test_show_prints_claim_anchor_criterion_and_method(capsys):
    assert main(["lab", "show", "batch-size"]) == 0
    text = capsys.readouterr().out
    for part in ("batch-size:", "Claim:", "Anchor: Wu & He 2018", "Criterion (fixed in code before running):",
                 "BN's test error at batch 2 is at least 5 points above", "How it is measured:", "Quick run:",
                 "Full run: 5 seeds"):
        assert part in text


@pytest.mark.parametrize("argv, message", [
    (["lab", "show", "nope"], "unknown experiment 'nope'"),
    (["lab", "run"], "give experiment names or --all"),
    (["lab", "run", "--all", "batch-size"], "give experiment names or --all"),
    (["lab", "run", "nope"], "unknown experiment 'nope'"),
    (["lab", "run", "tiny-fake", "--jobs", "0"], "--jobs must be at least 1"),
    (["lab", "run", "tiny-fake", "--seeds", "0"], "--seeds must be at least 1"),
    (["lab"], "required"),
])
def test_bad_lab_arguments_exit_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + (["--out", str(tmp_path)] if argv[:2] == ["lab", "run"] and len(argv) > 2 else []))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_run_writes_the_report_and_prints_its_path(capsys, tmp_path):
    out = tmp_path / "report"
    assert main(["lab", "run", "tiny-fake", "--quick", "--out", str(out), "--jobs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'index.html'}" in printed
    assert "tiny-fake" in printed and "inconclusive" in printed
    document = json.loads((out / "results.json").read_text())
    assert document["quick"] is True
    assert document["provenance"]["command"] == (f"normlab lab run tiny-fake --quick --out {out} --jobs 2 "
                                                 "--threads 1")
    assert (out / "index.html").is_file() and (out / "tiny-fake" / "loss.png").is_file()


def test_run_exits_1_when_an_experiment_fails(capsys, tmp_path):
    assert main(["lab", "run", "failing-fake", "tiny-fake", "--quick", "--out", str(tmp_path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "failing-fake" in captured.out and "FAILED" in captured.out
    assert "failed: failing-fake" in captured.err
    assert (tmp_path / "index.html").is_file()
