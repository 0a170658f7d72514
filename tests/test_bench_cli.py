"""`normlab bench` runs from the installed package and prints/writes what it promises (a smoke test: no timing asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from normlab.bench.cases import CASES, quick_shape

ROW_FIELDS = {"op", "shape", "pass", "ours_ms", "torch_ms", "ratio", "gbs", "floor_percent"}
COLD_FIELDS = {"op", "shape", "first_ms", "warm_ms", "extra_ms", "kernels_compiled", "compile_s"}


def _bench(tmp_path, *arguments, code: str | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run ``normlab bench ARGUMENTS --json`` in a fresh process from a folder without the repository's files."""
    out = tmp_path / "bench.json"
    argv = ["bench", *arguments, "--json", str(out)]
    command = [sys.executable, "-m", "normlab", *argv] if code is None else [sys.executable, "-c", code, *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    return done, (json.loads(out.read_text()) if out.exists() else None)


def _check_rows(document: dict) -> None:
    for row in document["rows"]:
        assert set(row) == ROW_FIELDS, row
        assert row["pass"] in ("fwd+bwd", "fwd", "step")
        assert isinstance(row["ours_ms"], float) and row["ours_ms"] > 0
        assert all(isinstance(size, int) and size > 0 for size in row["shape"])
    for row in document["cold_start"]:
        assert set(row) == COLD_FIELDS, row
        assert isinstance(row["kernels_compiled"], int) and row["kernels_compiled"] >= 0


def test_quick_bench_times_every_layer_and_the_cnn_step_and_writes_the_json(tmp_path):
    done, document = _bench(tmp_path, "--quick", "--threads", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(document) == {"normlab", "torch", "threads", "quick", "repeat", "clock", "machine",
                             "copy_bandwidth_gbs", "rows", "cold_start", "peak_memory_mb", "compile_latency"}
    assert document["quick"] is True and document["threads"] == 1 and document["torch"].startswith("2.13.0")
    assert document["copy_bandwidth_gbs"] > 0
    assert document["compile_latency"] is None  # --quick leaves it out unless --ops names it
    _check_rows(document)
    expected = {(case.name, quick_shape(case.shape)) for case in CASES}
    timed = {(row["op"], tuple(row["shape"])) for row in document["rows"] if row["pass"] != "step"}
    assert timed == expected
    for name, shape in expected:
        passes = [row for row in document["rows"] if (row["op"], tuple(row["shape"])) == (name, shape)]
        assert sorted(row["pass"] for row in passes) == ["fwd", "fwd+bwd"]
        for row in passes:
            assert row["torch_ms"] > 0 and row["ratio"] == pytest.approx(row["ours_ms"] / row["torch_ms"])
            floor_applies = not name.startswith("Conv2d")
            assert (row["floor_percent"] is not None) == floor_applies and (row["gbs"] is not None) == floor_applies
    step = [row for row in document["rows"] if row["pass"] == "step"]
    assert [row["op"] for row in step] == ["CNN step"] and step[0]["torch_ms"] > 0
    assert {"ours", "torch", "ours_traced"} <= set(document["peak_memory_mb"])
    assert len(document["cold_start"]) == len(expected)
    # the table: a header, then every layer once (its fwd line below it), the memory and the cold-start tables
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:5] == ["op", "shape", "pass", "ours", "ms"])
    body = lines[header + 2:header + 2 + 2 * len(expected) + 1]
    assert [line.split()[0] for line in body[0:-1:2]] == [row["op"].split()[0] for row in document["rows"]
                                                         if row["pass"] == "fwd+bwd"]
    assert all(line.split()[0] == "fwd" for line in body[1:-1:2])
    assert body[-1].startswith("CNN step")
    assert any(line.startswith("CNN step: peak memory") for line in lines)
    assert any(line.startswith("cold start:") for line in lines)


def test_ops_filters_the_layers_and_without_torch_ours_are_timed_alone(tmp_path):
    hide_torch = ("import sys; sys.modules['torch'] = None; sys.argv[0] = 'normlab'\n"
                  "from normlab.cli import main; sys.exit(main(sys.argv[1:]))")
    done, document = _bench(tmp_path, "--quick", "--ops", "maxpool1d, RMSNorm", code=hide_torch)
    assert done.returncode == 0, done.stderr[-3000:]
    assert document["torch"] is None and document["peak_memory_mb"] is None
    assert {row["op"] for row in document["rows"]} == {"MaxPool1d(2)", "MaxPool1d(3,2,1)", "RMSNorm"}
    assert all(row["torch_ms"] is None and row["ratio"] is None for row in document["rows"])
    assert all(row["floor_percent"] > 0 for row in document["rows"])
    assert "torch not installed: ours only" in done.stdout


def test_ops_matching_nothing_is_an_argument_error(tmp_path):
    done, document = _bench(tmp_path, "--quick", "--ops", "no-such-layer")
    assert done.returncode == 2 and document is None
    assert "matches no benchmark" in done.stderr


def test_compile_latency_reports_the_kernels_a_cold_train_compiles(tmp_path):
    done, document = _bench(tmp_path, "--quick", "--ops", "compile latency")
    assert done.returncode == 0, done.stderr[-3000:]
    assert document["rows"] == []
    latency = document["compile_latency"]
    assert latency["command"] == "normlab train --epochs 1 --quiet"
    assert latency["cold_s"] > 0 and latency["warm_s"] > 0
    assert latency["cold_minus_warm_s"] == pytest.approx(latency["cold_s"] - latency["warm_s"])
    kernels = [row["kernel"] for row in latency["kernels"] if row["module"] == "normlab.ops.normalization"]
    # the default model's BatchNorm1d walks columns: its two kernels, and none of the rows order
    assert {"_channel_kernels.<locals>.forward[columns=True]",
            "_channel_kernels.<locals>.gradients[columns=True]"} <= set(kernels)
    assert not any("columns=False" in kernel for kernel in kernels)
    assert "compile latency of `normlab train --epochs 1 --quiet`" in done.stdout
