import json
import sys

import pytest

from ffclr.benchmarks import scale
from ffclr.benchmarks.measure import run_measured
from ffclr.cli import main
from ffclr.errors import FfclrError


def test_a_measured_process_reports_its_own_peak_memory_and_exit_code(tmp_path):
    grow = ("import time, numpy as np; a = np.ones(300 * 2**20 // 8); time.sleep(0.5); "
            "print('held', a.sum())")
    big = run_measured([sys.executable, "-c", grow], tmp_path / "big.log")
    small = run_measured([sys.executable, "-c", "import time; time.sleep(0.5)"],
                         tmp_path / "small.log")
    assert big.ok and small.ok and big.last_line().startswith("held")
    assert big.peak_rss_mb > 300 > 100 > small.peak_rss_mb
    failed = run_measured([sys.executable, "-c", "import sys; sys.exit('bad input: x')"],
                          tmp_path / "failed.log")
    assert failed.exit_code == 1 and failed.last_line() == "bad input: x"


def test_a_process_past_its_timeout_is_killed(tmp_path):
    slow = run_measured([sys.executable, "-c", "import time; time.sleep(60)"],
                        tmp_path / "slow.log", timeout=0.5)
    assert not slow.ok and slow.seconds < 30


def test_sizes_are_parsed_sorted_and_bad_ones_refused():
    assert scale.parse_sizes("20000, 2000,2000") == [2000, 20000]
    for bad in ("", "2000,x", "10"):
        with pytest.raises(FfclrError):
            scale.parse_sizes(bad)
    assert scale.drawing_count(100_000) == 20_000 and scale.drawing_count(3) == 10


def test_results_keep_each_stage_per_size_and_failures_as_errors(tmp_path):
    results = scale.Results([2000, 20000], [1990, None], {}, {})
    ok = run_measured([sys.executable, "-c", "pass"], tmp_path / "ok.log")
    bad = run_measured([sys.executable, "-c", "raise SystemExit('no crops')"], tmp_path / "b.log")
    results.record("import", 0, ok)
    results.record("import", 1, bad)
    results.record("app_click", 0, ok, seconds=0.25)
    data = json.loads(json.dumps(results.as_json()))
    assert data["stages"]["import"]["seconds"][0] == round(ok.seconds, 3)
    assert data["stages"]["import"]["seconds"][1] is None
    assert data["stages"]["app_click"]["seconds"] == [0.25, None]
    assert data["errors"] == {"import@20000": "no crops"}
    figure = scale.figure(data)
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    assert [t.name for t in figure.data] == ["import", "app_click"]
    assert list(figure.data[0].x) == [1990]


def test_bench_scale_refuses_bad_sizes_in_one_line(capsys):
    assert main(["bench", "scale", "--sizes", "2000,lots"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sizes" in err[0]
